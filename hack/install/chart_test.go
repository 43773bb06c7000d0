package install

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/packnow/packnow-operator/hack/testenv"
)

// releaseName is the release name that gives the chart's objects config/default's names.
const releaseName = "packnow-operator"

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// render renders the chart as `helm template` does, through the SDK.
func render(t *testing.T, namespace string, vals map[string]any) ([]*unstructured.Unstructured, *release.Release, error) {
	t.Helper()
	inst := action.NewInstall(action.NewConfiguration())
	inst.DryRunStrategy = action.DryRunClient
	inst.Replace = true
	inst.ReleaseName = releaseName
	inst.Namespace = namespace
	inst.KubeVersion = &common.KubeVersion{Version: "v" + testenv.KubernetesVersion, Major: "1", Minor: "37"}
	r, err := inst.Run(loadChart(t), vals)
	if err != nil {
		return nil, nil, err
	}
	rel := r.(*release.Release)
	return decode(t, []byte(rel.Manifest)), rel, nil
}

func mustRender(t *testing.T, namespace string, vals map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, _, err := render(t, namespace, vals)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// values builds a values map from "a.b.c=<YAML value>" pairs, like helm --set.
func values(t *testing.T, pairs ...string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, p := range pairs {
		path, raw, _ := strings.Cut(p, "=")
		var v any
		if err := yaml.Unmarshal([]byte(raw), &v); err != nil {
			t.Fatal(err)
		}
		keys := strings.Split(path, ".")
		m := vals
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = v
	}
	return vals
}

func TestHelmLintStrict(t *testing.T) {
	lint := action.NewLint()
	lint.Strict = true
	lint.Namespace = "packnow-system"
	for _, vals := range []map[string]any{nil, values(t, "certManager.enabled=true", "metrics.serviceMonitor.enabled=true",
		"metrics.prometheusRule.enabled=true", "networkPolicy.enabled=true")} {
		res := lint.Run([]string{chartDir}, vals)
		for _, err := range res.Errors {
			t.Errorf("helm lint --strict %v: %v", vals, err)
		}
	}
}

// TestChartFilesMatchConfig guards `make helm-sync`: the chart renders copies of config/, which must be current.
func TestChartFilesMatchConfig(t *testing.T) {
	pairs := map[string]string{
		"files/webhook/manifests.yaml": "config/webhook/manifests.yaml",
		"files/prometheus/alerts.yaml": "config/prometheus/alerts.yaml",
	}
	for _, glob := range []struct{ from, to string }{{"config/crd/bases", "files/crds"}, {"config/rbac", "files/rbac"}} {
		src, _ := filepath.Glob(filepath.Join(root, glob.from, "*.yaml"))
		for _, f := range src {
			if filepath.Base(f) != "kustomization.yaml" {
				pairs[filepath.Join(glob.to, filepath.Base(f))] = filepath.Join(glob.from, filepath.Base(f))
			}
		}
	}
	for _, dir := range []string{"files/crds", "files/rbac"} {
		copies, _ := filepath.Glob(filepath.Join(chartDir, dir, "*.yaml"))
		for _, f := range copies {
			if _, ok := pairs[filepath.Join(dir, filepath.Base(f))]; !ok {
				t.Errorf("chart %s/%s has no source in config/: run `make helm-sync`", dir, filepath.Base(f))
			}
		}
	}
	for copyPath, srcPath := range pairs {
		want, err := os.ReadFile(filepath.Join(root, srcPath))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chartDir, copyPath))
		if err != nil || string(got) != string(want) {
			t.Errorf("chart %s differs from %s: run `make helm-sync` (make manifests does)", copyPath, srcPath)
		}
	}
}

