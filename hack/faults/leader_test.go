package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/app/keyring"
	"github.com/packnow/packnow-operator/controllers"
	"github.com/packnow/packnow-operator/hack/testenv"
)

const (
	// leaseName is main.go's LeaderElectionID.
	leaseName = "packnow-operator.packnow.io"
	// leaseDuration is controller-runtime's default, passed explicitly so that the log compares with what ran.
	leaseDuration = 15 * time.Second
	// takeoverLimit only turns a standby that never takes over into a failure instead of a hang.
	takeoverLimit = 4 * leaseDuration
	// waitLimit bounds every other wait.
	waitLimit = time.Minute

	// What client-go's leader election logs when it starts to wait for the Lease and when it holds it.
	logAttempting = "Attempting to acquire leader lease"
	logAcquired   = "Successfully acquired lease"
)

// Two operators elect a leader; a rotation requested on an app is staged by the leader, which is then killed
// with SIGKILL, leaving its Lease unreleased. The standby takes the Lease over once it expires and completes
// the rotation from what the Secret holds: each step once, no key generated twice, none lost.
func TestFaultLeaderElection(t *testing.T) {
	ctx := t.Context()
	leaseNS := createNamespace(t, "lease")
	if err := apiServer.GrantLeaderElection(ctx, leaseNS, operatorUserName); err != nil {
		t.Fatal(err)
	}
	ns := createNamespace(t, "leader")
	const name = "keys"
	r := &rollouts{t: t, ns: ns, deployment: name + "-api"}
	history := watchKeys(t, ns, name+"-secret-key")

	flags := []string{"--leader-elect=true", "--leader-election-namespace=" + leaseNS,
		"--leader-election-lease-duration=" + leaseDuration.String()}
	operators := []*operator{startOperator(t, "one", flags...), startOperator(t, "two", flags...)}

	// One leader: the Lease names a holder, one process says it acquired the Lease and the other still waits
	// for it, so that the standby is up before the leader dies.
	var leader, standby *operator
	var holder string
	waitFor(t, "one leader and one standby", waitLimit, func() error {
		var acquired, waiting []*operator
		for _, o := range operators {
			o.mustRun(t)
			switch logs := o.logs.String(); {
			case strings.Contains(logs, logAcquired):
				acquired = append(acquired, o)
			case strings.Contains(logs, logAttempting):
				waiting = append(waiting, o)
			}
		}
		if len(acquired) != 1 || len(waiting) != 1 {
			return fmt.Errorf("%d processes hold the Lease, %d wait for it", len(acquired), len(waiting))
		}
		lease, err := getLease(ctx, leaseNS)
		if err != nil {
			return err
		}
		leader, standby, holder = acquired[0], waiting[0], leaseHolder(lease)
		if holder == "" {
			return errors.New("the Lease names no holder")
		}
		return nil
	})
	t.Logf("operator %s leads as %s, operator %s stands by", leader.name, holder, standby.name)

	createApp(t, ns, name)
	first := waitKeys(t, ns, name, "the first key", func(k keyring.Set) error {
		if k.Current == "" {
			return errors.New("no key yet")
		}
		return nil
	})
	r.rollOut()
	waitPhase(t, ns, name, packnowv1alpha1.PhaseStable, first.Current, controllers.ReasonRotationScheduled)
	before := getSecret(t, ns, name)

	// The leader stages a key on request and dies right after, before the stage's rollout is complete.
	const request = "leader-election"
	patchApp(t, ns, name, fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, controllers.AnnotationRotateSecretKey, request))
	// The watch sees the write at once, so the kill often lands before the leader has rolled the pods.
	staged := history.waitFor(t, "a staged key", func(k keyring.Set) bool { return k.Next != "" })
	leader.kill()
	killedAt := time.Now()
	lease, err := getLease(ctx, leaseNS)
	if err != nil {
		t.Fatal(err)
	}
	lastRenewal := lease.Spec.RenewTime.Time

	// What the dead leader left is the whole stage, written at once (docs/rotation.md, "State and crash
	// safety"): the first key signing, the new one staged, its time and the request it answered.
	left := getSecret(t, ns, name)
	if keys := keysOf(left); keys != (keyring.Set{Current: first.Current, Next: staged.Next}) || staged.Next == first.Current {
		t.Fatalf("the killed leader left keys %s, want the first key and a new staged one", ids(keys))
	}
	if _, err := time.Parse(time.RFC3339, left.Annotations[controllers.AnnotationStagedAt]); err != nil {
		t.Errorf("the killed leader left staged-at %q: %v", left.Annotations[controllers.AnnotationStagedAt], err)
	}
	if got, want := left.Annotations[controllers.AnnotationRotatedAt], before.Annotations[controllers.AnnotationRotatedAt]; got != want {
		t.Errorf("the killed leader left rotated-at %q, want still %q", got, want)
	}
	if got := left.Annotations[controllers.AnnotationRotateSecretKeyHandled]; got != request {
		t.Errorf("the killed leader left the handled request %q, want %q", got, request)
	}

	t.Logf("the leader died %s", r.stageRolled())

	// The standby takes the Lease over once it has expired.
	var takeover time.Duration
	waitFor(t, "the standby takes the Lease over", takeoverLimit, func() error {
		standby.mustRun(t)
		lease, err := getLease(ctx, leaseNS)
		if err != nil {
			return err
		}
		if h := leaseHolder(lease); h == holder {
			return fmt.Errorf("the Lease is still held by %s", h)
		}
		takeover = time.Since(killedAt)
		return nil
	})
	waitFor(t, "the standby says it acquired the Lease", waitLimit, func() error {
		if !strings.Contains(standby.logs.String(), logAcquired) {
			return errors.New("not in its log")
		}
		return nil
	})
	// The standby times the lease from when it last saw it renewed, and looks again every retry period (2 s,
	// jittered), so it takes over up to a few seconds after the Lease expires.
	expiry := lastRenewal.Add(leaseDuration).Sub(killedAt)
	t.Logf("takeover: %s from SIGKILL of the leader to a new holder in the Lease; lease duration %s, the Lease expired %s after the kill, taken over %s later",
		takeover.Round(time.Millisecond), leaseDuration, expiry.Round(time.Millisecond), (takeover - expiry).Round(time.Millisecond))

	// The new leader completes the rotation: promote once the stage's rollout is complete (its Deployment
	// update may be the dead leader's or its own), then retire on request.
	r.rollOut()
	promoted := waitKeys(t, ns, name, "the staged key promoted", func(k keyring.Set) error {
		if k.Next != "" {
			return errors.New("still staged")
		}
		return nil
	})
	if promoted != (keyring.Set{Current: staged.Next, Previous: first.Current}) {
		t.Fatalf("promoted keys %s, want the staged key signing and the first one previous", ids(promoted))
	}
	secret := getSecret(t, ns, name)
	promotedAt := secret.Annotations[controllers.AnnotationRotatedAt]
	if rotatedAt, err := time.Parse(time.RFC3339, secret.Annotations[controllers.AnnotationRotatedAt]); err != nil || rotatedAt.Before(killedAt.Truncate(time.Second)) {
		t.Errorf("rotated-at %q after the promote, want a time after the kill (%s)", secret.Annotations[controllers.AnnotationRotatedAt], killedAt)
	}
	if v, ok := secret.Annotations[controllers.AnnotationStagedAt]; ok {
		t.Errorf("staged-at %q outlives the staged key", v)
	}
	waitPhase(t, ns, name, packnowv1alpha1.PhasePromoted, promoted.Current, controllers.ReasonRotationPromoted)
	r.rollOut()

	const retire = "after-takeover"
	patchApp(t, ns, name, fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, controllers.AnnotationRetirePreviousKey, retire))
	retired := waitKeys(t, ns, name, "the previous key retired", func(k keyring.Set) error {
		if k.Previous != "" {
			return errors.New("previous key kept")
		}
		return nil
	})
	if retired != (keyring.Set{Current: promoted.Current}) {
		t.Fatalf("keys %s after the retire, want only %s", ids(retired), ids(promoted))
	}
	secret = getSecret(t, ns, name)
	if got := secret.Annotations[controllers.AnnotationRetirePreviousKeyHandled]; got != retire {
		t.Errorf("handled retire request %q, want %q", got, retire)
	}
	if got := secret.Annotations[controllers.AnnotationRotatedAt]; got != promotedAt {
		t.Errorf("rotated-at %q after the retire, want still the promote's %q", got, promotedAt)
	}
	r.rollOut()
	waitPhase(t, ns, name, packnowv1alpha1.PhaseStable, retired.Current, controllers.ReasonRotationScheduled)

	// Every write of the Secret, in order: one per step, across the takeover.
	want := []keyring.Set{first, {Current: first.Current, Next: staged.Next}, promoted, retired}
	history.waitFor(t, "the watch sees the retire", func(k keyring.Set) bool { return k == retired })
	got := history.seen()
	if !slices.Equal(got, want) {
		t.Errorf("the Secret held key sets %s, want %s", idList(got), idList(want))
	}
	// A step's event may die with the leader that took it; none may be sent twice.
	for reason, want := range map[string]int{controllers.EventKeyPromoted: 1, controllers.EventKeyRetiredEarly: 1} {
		waitFor(t, fmt.Sprintf("%d %s event", want, reason), waitLimit, func() error {
			if n := countEvents(t, ns, name, reason); n != want {
				return fmt.Errorf("%d", n)
			}
			return nil
		})
	}
	for reason, most := range map[string]int{controllers.EventKeyStaged: 1, controllers.EventKeyRotationFailed: 0, "SecretKeyRegenerated": 0} {
		if n := countEvents(t, ns, name, reason); n > most {
			t.Errorf("%d %s events, want at most %d", n, reason, most)
		}
	}
	for _, o := range operators {
		for _, k := range []string{first.Current, staged.Next} {
			if strings.Contains(o.logs.String(), k) {
				t.Errorf("operator %s logged key %s", o.name, keyring.KeyID(k))
			}
		}
	}
}

