package controllers

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/client-go/tools/events"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// reconcileOf is a reconcile of app at generation, observed at observed, whose events go to the recorder.
func reconcileOf(generation, observed int64) (*PackNowAppReconciler, *events.FakeRecorder, *packnowv1alpha1.PackNowApp, context.Context, *changeLog) {
	recorder := events.NewFakeRecorder(20)
	app := testApp()
	app.Generation, app.Status.ObservedGeneration = generation, observed
	ctx, changes := withChangeLog(context.Background())
	return &PackNowAppReconciler{Recorder: recorder}, recorder, app, ctx, changes
}

func drain(recorder *events.FakeRecorder) []string {
	var got []string
	for {
		select {
		case e := <-recorder.Events:
			got = append(got, e)
		default:
			return got
		}
	}
}

// The first reconcile of an app tells all the children it created in one event, and anything else it changed
// in an event of its own.
func TestFirstReconcileTellsItsCreationsInOneEvent(t *testing.T) {
	r, recorder, app, ctx, changes := reconcileOf(1, 0)
	r.tellChange(ctx, app, childChange{reason: reasonCreated, note: "created", kind: "Secret", name: "shop-postgres"})
	r.tellChange(ctx, app, childChange{reason: "Updated", note: "updated", kind: "Service", name: "shop-api"})
	r.tellChange(ctx, app, childChange{reason: reasonCreated, note: "created", kind: "Deployment", name: "shop-api"})
	if got := drain(recorder); len(got) != 0 {
		t.Fatalf("told before the reconcile ended: %q", got)
	}
	r.tellChanges(app, changes)
	got := drain(recorder)
	want := []string{"Normal Updated updated Service shop-api", "Normal Created created Secret shop-postgres, Deployment shop-api"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// After the first reconcile, each child changed is told on its own: a list told later would be folded into the
// series of the first one, under its note.
func TestLaterReconcilesTellEachChild(t *testing.T) {
	r, recorder, app, ctx, changes := reconcileOf(2, 1)
	r.tellChange(ctx, app, childChange{reason: reasonCreated, note: "created", kind: "ConfigMap", name: "shop-api"})
	r.tellChange(ctx, app, childChange{reason: reasonCreated, note: "created", kind: "Ingress", name: "shop-api"})
	r.tellChanges(app, changes)
	if got := drain(recorder); len(got) != 2 {
		t.Errorf("events %q, want one per child", got)
	}
}

// Outside a reconcile that collects changes, a change is told at once.
func TestChangeOutsideAReconcileIsToldAtOnce(t *testing.T) {
	recorder := events.NewFakeRecorder(20)
	r := &PackNowAppReconciler{Recorder: recorder}
	r.tellChange(context.Background(), testApp(), childChange{reason: "Repaired", note: "re-created", kind: "Service", name: "shop-api"})
	if got := drain(recorder); len(got) != 1 || got[0] != "Normal Repaired re-created Service shop-api" {
		t.Errorf("events %q", got)
	}
}

// The API server refuses an event whose note is longer than 1 KiB, which would lose the whole event.
func TestCreatedNoteFitsAnEvent(t *testing.T) {
	var created []childChange
	for range 20 {
		created = append(created, childChange{kind: "PodDisruptionBudget", name: strings.Repeat("é", 31) + "-api"})
	}
	note := createdNote(created)
	if len(note) > maxEventNote || !utf8.ValidString(note) || !strings.HasSuffix(note, " …") {
		t.Errorf("note of %d bytes (valid UTF-8 %v): %q", len(note), utf8.ValidString(note), note)
	}
}
