package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/lru"
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
	want, err := json.Marshal(desired)
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(want)
	if found {
		if r.verified.holds(live, sum) {
			return false, nil
		}
		applied, err := extract(live, FieldManager)
		if err != nil {
			return false, fmt.Errorf("read the fields %s applied to %s: %w", FieldManager, *desired.GetName(), err)
		}
		have, err := json.Marshal(applied)
		if err != nil {
			return false, err
		}
		if bytes.Equal(have, want) {
			r.verified.remember(live.GetUID(), live.GetResourceVersion(), sum)
			return false, nil
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
	// The apply answered with the object as written: the operator's fields in that version are desired.
	if err := r.verified.rememberApplied(desired, sum); err != nil {
		return false, err
	}
	reason, note := changeEvent(app, found)
	r.Recorder.Eventf(app, live, corev1.EventTypeNormal, reason, "Apply", "%s %s %s", note, kind, *desired.GetName())
	return true, nil
}

// verifiedApplies remembers, per child, the version in which the operator's fields were found (or written) to
// be exactly a desired configuration. Extracting those fields from managedFields is by far the largest cost of
// a reconcile that changes nothing (~75 KB of garbage per child), and a version of an object never changes: a
// child whose resourceVersion and desired configuration are both unchanged needs no second look. Anyone
// else's write gives the child a new resourceVersion, so a repair is never skipped.
type verifiedApplies struct {
	versions *lru.Cache // child UID → verifiedVersion
}

type verifiedVersion struct {
	resourceVersion string
	desired         [sha256.Size]byte
}

// verifiedAppliesSize bounds the memory (about 150 bytes an entry) for operators with many apps; a child
// that fell out is extracted again on its next reconcile.
const verifiedAppliesSize = 1 << 16

func newVerifiedApplies() *verifiedApplies {
	return &verifiedApplies{versions: lru.New(verifiedAppliesSize)}
}

// holds tells whether live is a version already verified to hold the desired configuration with that sum.
// A nil verifiedApplies remembers nothing.
func (v *verifiedApplies) holds(live metav1.Object, desired [sha256.Size]byte) bool {
	if v == nil || live.GetUID() == "" {
		return false
	}
	got, ok := v.versions.Get(live.GetUID())
	return ok && got.(verifiedVersion) == verifiedVersion{resourceVersion: live.GetResourceVersion(), desired: desired}
}

func (v *verifiedApplies) remember(uid types.UID, resourceVersion string, desired [sha256.Size]byte) {
	if v == nil || uid == "" || resourceVersion == "" {
		return
	}
	v.versions.Add(uid, verifiedVersion{resourceVersion: resourceVersion, desired: desired})
}

// rememberApplied records the version an apply wrote; the client decodes the API server's answer into the
// apply configuration, which has no typed accessor for its uid and resourceVersion.
func (v *verifiedApplies) rememberApplied(answer runtime.ApplyConfiguration, desired [sha256.Size]byte) error {
	if v == nil {
		return nil
	}
	raw, err := json.Marshal(answer)
	if err != nil {
		return err
	}
	var written struct {
		Metadata struct {
			UID             types.UID `json:"uid"`
			ResourceVersion string    `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &written); err != nil {
		return err
	}
	v.remember(written.Metadata.UID, written.Metadata.ResourceVersion, desired)
	return nil
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

func kindOf(scheme *runtime.Scheme, obj runtime.Object) string {
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return fmt.Sprintf("%T", obj)
	}
	return gvk.Kind
}
