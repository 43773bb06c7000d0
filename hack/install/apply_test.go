package install

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// dryRunApply sends every object to the API server as a server-side apply with dryRun=All: the server runs its
// full validation (OpenAPI schemas, CRD schemas and CEL rules, admission) without storing anything. Namespaces
// the objects live in are created for real, since a dry run cannot create into a missing namespace.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	c := apiServer(t).Client
	ctx := context.Background()
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" {
			ensureNamespace(t, ns)
		}
	}
	for _, o := range objs {
		err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
			client.DryRunAll, client.FieldOwner("install-test"), client.ForceOwnership)
		if err != nil {
			t.Errorf("%s %s/%s rejected: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{}
	ns.Name = name
	if err := apiServer(t).Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}