func getLease(ctx context.Context, namespace string) (*coordinationv1.Lease, error) {
	lease := &coordinationv1.Lease{}
	return lease, apiServer.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: leaseName}, lease)
}

func leaseHolder(lease *coordinationv1.Lease) string {
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// rollouts plays the Deployment controller, which envtest lacks, for one app.
type rollouts struct {
	t              *testing.T
	ns, deployment string
	// hash is the pod template's secret-key hash last rolled out.
	hash string
}

// rollOut waits until the pod template carries a key set's hash other than the one last rolled out, then
// reports every pod of the template updated and available.
func (r *rollouts) rollOut() {
	r.t.Helper()
	waitFor(r.t, "a pod template for the new key set", waitLimit, func() error {
		d := &appsv1.Deployment{}
		if err := apiServer.Client.Get(r.t.Context(), client.ObjectKey{Namespace: r.ns, Name: r.deployment}, d); err != nil {
			return err
		}
		h := d.Spec.Template.Annotations[controllers.AnnotationSecretKeyHash]
		if h == "" || h == r.hash {
			return fmt.Errorf("the pod template carries hash %q, the one last rolled out", h)
		}
		r.hash = h
		return nil
	})
	if err := testenv.MarkRolledOut(r.t.Context(), apiServer.Client, r.ns, r.deployment); err != nil {
		r.t.Fatal(err)
	}
}

// stageRolled says whether the pod template carries a key set's hash other than the one last rolled out.
func (r *rollouts) stageRolled() string {
	d := &appsv1.Deployment{}
	if err := apiServer.Client.Get(r.t.Context(), client.ObjectKey{Namespace: r.ns, Name: r.deployment}, d); err != nil {
		r.t.Fatal(err)
	}
	if d.Spec.Template.Annotations[controllers.AnnotationSecretKeyHash] == r.hash {
		return "after writing the staged key, before rolling the pods for it"
	}
	return "after writing the staged key and rolling the pods for it"
}

// keyHistory is every key set the Secret held, in order, as a watch sees each of its writes.
type keyHistory struct {
	mu   sync.Mutex
	sets []keyring.Set
	// changed is closed, and replaced, whenever sets grows or the watch ends.
	changed chan struct{}
	// ended says why the watch ended early, if it did.
	ended error
}

func watchKeys(t *testing.T, namespace, name string) *keyHistory {
	t.Helper()
	c, err := client.NewWithWatch(apiServer.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(t.Context(), &corev1.SecretList{}, client.InNamespace(namespace),
		client.MatchingFields{"metadata.name": name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	h := &keyHistory{changed: make(chan struct{})}
	go func() {
		for ev := range w.ResultChan() {
			h.mu.Lock()
			if s, ok := ev.Object.(*corev1.Secret); ok && ev.Type != watch.Deleted {
				if keys := keysOf(s); len(h.sets) == 0 || h.sets[len(h.sets)-1] != keys {
					h.sets = append(h.sets, keys)
					close(h.changed)
					h.changed = make(chan struct{})
				}
			} else if h.ended == nil {
				h.ended = fmt.Errorf("watch event %s %T", ev.Type, ev.Object)
				close(h.changed)
				h.changed = make(chan struct{})
			}
			h.mu.Unlock()
		}
	}()
	return h
}

// waitFor waits until the watch sees a key set that ok accepts, and returns it.
func (h *keyHistory) waitFor(t *testing.T, what string, ok func(keyring.Set) bool) keyring.Set {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		h.mu.Lock()
		sets, ended, changed := slices.Clone(h.sets), h.ended, h.changed
		h.mu.Unlock()
		if ended != nil {
			t.Fatalf("watching the Secret: %v (seen so far: %s)", ended, idList(sets))
		}
		if len(sets) > 0 && ok(sets[len(sets)-1]) {
			return sets[len(sets)-1]
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("%s, after %s: the watch has seen %s", what, waitLimit, idList(sets))
		}
	}
}

// seen is every key set the watch has seen so far.
func (h *keyHistory) seen() []keyring.Set {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sets)
}

func getSecret(t *testing.T, namespace, app string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := apiServer.Client.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: app + "-secret-key"}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func keysOf(s *corev1.Secret) keyring.Set {
	return keyring.Set{
		Current:  string(s.Data[keyring.EnvCurrent]),
		Next:     string(s.Data[keyring.EnvNext]),
		Previous: string(s.Data[keyring.EnvPrevious]),
	}
}

// waitKeys waits until the app's Secret holds a key set that check accepts.
func waitKeys(t *testing.T, namespace, app, what string, check func(keyring.Set) error) keyring.Set {
	t.Helper()
	var keys keyring.Set
	waitFor(t, what, waitLimit, func() error {
		s := &corev1.Secret{}
		if err := apiServer.Client.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: app + "-secret-key"}, s); err != nil {
			return err
		}
		keys = keysOf(s)
		return check(keys)
	})
	return keys
}

