// Command demo holds the steps of `make demo` that need the Kubernetes API rather than kubectl:
//
//	demo webhooks -url https://localhost:9443 -prefix packnow-operator-
//	    prints config/webhook/manifests.yaml rewritten for a webhook server on this machine (clientConfig.url
//	    instead of the in-cluster Service), with the names kustomize's namePrefix gives them.
//	demo app-env -namespace demo -name demo
//	    prints, as shell exports, the environment of the API container of PackNowApp <name> exactly as the
//	    operator wrote it into the Deployment, with every secretKeyRef resolved from its Secret.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/packnow/packnow-operator/hack/testenv"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: demo webhooks|app-env [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	switch args[0] {
	case "webhooks":
		url := fs.String("url", "https://localhost:9443", "base URL of the webhook server")
		prefix := fs.String("prefix", "packnow-operator-", "prefix of the configurations' names")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		manifests := filepath.Join(testenv.RepoRoot(), "config", "webhook", "manifests.yaml")
		return localWebhooks(manifests, *url, *prefix, out)
	case "app-env":
		ns := fs.String("namespace", "demo", "namespace of the PackNowApp")
		name := fs.String("name", "demo", "name of the PackNowApp")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return appEnv(context.Background(), *ns, *name, out)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func localWebhooks(path, baseURL, prefix string, out io.Writer) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	url := func(cc *admissionv1.WebhookClientConfig) {
		u := strings.TrimSuffix(baseURL, "/") + *cc.Service.Path
		cc.Service, cc.URL = nil, &u
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for {
		var doc map[string]any
		if err := decoder.Decode(&doc); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if doc == nil {
			continue
		}
		docJSON, _ := yaml.Marshal(doc)
		var obj any
		switch doc["kind"] {
		case "ValidatingWebhookConfiguration":
			var c admissionv1.ValidatingWebhookConfiguration
			if err := yaml.UnmarshalStrict(docJSON, &c); err != nil {
				return err
			}
			c.Name = prefix + c.Name
			for i := range c.Webhooks {
				url(&c.Webhooks[i].ClientConfig)
			}
			obj = &c
		case "MutatingWebhookConfiguration":
			var c admissionv1.MutatingWebhookConfiguration
			if err := yaml.UnmarshalStrict(docJSON, &c); err != nil {
				return err
			}
			c.Name = prefix + c.Name
			for i := range c.Webhooks {
				url(&c.Webhooks[i].ClientConfig)
			}
			obj = &c
		default:
			return fmt.Errorf("%s: unexpected kind %v", path, doc["kind"])
		}
		y, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "---\n%s", y)
	}
}

func appEnv(ctx context.Context, ns, name string, out io.Writer) error {
	c, err := client.New(ctrl.GetConfigOrDie(), client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return err
	}
	var deploy appsv1.Deployment
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name + "-api"}, &deploy); err != nil {
		return err
	}
	containers := deploy.Spec.Template.Spec.Containers
	if len(containers) == 0 {
		return fmt.Errorf("deployment %s/%s has no container", ns, deploy.Name)
	}
	secrets := map[string]*corev1.Secret{}
	env := map[string]string{}
	for _, e := range containers[0].Env {
		ref := secretRef(e)
		if ref == nil {
			env[e.Name] = e.Value
			continue
		}
		s, ok := secrets[ref.Name]
		if !ok {
			s = &corev1.Secret{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, s); err != nil {
				return err
			}
			secrets[ref.Name] = s
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if ref.Optional != nil && *ref.Optional {
				continue
			}
			return fmt.Errorf("secret %s/%s has no key %s", ns, ref.Name, ref.Key)
		}
		env[e.Name] = string(v)
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(out, "export %s=%s\n", k, shellQuote(env[k]))
	}
	return nil
}

func secretRef(e corev1.EnvVar) *corev1.SecretKeySelector {
	if e.ValueFrom == nil {
		return nil
	}
	return e.ValueFrom.SecretKeyRef
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
