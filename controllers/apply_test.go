package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// A sum stands for exactly one version of one child: any other write to it, or a re-created child, has none.
func TestAppliedSumsKnowOnlyTheVersionRecorded(t *testing.T) {
	a := newAppliedSums()
	sum := sha256.Sum256([]byte(`{"spec":{"replicas":2}}`))
	live := &corev1.Service{ObjectMeta: metav1.ObjectMeta{UID: "u1", ResourceVersion: "10"}}

	if _, known := a.sumOf(live); known {
		t.Fatal("a version never recorded has a sum")
	}
	a.record(live.UID, live.ResourceVersion, sum)
	if got, known := a.sumOf(live); !known || got != sum {
		t.Fatalf("the recorded version: sum known %v, equal %v", known, got == sum)
	}
	edited := live.DeepCopy()
	edited.ResourceVersion = "11"
	if _, known := a.sumOf(edited); known {
		t.Error("a version written by someone else has the sum of the one before")
	}
	recreated := live.DeepCopy()
	recreated.UID = "u2"
	if _, known := a.sumOf(recreated); known {
		t.Error("a re-created child has the sum of the one deleted")
	}
	if _, known := (*appliedSums)(nil).sumOf(live); known {
		t.Error("a reconciler without sums knew one")
	}
}

// The client decodes the API server's answer to an apply into the apply configuration; the version it names
// is the one recorded.
func TestAppliedSumsRecordTheVersionAnApplyWrote(t *testing.T) {
	a := newAppliedSums()
	sum := sha256.Sum256([]byte("desired"))
	answer := corev1ac.Service("web", "shop").WithUID("u1").WithResourceVersion("42")
	if prior, err := a.recordAnswer(answer, sum); err != nil || prior != unknownBefore {
		t.Fatalf("a first apply: prior %v, error %v", prior, err)
	}
	if got, known := a.sumOf(&corev1.Service{ObjectMeta: metav1.ObjectMeta{UID: "u1", ResourceVersion: "42"}}); !known || got != sum {
		t.Error("the version the apply wrote was not recorded")
	}
	if _, err := a.recordAnswer(corev1ac.Service("db", "shop"), sum); err != nil {
		t.Fatal(err)
	}
	if a.versions.Len() != 1 {
		t.Errorf("an answer without uid and resourceVersion was recorded: %d entries", a.versions.Len())
	}
}

// What an apply's answer says about the child before it: only a child known to hold the desired fields
// already makes the apply a non-event.
func TestAppliedSumsTellWhatTheChildHeldBeforeAnApply(t *testing.T) {
	desired, other := sha256.Sum256([]byte("desired")), sha256.Sum256([]byte("other"))
	for _, tc := range []struct {
		name  string
		known func(a *appliedSums)
		want  priorVersion
	}{
		{"never seen: a creation", func(*appliedSums) {}, unknownBefore},
		{"an earlier apply answered with this very version: this one wrote nothing",
			func(a *appliedSums) { a.recordWritten("u1", "42", desired) }, heldDesired},
		{"an older version held the desired fields",
			func(a *appliedSums) { a.record("u1", "40", desired) }, heldDesired},
		{"the watch delivered this apply's own write before its answer",
			func(a *appliedSums) { a.record("u1", "42", desired) }, unknownBefore},
		{"the child held other fields", func(a *appliedSums) { a.record("u1", "40", other) }, heldOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAppliedSums()
			tc.known(a)
			if got := a.recordWritten("u1", "42", desired); got != tc.want {
				t.Errorf("prior %v, want %v", got, tc.want)
			}
			if got, known := a.sumOf(&corev1.Service{ObjectMeta: metav1.ObjectMeta{UID: "u1", ResourceVersion: "42"}}); !known || got != desired {
				t.Error("the answer's version was not recorded")
			}
		})
	}
}

