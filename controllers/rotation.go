package controllers

import (
	"context"
	"fmt"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/app/keyring"
)

// rotationStep is one write of the SECRET_KEY Secret in a rotation (CONVENTIONS, "SECRET_KEY Secret").
type rotationStep int

const (
	stepNone rotationStep = iota
	// stepStage adds SECRET_KEY_NEXT: pods verify with it, none signs with it yet.
	stepStage
	// stepPromote makes NEXT the signing key and keeps the old one as SECRET_KEY_PREVIOUS.
	stepPromote
	// stepRetire drops PREVIOUS once every token it signed has expired.
	stepRetire
)

// Reasons of the KeyRotation condition and of the rotation's events.
const (
	ReasonRotationScheduled = "Scheduled"
	ReasonWaitingForRollout = "WaitingForRollout"
	ReasonRotationStaged    = "Staged"
	ReasonRotationPromoted  = "Promoted"

	EventKeyStaged         = "KeyStaged"
	EventKeyPromoted       = "KeyPromoted"
	EventKeyRetired        = "KeyRetired"
	EventKeyRotationFailed = "KeyRotationFailed"
	// EventKeyRetiredEarly is the Warning of a retire requested by packnow.io/retire-previous-key: sessions
	// signed with the previous key are logged out.
	EventKeyRetiredEarly = "KeyRetiredEarly"
)

// rotationPolicy is what the app says about rotating its key.
type rotationPolicy struct {
	period time.Duration
	// keepPrevious is how long a replaced signing key keeps verifying after its successor's promotion: the
	// lifetime of the longest token it can have signed.
	keepPrevious time.Duration
	// request is the app's packnow.io/rotate-secret-key annotation; a value other than the one last handled
	// requests a rotation, removing it does not.
	request string
	// retire is the app's packnow.io/retire-previous-key annotation; a value other than the one last handled
	// retires the previous key as soon as the promote rollout is complete.
	retire string
}

func rotationPolicyOf(app *packnowv1alpha1.PackNowApp) rotationPolicy {
	return rotationPolicy{
		period:       app.Spec.SecretKey.RotationPeriod.Duration,
		keepPrevious: app.Spec.Auth.RefreshTokenTTL.Duration + app.Spec.Auth.AccessTokenTTL.Duration,
		request:      app.Annotations[AnnotationRotateSecretKey],
		retire:       app.Annotations[AnnotationRetirePreviousKey],
	}
}

// rotationPlan is the rotation's next step for one key set.
type rotationPlan struct {
	next rotationStep
	// due is the earliest time next may be taken; zero when a manual request makes it due at once.
	due time.Time
	// rolledOut: every pod runs the key set. No step is taken before, so that pods of two generations never
	// disagree on more than one step.
	rolledOut bool
	// early: the next step is a retire requested by packnow.io/retire-previous-key, due at once.
	early bool
}

// planRotation decides the next step from the key set in the Secret alone, so that an operator restarted at
// any point takes up where the Secret stands: a staged key is promoted, a previous key retired, and only a
// Secret with one key starts a new rotation.
func planRotation(state secretKeyState, policy rotationPolicy, rolledOut bool) rotationPlan {
	plan := rotationPlan{rolledOut: rolledOut}
	switch {
	case state.keys.Next != "":
		plan.next, plan.due = stepPromote, state.stagedAt
	case state.keys.Previous != "" && policy.retireRequested(state):
		plan.next, plan.early = stepRetire, true
	case state.keys.Previous != "":
		plan.next, plan.due = stepRetire, state.rotatedAt.Add(policy.keepPrevious)
	case policy.request != "" && policy.request != state.handledRequest:
		plan.next = stepStage
	default:
		plan.next, plan.due = stepStage, state.rotatedAt.Add(policy.period)
	}
	return plan
}

// retireRequested reports whether the app carries a retire request not answered yet.
func (p rotationPolicy) retireRequested(state secretKeyState) bool {
	return p.retire != "" && p.retire != state.handledRetire
}

// answerRetire records a retire request that finds no previous key as answered: it does nothing, and a
// previous key that a later promotion makes is kept as usual.
func (s secretKeyState) answerRetire(policy rotationPolicy) secretKeyState {
	if s.keys.Previous == "" && policy.retireRequested(s) {
		s.handledRetire = policy.retire
	}
	return s
}

// takeNow reports whether the next step is to be taken at now.
func (p rotationPlan) takeNow(now time.Time) bool {
	return p.rolledOut && !now.Before(p.due)
}

// requeueAfter is how long until the next step falls due. It is zero while a rollout is awaited, since the
// Deployment's watch reports its end, and when a step is due now.
func (p rotationPlan) requeueAfter(now time.Time) time.Duration {
	if !p.rolledOut {
		return 0
	}
	return max(p.due.Sub(now), 0)
}

