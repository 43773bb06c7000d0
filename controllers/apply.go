package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// applyConfiguration is a typed server-side apply configuration of a named object.
type applyConfiguration interface {
	runtime.ApplyConfiguration
	GetName() *string
}

// get reads the object of that name in the app's namespace through c; found is false when c has none.
func get(ctx context.Context, c client.Reader, app *packnowv1alpha1.PackNowApp, name string, obj client.Object) (found bool, err error) {
	err = c.Get(ctx, client.ObjectKey{Namespace: app.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// applyIfChanged applies desired unless live already holds exactly what the operator's field manager applied
// last, so that a converged app costs no writes. Someone else changing or removing an operator-owned field
// takes that field from the operator's managed set, which makes the two differ and the apply take it back.
// live is the current object (found false when there is none).
func applyIfChanged[O client.Object, AC applyConfiguration](ctx context.Context, r *PackNowAppReconciler,
	app *packnowv1alpha1.PackNowApp, live O, found bool, desired AC, extract func(O, string) (AC, error),
) (changed bool, err error) {
	if found {
		applied, err := extract(live, FieldManager)
		if err != nil {
			return false, fmt.Errorf("read the fields %s applied to %s: %w", FieldManager, *desired.GetName(), err)
		}
		same, err := sameJSON(applied, desired)
		if err != nil || same {
			return false, err
		}
	}
	kind := kindOf(r.Client.Scheme(), live)
	// The child is the event's related object: events.k8s.io folds events that differ only in their note into
	// one series, so without it "created Secret a" and "created Deployment b" would show as one event.
	live.SetNamespace(app.Namespace)
	live.SetName(*desired.GetName())
	if err := r.Client.Apply(ctx, desired, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		if apierrors.IsConflict(err) {
			// Only an apply conditional on a resourceVersion conflicts; it is retried on the newer object.
			return false, fmt.Errorf("apply %s %s: %w", kind, *desired.GetName(), err)
		}
		r.Recorder.Eventf(app, live, corev1.EventTypeWarning, ReasonApplyFailed, "Apply",
			"could not apply %s %s: %v", kind, *desired.GetName(), err)
		return false, fmt.Errorf("apply %s %s: %w", kind, *desired.GetName(), err)
	}
	reason, note := changeEvent(app, found)
	r.Recorder.Eventf(app, live, corev1.EventTypeNormal, reason, "Apply", "%s %s %s", note, kind, *desired.GetName())
	return true, nil
}

// changeEvent tells a first creation and a spec change from a repair: a child that differs while the spec is
// unchanged since the last reconcile was edited or deleted by someone else.
func changeEvent(app *packnowv1alpha1.PackNowApp, found bool) (reason, note string) {
	switch {
	case app.Status.ObservedGeneration == app.Generation && found:
		return "Repaired", "restored the operator's settings of"
	case app.Status.ObservedGeneration == app.Generation:
		return "Repaired", "re-created"
	case found:
		return "Updated", "updated"
	default:
		return "Created", "created"
	}
}

func sameJSON(a, b any) (bool, error) {
	ja, err := json.Marshal(a)
	if err != nil {
		return false, err
	}
	jb, err := json.Marshal(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ja, jb), nil
}

func kindOf(scheme *runtime.Scheme, obj runtime.Object) string {
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return fmt.Sprintf("%T", obj)
	}
	return gvk.Kind
}
