package controllers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/app/keyring"
	"github.com/packnow/packnow-operator/controllers"
	"github.com/packnow/packnow-operator/hack/testenv"
)

// testManagerLabel on a PackNowApp hands it to a manager that its test starts with a fake clock; the shared
// manager's cache leaves such apps out, so that only one manager reconciles each app.
const testManagerLabel = "test.packnow.io/manager"

const day = 24 * time.Hour

// appsWithout is the reconciler's cache, without the PackNowApps labelled label.
func appsWithout(r *controllers.PackNowAppReconciler, label string) cache.Options {
	req, err := k8slabels.NewRequirement(label, selection.DoesNotExist, nil)
	if err != nil {
		panic(err)
	}
	return cacheOfApps(r, k8slabels.NewSelector().Add(*req))
}

// cacheOfApps is the reconciler's cache, holding only the PackNowApps that apps selects.
func cacheOfApps(r *controllers.PackNowAppReconciler, apps k8slabels.Selector) cache.Options {
	opts := r.CacheOptions()
	// ByObject is keyed by pointers: the entry of PackNowApps has to be found by its type.
	for obj, by := range opts.ByObject {
		if _, isApp := obj.(*packnowv1alpha1.PackNowApp); isApp {
			by.Label = apps
			opts.ByObject[obj] = by
			return opts
		}
	}
	panic("the reconciler's cache options have no entry for PackNowApps")
}

// rotation is one app reconciled by a manager of its own whose clock the test moves.
type rotation struct {
	*suite
	t        *testing.T
	ns, name string
	clock    *clocktesting.FakeClock
	stop     func()
	// hash is the pod template's secret-key hash last rolled out.
	hash string
	// keys are every key seen, which must never show outside the Secret.
	keys   map[string]bool
	nudges int
	// logs is everything the test's managers logged, at every verbosity.
	logs logBuffer
}

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) write(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(&l.b, prefix, args)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (s *suite) rotation(t *testing.T, prefix string, change func(*packnowv1alpha1.PackNowApp)) *rotation {
	t.Helper()
	ns := s.namespace(t, prefix)
	r := &rotation{
		suite: s, t: t, ns: ns, name: "keys", keys: map[string]bool{},
		clock: clocktesting.NewFakeClock(time.Date(2027, 1, 4, 9, 30, 0, 0, time.UTC)),
	}
	r.start()
	app := newApp(ns, r.name)
	app.Labels = map[string]string{testManagerLabel: ns}
	if change != nil {
		change(app)
	}
	s.create(t, app)
	return r
}

// start runs a new manager for the app's namespace: the operator after a restart has nothing but what the API
// server holds.
func (r *rotation) start() {
	r.t.Helper()
	reconciler := &controllers.PackNowAppReconciler{DefaultImage: testImage, Clock: r.clock}
	opts := cacheOfApps(reconciler, k8slabels.SelectorFromSet(k8slabels.Set{testManagerLabel: r.ns}))
	opts.DefaultNamespaces = map[string]cache.Config{r.ns: {}}
	mgr, err := ctrl.NewManager(r.operator, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Cache:                  opts,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 funcr.New(r.logs.write, funcr.Options{Verbosity: 10}),
		// Every manager in this process registers the same controller.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("manager: %v", err)
			}
		})
	}
	r.t.Cleanup(r.stop)
}

// restart stops the manager and starts a new one.
func (r *rotation) restart() {
	r.t.Helper()
	r.stop()
	r.start()
}

// secret reads the SECRET_KEY Secret and remembers its keys.
func (r *rotation) secret() (*corev1.Secret, keyring.Set, error) {
	s := &corev1.Secret{}
	if err := r.get(r.ns, r.name+"-secret-key", s); err != nil {
		return nil, keyring.Set{}, err
	}
	set := keyring.Set{
		Current:  string(s.Data[keyring.EnvCurrent]),
		Next:     string(s.Data[keyring.EnvNext]),
		Previous: string(s.Data[keyring.EnvPrevious]),
	}
	for _, k := range []string{set.Current, set.Next, set.Previous} {
		if k != "" {
			r.keys[k] = true
		}
	}
	return s, set, nil
}