// appliedService is a Service as the API server holds it after the operator applied wanted to it and another
// manager set its session affinity.
func appliedService(t *testing.T) (*corev1.Service, *corev1ac.ServiceApplyConfiguration) {
	t.Helper()
	wanted := corev1ac.Service("web", "shop").
		WithLabels(map[string]string{"app": "web"}).
		WithSpec(corev1ac.ServiceSpec().WithType(corev1.ServiceTypeClusterIP))
	live := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "shop", UID: "u1", ResourceVersion: "7", Labels: map[string]string{"app": "web"},
			ManagedFields: []metav1.ManagedFieldsEntry{{
				Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1", FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:type":{}}}`)},
			}, {
				Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:sessionAffinity":{}}}`)},
			}},
		},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityClientIP},
	}
	return live, wanted
}

func sumOfJSON(t *testing.T, v any) [sha256.Size]byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(raw)
}

// The cache stores a child without managedFields, and the sum it records for that version is the one of the
// configuration the operator applied, not of another manager's fields: a converged child needs no apply.
func TestCacheTransformRecordsTheAppliedSumAndDropsManagedFields(t *testing.T) {
	a := newAppliedSums()
	live, wanted := appliedService(t)
	out, err := sumAndStripManagedFields(a, corev1ac.ExtractService)(live)
	if err != nil {
		t.Fatal(err)
	}
	stored := out.(*corev1.Service)
	if stored.ManagedFields != nil {
		t.Errorf("the cache keeps managedFields: %v", stored.ManagedFields)
	}
	if stored.Spec.SessionAffinity != corev1.ServiceAffinityClientIP || stored.Labels["app"] != "web" {
		t.Errorf("the transform changed more than managedFields: %+v", stored)
	}
	got, known := a.sumOf(stored)
	if !known {
		t.Fatal("no sum recorded for the cached version")
	}
	if got != sumOfJSON(t, wanted) {
		t.Error("the sum of a child holding the desired configuration differs from the desired one's")
	}
	if got == sumOfJSON(t, wanted.WithSpec(corev1ac.ServiceSpec().WithType(corev1.ServiceTypeNodePort))) {
		t.Error("a changed desired configuration has the sum of the applied one")
	}

	other, _ := appliedService(t)
	untouched := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "p", ResourceVersion: "1", ManagedFields: other.ManagedFields}}
	if out, _ := sumAndStripManagedFields(a, corev1ac.ExtractService)(untouched); out.(*corev1.Pod).ManagedFields == nil {
		t.Error("the transform of Services stripped a Pod")
	}
}

// A cached version without a sum (one that fell out of the bounded memory) is read from the API server with its
// managedFields, and its sum is recorded for the next reconcile.
func TestHoldsDesiredReadsAVersionWithoutSumFromTheAPIServer(t *testing.T) {
	live, wanted := appliedService(t)
	cached := live.DeepCopy()
	cached.ManagedFields = nil
	r := &PackNowAppReconciler{
		APIReader: fake.NewClientBuilder().WithReturnManagedFields().WithObjects(live).Build(),
		applied:   newAppliedSums(),
	}
	fromServer := &corev1.Service{}
	if err := r.APIReader.Get(context.Background(), client.ObjectKeyFromObject(live), fromServer); err != nil {
		t.Fatal(err)
	}
	if len(fromServer.ManagedFields) != 2 {
		t.Fatalf("the fake API server does not keep managedFields (%d entries): the test proves nothing", len(fromServer.ManagedFields))
	}

	same, err := holdsDesired(context.Background(), r, cached, sumOfJSON(t, wanted), corev1ac.ExtractService)
	if err != nil {
		t.Fatal(err)
	}
	if !same {
		t.Error("a child holding the desired configuration was found to differ")
	}
	if _, known := r.applied.sumOf(fromServer); !known {
		t.Error("the sum read from the API server was not recorded")
	}
	other := sumOfJSON(t, wanted.WithSpec(corev1ac.ServiceSpec().WithType(corev1.ServiceTypeNodePort)))
	if same, err := holdsDesired(context.Background(), r, cached, other, corev1ac.ExtractService); err != nil || same {
		t.Errorf("a changed desired configuration: same %v, error %v", same, err)
	}
}
