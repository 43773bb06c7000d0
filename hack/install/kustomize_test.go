package install

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomize renders a kustomization directory as `kubectl kustomize` does.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, out)
}

// withOptions copies config/ and switches on every option region of config/default/kustomization.yaml, the
// way its header tells users to: uncomment from the [OPTION] line to the next blank line.
func withOptions(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "config"), os.DirFS(filepath.Join(root, "config"))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config", "default", "kustomization.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	marker := regexp.MustCompile(`^\s*# \[[A-Z-]+\]`)
	commented := regexp.MustCompile(`^(\s*)#`)
	lines := strings.Split(string(b), "\n")
	on := false
	for i, l := range lines {
		switch {
		case marker.MatchString(l):
			on = true
		case strings.TrimSpace(l) == "":
			on = false
		case on:
			lines[i] = commented.ReplaceAllString(l, "$1")
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "config", "default")
}

func TestKustomizeRendersValidObjects(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		objs := kustomize(t, filepath.Join(root, "config", "default"))
		checkKustomizeNames(t, objs)
		dryRunApply(t, objs)
	})
	t.Run("every option", func(t *testing.T) {
		objs := kustomize(t, withOptions(t))
		for _, kind := range []string{"Issuer", "Certificate", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"} {
			if len(find(objs, kind)) != 1 {
				t.Errorf("want one %s: %s", kind, kinds(objs))
			}
		}
		cert := find(objs, "Certificate")["packnow-operator-serving-cert"]
		if dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames"); len(dns) == 0 ||
			dns[0] != "packnow-operator-webhook-service.packnow-system.svc" {
			t.Errorf("certificate DNS names %v", dns)
		}
		for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
			for _, wh := range find(objs, kind) {
				if got := wh.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != "packnow-system/packnow-operator-serving-cert" {
					t.Errorf("%s inject-ca-from %q", kind, got)
				}
			}
		}
		args := containerArgs(t, find(objs, "Deployment")["packnow-operator-controller-manager"])
		if args[len(args)-1] != "--webhook-cert-manager" {
			t.Errorf("args %v", args)
		}
		dryRunApply(t, objs)
	})
}

// checkKustomizeNames checks that config/default names its objects as main.go's flags default to, so that the
// manager finds its webhook Service and configurations without flags.
func checkKustomizeNames(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	defaults := flagDefaults(t)
	for flag, kind := range map[string]string{
		"webhook-service-name":             "Service",
		"validating-webhook-configuration": "ValidatingWebhookConfiguration",
		"mutating-webhook-configuration":   "MutatingWebhookConfiguration",
	} {
		name := defaults[flag]
		if name == "" {
			t.Fatalf("main.go has no default for --%s", flag)
		}
		if find(objs, kind)[name] == nil {
			t.Errorf("--%s defaults to %q, but config/default has no %s of that name: %s", flag, name, kind, kinds(objs))
		}
	}
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" && ns != "packnow-system" {
			t.Errorf("%s %s in namespace %s, want packnow-system (the namespace the webhooks exclude)", o.GetKind(), o.GetName(), ns)
		}
	}
	if find(objs, "Namespace")["packnow-system"] == nil {
		t.Errorf("no Namespace packnow-system: %s", kinds(objs))
	}
}

// flagDefaults reads the string defaults of main.go's flags from its source.
func flagDefaults(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, "main.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 3 {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "StringVar" {
			return true
		}
		name, ok1 := call.Args[1].(*ast.BasicLit)
		def, ok2 := call.Args[2].(*ast.BasicLit)
		if ok1 && ok2 {
			n, _ := strconv.Unquote(name.Value)
			d, _ := strconv.Unquote(def.Value)
			defaults[n] = d
		}
		return true
	})
	return defaults
}

// TestKustomizeAndHelmAgree: with the release name packnow-operator in packnow-system, the chart renders the same
// RBAC, webhook configurations, CRD and alerts as config/default (with its options on), label aside.
func TestKustomizeAndHelmAgree(t *testing.T) {
	kust := kustomize(t, withOptions(t))
	helm := mustRender(t, "packnow-system", values(t, "metrics.prometheusRule.enabled=true"))
	compared := 0
	for _, c := range []struct {
		kind   string
		fields []string
	}{
		{"ServiceAccount", nil},
		{"ClusterRole", []string{"rules"}},
		{"Role", []string{"rules"}},
		{"ClusterRoleBinding", []string{"roleRef", "subjects"}},
		{"RoleBinding", []string{"roleRef", "subjects"}},
		{"ValidatingWebhookConfiguration", []string{"webhooks"}},
		{"MutatingWebhookConfiguration", []string{"webhooks"}},
		{"CustomResourceDefinition", []string{"spec"}},
		{"PrometheusRule", []string{"spec"}},
	} {
		k, h := find(kust, c.kind), find(helm, c.kind)
		if len(k) == 0 {
			t.Errorf("config/default renders no %s", c.kind)
		}
		for name, ko := range k {
			ho := h[name]
			if ho == nil {
				t.Errorf("the chart renders no %s %s", c.kind, name)
				continue
			}
			if ko.GetNamespace() != ho.GetNamespace() {
				t.Errorf("%s %s: namespace %q (kustomize) vs %q (helm)", c.kind, name, ko.GetNamespace(), ho.GetNamespace())
			}
			for _, f := range c.fields {
				kv, hv := ko.Object[f], ho.Object[f]
				if !reflect.DeepEqual(kv, hv) {
					t.Errorf("%s %s: %s differ\nkustomize: %v\nhelm:      %v", c.kind, name, f, kv, hv)
				}
			}
			compared++
		}
		for name := range h {
			if k[name] == nil {
				t.Errorf("the chart renders %s %s, which config/default does not", c.kind, name)
			}
		}
	}
	t.Logf("%d objects compared", compared)
}