// take returns the state after step, taken at now.
func (s secretKeyState) take(step rotationStep, length int32, policy rotationPolicy, now time.Time) (secretKeyState, error) {
	var err error
	switch step {
	case stepStage:
		var key string
		if key, err = generateKey(length); err != nil {
			return s, err
		}
		if s.keys, err = s.keys.Stage(key); err != nil {
			return s, err
		}
		s.stagedAt = wholeSecond(now)
		if policy.request != "" {
			s.handledRequest = policy.request
		}
	case stepPromote:
		if s.keys, err = s.keys.Promote(); err != nil {
			return s, err
		}
		s.rotatedAt, s.stagedAt = wholeSecond(now), time.Time{}
	case stepRetire:
		s.keys = s.keys.Retire()
		if policy.retire != "" {
			s.handledRetire = policy.retire
		}
	}
	return s.answerRetire(policy), nil
}

// keyRotation is what a reconcile found and did about the rotation.
type keyRotation struct {
	// plan is the next step for the key set now in the Secret.
	plan rotationPlan
	// requeueAfter is when to look again without any watch event: when the next step falls due.
	requeueAfter time.Duration
}

// rotateSecretKey takes the rotation step that is due as one write of the Secret, or else re-applies the keys
// as they are. live is the Secret holding state; it returns the state the Secret now holds.
func (r *PackNowAppReconciler) rotateSecretKey(ctx context.Context, app *packnowv1alpha1.PackNowApp,
	live *corev1.Secret, state secretKeyState,
) (secretKeyState, keyRotation, error) {
	policy, now := rotationPolicyOf(app), r.Clock.Now()
	d := &appsv1.Deployment{}
	found, err := get(ctx, r.Client, app, apiName(app), d)
	if err != nil {
		return state, keyRotation{}, err
	}
	if !found {
		d = nil
	}
	state = state.answerRetire(policy)
	plan := planRotation(state, policy, keysRolledOut(d, state.keys, desiredReplicas(app)))
	if plan.takeNow(now) || !templateCarries(d, state.keys) || !secretKeyHolds(app, live, desiredSecretKeySecret(app, state)) {
		// The cache can lag behind the operator's own last write of the Secret: a step is decided, a pod template
		// with other keys than the cache's judged and a repair made on the API server's copy.
		fresh := &corev1.Secret{}
		found, err := get(ctx, r.APIReader, app, live.Name, fresh)
		if err != nil {
			return state, keyRotation{}, err
		}
		freshState, ok := secretKeyStateFrom(fresh)
		if !found || !ok {
			// Deleted or emptied since the cache saw it: the watch brings the change, and with it a new key.
			return state, keyRotation{plan: plan}, nil
		}
		live, state = fresh, freshState.answerRetire(policy)
		plan = planRotation(state, policy, keysRolledOut(d, state.keys, desiredReplicas(app)))
	}
	if !plan.takeNow(now) {
		rot := keyRotation{plan: plan, requeueAfter: plan.requeueAfter(now)}
		desired := desiredSecretKeySecret(app, state)
		if secretKeyHolds(app, live, desired) {
			return state, rot, nil
		}
		// Conditional on the copy read, so that a stale copy never brings back a deleted Secret or older keys.
		_, err := applyIfChanged(ctx, r, app, live, true, desired.WithResourceVersion(live.ResourceVersion), corev1ac.ExtractSecret)
		return state, rot, err
	}

	next, err := state.take(plan.next, app.Spec.SecretKey.Length, policy, now)
	if err != nil {
		return state, keyRotation{plan: plan}, err
	}
	if err := r.Client.Update(ctx, stepSecret(app, live, next), client.FieldOwner(FieldManager)); err != nil {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, EventKeyRotationFailed, "Rotate",
			"could not %s: writing Secret %s failed: %v", plan.next.action(), live.Name, err)
		return state, keyRotation{plan: plan}, fmt.Errorf("%s in Secret %s: %w", plan.next.action(), live.Name, err)
	}
	if plan.early {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, EventKeyRetiredEarly, "Rotate",
			"retired the previous key %s from Secret %s on request (%s=%q): tokens it signed no longer verify, "+
				"so sessions signed with it are logged out and their users must sign in again",
			keyring.KeyID(state.keys.Previous), live.Name, AnnotationRetirePreviousKey, policy.retire)
	} else {
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, plan.next.eventReason(), "Rotate", "%s",
			stepNote(live.Name, plan.next, next, policy))
	}
	return next, keyRotation{plan: planRotation(next, policy, false)}, nil
}