// waitKeys waits until the Secret holds a key set that check accepts.
// waitFirstKey waits for the key generated with the app.
func (r *rotation) waitFirstKey() (*corev1.Secret, keyring.Set) {
	return r.waitKeys("the first key", func(k keyring.Set) error {
		if k.Current == "" {
			return errors.New("no key yet")
		}
		return nil
	})
}

func (r *rotation) waitKeys(what string, check func(keyring.Set) error) (*corev1.Secret, keyring.Set) {
	r.t.Helper()
	var secret *corev1.Secret
	var keys keyring.Set
	eventually(r.t, what, func() error {
		var err error
		if secret, keys, err = r.secret(); err != nil {
			return err
		}
		return check(keys)
	})
	return secret, keys
}

// keysAre fails unless the Secret holds exactly want, now.
func (r *rotation) keysAre(what string, want keyring.Set) {
	r.t.Helper()
	_, got, err := r.secret()
	if err != nil {
		r.t.Fatal(err)
	}
	if got != want {
		r.t.Fatalf("%s: the Secret holds keys %s, want %s", what, ids(got), ids(want))
	}
}

// rollOut plays the Deployment controller once the pod template carries a new key set's hash: every pod of
// the template is updated and available.
func (r *rotation) rollOut() {
	r.t.Helper()
	eventually(r.t, "a pod template for the new key set", func() error {
		d := &appsv1.Deployment{}
		if err := r.get(r.ns, r.name+"-api", d); err != nil {
			return err
		}
		h := d.Spec.Template.Annotations["packnow.io/secret-key-hash"]
		if h == "" || h == r.hash {
			return fmt.Errorf("the pod template carries hash %q, the one last rolled out", h)
		}
		r.hash = h
		return nil
	})
	r.markRolledOut(r.t, r.ns, r.name+"-api")
}

// nudge makes a spec change that touches no child and waits until the operator has reconciled it, so that
// what the test checks next was decided at the clock's current time.
func (r *rotation) nudge() *packnowv1alpha1.PackNowApp {
	r.t.Helper()
	r.nudges++
	mode := packnowv1alpha1.PodSecurityWarn
	if r.nudges%2 == 0 {
		mode = packnowv1alpha1.PodSecurityEnforce
	}
	r.patchApp(fmt.Sprintf(`{"spec":{"podSecurity":{"mode":%q}}}`, mode))
	return r.waitApp("the operator reconciles the nudge", func(*packnowv1alpha1.PackNowApp) error { return nil })
}

func (r *rotation) patchApp(patch string) {
	r.t.Helper()
	app := &packnowv1alpha1.PackNowApp{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: r.name}}
	if err := r.k8s.Patch(context.Background(), app, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		r.t.Fatal(err)
	}
}

// waitApp waits until the status describes the current spec and check accepts it.
func (r *rotation) waitApp(what string, check func(*packnowv1alpha1.PackNowApp) error) *packnowv1alpha1.PackNowApp {
	r.t.Helper()
	var app *packnowv1alpha1.PackNowApp
	eventually(r.t, what, func() error {
		_, a, err := r.condition(r.ns, r.name, packnowv1alpha1.ConditionKeyRotation)
		if err != nil {
			return err
		}
		app = a
		return check(a)
	})
	return app
}

// waitPhase waits for the status to report the phase, the signing key and the KeyRotation reason.
func (r *rotation) waitPhase(phase packnowv1alpha1.KeyRotationPhase, current, reason string) *packnowv1alpha1.PackNowApp {
	r.t.Helper()
	return r.waitApp(fmt.Sprintf("phase %s, reason %s", phase, reason), func(app *packnowv1alpha1.PackNowApp) error {
		st, c := app.Status.SecretKey, conditionOf(app, packnowv1alpha1.ConditionKeyRotation)
		if st.Phase != phase || st.CurrentKeyID != keyring.KeyID(current) || c.Reason != reason {
			return fmt.Errorf("phase %s, key %s, KeyRotation %s: %s", st.Phase, st.CurrentKeyID, c.Reason, c.Message)
		}
		if want := c.Reason == "Staged" || c.Reason == "Promoted"; (c.Status == metav1.ConditionTrue) != want {
			return fmt.Errorf("KeyRotation is %s with reason %s", c.Status, c.Reason)
		}
		return nil
	})
}