// waitPhase waits until the status describes the current spec with the phase, the signing key and the
// KeyRotation reason.
func waitPhase(t *testing.T, namespace, name string, phase packnowv1alpha1.KeyRotationPhase, current, reason string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("phase %s, reason %s", phase, reason), waitLimit, func() error {
		app := &packnowv1alpha1.PackNowApp{}
		if err := apiServer.Client.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: name}, app); err != nil {
			return err
		}
		if app.Status.ObservedGeneration != app.Generation {
			return fmt.Errorf("status describes generation %d, spec is at %d", app.Status.ObservedGeneration, app.Generation)
		}
		st := app.Status.SecretKey
		var c metav1.Condition
		if i := slices.IndexFunc(app.Status.Conditions, func(c metav1.Condition) bool {
			return c.Type == packnowv1alpha1.ConditionKeyRotation
		}); i >= 0 {
			c = app.Status.Conditions[i]
		}
		if st.Phase != phase || st.CurrentKeyID != keyring.KeyID(current) || c.Reason != reason {
			return fmt.Errorf("phase %s, key %s, KeyRotation %s: %s", st.Phase, st.CurrentKeyID, c.Reason, c.Message)
		}
		return nil
	})
}

func patchApp(t *testing.T, namespace, name, patch string) {
	t.Helper()
	app := &packnowv1alpha1.PackNowApp{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := apiServer.Client.Patch(t.Context(), app, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// countEvents counts the occurrences of events about the app with the reason.
func countEvents(t *testing.T, namespace, app, reason string) int {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := apiServer.Client.List(t.Context(), list, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Kind != "PackNowApp" || e.Regarding.Name != app || e.Reason != reason {
			continue
		}
		// A process sends a repeated event as a series, counting every occurrence.
		if e.Series != nil {
			n += int(e.Series.Count)
		} else {
			n++
		}
	}
	return n
}

// ids names a key set's keys by key id, never by value.
func ids(s keyring.Set) string {
	id := func(k string) string {
		if k == "" {
			return "-"
		}
		return keyring.KeyID(k)
	}
	return fmt.Sprintf("{current %s next %s previous %s}", id(s.Current), id(s.Next), id(s.Previous))
}

func idList(sets []keyring.Set) string {
	names := make([]string, len(sets))
	for i, s := range sets {
		names[i] = ids(s)
	}
	return "[" + strings.Join(names, " ") + "]"
}