// stepSecret is live holding next: an update rather than an apply, so that a dropped key goes even when another
// field manager also holds it, and conditional on live's resourceVersion, so that a step decided on an
// outdated Secret fails rather than being taken twice. Whatever else the Secret holds stays.
func stepSecret(app *packnowv1alpha1.PackNowApp, live *corev1.Secret, next secretKeyState) *corev1.Secret {
	desired := desiredSecretKeySecret(app, next)
	s := live.DeepCopy()
	for _, k := range []string{keyring.EnvCurrent, keyring.EnvNext, keyring.EnvPrevious} {
		delete(s.Data, k)
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	maps.Copy(s.Data, desired.Data)
	for _, k := range []string{AnnotationRotatedAt, AnnotationStagedAt, AnnotationRotateSecretKeyHandled, AnnotationRetirePreviousKeyHandled} {
		delete(s.Annotations, k)
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	maps.Copy(s.Annotations, desired.Annotations)
	return s
}

// secretKeyHolds reports whether live holds what desired sets: exactly its keys, its annotations, labels, type
// and owner. It compares content rather than the fields the operator last applied, since a rotation step is
// written as an update; fields others add are left alone, as an apply would.
func secretKeyHolds(app *packnowv1alpha1.PackNowApp, live *corev1.Secret, desired *corev1ac.SecretApplyConfiguration) bool {
	for _, k := range []string{keyring.EnvCurrent, keyring.EnvNext, keyring.EnvPrevious} {
		want, wanted := desired.Data[k]
		if got, has := live.Data[k]; has != wanted || string(got) != string(want) {
			return false
		}
	}
	for _, k := range []string{AnnotationRotatedAt, AnnotationStagedAt, AnnotationRotateSecretKeyHandled, AnnotationRetirePreviousKeyHandled} {
		want, wanted := desired.Annotations[k]
		if got, has := live.Annotations[k]; has != wanted || got != want {
			return false
		}
	}
	for k, v := range desired.Labels {
		if live.Labels[k] != v {
			return false
		}
	}
	owner := metav1.GetControllerOf(live)
	return live.Type == *desired.Type && owner != nil && owner.UID == app.UID && owner.Kind == "PackNowApp"
}

func (s rotationStep) action() string {
	switch s {
	case stepStage:
		return "stage a new signing key"
	case stepPromote:
		return "promote the staged signing key"
	default:
		return "retire the previous signing key"
	}
}

func (s rotationStep) eventReason() string {
	switch s {
	case stepStage:
		return EventKeyStaged
	case stepPromote:
		return EventKeyPromoted
	default:
		return EventKeyRetired
	}
}

// stepNote tells what a step did, by key id only.
func stepNote(secret string, step rotationStep, after secretKeyState, policy rotationPolicy) string {
	switch step {
	case stepStage:
		return fmt.Sprintf("staged key %s in Secret %s: it signs once every pod verifies with it",
			keyring.KeyID(after.keys.Next), secret)
	case stepPromote:
		return fmt.Sprintf("key %s signs from now on; key %s keeps verifying until %s",
			keyring.KeyID(after.keys.Current), keyring.KeyID(after.keys.Previous),
			formatTime(after.rotatedAt.Add(policy.keepPrevious)))
	default:
		return fmt.Sprintf("retired the previous key from Secret %s: every token it signed has expired", secret)
	}
}

// templateCarries reports whether the Deployment's pod template is the one for keys.
func templateCarries(d *appsv1.Deployment, keys keyring.Set) bool {
	return d != nil && d.Spec.Template.Annotations[AnnotationSecretKeyHash] == secretKeyHash(keys)
}

// keysRolledOut reports whether every pod runs keys: the pod template carries their hash and its rollout is
// complete, with no pod of an older template left.
func keysRolledOut(d *appsv1.Deployment, keys keyring.Set, replicas int32) bool {
	if !templateCarries(d, keys) {
		return false
	}
	complete, _ := rollout(d, false, replicas)
	return complete
}

// keyRotationCondition is True while a rotation is under way (a key staged or a previous key kept). Its
// message names keys by id and gives absolute times only, so that it changes only when the rotation moves.
func keyRotationCondition(app *packnowv1alpha1.PackNowApp, state secretKeyState, rot keyRotation) metav1.Condition {
	c := metav1.Condition{Type: packnowv1alpha1.ConditionKeyRotation, ObservedGeneration: app.Generation}
	current := keyring.KeyID(state.keys.Current)
	plan := rot.plan
	switch {
	case plan.next == stepPromote:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonRotationStaged
		c.Message = fmt.Sprintf("key %s staged at %s; it signs once every pod verifies with it",
			keyring.KeyID(state.keys.Next), formatTime(state.stagedAt))
	case plan.next == stepRetire && plan.early:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonRotationPromoted
		c.Message = fmt.Sprintf("key %s signs since %s; the previous key %s is retired on request by %s once "+
			"every pod runs the new key", current, formatTime(state.rotatedAt), keyring.KeyID(state.keys.Previous),
			AnnotationRetirePreviousKey)
	case plan.next == stepRetire:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonRotationPromoted
		c.Message = fmt.Sprintf("key %s signs since %s; the previous key %s is retired at %s or, if later, once "+
			"every pod runs the new key", current, formatTime(state.rotatedAt), keyring.KeyID(state.keys.Previous),
			formatTime(plan.due))
	case !plan.rolledOut:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonWaitingForRollout
		c.Message = fmt.Sprintf("key %s signs; the next rotation (%s) starts once every pod runs it", current,
			dueText(plan.due))
	default:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonRotationScheduled
		c.Message = fmt.Sprintf("key %s signs; next rotation %s", current, dueText(plan.due))
	}
	return c
}

func dueText(due time.Time) string {
	if due.IsZero() {
		return "requested by " + AnnotationRotateSecretKey
	}
	return "due " + formatTime(due)
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
