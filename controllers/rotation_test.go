package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/app/keyring"
	"github.com/packnow/packnow-operator/hack/testenv"
)

func TestPlanRotation(t *testing.T) {
	const day = 24 * time.Hour
	policy := rotationPolicy{period: 90 * day, keepPrevious: 7*day + 15*time.Minute}
	cur, next := strings.Repeat("c", 64), strings.Repeat("n", 64)
	t0 := generatedAt
	stable := secretKeyState{keys: keyring.Set{Current: cur}, rotatedAt: t0}
	staged := secretKeyState{keys: keyring.Set{Current: cur, Next: next}, rotatedAt: t0, stagedAt: t0.Add(90 * day)}
	promoted := secretKeyState{keys: keyring.Set{Current: next, Previous: cur}, rotatedAt: t0.Add(90 * day)}
	handled := stable
	handled.handledRequest = "1"
	withRequest := func(p rotationPolicy, request string) rotationPolicy { p.request = request; return p }
	withRetire := func(p rotationPolicy, retire string) rotationPolicy { p.retire = retire; return p }
	retireHandled := promoted
	retireHandled.handledRetire = "r1"

	for _, tc := range []struct {
		name      string
		state     secretKeyState
		policy    rotationPolicy
		rolledOut bool
		now       time.Time
		want      rotationStep
		takeNow   bool
		requeue   time.Duration
	}{
		{"stable, not due: sleep until due", stable, policy, true, t0.Add(30 * day), stepStage, false, 60 * day},
		{"stable, one second before due", stable, policy, true, t0.Add(90*day - time.Second), stepStage, false, time.Second},
		{"stable, due: stage", stable, policy, true, t0.Add(90 * day), stepStage, true, 0},
		{"stable, overdue: stage", stable, policy, true, t0.Add(200 * day), stepStage, true, 0},
		{"stable, due, rollout unfinished: wait for it", stable, policy, false, t0.Add(90 * day), stepStage, false, 0},
		{"shorter period: due at once", stable, rotationPolicy{period: day}, true, t0.Add(2 * day), stepStage, true, 0},
		{"longer period: later", stable, rotationPolicy{period: 100 * day}, true, t0.Add(90 * day), stepStage, false, 10 * day},
		{"new request: stage now", stable, withRequest(policy, "1"), true, t0.Add(day), stepStage, true, 0},
		{"new request, rollout unfinished", stable, withRequest(policy, "1"), false, t0.Add(day), stepStage, false, 0},
		{"handled request: not again", handled, withRequest(policy, "1"), true, t0.Add(day), stepStage, false, 89 * day},
		{"changed request: again", handled, withRequest(policy, "2"), true, t0.Add(day), stepStage, true, 0},
		{"request removed: no rotation", handled, policy, true, t0.Add(day), stepStage, false, 89 * day},
		{"staged, rollout unfinished: wait", staged, policy, false, t0.Add(91 * day), stepPromote, false, 0},
		{"staged, rolled out: promote", staged, policy, true, t0.Add(90 * day), stepPromote, true, 0},
		{"staged, request pending: promote first", staged, withRequest(policy, "9"), true, t0.Add(90 * day), stepPromote, true, 0},
		{"promoted, rollout unfinished: wait", promoted, policy, false, t0.Add(100 * day), stepRetire, false, 0},
		{"promoted, tokens alive: sleep", promoted, policy, true, t0.Add(90 * day), stepRetire, false, 7*day + 15*time.Minute},
		{"promoted, one second before expiry", promoted, policy, true, t0.Add(97*day + 15*time.Minute - time.Second), stepRetire, false, time.Second},
		{"promoted, tokens expired: retire", promoted, policy, true, t0.Add(97*day + 15*time.Minute), stepRetire, true, 0},
		{"promoted, request pending: retire first", promoted, withRequest(policy, "9"), true, t0.Add(91 * day), stepRetire, false, 6*day + 15*time.Minute},
		{"promoted, retire requested: retire now", promoted, withRetire(policy, "r1"), true, t0.Add(90 * day), stepRetire, true, 0},
		{"promoted, retire requested, promote rollout unfinished: wait", promoted, withRetire(policy, "r1"), false, t0.Add(90 * day), stepRetire, false, 0},
		{"promoted, retire request handled: keep until expiry", retireHandled, withRetire(policy, "r1"), true, t0.Add(90 * day), stepRetire, false, 7*day + 15*time.Minute},
		{"promoted, retire request changed: retire now", retireHandled, withRetire(policy, "r2"), true, t0.Add(91 * day), stepRetire, true, 0},
		{"staged, retire requested: promote as usual", staged, withRetire(policy, "r1"), true, t0.Add(90 * day), stepPromote, true, 0},
		{"stable, retire requested: nothing to retire", stable, withRetire(policy, "r1"), true, t0.Add(30 * day), stepStage, false, 60 * day},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := planRotation(tc.state, tc.policy, tc.rolledOut)
			if plan.next != tc.want || plan.takeNow(tc.now) != tc.takeNow || plan.requeueAfter(tc.now) != tc.requeue {
				t.Errorf("next %d, take now %v, requeue after %s; want %d, %v, %s",
					plan.next, plan.takeNow(tc.now), plan.requeueAfter(tc.now), tc.want, tc.takeNow, tc.requeue)
			}
		})
	}
}