// TestChartRendersValidObjects renders the chart for the defaults and each notable option into a namespace other
// than packnow-system, and has the API server validate every object.
func TestChartRendersValidObjects(t *testing.T) {
	const ns = "packnow-chart"
	cases := []struct {
		name  string
		vals  []string
		check func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{"defaults", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			dep := find(objs, "Deployment")[releaseName+"-controller-manager"]
			if dep == nil {
				t.Fatalf("no Deployment in %s", kinds(objs))
			}
			checkDeployment(t, dep, ns)
			if len(find(objs, "PodDisruptionBudget")) != 1 || len(find(objs, "CustomResourceDefinition")) != 1 {
				t.Errorf("want a PodDisruptionBudget and the CRD: %s", kinds(objs))
			}
			crd := find(objs, "CustomResourceDefinition")["packnowapps.packnow.io"]
			if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
				t.Errorf("CRD annotations %v, want helm.sh/resource-policy: keep", crd.GetAnnotations())
			}
			for _, kind := range []string{"Issuer", "Certificate", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"} {
				if len(find(objs, kind)) > 0 {
					t.Errorf("%s rendered by default", kind)
				}
			}
			checkWebhookNamespaces(t, objs, ns)
		}},
		{"cert-manager", []string{"certManager.enabled=true"}, func(t *testing.T, objs []*unstructured.Unstructured) {
			if len(find(objs, "Issuer")) != 1 || len(find(objs, "Certificate")) != 1 {
				t.Fatalf("want an Issuer and a Certificate: %s", kinds(objs))
			}
			cert := find(objs, "Certificate")[releaseName+"-serving-cert"]
			dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
			if !slices.Contains(dns, releaseName+"-webhook-service."+ns+".svc") {
				t.Errorf("certificate DNS names %v", dns)
			}
			for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
				for _, wh := range find(objs, kind) {
					if got := wh.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != ns+"/"+releaseName+"-serving-cert" {
						t.Errorf("%s inject-ca-from %q", kind, got)
					}
				}
			}
			dep := find(objs, "Deployment")[releaseName+"-controller-manager"]
			args := containerArgs(t, dep)
			if !slices.Contains(args, "--webhook-cert-manager") || slices.ContainsFunc(args, func(a string) bool {
				return strings.HasPrefix(a, "--webhook-cert-secret")
			}) {
				t.Errorf("args %v, want --webhook-cert-manager and no --webhook-cert-secret", args)
			}
			vols, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "volumes")
			if !strings.Contains(fmt.Sprint(vols), releaseName+"-webhook-server-cert") {
				t.Errorf("volumes %v do not mount the certificate Secret", vols)
			}
		}},
		{"cert-manager with a ClusterIssuer", []string{"certManager.enabled=true", `certManager.issuerRef={kind: ClusterIssuer, name: corp-ca}`},
			func(t *testing.T, objs []*unstructured.Unstructured) {
				if len(find(objs, "Issuer")) != 0 {
					t.Errorf("an Issuer is rendered although issuerRef names one")
				}
			}},
		{"monitoring", []string{"metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true", "metrics.prometheusRule.labels={release: prom}"},
			func(t *testing.T, objs []*unstructured.Unstructured) {
				if len(find(objs, "ServiceMonitor")) != 1 || len(find(objs, "PrometheusRule")) != 1 {
					t.Fatalf("want a ServiceMonitor and a PrometheusRule: %s", kinds(objs))
				}
				if find(objs, "PrometheusRule")[releaseName+"-alerts"].GetLabels()["release"] != "prom" {
					t.Errorf("PrometheusRule lacks the extra label")
				}
			}},
		{"network policy", []string{"networkPolicy.enabled=true"}, func(t *testing.T, objs []*unstructured.Unstructured) {
			if len(find(objs, "NetworkPolicy")) != 1 {
				t.Fatalf("want a NetworkPolicy: %s", kinds(objs))
			}
		}},
		{"CRDs off, one replica", []string{"crds.install=false", "replicaCount=1"}, func(t *testing.T, objs []*unstructured.Unstructured) {
			if len(find(objs, "CustomResourceDefinition")) != 0 || len(find(objs, "PodDisruptionBudget")) != 0 {
				t.Errorf("CRD or PDB rendered: %s", kinds(objs))
			}
		}},
		{"webhooks off", []string{"webhooks.enabled=false"}, func(t *testing.T, objs []*unstructured.Unstructured) {
			for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
				if len(find(objs, kind)) != 0 {
					t.Errorf("%s rendered with webhooks off", kind)
				}
			}
			if args := containerArgs(t, find(objs, "Deployment")[releaseName+"-controller-manager"]); !slices.Contains(args, "--enable-webhooks=false") {
				t.Errorf("args %v", args)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := mustRender(t, ns, values(t, tc.vals...))
			tc.check(t, objs)
			dryRunApply(t, objs)
		})
	}
}

func containerArgs(t *testing.T, dep *unstructured.Unstructured) []string {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("want one container, got %d", len(containers))
	}
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	return args
}

