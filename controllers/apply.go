package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	toolscache "k8s.io/client-go/tools/cache"
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
		same, err := holdsDesired(ctx, r, live, sum, extract)
		if err != nil {
			return false, fmt.Errorf("read the fields %s applied to %s: %w", FieldManager, *desired.GetName(), err)
		}
		if same {
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
	prior, err := r.applied.recordAnswer(desired, sum)
	if err != nil {
		return false, err
	}
	return r.tellApplied(ctx, app, found, prior, childChange{kind: kind, name: *desired.GetName(), related: live}), nil
}

// holdsDesired tells whether the operator's fields in live are exactly the desired ones, whose JSON has that
// sum. The cache keeps the sum of those fields for each version it holds instead of the version's
// managedFields; a version without a known sum is extracted from its managedFields, read from the API server
// when live has none.
func holdsDesired[O client.Object, AC applyConfiguration](ctx context.Context, r *PackNowAppReconciler,
	live O, desired [sha256.Size]byte, extract func(O, string) (AC, error),
) (bool, error) {
	if got, known := r.applied.sumOf(live); known {
		return got == desired, nil
	}
	withFields := live
	if len(live.GetManagedFields()) == 0 {
		withFields = live.DeepCopyObject().(O)
		err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(live), withFields)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	got, err := appliedSum(withFields, extract)
	if err != nil {
		return false, err
	}
	r.applied.record(withFields.GetUID(), withFields.GetResourceVersion(), got)
	return got == desired, nil
}

// appliedSum is the sha256 of the JSON of the fields the operator's field manager applied to obj.
func appliedSum[O client.Object, AC any](obj O, extract func(O, string) (AC, error)) ([sha256.Size]byte, error) {
	applied, err := extract(obj, FieldManager)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	raw, err := json.Marshal(applied)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(raw), nil
}

// appliedSums remembers, per child, the sum of the fields the operator applied in one version of it. A version
// of an object never changes, so the sum stands in for its managedFields: those are about a third of what the
// cache would otherwise hold, and extracting the operator's fields from them is by far the largest cost of a
// reconcile that changes nothing (~75 KB of garbage per child). Anyone else's write gives the child a new
// resourceVersion, whose sum is taken anew, so a repair is never skipped.
type appliedSums struct {
	versions *lru.Cache // child UID → appliedVersion
}

type appliedVersion struct {
	resourceVersion string
	sum             [sha256.Size]byte
	// written: the version is the answer to the operator's own apply, not one the watch delivered.
	written bool
}

// appliedSumsSize bounds the memory (about 250 bytes an entry) for operators with many apps; the sum of a
// child that fell out is taken again from the API server on its next reconcile.
const appliedSumsSize = 1 << 16

func newAppliedSums() *appliedSums {
	return &appliedSums{versions: lru.New(appliedSumsSize)}
}

// sumOf is the sum remembered for live's version; known is false when there is none. A nil appliedSums
// remembers nothing.
func (a *appliedSums) sumOf(live metav1.Object) (sum [sha256.Size]byte, known bool) {
	if a == nil || live.GetUID() == "" {
		return sum, false
	}
	got, ok := a.versions.Get(live.GetUID())
	if !ok || got.(appliedVersion).resourceVersion != live.GetResourceVersion() {
		return sum, false
	}
	return got.(appliedVersion).sum, true
}

func (a *appliedSums) record(uid types.UID, resourceVersion string, sum [sha256.Size]byte) {
	if a == nil || uid == "" || resourceVersion == "" {
		return
	}
	a.versions.Add(uid, appliedVersion{resourceVersion: resourceVersion, sum: sum})
}

// priorVersion is what the operator knew of a child before one of its applies.
type priorVersion int

const (
	// unknownBefore: the apply created the child, or the operator cannot tell what it held before.
	unknownBefore priorVersion = iota
	// heldDesired: the child already held the desired fields, and the apply changed none of them. A reconcile
	// whose cache runs behind misses a child an earlier reconcile applied, and applies it again.
	heldDesired
	// heldOther: the child existed with other fields of the operator's.
	heldOther
)

// recordWritten records the version an apply answered with, and tells what the child held before. The version
// the operator last knew held the desired fields if it is the very version an earlier apply answered with (this
// apply wrote nothing), or an older one. The same version delivered by the watch is this apply's own write,
// which the watch can deliver before the answer arrives.
func (a *appliedSums) recordWritten(uid types.UID, resourceVersion string, sum [sha256.Size]byte) priorVersion {
	if a == nil || uid == "" || resourceVersion == "" {
		return unknownBefore
	}
	prior := unknownBefore
	if before, ok := a.versions.Get(uid); ok {
		before := before.(appliedVersion)
		older, err := resourceversion.CompareResourceVersion(before.resourceVersion, resourceVersion)
		switch {
		case before.sum != sum:
			prior = heldOther
		case before.written && before.resourceVersion == resourceVersion, err == nil && older < 0:
			prior = heldDesired
		}
	}
	a.versions.Add(uid, appliedVersion{resourceVersion: resourceVersion, sum: sum, written: true})
	return prior
}

// recordAnswer is recordWritten for the answer to a typed apply. The client decodes the API server's answer
// into the apply configuration, which has no typed accessor for its uid and resourceVersion.
func (a *appliedSums) recordAnswer(answer runtime.ApplyConfiguration, sum [sha256.Size]byte) (priorVersion, error) {
	if a == nil {
		return unknownBefore, nil
	}
	raw, err := json.Marshal(answer)
	if err != nil {
		return unknownBefore, err
	}
	var answered struct {
		Metadata struct {
			UID             types.UID `json:"uid"`
			ResourceVersion string    `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &answered); err != nil {
		return unknownBefore, err
	}
	return a.recordWritten(answered.Metadata.UID, answered.Metadata.ResourceVersion, sum), nil
}

// sumAndStripManagedFields is the cache transform of a child kind: it records the sum of the operator's fields
// in each version the informer receives, unless an apply's answer already did, and drops the managedFields. A
// version whose fields cannot be extracted is stored without a sum, so that the reconcile reads it again and
// reports the error.
func sumAndStripManagedFields[O client.Object, AC any](a *appliedSums, extract func(O, string) (AC, error)) toolscache.TransformFunc {
	return func(in any) (any, error) {
		obj, ok := in.(O)
		if !ok || len(obj.GetManagedFields()) == 0 {
			return in, nil
		}
		if _, known := a.sumOf(obj); !known {
			if sum, err := appliedSum(obj, extract); err == nil {
				a.record(obj.GetUID(), obj.GetResourceVersion(), sum)
			}
		}
		obj.SetManagedFields(nil)
		return obj, nil
	}
}

// reasonCreated is the event reason of children created.
const reasonCreated = "Created"

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
		return reasonCreated, "created"
	}
}

func kindOf(scheme *runtime.Scheme, obj runtime.Object) string {
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return fmt.Sprintf("%T", obj)
	}
	return gvk.Kind
}