// A retire request is answered once: by the retire it makes early, or at once when there is no previous key.
func TestRetireRequestIsAnsweredOnce(t *testing.T) {
	cur, prev := strings.Repeat("c", 64), strings.Repeat("p", 64)
	promoted := secretKeyState{keys: keyring.Set{Current: cur, Previous: prev}, rotatedAt: generatedAt}
	request := rotationPolicy{period: 90 * 24 * time.Hour, retire: "incident-1"}

	if got := promoted.answerRetire(request); got.handledRetire != "" {
		t.Errorf("a request with a previous key was answered without retiring it: %+v", got)
	}
	plan := planRotation(promoted, request, true)
	if plan.next != stepRetire || !plan.early || !plan.takeNow(generatedAt) {
		t.Fatalf("plan %+v, want an early retire now", plan)
	}
	retired, err := promoted.take(stepRetire, 64, request, generatedAt)
	if err != nil {
		t.Fatal(err)
	}
	if retired.keys != (keyring.Set{Current: cur}) || retired.handledRetire != "incident-1" || !retired.rotatedAt.Equal(generatedAt) {
		t.Errorf("retired %+v", retired)
	}
	if plan := planRotation(retired, request, true); plan.early || plan.next != stepStage || plan.takeNow(generatedAt) {
		t.Errorf("plan %+v after the retire, want the next rotation on schedule", plan)
	}

	stable := secretKeyState{keys: keyring.Set{Current: cur}, rotatedAt: generatedAt}
	if got := stable.answerRetire(request); got.handledRetire != "incident-1" || got.keys != stable.keys {
		t.Errorf("without a previous key: %+v, want the request recorded and nothing else", got)
	}
	if got := stable.answerRetire(rotationPolicy{}); got != stable {
		t.Errorf("no request: %+v", got)
	}
	staged := secretKeyState{keys: keyring.Set{Current: cur, Next: prev}, rotatedAt: generatedAt, stagedAt: generatedAt}
	promotedLater, err := staged.answerRetire(request).take(stepPromote, 64, request, generatedAt.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if plan := planRotation(promotedLater, request, true); plan.early {
		t.Errorf("a request answered while staged retires the key promoted after it early: %+v", plan)
	}
}

func TestRotationStepsFollowTheKeyRing(t *testing.T) {
	t0 := generatedAt
	state, err := newSecretKeyState(64, t0, "")
	if err != nil {
		t.Fatal(err)
	}
	first := state.keys.Current

	staged, err := state.take(stepStage, 80, rotationPolicy{request: "manual-1"}, t0.Add(time.Hour+300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if staged.keys.Current != first || len(staged.keys.Next) != 80 || staged.keys.Previous != "" ||
		!staged.stagedAt.Equal(t0.Add(time.Hour)) || !staged.rotatedAt.Equal(t0) || staged.handledRequest != "manual-1" {
		t.Errorf("staged %+v", staged)
	}
	if _, err := staged.take(stepStage, 64, rotationPolicy{}, t0); err == nil {
		t.Error("a second key was staged over the first")
	}

	promoted, err := staged.take(stepPromote, 64, rotationPolicy{request: "manual-2"}, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if promoted.keys != (keyring.Set{Current: staged.keys.Next, Previous: first}) ||
		!promoted.rotatedAt.Equal(t0.Add(2*time.Hour)) || !promoted.stagedAt.IsZero() || promoted.handledRequest != "manual-1" {
		t.Errorf("promoted %+v", promoted)
	}
	if _, err := promoted.take(stepPromote, 64, rotationPolicy{}, t0); err == nil {
		t.Error("promoted with nothing staged")
	}

	retired, err := promoted.take(stepRetire, 64, rotationPolicy{}, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if retired.keys != (keyring.Set{Current: staged.keys.Next}) || !retired.rotatedAt.Equal(promoted.rotatedAt) {
		t.Errorf("retired %+v", retired)
	}
	// A periodic rotation while the annotation is absent keeps the request answered last.
	again, err := retired.take(stepStage, 64, rotationPolicy{}, t0.Add(4*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again.handledRequest != "manual-1" {
		t.Errorf("handled request %q after a periodic rotation, want manual-1 kept", again.handledRequest)
	}
}

// Every state of a rotation survives a write and a read of the Secret, which is all a restarted operator has.
func TestRotationStateReadsBackFromTheSecret(t *testing.T) {
	app := testApp()
	for _, want := range []secretKeyState{
		{keys: keyring.Set{Current: strings.Repeat("c", 64)}, rotatedAt: generatedAt, handledRequest: "2026-12-03"},
		{keys: keyring.Set{Current: strings.Repeat("c", 64), Next: strings.Repeat("n", 64)}, rotatedAt: generatedAt,
			stagedAt: generatedAt.Add(time.Hour), handledRequest: "x"},
		{keys: keyring.Set{Current: strings.Repeat("c", 64), Previous: strings.Repeat("p", 64)}, rotatedAt: generatedAt},
		{keys: keyring.Set{Current: strings.Repeat("c", 64)}, rotatedAt: generatedAt, handledRequest: "1", handledRetire: "incident"},
	} {
		secret := toObject[corev1.Secret](t, desiredSecretKeySecret(app, want))
		got, ok := secretKeyStateFrom(secret)
		if !ok || got != want {
			t.Errorf("read back %+v (ok %v), want %+v", got, ok, want)
		}
		if _, staged := secret.Annotations[AnnotationStagedAt]; staged != (want.keys.Next != "") {
			t.Errorf("staged-at present %v with next key %q", staged, want.keys.Next)
		}
	}
}

func TestKeyRotationConditionShowsNoKey(t *testing.T) {
	app := testApp()
	cur, next, prev := strings.Repeat("c", 64), strings.Repeat("n", 64), strings.Repeat("p", 64)
	policy := rotationPolicyOf(app)
	for _, tc := range []struct {
		state     secretKeyState
		rolledOut bool
		want      string
	}{
		{secretKeyState{keys: keyring.Set{Current: cur}, rotatedAt: generatedAt}, true, ReasonRotationScheduled},
		{secretKeyState{keys: keyring.Set{Current: cur}, rotatedAt: generatedAt}, false, ReasonWaitingForRollout},
		{secretKeyState{keys: keyring.Set{Current: cur, Next: next}, rotatedAt: generatedAt, stagedAt: generatedAt}, false, ReasonRotationStaged},
		{secretKeyState{keys: keyring.Set{Current: cur, Previous: prev}, rotatedAt: generatedAt}, true, ReasonRotationPromoted},
	} {
		c := keyRotationCondition(app, tc.state, keyRotation{plan: planRotation(tc.state, policy, tc.rolledOut)})
		if c.Type != packnowv1alpha1.ConditionKeyRotation || c.Reason != tc.want || c.ObservedGeneration != app.Generation {
			t.Errorf("%+v: condition %+v, want reason %s", tc.state.keys, c, tc.want)
		}
		if rotating := tc.state.keys.Next != "" || tc.state.keys.Previous != ""; (c.Status == "True") != rotating {
			t.Errorf("%+v: status %s", tc.state.keys, c.Status)
		}
		if !strings.Contains(c.Message, keyring.KeyID(cur)) && !strings.Contains(c.Message, keyring.KeyID(next)) {
			t.Errorf("message %q names no key id", c.Message)
		}
		for _, key := range []string{cur, next, prev} {
			if strings.Contains(c.Message, key[:16]) {
				t.Errorf("message %q shows a key", c.Message)
			}
		}
	}
	if got := stepNote("demo-secret-key", stepPromote, secretKeyState{keys: keyring.Set{Current: next, Previous: cur}}, policy); strings.Contains(got, cur[:16]) || strings.Contains(got, next[:16]) {
		t.Errorf("event note %q shows a key", got)
	}
}

// rotationFixture is an app with one signing key, whose rotation is due at the reconciler's clock.
type rotationFixture struct {
	app      *packnowv1alpha1.PackNowApp
	stable   *corev1.Secret
	recorder *events.FakeRecorder
	updates  int
}

func newRotationFixture(t *testing.T) *rotationFixture {
	t.Helper()
	app := testApp()
	state := secretKeyState{keys: keyring.Set{Current: strings.Repeat("c", 64)}, rotatedAt: generatedAt}
	stable := toObject[corev1.Secret](t, desiredSecretKeySecret(app, state))
	stable.ResourceVersion = "10"
	return &rotationFixture{app: app, stable: stable, recorder: events.NewFakeRecorder(10)}
}

// reconciler reads cached and a Deployment complete for its keys through the cache, and current from the API
// server; its updates fail with updateErr.
func (f *rotationFixture) reconciler(t *testing.T, cached, current *corev1.Secret, updateErr error) *PackNowAppReconciler {
	t.Helper()
	keys, _ := secretKeyStateFrom(cached)
	d := toObject[appsv1.Deployment](t, desiredDeployment(f.app, deploymentInputs{image: "api", secretKeyHash: secretKeyHash(keys.keys)}))
	d.Generation = 1
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}
	scheme := testenv.Scheme()
	cache := fake.NewClientBuilder().WithScheme(scheme).WithObjects(cached, d).
		WithInterceptorFuncs(interceptor.Funcs{
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				f.updates++
				if updateErr != nil {
					return updateErr
				}
				return c.Update(ctx, obj, opts...)
			},
		}).Build()
	api := fake.NewClientBuilder().WithScheme(scheme).WithObjects(current).Build()
	return &PackNowAppReconciler{
		Client: cache, APIReader: api, Recorder: f.recorder,
		Clock: clocktesting.NewFakeClock(generatedAt.Add(f.app.Spec.SecretKey.RotationPeriod.Duration)),
	}
}

func (f *rotationFixture) event(t *testing.T) string {
	t.Helper()
	select {
	case e := <-f.recorder.Events:
		return e
	default:
		t.Fatal("no event")
		return ""
	}
}

func TestRotationStepWritesOnceAndTellsByEvent(t *testing.T) {
	f := newRotationFixture(t)
	r := f.reconciler(t, f.stable, f.stable, nil)
	state, _ := secretKeyStateFrom(f.stable)
	next, rot, err := r.rotateSecretKey(context.Background(), f.app, f.stable, state)
	if err != nil {
		t.Fatal(err)
	}
	if f.updates != 1 || next.keys.Next == "" || rot.plan.next != stepPromote || rot.plan.rolledOut || rot.requeueAfter != 0 {
		t.Fatalf("%d updates, keys %+v, plan %+v", f.updates, next.keys, rot)
	}
	if e := f.event(t); !strings.HasPrefix(e, "Normal KeyStaged") || strings.Contains(e, next.keys.Next) {
		t.Errorf("event %q, want KeyStaged without the key", e)
	}
}

func TestRotationStepFailureWarnsAndKeepsTheState(t *testing.T) {
	f := newRotationFixture(t)
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, f.stable.Name, errors.New("the object has been modified"))
	r := f.reconciler(t, f.stable, f.stable, conflict)
	state, _ := secretKeyStateFrom(f.stable)
	kept, _, err := r.rotateSecretKey(context.Background(), f.app, f.stable, state)
	if !apierrors.IsConflict(err) || kept != state {
		t.Fatalf("error %v, state %+v; want the conflict and the state as read", err, kept)
	}
	if e := f.event(t); !strings.HasPrefix(e, "Warning KeyRotationFailed") {
		t.Errorf("event %q, want a KeyRotationFailed warning", e)
	}
}

// The cache still shows the Secret before the stage the operator just wrote, and the Deployment complete for
// it: the step is decided on the API server's copy, so nothing is staged twice.
func TestRotationStepIsDecidedOnTheAPIServersCopy(t *testing.T) {
	f := newRotationFixture(t)
	staged := f.stable.DeepCopy()
	staged.ResourceVersion = "11"
	staged.Data[keyring.EnvNext] = []byte(strings.Repeat("n", 64))
	staged.Annotations[AnnotationStagedAt] = formatTime(generatedAt)
	r := f.reconciler(t, f.stable, staged, nil)
	state, _ := secretKeyStateFrom(f.stable)
	got, rot, err := r.rotateSecretKey(context.Background(), f.app, f.stable, state)
	if err != nil {
		t.Fatal(err)
	}
	if f.updates != 0 || got.keys.Next != strings.Repeat("n", 64) || rot.plan.next != stepPromote || rot.plan.rolledOut {
		t.Fatalf("%d updates, keys %+v, plan %+v; want the staged key kept, awaiting its rollout", f.updates, got.keys, rot.plan)
	}
}

func TestSecretKeyHoldsComparesContent(t *testing.T) {
	app := testApp()
	state := secretKeyState{keys: keyring.Set{Current: strings.Repeat("c", 64), Next: strings.Repeat("n", 64)},
		rotatedAt: generatedAt, stagedAt: generatedAt, handledRequest: "1"}
	desired := desiredSecretKeySecret(app, state)
	for _, tc := range []struct {
		name   string
		change func(*corev1.Secret)
		holds  bool
	}{
		{"as desired", func(*corev1.Secret) {}, true},
		{"someone else's annotation and key", func(s *corev1.Secret) { s.Annotations["x"] = "y"; s.Data["extra"] = []byte("z") }, true},
		{"a key too many", func(s *corev1.Secret) { s.Data[keyring.EnvPrevious] = []byte("p") }, false},
		{"a key changed", func(s *corev1.Secret) { s.Data[keyring.EnvNext] = []byte("other") }, false},
		{"staged-at lost", func(s *corev1.Secret) { delete(s.Annotations, AnnotationStagedAt) }, false},
		{"handled request changed", func(s *corev1.Secret) { s.Annotations[AnnotationRotateSecretKeyHandled] = "2" }, false},
		{"a label lost", func(s *corev1.Secret) { delete(s.Labels, LabelManagedBy) }, false},
		{"no owner", func(s *corev1.Secret) { s.OwnerReferences = nil }, false},
	} {
		live := toObject[corev1.Secret](t, desired)
		tc.change(live)
		if got := secretKeyHolds(app, live, desired); got != tc.holds {
			t.Errorf("%s: holds %v, want %v", tc.name, got, tc.holds)
		}
	}
}
