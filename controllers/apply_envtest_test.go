package controllers_test

import (
	"context"
	"strings"
	"testing"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"

	"github.com/packnow/packnow-operator/controllers"
)

// A reconcile whose cache has not caught up with the reconcile before applies a child again, and the API server
// answers with the child unchanged: nothing is told, and nothing counts as changed, so the app's creation stays
// one event.
func TestAnApplyThatChangedNothingIsNotToldAsACreation(t *testing.T) {
	s := env(t)
	ns := s.namespace(t, "unseen")
	app := newApp(ns, "lagging")
	app.Generation = 1
	recorder := events.NewFakeRecorder(10)
	r := &controllers.PackNowAppReconciler{Client: s.k8s, APIReader: s.k8s, Recorder: recorder}
	r.CacheOptions() // sets up the sums of applied fields the answers are compared with
	// The client decodes the answer into the configuration applied, so each apply builds its own, as a reconcile does.
	service := func() *corev1ac.ServiceApplyConfiguration {
		return corev1ac.Service("lagging-api", ns).
			WithSpec(corev1ac.ServiceSpec().WithPorts(corev1ac.ServicePort().WithName("http").WithPort(80)))
	}
	apply := func(desired *corev1ac.ServiceApplyConfiguration) bool {
		t.Helper()
		changed, err := controllers.ApplyServiceTheCacheMisses(context.Background(), r, app, desired)
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	told := func() []string {
		var got []string
		for len(recorder.Events) > 0 {
			got = append(got, <-recorder.Events)
		}
		return got
	}

	if !apply(service()) {
		t.Fatal("the creation did not count as a change")
	}
	if got := told(); len(got) != 1 || !strings.HasPrefix(got[0], "Normal Created created Service lagging-api") {
		t.Fatalf("events of the creation %q", got)
	}
	if apply(service()) {
		t.Error("applying the Service unchanged counted as a change")
	}
	if got := told(); len(got) != 0 {
		t.Errorf("applying the Service unchanged told %q", got)
	}

	app.Generation, app.Status.ObservedGeneration = 2, 1
	if !apply(service().WithAnnotations(map[string]string{"packnow.io/tier": "api"})) {
		t.Error("a spec change applied to a Service the cache misses did not count as a change")
	}
	if got := told(); len(got) != 1 || !strings.HasPrefix(got[0], "Normal Updated updated Service lagging-api") {
		t.Errorf("events of the spec change %q, want one Updated", got)
	}
}
