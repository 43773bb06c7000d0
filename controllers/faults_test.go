package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/app/keyring"
	"github.com/packnow/packnow-operator/controllers"
	"github.com/packnow/packnow-operator/hack/testenv"
)

// faultTimeout bounds each wait of the fault tests; the busy machine needs far less.
const faultTimeout = time.Minute

// secretKeys are the data keys each generated Secret holds (CONVENTIONS, "SECRET_KEY Secret" and "Credential
// Secrets"); a SECRET_KEY Secret outside a rotation holds the signing key alone.
var secretKeys = map[string][]string{
	"-secret-key": {keyring.EnvCurrent},
	"-postgres":   {"DATABASE_URL", "password", "username"},
	"-redis":      {"REDIS_URL", "password"},
}

// fleet is what the API server holds for a set of apps, read in one list per kind and namespace.
type fleet struct {
	apps    map[client.ObjectKey]packnowv1alpha1.PackNowApp
	secrets map[client.ObjectKey]corev1.Secret
	// children are the names of the other generated objects, by kind.
	children map[string]map[client.ObjectKey]bool
}

// readFleet lists the apps and their children in namespaces.
func (s *suite) readFleet(ctx context.Context, namespaces []string) (*fleet, error) {
	f := &fleet{
		apps:     map[client.ObjectKey]packnowv1alpha1.PackNowApp{},
		secrets:  map[client.ObjectKey]corev1.Secret{},
		children: map[string]map[client.ObjectKey]bool{},
	}
	managed := client.MatchingLabels{controllers.LabelManagedBy: controllers.ManagedByValue}
	for _, ns := range namespaces {
		apps, secrets := &packnowv1alpha1.PackNowAppList{}, &corev1.SecretList{}
		if err := s.k8s.List(ctx, apps, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for _, a := range apps.Items {
			f.apps[client.ObjectKeyFromObject(&a)] = a
		}
		if err := s.k8s.List(ctx, secrets, client.InNamespace(ns), managed); err != nil {
			return nil, err
		}
		for _, sec := range secrets.Items {
			f.secrets[client.ObjectKeyFromObject(&sec)] = sec
		}
		for kind, list := range map[string]client.ObjectList{
			"Deployment":          &appsv1.DeploymentList{},
			"Service":             &corev1.ServiceList{},
			"ServiceAccount":      &corev1.ServiceAccountList{},
			"PodDisruptionBudget": &policyv1.PodDisruptionBudgetList{},
			"NetworkPolicy":       &networkingv1.NetworkPolicyList{},
		} {
			if err := s.k8s.List(ctx, list, client.InNamespace(ns), managed); err != nil {
				return nil, err
			}
			if f.children[kind] == nil {
				f.children[kind] = map[client.ObjectKey]bool{}
			}
			for _, obj := range listedObjects(list) {
				f.children[kind][client.ObjectKeyFromObject(obj)] = true
			}
		}
	}
	return f, nil
}

func listedObjects(list client.ObjectList) []client.Object {
	var out []client.Object
	switch l := list.(type) {
	case *appsv1.DeploymentList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.ServiceList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.ServiceAccountList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *policyv1.PodDisruptionBudgetList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *networkingv1.NetworkPolicyList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	}
	return out
}

// started tells whether the operator has written anything for app.
func (f *fleet) started(app client.ObjectKey) bool {
	for suffix := range secretKeys {
		if _, ok := f.secrets[client.ObjectKey{Namespace: app.Namespace, Name: app.Name + suffix}]; ok {
			return true
		}
	}
	return false
}

// converged is nil when app has every child, each generated Secret holds exactly its keys, and the status
// describes the current generation with the Secrets resolved and nothing degraded. The rollout itself stays
// pending: envtest runs no Deployment controller.
func (f *fleet) converged(key client.ObjectKey) error {
	app, ok := f.apps[key]
	if !ok {
		return errors.New("gone")
	}
	for suffix, want := range secretKeys {
		name := client.ObjectKey{Namespace: key.Namespace, Name: key.Name + suffix}
		sec, ok := f.secrets[name]
		if !ok {
			return fmt.Errorf("no Secret %s", name.Name)
		}
		if got := slices.Sorted(maps.Keys(sec.Data)); !slices.Equal(got, want) {
			return fmt.Errorf("Secret %s holds %v, want %v", name.Name, got, want)
		}
	}
	api := client.ObjectKey{Namespace: key.Namespace, Name: key.Name + "-api"}
	for kind, names := range f.children {
		if !names[api] {
			return fmt.Errorf("no %s %s", kind, api.Name)
		}
	}
	if app.Status.ObservedGeneration != app.Generation {
		return fmt.Errorf("status describes generation %d of %d", app.Status.ObservedGeneration, app.Generation)
	}
	want := map[string]metav1.ConditionStatus{
		packnowv1alpha1.ConditionSecretsReady: metav1.ConditionTrue,
		packnowv1alpha1.ConditionDegraded:     metav1.ConditionFalse,
		packnowv1alpha1.ConditionProgressing:  metav1.ConditionTrue,
		packnowv1alpha1.ConditionReady:        metav1.ConditionFalse,
	}
	for condType, status := range want {
		c := conditionOf(&app, condType)
		if c == nil || c.Status != status || c.ObservedGeneration != app.Generation {
			return fmt.Errorf("%s is %+v, want %s at generation %d", condType, c, status, app.Generation)
		}
	}
	if kid := keyring.KeyID(string(f.secrets[client.ObjectKey{Namespace: key.Namespace, Name: key.Name + "-secret-key"}].Data[keyring.EnvCurrent])); app.Status.SecretKey.CurrentKeyID != kid {
		return fmt.Errorf("status names key %s, the Secret holds %s", app.Status.SecretKey.CurrentKeyID, kid)
	}
	return nil
}

// waitFleet polls until every app in keys has converged and returns the state it converged to.
func (s *suite) waitFleet(t *testing.T, namespaces []string, keys []client.ObjectKey) *fleet {
	t.Helper()
	deadline := time.Now().Add(faultTimeout)
	for {
		f, err := s.readFleet(context.Background(), namespaces)
		if err == nil {
			var pending []error
			for _, k := range keys {
				if err := f.converged(k); err != nil {
					pending = append(pending, fmt.Errorf("%s: %w", k, err))
				}
			}
			if len(pending) == 0 {
				return f
			}
			err = fmt.Errorf("%d of %d apps not converged, first %w", len(pending), len(keys), pending[0])
		}
		if time.Now().After(deadline) {
			t.Fatalf("apps to converge: %v", err)
		}
		time.Sleep(4 * pollInterval)
	}
}

// TestFaultAPIServerRestart stops kube-apiserver while a fleet of apps is being reconciled and starts it again
// on the same etcd data: every app converges, with exactly its Secrets and no credential regenerated.
func TestFaultAPIServerRestart(t *testing.T) {
	edgeCRDs, err := testenv.EdgeCRDPaths()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := testenv.StartAPIServer(testenv.APIServerOptions{CRDDirectoryPaths: edgeCRDs})
	if err != nil {
		t.Fatal(err)
	}
	s, err := startOperator(srv)
	if err != nil {
		t.Fatal(errors.Join(err, srv.Stop()))
	}
	t.Cleanup(func() {
		if err := s.shutdown(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()

	const namespaces, perNamespace = 3, 10
	var nss []string
	var keys []client.ObjectKey
	for i := range namespaces {
		ns := s.namespace(t, fmt.Sprintf("restart-%d", i))
		nss = append(nss, ns)
		for j := range perNamespace {
			keys = append(keys, client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("app-%d", j)})
		}
	}
	errs := make(chan error, len(keys))
	for _, k := range keys {
		go func() { errs <- s.k8s.Create(ctx, newApp(k.Namespace, k.Name)) }()
	}
	for range keys {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	// Stop the API server once the operator has begun on a quarter of the apps.
	var before *fleet
	eventually(t, "the operator to begin", func() error {
		f, err := s.readFleet(ctx, nss)
		if err != nil {
			return err
		}
		before = f
		n := 0
		for _, k := range keys {
			if f.started(k) {
				n++
			}
		}
		if n < len(keys)/4 {
			return fmt.Errorf("begun on %d apps", n)
		}
		return nil
	})
	// No grace: while it drains, kube-apiserver keeps serving the connections it has, on which the operator
	// converges the whole fleet within a second. Killed, it also loses the responses to writes in flight, the
	// case where a retry could generate a second key.
	stopping := time.Now()
	if err := srv.StopKubeAPIServer(0); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver took %s to stop", time.Since(stopping).Round(10*time.Millisecond))
	// The last writes before the stop may have landed after the read above; the ones read are what must stay.
	var started, done int
	for _, k := range keys {
		switch {
		case before.converged(k) == nil:
			done++
		case before.started(k):
			started++
		}
	}
	t.Logf("kube-apiserver stopped with %d of %d apps mid-reconcile, %d converged, %d not begun",
		started, len(keys), done, len(keys)-started-done)

	const downtime = 5 * time.Second
	time.Sleep(downtime)
	if err := srv.StartKubeAPIServer(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// The operator's configuration from before the restart reaches the API server again.
	operatorClient, err := client.New(s.operator, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := operatorClient.List(ctx, &packnowv1alpha1.PackNowAppList{}, client.InNamespace(nss[0])); err != nil {
		t.Fatalf("the operator's configuration after the restart: %v", err)
	}

	after := s.waitFleet(t, nss, keys)
	t.Logf("kube-apiserver down %s; every app converged %s after it was back", downtime, time.Since(back).Round(10*time.Millisecond))

	// Exactly the three Secrets of each app, and every value read before the stop unchanged.
	if got, want := len(after.secrets), len(keys)*len(secretKeys); got != want {
		t.Errorf("%d generated Secrets, want %d (3 per app)", got, want)
	}
	for key, old := range before.secrets {
		now, ok := after.secrets[key]
		if !ok {
			t.Errorf("Secret %s lost", key)
			continue
		}
		for k, v := range old.Data {
			if string(now.Data[k]) != string(v) {
				t.Errorf("Secret %s: %s changed across the restart", key, k)
			}
		}
	}
	// A regenerated credential would have announced itself with a Warning event.
	for _, ns := range nss {
		events := &eventsv1.EventList{}
		if err := s.k8s.List(ctx, events, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			if e.Reason == "PasswordRegenerated" || e.Reason == "SecretKeyRegenerated" {
				t.Errorf("%s/%s: %s: %s", ns, e.Regarding.Name, e.Reason, e.Note)
			}
		}
	}
}

// editor is the field manager of the tests' concurrent edits.
const editor = "fault-editor"

// controllerCounters reads, from the metrics registry the manager serves, the reconciles of the PackNowApp
// controller by result, its errors and its work queue's rate-limited requeues. Every manager of this process
// adds to the same series.
func controllerCounters(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch name := f.GetName(); {
			case name == "controller_runtime_reconcile_total" && labels["controller"] == "packnowapp":
				out["reconcile_total{result="+labels["result"]+"}"] = m.GetCounter().GetValue()
				out["reconcile_total"] += m.GetCounter().GetValue()
			case name == "controller_runtime_reconcile_errors_total" && labels["controller"] == "packnowapp",
				name == "workqueue_retries_total" && labels["name"] == "packnowapp":
				out[strings.TrimPrefix(name, "controller_runtime_")] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func counterDeltas(before, after map[string]float64) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(after)) {
		out = append(out, fmt.Sprintf("%s +%.0f", k, after[k]-before[k]))
	}
	return strings.Join(out, ", ")
}

// applyAs server-side applies a JSON object as the editor, taking fields from the operator as kubectl apply
// --force-conflicts would.
func (s *suite) applyAs(obj client.Object, patch string) error {
	return s.k8s.Patch(context.Background(), obj, client.RawPatch(types.ApplyPatchType, []byte(patch)),
		client.FieldOwner(editor), client.ForceOwnership)
}

// errNotThere is an edit skipped because the operator has yet to create the object.
var errNotThere = errors.New("not created yet")

// editAs reads obj and writes it back changed with its resourceVersion, as kubectl edit does; a conflict is
// returned, not retried.
func (s *suite) editAs(obj client.Object, change func()) error {
	if err := s.get(obj.GetNamespace(), obj.GetName(), obj); apierrors.IsNotFound(err) {
		return errNotThere
	} else if err != nil {
		return err
	}
	change()
	return s.k8s.Update(context.Background(), obj, client.FieldOwner(editor))
}

// TestFaultConcurrentEdits has another client edit a PackNowApp and its children, with server-side apply and
// with read-modify-write updates, while the operator reconciles them: the operator's fields come back, the last
// spec is what runs, the other manager's own fields stay, no credential is regenerated, and once the edits stop
// the controller stops too.
func TestFaultConcurrentEdits(t *testing.T) {
	s := env(t)
	ctx := context.Background()
	ns := s.namespace(t, "conflicts")
	const name = "edited"
	s.create(t, newApp(ns, name))

	// The credentials as first generated, which every edit below must leave as they are.
	secrets := map[string]*corev1.Secret{}
	for suffix := range secretKeys {
		sec := &corev1.Secret{}
		eventually(t, "Secret "+name+suffix, func() error { return s.get(ns, name+suffix, sec) })
		secrets[name+suffix] = sec
	}
	before := controllerCounters(t)
	reconciles := s.reconciles(client.ObjectKey{Namespace: ns, Name: name})
	reconcilesBefore := reconciles.Load()

	const rounds = 30
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	// written is the last round of each edit that went through: a conflict loses a round, as it would for
	// kubectl edit.
	var mu sync.Mutex
	written := map[string]string{}
	edit := func(what string, round func(i int) error) {
		wg.Go(func() {
			for i := range rounds {
				switch err := round(i); {
				case apierrors.IsConflict(err):
					conflicts.Add(1)
				case errors.Is(err, errNotThere):
				case err != nil:
					t.Errorf("%s, round %d: %v", what, i, err)
					return
				default:
					mu.Lock()
					written[what] = strconv.Itoa(i)
					mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	app := &packnowv1alpha1.PackNowApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	edit("PackNowApp spec", func(i int) error {
		a := app.DeepCopy()
		return s.editAs(a, func() {
			a.Spec.Image = fmt.Sprintf("packnow-api:edit-%d", i)
			a.Spec.Replicas = ptr.To(int32(2 + i%3))
		})
	})
	edit("PackNowApp", func(i int) error {
		return s.applyAs(app.DeepCopy(), fmt.Sprintf(`{"apiVersion":"packnow.io/v1alpha1","kind":"PackNowApp",
			"metadata":{"name":%q,"namespace":%q,"labels":{"team":"payments"},"annotations":{"fault.test/round":"%d"}}}`, name, ns, i))
	})
	edit("Deployment", func(i int) error {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-api"}}
		if err := s.get(ns, d.Name, d); apierrors.IsNotFound(err) {
			return errNotThere
		} else if err != nil {
			return err
		}
		// replicas is the operator's; the annotation is the editor's own.
		return s.applyAs(d, fmt.Sprintf(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":%q,"namespace":%q,
			"annotations":{"fault.test/round":"%d"}},"spec":{"replicas":%d}}`, d.Name, ns, i, 7+i%2))
	})
	edit("Service", func(i int) error {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-api"}}
		return s.editAs(svc, func() {
			svc.Spec.Ports[0].Port = 81
			metav1.SetMetaDataAnnotation(&svc.ObjectMeta, "fault.test/round", strconv.Itoa(i))
		})
	})
	for secretName := range secrets {
		edit(secretName, func(i int) error {
			sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secretName}}
			return s.editAs(sec, func() {
				sec.Labels[controllers.LabelComponent] = "edited"
				metav1.SetMetaDataAnnotation(&sec.ObjectMeta, "fault.test/round", strconv.Itoa(i))
			})
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// The last spec the edits left, which the operator must run.
	final := &packnowv1alpha1.PackNowApp{}
	if err := s.get(ns, name, final); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the operator's settings restored after the edits", func() error {
		d, svc := &appsv1.Deployment{}, &corev1.Service{}
		if err := errors.Join(s.get(ns, name+"-api", d), s.get(ns, name+"-api", svc)); err != nil {
			return err
		}
		switch {
		case ptr.Deref(d.Spec.Replicas, 0) != *final.Spec.Replicas:
			return fmt.Errorf("Deployment replicas %d, the spec asks %d", ptr.Deref(d.Spec.Replicas, 0), *final.Spec.Replicas)
		case d.Spec.Template.Spec.Containers[0].Image != final.Spec.Image:
			return fmt.Errorf("Deployment image %s, the spec asks %s", d.Spec.Template.Spec.Containers[0].Image, final.Spec.Image)
		case svc.Spec.Ports[0].Port != 80:
			return fmt.Errorf("Service port %d, want 80", svc.Spec.Ports[0].Port)
		}
		for secretName := range secrets {
			sec := &corev1.Secret{}
			if err := s.get(ns, secretName, sec); err != nil {
				return err
			}
			if got := sec.Labels[controllers.LabelComponent]; got != "api" {
				return fmt.Errorf("Secret %s component %q, want api", secretName, got)
			}
		}
		c, app, err := s.condition(ns, name, packnowv1alpha1.ConditionDegraded)
		switch {
		case err != nil:
			return err
		case c.Status != metav1.ConditionFalse:
			return fmt.Errorf("Degraded %s: %s", c.Reason, c.Message)
		case app.Status.Replicas != *final.Spec.Replicas:
			return fmt.Errorf("status replicas %d, the spec asks %d", app.Status.Replicas, *final.Spec.Replicas)
		}
		return nil
	})

	// The editor's own fields stay beside the operator's.
	d, svc := &appsv1.Deployment{}, &corev1.Service{}
	if err := errors.Join(s.get(ns, name+"-api", d), s.get(ns, name+"-api", svc), s.get(ns, name, final)); err != nil {
		t.Fatal(err)
	}
	for what, annotations := range map[string]map[string]string{
		"Deployment": d.Annotations, "Service": svc.Annotations, "PackNowApp": final.Annotations,
	} {
		if got := annotations["fault.test/round"]; got != written[what] {
			t.Errorf("%s annotation fault.test/round %q, want the editor's last %q", what, got, written[what])
		}
	}
	if final.Labels["team"] != "payments" {
		t.Errorf("PackNowApp labels %v lost the editor's team label", final.Labels)
	}
	for secretName, first := range secrets {
		sec := &corev1.Secret{}
		if err := s.get(ns, secretName, sec); err != nil {
			t.Fatal(err)
		}
		if got := sec.Annotations["fault.test/round"]; got != written[secretName] {
			t.Errorf("Secret %s annotation fault.test/round %q, want the editor's last %q", secretName, got, written[secretName])
		}
		for k, v := range first.Data {
			if string(sec.Data[k]) != string(v) {
				t.Errorf("Secret %s: %s changed", secretName, k)
			}
		}
	}

	// No error loop: once the edits are over, the controller settles.
	var settled map[string]float64
	eventually(t, "the controller to settle", func() error {
		first, n := controllerCounters(t), reconciles.Load()
		for range 20 {
			time.Sleep(pollInterval)
			if now := controllerCounters(t); now["reconcile_total"] != first["reconcile_total"] || reconciles.Load() != n {
				return errors.New("still reconciling")
			}
		}
		settled = first
		return nil
	})
	t.Logf("%d edits, %d of them conflicted; %d reconciles of the app; controller: %s",
		rounds*(4+len(secrets)), conflicts.Load(), reconciles.Load()-reconcilesBefore, counterDeltas(before, settled))
	if errs, retries := settled["reconcile_errors_total"]-before["reconcile_errors_total"],
		settled["workqueue_retries_total"]-before["workqueue_retries_total"]; retries < errs {
		t.Errorf("%.0f failed reconciles but %.0f rate-limited requeues: each failure must be retried with backoff", errs, retries)
	}
	events := &eventsv1.EventList{}
	if err := s.k8s.List(ctx, events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		// A conflict is retried, not reported: the app is not at fault.
		if e.Reason == "PasswordRegenerated" || e.Reason == "SecretKeyRegenerated" ||
			e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, "the object has been modified") {
			t.Errorf("%s event: %s", e.Reason, e.Note)
		}
	}
}