// checkDeployment checks what the issue asks of the operator's Deployment.
func checkDeployment(t *testing.T, dep *unstructured.Unstructured, ns string) {
	t.Helper()
	spec := dep.Object["spec"].(map[string]any)
	if spec["replicas"] != int64(2) {
		t.Errorf("replicas %v, want 2", spec["replicas"])
	}
	args := containerArgs(t, dep)
	for _, want := range []string{"--leader-elect=true", "--leader-election-lease-duration=15s",
		"--leader-election-renew-deadline=10s", "--leader-election-retry-period=2s", "--max-concurrent-reconciles=4",
		"--metrics-bind-address=:8443", "--health-probe-bind-address=:8081",
		"--webhook-service-name=" + releaseName + "-webhook-service", "--webhook-cert-secret=" + releaseName + "-webhook-cert",
		"--validating-webhook-configuration=" + releaseName + "-validating-webhook-configuration",
		"--mutating-webhook-configuration=" + releaseName + "-mutating-webhook-configuration"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	pod, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec")
	c := pod["containers"].([]any)[0].(map[string]any)
	for path, want := range map[string]any{
		"securityContext.runAsNonRoot":                          true,
		"securityContext.seccompProfile.type":                   "RuntimeDefault",
		"containers.0.securityContext.readOnlyRootFilesystem":   true,
		"containers.0.securityContext.allowPrivilegeEscalation": false,
		"containers.0.livenessProbe.httpGet.path":               "/healthz",
		"containers.0.readinessProbe.httpGet.path":              "/readyz",
		"containers.0.env.0.name":                               "POD_NAMESPACE",
		"containers.0.resources.limits.memory":                  "256Mi",
		"topologySpreadConstraints.0.topologyKey":               "kubernetes.io/hostname",
		"serviceAccountName":                                    releaseName + "-controller-manager",
	} {
		if got := lookup(pod, path); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("pod spec %s = %v, want %v", path, got, want)
		}
	}
	if fmt.Sprint(lookup(c, "securityContext.capabilities.drop")) != "[ALL]" {
		t.Errorf("capabilities not dropped")
	}
	if ports := fmt.Sprint(c["ports"]); !strings.Contains(ports, "metrics") || !strings.Contains(ports, "webhook-server") {
		t.Errorf("ports %s", ports)
	}
	if dep.GetNamespace() != ns {
		t.Errorf("namespace %q", dep.GetNamespace())
	}
}

// lookup follows a dotted path of map keys and list indexes.
func lookup(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// checkWebhookNamespaces checks that the webhooks exclude the release namespace, where the generated
// configuration names packnow-system, and call the release's Service.
func checkWebhookNamespaces(t *testing.T, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	n := 0
	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		for _, cfg := range find(objs, kind) {
			whs, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
			for _, wh := range whs {
				n++
				svc := lookup(wh, "clientConfig.service").(map[string]any)
				if svc["namespace"] != ns || svc["name"] != releaseName+"-webhook-service" {
					t.Errorf("webhook %v calls %v", lookup(wh, "name"), svc)
				}
				sel := fmt.Sprint(lookup(wh, "namespaceSelector"))
				if strings.Contains(sel, "packnow-system") || (lookup(wh, "namespaceSelector") != nil && !strings.Contains(sel, ns)) {
					t.Errorf("webhook %v namespaceSelector %s, want %s excluded instead of packnow-system", lookup(wh, "name"), sel, ns)
				}
			}
		}
	}
	if n != 4 {
		t.Errorf("%d webhooks, want 4", n)
	}
}

// TestValuesSchemaRejectsBadValues: values.schema.json turns mistakes away at install, naming the value.
func TestValuesSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"replicaCount=0", "/replicaCount"},
		{"replicaCount=two", "/replicaCount"},
		{"webhooks.failurePolicy=fail", "value must be one of 'Fail', 'Ignore'"},
		{"webhooks.timeoutSeconds=31", "/webhooks/timeoutSeconds"},
		{"webhooks.port=70000", "/webhooks/port"},
		{"image.pullPolicy=Sometimes", "/image/pullPolicy"},
		{"image.repository=", "missing property 'repository'"},
		{"logLevel=trace", "/logLevel"},
		{"leaderElection.leaseDuration=15", "/leaderElection/leaseDuration"},
		{"maxConcurrentReconciles=0", "/maxConcurrentReconciles"},
		{`crds.install="yes"`, "/crds/install"},
		{"certManager.issuerRef.kind=Vault", "/certManager/issuerRef/kind"},
		{"certManager.issuerRef={kind: ClusterIssuer}", "'name' required"},
		{"certManager.duration=90d", "/certManager/duration"},
		{"metrics.serviceMonitor.interval=30", "/metrics/serviceMonitor/interval"},
		{"networkPolicy.apiServerPorts=[]", "/networkPolicy/apiServerPorts"},
		{"resources.limits.memory=lots", "/resources/limits/memory"},
		{"podDisruptionBudget.minAvailable=half", "/podDisruptionBudget/minAvailable"},
		{"topologySpreadConstraints=[{maxSkew: 1}]", "/topologySpreadConstraints/0"},
		{"webhook.enabled=false", "additional properties 'webhook' not allowed"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			_, _, err := render(t, "packnow-system", values(t, tc.set))
			if err == nil {
				t.Fatalf("%s accepted", tc.set)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %q does not name %q", tc.set, err, tc.want)
			}
		})
	}
}

// TestNotes: NOTES.txt shows how to create a first PackNowApp and watch it.
func TestNotes(t *testing.T) {
	_, rel, err := render(t, "packnow-system", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: PackNowApp", "get pna demo -w", "rollout status deployment/packnow-operator-controller-manager"} {
		if !strings.Contains(rel.Info.Notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, rel.Info.Notes)
		}
	}
}