// events counts the app's events of the reason.
func (r *rotation) events(eventType, reason string) int {
	r.t.Helper()
	list := &eventsv1.EventList{}
	if err := r.k8s.List(context.Background(), list, client.InNamespace(r.ns)); err != nil {
		r.t.Fatal(err)
	}
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Name == r.name && e.Type == eventType && e.Reason == reason {
			n++
		}
	}
	return n
}

func (r *rotation) waitEvents(eventType, reason string, n int) {
	r.t.Helper()
	eventually(r.t, fmt.Sprintf("%d %s events", n, reason), func() error {
		if got := r.events(eventType, reason); got != n {
			return fmt.Errorf("%d", got)
		}
		return nil
	})
}

// noKeyMaterial fails if any key seen shows in the app (status, annotations), the events, the annotations of
// the Secret and the Deployment, or the operator's logs.
func (r *rotation) noKeyMaterial() {
	r.t.Helper()
	app, secret, d := &packnowv1alpha1.PackNowApp{}, &corev1.Secret{}, &appsv1.Deployment{}
	list := &eventsv1.EventList{}
	err := errors.Join(r.get(r.ns, r.name, app), r.get(r.ns, r.name+"-secret-key", secret), r.get(r.ns, r.name+"-api", d),
		r.k8s.List(context.Background(), list, client.InNamespace(r.ns)))
	if err != nil {
		r.t.Fatal(err)
	}
	objects, err := json.Marshal([]any{app.Status, app.Annotations, secret.Annotations, d.Annotations,
		d.Spec.Template.Annotations, d.Spec.Template.Spec.Containers, list.Items})
	if err != nil {
		r.t.Fatal(err)
	}
	logs := r.logs.String()
	if len(r.keys) == 0 || len(list.Items) == 0 || logs == "" {
		r.t.Fatalf("nothing to look at: %d keys, %d events, %d bytes of logs", len(r.keys), len(list.Items), len(logs))
	}
	visible := string(objects) + logs
	for k := range r.keys {
		if strings.Contains(visible, k) {
			r.t.Errorf("key %s shows outside the Secret", keyring.KeyID(k))
		}
	}
}

func ids(s keyring.Set) string {
	id := func(k string) string {
		if k == "" {
			return "-"
		}
		return keyring.KeyID(k)
	}
	return fmt.Sprintf("{current %s next %s previous %s}", id(s.Current), id(s.Next), id(s.Previous))
}

func annotationTime(t *testing.T, s *corev1.Secret, key string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s.Annotations[key])
	if err != nil {
		t.Fatalf("annotation %s: %v", key, err)
	}
	return v
}

func TestRotationFullCycle(t *testing.T) { testRotationCycle(t, false) }

// The operator stops after every step and a new one, knowing only what the API server holds, carries on.
func TestRotationResumesAfterRestarts(t *testing.T) { testRotationCycle(t, true) }

