package controllers

import (
	"crypto/sha256"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// A verified version spares only that exact version with that exact desired configuration: any other write to
// the child, or a new desired configuration, must be extracted and compared again.
func TestVerifiedAppliesSparesOnlyTheVerifiedVersion(t *testing.T) {
	v := newVerifiedApplies()
	desired := sha256.Sum256([]byte(`{"spec":{"replicas":2}}`))
	other := sha256.Sum256([]byte(`{"spec":{"replicas":3}}`))
	live := &corev1.Service{ObjectMeta: metav1.ObjectMeta{UID: "u1", ResourceVersion: "10"}}

	if v.holds(live, desired) {
		t.Fatal("a version never verified was spared")
	}
	v.remember(live.UID, live.ResourceVersion, desired)
	if !v.holds(live, desired) {
		t.Fatal("the verified version was not spared")
	}
	if v.holds(live, other) {
		t.Error("a new desired configuration was spared the comparison")
	}
	edited := live.DeepCopy()
	edited.ResourceVersion = "11"
	if v.holds(edited, desired) {
		t.Error("a version written by someone else was spared the comparison")
	}
	recreated := live.DeepCopy()
	recreated.UID = "u2"
	if v.holds(recreated, desired) {
		t.Error("a re-created child was spared the comparison")
	}
	if (*verifiedApplies)(nil).holds(live, desired) {
		t.Error("a reconciler without the memory spared a comparison")
	}
}

// The client decodes the API server's answer to an apply into the apply configuration; the version it names
// is the one remembered.
func TestVerifiedAppliesRemembersTheVersionAnApplyWrote(t *testing.T) {
	v := newVerifiedApplies()
	desired := sha256.Sum256([]byte("desired"))
	answer := corev1ac.Service("web", "shop").WithUID("u1").WithResourceVersion("42")
	if err := v.rememberApplied(answer, desired); err != nil {
		t.Fatal(err)
	}
	if !v.holds(&corev1.Service{ObjectMeta: metav1.ObjectMeta{UID: "u1", ResourceVersion: "42"}}, desired) {
		t.Error("the version the apply wrote was not remembered")
	}
	unanswered := corev1ac.Service("db", "shop")
	if err := v.rememberApplied(unanswered, desired); err != nil {
		t.Fatal(err)
	}
	if v.versions.Len() != 1 {
		t.Errorf("an answer without uid and resourceVersion was remembered: %d entries", v.versions.Len())
	}
}
