// Package install tests what users install and run: the Helm chart, the kustomize configuration and the static
// binaries the images hold. Rendered objects go to a real API server (envtest), which validates them against the
// real schemas, the PackNowApp CRD and the upstream CRDs of cert-manager and prometheus-operator.
package install

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/packnow/packnow-operator/hack/testenv"
)

// The upstream CRDs that the chart's optional objects need, read from their modules (go mod download puts them in
// the module cache without adding them to go.mod).
var thirdPartyCRDs = []struct{ module, file string }{
	{"github.com/prometheus-operator/prometheus-operator@v0.85.0", "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"},
	{"github.com/prometheus-operator/prometheus-operator@v0.85.0", "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"},
	{"github.com/cert-manager/cert-manager@v1.21.2", "deploy/crds/cert-manager.io_certificates.yaml"},
	{"github.com/cert-manager/cert-manager@v1.21.2", "deploy/crds/cert-manager.io_issuers.yaml"},
}

var (
	root     = testenv.RepoRoot()
	chartDir = filepath.Join(root, "charts", "packnow-operator")

	apiOnce sync.Once
	api     *testenv.APIServer
	apiErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if api != nil {
		if err := api.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the API server:", err)
		}
	}
	os.Exit(code)
}

// apiServer starts the shared API server, with the third-party CRDs, on first use: the tests of the binaries
// need none.
func apiServer(t *testing.T) *testenv.APIServer {
	t.Helper()
	apiOnce.Do(func() {
		var crds []string
		for _, c := range thirdPartyCRDs {
			dir, err := moduleDir(c.module)
			if err != nil {
				apiErr = err
				return
			}
			crds = append(crds, filepath.Join(dir, c.file))
		}
		api, apiErr = testenv.StartAPIServer(testenv.APIServerOptions{CRDDirectoryPaths: crds})
	})
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	return api
}

func moduleDir(module string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w: %s%s", module, err, stderr.String(), out)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", err
	}
	if info.Error != "" {
		return "", fmt.Errorf("go mod download %s: %s", module, info.Error)
	}
	return info.Dir, nil
}

// decode splits a multi-document YAML stream into objects, skipping empty documents. Numbers become int64
// where they are whole, as the API machinery decodes them, so renderings from different tools compare equal.
func decode(t *testing.T, manifest []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifest)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("reading the manifest: %v", err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("decoding %s: %v", doc, err)
		}
		if string(js) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatalf("decoding %s: %v", doc, err)
		}
		objs = append(objs, u)
	}
}

// find returns the objects of a kind, by name.
func find(objs []*unstructured.Unstructured, kind string) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() == kind {
			m[o.GetName()] = o
		}
	}
	return m
}

func kinds(objs []*unstructured.Unstructured) string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.GetKind()+"/"+o.GetName())
	}
	return strings.Join(ks, " ")
}