func testRotationCycle(t *testing.T, restart bool) {
	s := env(t)
	r := s.rotation(t, "rotation", nil)
	between := func() {
		if restart {
			r.restart()
		}
	}
	t0 := r.clock.Now()
	const keepPrevious = 7*day + 15*time.Minute

	_, first := r.waitFirstKey()
	r.rollOut()
	app := r.waitPhase(packnowv1alpha1.PhaseStable, first.Current, "Scheduled")
	if st := app.Status.SecretKey; !st.LastRotationTime.Equal(&metav1.Time{Time: t0}) || !st.NextRotationTime.Equal(&metav1.Time{Time: t0.Add(90 * day)}) {
		t.Errorf("rotation times %s / %s, want %s and 90 days later", st.LastRotationTime, st.NextRotationTime, t0)
	}
	between()

	r.clock.SetTime(t0.Add(90*day - time.Second))
	r.nudge()
	r.keysAre("a second before the rotation is due", first)

	// Stage.
	stagedAt := t0.Add(90 * day)
	r.clock.SetTime(stagedAt)
	r.nudge()
	secret, staged := r.waitKeys("a staged key", func(k keyring.Set) error {
		if k.Next == "" {
			return errors.New("nothing staged")
		}
		return nil
	})
	if staged.Current != first.Current || staged.Previous != "" || len(staged.Next) < 64 || staged.Next == first.Current {
		t.Fatalf("staged keys %s from %s", ids(staged), ids(first))
	}
	if got := annotationTime(t, secret, "packnow.io/staged-at"); !got.Equal(stagedAt) {
		t.Errorf("staged-at %s, want %s", got, stagedAt)
	}
	if got := annotationTime(t, secret, "packnow.io/rotated-at"); !got.Equal(t0) {
		t.Errorf("rotated-at %s after staging, want still %s", got, t0)
	}
	r.waitEvents(corev1.EventTypeNormal, "KeyStaged", 1)
	r.waitPhase(packnowv1alpha1.PhaseStaged, first.Current, "Staged")
	between()

	// The staged key is promoted only once every pod verifies with it, however long that takes.
	r.clock.Step(time.Hour)
	r.nudge()
	r.keysAre("while the stage rollout runs", staged)
	if restart {
		r.restart()
		r.nudge()
		r.keysAre("after a restart, while the stage rollout runs", staged)
	}

	// Promote.
	promotedAt := r.clock.Now()
	r.rollOut()
	secret, promoted := r.waitKeys("the staged key promoted", func(k keyring.Set) error {
		if k.Next != "" {
			return errors.New("still staged")
		}
		return nil
	})
	if promoted != (keyring.Set{Current: staged.Next, Previous: first.Current}) {
		t.Fatalf("promoted keys %s, want the staged key signing and the first one previous", ids(promoted))
	}
	if got := annotationTime(t, secret, "packnow.io/rotated-at"); !got.Equal(promotedAt) {
		t.Errorf("rotated-at %s, want %s", got, promotedAt)
	}
	if _, ok := secret.Annotations["packnow.io/staged-at"]; ok {
		t.Error("staged-at outlives the staged key")
	}
	r.waitEvents(corev1.EventTypeNormal, "KeyPromoted", 1)
	app = r.waitPhase(packnowv1alpha1.PhasePromoted, promoted.Current, "Promoted")
	if st := app.Status.SecretKey; !st.LastRotationTime.Equal(&metav1.Time{Time: promotedAt}) ||
		!st.NextRotationTime.Equal(&metav1.Time{Time: promotedAt.Add(90 * day)}) {
		t.Errorf("rotation times %s / %s, want %s and 90 days later", st.LastRotationTime, st.NextRotationTime, promotedAt)
	}
	between()

	// The previous key stays while a token it signed can be alive, even once the rollout is done.
	r.clock.SetTime(promotedAt.Add(keepPrevious - time.Second))
	r.rollOut()
	r.nudge()
	r.keysAre("a second before the previous key's tokens expire", promoted)
	between()

	// A spec change rolls the pods too: the retire, due now, waits for that rollout and the keys stay as they are.
	r.patchApp(`{"spec":{"image":"packnow-api:next"}}`)
	eventually(t, "the new image in the pod template", func() error {
		d := &appsv1.Deployment{}
		if err := r.get(r.ns, r.name+"-api", d); err != nil {
			return err
		}
		if image := d.Spec.Template.Spec.Containers[0].Image; image != "packnow-api:next" {
			return fmt.Errorf("image %s", image)
		}
		return nil
	})
	r.clock.SetTime(promotedAt.Add(keepPrevious))
	r.nudge()
	r.keysAre("at the retire time, while the new image rolls out", promoted)
	r.waitPhase(packnowv1alpha1.PhasePromoted, promoted.Current, "Promoted")

	// Retire.
	r.markRolledOut(t, r.ns, r.name+"-api")
	r.waitKeys("the previous key retired", func(k keyring.Set) error {
		if k != (keyring.Set{Current: promoted.Current}) {
			return fmt.Errorf("keys %s", ids(k))
		}
		return nil
	})
	r.waitEvents(corev1.EventTypeNormal, "KeyRetired", 1)
	r.waitPhase(packnowv1alpha1.PhaseStable, promoted.Current, "WaitingForRollout")
	between()
	r.rollOut()
	r.waitPhase(packnowv1alpha1.PhaseStable, promoted.Current, "Scheduled")

	// One key per rotation, one event per step and a rollout per step, also across restarts.
	if len(r.keys) != 2 {
		t.Errorf("%d keys were generated, want 2", len(r.keys))
	}
	for _, reason := range []string{"KeyStaged", "KeyPromoted", "KeyRetired"} {
		if n := r.events(corev1.EventTypeNormal, reason); n != 1 {
			t.Errorf("%d %s events, want 1", n, reason)
		}
	}
	if n := r.events(corev1.EventTypeWarning, "KeyRotationFailed") + r.events(corev1.EventTypeWarning, "SecretKeyRegenerated"); n != 0 {
		t.Errorf("%d warnings", n)
	}
	r.noKeyMaterial()
}

