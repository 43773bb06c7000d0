package install

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/packnow/packnow-operator/hack/testenv"
)

// TestHelmInstallUpgradeUninstall installs the chart into the API server for real, through the Helm SDK and a
// kubeconfig, as `helm install` does; upgrades it with changed values; and uninstalls it, which must keep the CRD.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	const ns = "packnow-helm"
	// A cluster without the CRD, which the chart installs, as on a first install.
	srv, err := testenv.StartAPIServer(testenv.APIServerOptions{WithoutProjectCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ctx := context.Background()
	scheme := testenv.Scheme()
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	c, err := client.New(srv.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.Name = "packnowapps.packnow.io"

	cfg := helmConfig(t, srv.Env, ns)
	inst := action.NewInstall(cfg)
	inst.ReleaseName = releaseName
	inst.Namespace = ns
	inst.CreateNamespace = true
	inst.ServerSideApply = true
	// envtest runs no controllers, so the Deployment never becomes available: do not wait for it.
	inst.WaitStrategy = kube.HookOnlyStrategy
	inst.Timeout = time.Minute
	r, err := inst.RunWithContext(ctx, loadChart(t), nil)
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	rel := r.(*release.Release)
	if rel.Info.Status != "deployed" || rel.Version != 1 {
		t.Fatalf("release %s revision %d, want deployed revision 1", rel.Info.Status, rel.Version)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(crd), crd); err != nil {
		t.Fatalf("CRD after install: %v", err)
	}
	if crd.Annotations["helm.sh/resource-policy"] != "keep" || crd.Annotations["meta.helm.sh/release-name"] != releaseName {
		t.Errorf("CRD annotations %v", crd.Annotations)
	}
	checkInstalledRBAC(t, c, ns)

	up := action.NewUpgrade(cfg)
	up.Namespace = ns
	up.ServerSideApply = "true"
	up.ReuseValues = true
	up.WaitStrategy = kube.HookOnlyStrategy
	up.Timeout = time.Minute
	r, err = up.RunWithContext(ctx, releaseName, loadChart(t), values(t, "replicaCount=3", "webhooks.timeoutSeconds=10"))
	if err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	if rel := r.(*release.Release); rel.Info.Status != "deployed" || rel.Version != 2 {
		t.Fatalf("release %s revision %d after upgrade, want deployed revision 2", rel.Info.Status, rel.Version)
	}
	dep := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: releaseName + "-controller-manager"}, dep); err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %d after upgrade, want 3", *dep.Spec.Replicas)
	}
	vwc := &admissionv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: releaseName + "-validating-webhook-configuration"}, vwc); err != nil {
		t.Fatal(err)
	}
	for _, wh := range vwc.Webhooks {
		if *wh.TimeoutSeconds != 10 {
			t.Errorf("webhook %s timeout %d after upgrade, want 10", wh.Name, *wh.TimeoutSeconds)
		}
	}

	un := action.NewUninstall(cfg)
	un.WaitStrategy = kube.HookOnlyStrategy
	un.Timeout = time.Minute
	if _, err := un.Run(releaseName); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	err = c.Get(ctx, client.ObjectKeyFromObject(dep), dep)
	if !apierrors.IsNotFound(err) {
		t.Errorf("Deployment after uninstall: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(crd), crd); err != nil || !crd.DeletionTimestamp.IsZero() {
		t.Errorf("the CRD must survive uninstall: %v", err)
	}
}

// helmConfig is the SDK's configuration for a cluster admin's kubeconfig of the envtest API server.
func helmConfig(t *testing.T, env *envtest.Environment, ns string) *action.Configuration {
	t.Helper()
	user, err := env.AddUser(envtest.User{Name: "helm", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &path, &ns
	cfg := action.NewConfiguration()
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// checkInstalledRBAC compares the installed roles and bindings with config/rbac as kustomize renders it: the same
// objects by name, the same rules and role references, subjects in the release namespace.
func checkInstalledRBAC(t *testing.T, c client.Client, ns string) {
	t.Helper()
	ctx := context.Background()
	want := kustomize(t, filepath.Join(root, "config", "rbac"))
	if len(want) == 0 {
		t.Fatal("config/rbac renders nothing")
	}
	for _, w := range want {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(w.GroupVersionKind())
		key := client.ObjectKey{Name: releaseName + "-" + w.GetName()}
		if w.GetNamespace() != "" {
			key.Namespace = ns
		}
		if err := c.Get(ctx, key, got); err != nil {
			t.Errorf("%s %s: %v", w.GetKind(), key, err)
			continue
		}
		for _, f := range []string{"rules", "roleRef", "subjects"} {
			wv := w.Object[f]
			if f == "roleRef" && wv != nil {
				ref := wv.(map[string]any)
				ref["name"] = releaseName + "-" + ref["name"].(string)
			}
			if f == "subjects" && wv != nil {
				for _, s := range wv.([]any) {
					s := s.(map[string]any)
					s["name"], s["namespace"] = releaseName+"-"+s["name"].(string), ns
				}
			}
			if !reflect.DeepEqual(wv, got.Object[f]) {
				t.Errorf("%s %s: %s\n got %v\nwant %v", w.GetKind(), key, f, got.Object[f], wv)
			}
		}
	}
}