// The operator dies right after writing the staged key, before it applied the Deployment: the Deployment's
// rollout is complete, but for the old key set. The next operator rolls the pods before it promotes.
func TestRotationDoesNotSkipARolloutCutShortByACrash(t *testing.T) {
	s := env(t)
	r := s.rotation(t, "crash", nil)
	_, first := r.waitFirstKey()
	r.rollOut()
	r.waitPhase(packnowv1alpha1.PhaseStable, first.Current, "Scheduled")
	r.stop()

	// What the operator's stage writes, taken by hand while no operator runs.
	next, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	stagedAt := r.clock.Now().Add(90 * day)
	r.clock.SetTime(stagedAt)
	secret, _, err := r.secret()
	if err != nil {
		t.Fatal(err)
	}
	secret.Data[keyring.EnvNext] = []byte(next)
	secret.Annotations["packnow.io/staged-at"] = stagedAt.Format(time.RFC3339)
	if err := r.k8s.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	r.keys[next] = true
	staged := keyring.Set{Current: first.Current, Next: next}

	r.start()
	r.clock.Step(time.Hour)
	r.nudge()
	r.keysAre("with the old pods still running", staged)
	r.rollOut()
	r.waitKeys("promoted after the rollout", func(k keyring.Set) error {
		if k != (keyring.Set{Current: next, Previous: first.Current}) {
			return fmt.Errorf("keys %s", ids(k))
		}
		return nil
	})
	r.noKeyMaterial()
}

func TestRotationOnRequest(t *testing.T) {
	s := env(t)
	const request = "packnow.io/rotate-secret-key"
	// A request on a new app is answered by its first key.
	r := s.rotation(t, "manual", func(app *packnowv1alpha1.PackNowApp) {
		app.Annotations = map[string]string{request: "at-creation"}
	})
	_, first := r.waitFirstKey()
	r.rollOut()
	r.nudge()
	r.keysAre("a request the first key answered", first)

	r.patchApp(fmt.Sprintf(`{"metadata":{"annotations":{%q:"first"}}}`, request))
	secret, staged := r.waitKeys("a key staged on request", func(k keyring.Set) error {
		if k.Next == "" {
			return errors.New("nothing staged")
		}
		return nil
	})
	if secret.Annotations["packnow.io/rotate-secret-key-handled"] != "first" {
		t.Errorf("handled request %q, want first", secret.Annotations["packnow.io/rotate-secret-key-handled"])
	}
	if got := annotationTime(t, secret, "packnow.io/staged-at"); !got.Equal(r.clock.Now()) {
		t.Errorf("staged at %s, want now (%s)", got, r.clock.Now())
	}
	r.rollOut()
	_, promoted := r.waitKeys("promoted", func(k keyring.Set) error {
		if k != (keyring.Set{Current: staged.Next, Previous: first.Current}) {
			return fmt.Errorf("keys %s", ids(k))
		}
		return nil
	})
	r.rollOut()

	// A new request while the rotation is unfinished waits for it to finish.
	r.patchApp(fmt.Sprintf(`{"metadata":{"annotations":{%q:"second"}}}`, request))
	r.nudge()
	r.keysAre("a request while the previous key is kept", promoted)

	r.clock.Step(7*day + 15*time.Minute)
	r.nudge()
	_, retired := r.waitKeys("retired", func(k keyring.Set) error {
		if k.Previous != "" {
			return errors.New("previous key kept")
		}
		return nil
	})
	if retired != (keyring.Set{Current: promoted.Current}) {
		t.Fatalf("keys %s after retiring, want only %s", ids(retired), ids(promoted))
	}
	r.nudge()
	r.keysAre("the second request, before the retire rollout", retired)
	r.rollOut()
	secret, again := r.waitKeys("the second request staged", func(k keyring.Set) error {
		if k.Next == "" {
			return errors.New("nothing staged")
		}
		return nil
	})
	if again.Current != promoted.Current || len(r.keys) != 3 {
		t.Errorf("keys %s for the second request", ids(again))
	}
	if secret.Annotations["packnow.io/rotate-secret-key-handled"] != "second" {
		t.Errorf("handled request %q, want second", secret.Annotations["packnow.io/rotate-secret-key-handled"])
	}
	r.waitEvents(corev1.EventTypeNormal, "KeyStaged", 2)
	r.noKeyMaterial()
}

// packnow.io/retire-previous-key retires the previous key long before its tokens expire, but only once every
// pod signs with the new one, and each value is answered once, also when there is no previous key.
func TestRetirePreviousKeyOnRequest(t *testing.T) {
	s := env(t)
	const retire, handled = "packnow.io/retire-previous-key", "packnow.io/retire-previous-key-handled"
	r := s.rotation(t, "retire", func(app *packnowv1alpha1.PackNowApp) {
		app.Annotations = map[string]string{retire: "at-creation"}
	})
	secret, first := r.waitFirstKey()
	if got := secret.Annotations[handled]; got != "at-creation" {
		t.Errorf("handled retire request %q on the first key, want at-creation", got)
	}
	r.rollOut()
	r.patchApp(`{"metadata":{"annotations":{"packnow.io/rotate-secret-key":"rotate"}}}`)
	_, staged := r.waitKeys("a staged key", func(k keyring.Set) error {
		if k.Next == "" {
			return errors.New("nothing staged")
		}
		return nil
	})
	r.rollOut()
	_, promoted := r.waitKeys("promoted", func(k keyring.Set) error {
		if k != (keyring.Set{Current: staged.Next, Previous: first.Current}) {
			return fmt.Errorf("keys %s", ids(k))
		}
		return nil
	})

	// Requested while old pods may still sign with the previous key: it waits for the promote rollout.
	r.patchApp(fmt.Sprintf(`{"metadata":{"annotations":{%q:"incident-1"}}}`, retire))
	r.nudge()
	r.keysAre("a retire request during the promote rollout", promoted)
	r.waitPhase(packnowv1alpha1.PhasePromoted, promoted.Current, "Promoted")
	r.rollOut()
	secret, _ = r.waitKeys("the previous key retired on request", func(k keyring.Set) error {
		if k != (keyring.Set{Current: promoted.Current}) {
			return fmt.Errorf("keys %s", ids(k))
		}
		return nil
	})
	if got := secret.Annotations[handled]; got != "incident-1" {
		t.Errorf("handled retire request %q, want incident-1", got)
	}
	r.waitEvents(corev1.EventTypeWarning, "KeyRetiredEarly", 1)
	if n := r.events(corev1.EventTypeNormal, "KeyRetired"); n != 0 {
		t.Errorf("%d KeyRetired events for a retire on request", n)
	}
	r.waitPhase(packnowv1alpha1.PhaseStable, promoted.Current, "WaitingForRollout")
	r.rollOut()
	r.waitPhase(packnowv1alpha1.PhaseStable, promoted.Current, "Scheduled")

	// Without a previous key a new value is recorded and changes nothing else.
	r.patchApp(fmt.Sprintf(`{"metadata":{"annotations":{%q:"incident-2"}}}`, retire))
	eventually(t, "the second retire request recorded", func() error {
		s, _, err := r.secret()
		if err != nil {
			return err
		}
		if got := s.Annotations[handled]; got != "incident-2" {
			return fmt.Errorf("handled %q", got)
		}
		return nil
	})
	r.nudge()
	r.keysAre("after a retire request without a previous key", keyring.Set{Current: promoted.Current})
	if n := r.events(corev1.EventTypeWarning, "KeyRetiredEarly"); n != 1 {
		t.Errorf("%d KeyRetiredEarly events, want 1", n)
	}
	if len(r.keys) != 2 {
		t.Errorf("%d keys were generated, want 2", len(r.keys))
	}
	r.noKeyMaterial()
}

func TestRotationPeriodChangeMovesTheSchedule(t *testing.T) {
	s := env(t)
	r := s.rotation(t, "period", nil)
	t0 := r.clock.Now()
	_, first := r.waitFirstKey()
	r.rollOut()
	r.waitPhase(packnowv1alpha1.PhaseStable, first.Current, "Scheduled")

	nextRotation := func(want time.Time) {
		t.Helper()
		r.waitApp("nextRotationTime "+want.String(), func(app *packnowv1alpha1.PackNowApp) error {
			if got := app.Status.SecretKey.NextRotationTime; !got.Equal(&metav1.Time{Time: want}) {
				return fmt.Errorf("nextRotationTime %s", got)
			}
			return nil
		})
	}
	r.patchApp(`{"spec":{"secretKey":{"rotationPeriod":"2400h0m0s"}}}`)
	nextRotation(t0.Add(100 * day))

	r.clock.SetTime(t0.Add(2 * day))
	r.nudge()
	r.keysAre("two days in, with a 100-day period", first)
	r.patchApp(`{"spec":{"secretKey":{"rotationPeriod":"24h0m0s"}}}`)
	nextRotation(t0.Add(day))
	r.waitKeys("the overdue rotation staged", func(k keyring.Set) error {
		if k.Next == "" || k.Current != first.Current {
			return fmt.Errorf("keys %s", ids(k))
		}
		return nil
	})
}

func TestRotationSecretDeletedMidway(t *testing.T) {
	s := env(t)
	r := s.rotation(t, "lost", nil)
	_, first := r.waitFirstKey()
	r.rollOut()
	r.patchApp(`{"metadata":{"annotations":{"packnow.io/rotate-secret-key":"now"}}}`)
	old, staged := r.waitKeys("a staged key", func(k keyring.Set) error {
		if k.Next == "" {
			return errors.New("nothing staged")
		}
		return nil
	})
	r.waitPhase(packnowv1alpha1.PhaseStaged, first.Current, "Staged")

	if err := r.k8s.Delete(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	fresh, keys := r.waitKeys("a new key", func(k keyring.Set) error {
		if k.Current == "" || k.Current == first.Current {
			return fmt.Errorf("keys %s", ids(k))
		}
		return nil
	})
	if fresh.UID == old.UID || keys.Next != "" || keys.Previous != "" || keys.Current == staged.Next {
		t.Fatalf("keys %s after the Secret was deleted, want one new key", ids(keys))
	}
	r.waitEvents(corev1.EventTypeWarning, "SecretKeyRegenerated", 1)
	r.waitPhase(packnowv1alpha1.PhaseStable, keys.Current, "WaitingForRollout")
	r.rollOut()
	r.waitPhase(packnowv1alpha1.PhaseStable, keys.Current, "Scheduled")
	r.nudge()
	r.keysAre("the request the lost rotation answered", keys)
	r.noKeyMaterial()
}
