package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/app/keyring"
)

func TestCreateProvisionsTheLockedDownAPI(t *testing.T) {
	s := env(t)
	ns := s.namespace(t, "create")
	app := s.create(t, newApp(ns, "demo"))

	// Before the Deployment controller reports the rollout, the app is not Ready.
	notReady := s.waitCondition(t, ns, "demo", packnowv1alpha1.ConditionReady, metav1.ConditionFalse)
	if c := conditionOf(notReady, packnowv1alpha1.ConditionProgressing); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Progressing %+v while the rollout has not started, want True", c)
	}

	d := &appsv1.Deployment{}
	eventually(t, "Deployment demo-api", func() error { return s.get(ns, "demo-api", d) })
	if got := ptr.Deref(d.Spec.Replicas, 0); got != 2 {
		t.Errorf("replicas %d, want the default 2", got)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "demo-api" || ptr.Deref(pod.AutomountServiceAccountToken, true) {
		t.Errorf("pod service account %q automount %v, want demo-api without a token", pod.ServiceAccountName, pod.AutomountServiceAccountToken)
	}
	psc := pod.SecurityContext
	if !ptr.Deref(psc.RunAsNonRoot, false) || ptr.Deref(psc.RunAsUser, 0) != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v, want non-root 65532 with RuntimeDefault seccomp", psc)
	}
	c := pod.Containers[0]
	csc := c.SecurityContext
	if ptr.Deref(csc.AllowPrivilegeEscalation, true) || !ptr.Deref(csc.ReadOnlyRootFilesystem, false) ||
		csc.Capabilities == nil || len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container securityContext %+v, want no escalation, read-only root, drop ALL", csc)
	}
	if c.Image != testImage {
		t.Errorf("image %q, want the operator's default %q", c.Image, testImage)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/tmp" || pod.Volumes[0].EmptyDir == nil {
		t.Errorf("mounts %+v volumes %+v, want an emptyDir at /tmp", c.VolumeMounts, pod.Volumes)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes %s and %s, want /healthz and /readyz", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update %+v, want maxUnavailable 0", ru)
	}
	if tsc := pod.TopologySpreadConstraints; len(tsc) != 1 || tsc[0].TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("topology spread %+v, want across nodes", tsc)
	}
	if d.Spec.Template.Annotations["packnow.io/secret-key-hash"] == "" {
		t.Error("the pod template has no packnow.io/secret-key-hash")
	}

	sa := &corev1.ServiceAccount{}
	eventually(t, "ServiceAccount", func() error { return s.get(ns, "demo-api", sa) })
	if ptr.Deref(sa.AutomountServiceAccountToken, true) {
		t.Error("the ServiceAccount mounts its token")
	}
	svc := &corev1.Service{}
	eventually(t, "Service", func() error { return s.get(ns, "demo-api", svc) })
	if p := svc.Spec.Ports[0]; p.Port != 80 || p.TargetPort.IntValue() != 8000 {
		t.Errorf("Service port %+v, want 80 -> 8000", p)
	}
	pdb := &policyv1.PodDisruptionBudget{}
	eventually(t, "PodDisruptionBudget", func() error { return s.get(ns, "demo-api", pdb) })
	if pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
	np := &networkingv1.NetworkPolicy{}
	eventually(t, "NetworkPolicy", func() error { return s.get(ns, "demo-api", np) })
	if got := egressPorts(np); got != "UDP/53 TCP/53 TCP/5432 TCP/6379" {
		t.Errorf("egress %s, want DNS, Postgres and Redis only", got)
	}

	pg, redis, key := &corev1.Secret{}, &corev1.Secret{}, &corev1.Secret{}
	eventually(t, "Secrets", func() error {
		return errors.Join(s.get(ns, "demo-postgres", pg), s.get(ns, "demo-redis", redis), s.get(ns, "demo-secret-key", key))
	})
	if pg.Type != corev1.SecretTypeBasicAuth || len(pg.Data["password"]) < 32 ||
		!strings.HasPrefix(string(pg.Data["DATABASE_URL"]), "postgresql://packnow:") {
		t.Errorf("Postgres Secret type %s keys %v, want basic-auth with a long password and DATABASE_URL", pg.Type, keys(pg))
	}
	if len(redis.Data["password"]) < 32 || !strings.HasPrefix(string(redis.Data["REDIS_URL"]), "redis://:") {
		t.Errorf("Redis Secret keys %v, want a long password and REDIS_URL", keys(redis))
	}
	if len(key.Data["SECRET_KEY"]) < 64 || key.Annotations["packnow.io/rotated-at"] == "" {
		t.Errorf("SECRET_KEY Secret keys %v annotations %v", keys(key), key.Annotations)
	}

	s.markRolledOut(t, ns, "demo-api")
	ready := s.waitCondition(t, ns, "demo", packnowv1alpha1.ConditionReady, metav1.ConditionTrue)
	st := ready.Status
	if st.ReplicasReady != "2/2" || st.Replicas != 2 || st.ReadyReplicas != 2 {
		t.Errorf("replicas %d ready %d (%q), want 2/2", st.Replicas, st.ReadyReplicas, st.ReplicasReady)
	}
	if st.URL != "http://demo-api."+ns+".svc" {
		t.Errorf("url %q", st.URL)
	}
	if st.Secrets != (packnowv1alpha1.SecretsStatus{SecretKey: "demo-secret-key", Postgres: "demo-postgres", Redis: "demo-redis"}) {
		t.Errorf("secrets %+v", st.Secrets)
	}
	if st.SecretKey.CurrentKeyID != keyring.KeyID(string(key.Data["SECRET_KEY"])) || st.SecretKey.Phase != packnowv1alpha1.PhaseStable {
		t.Errorf("secretKey status %+v, want the kid of the Secret's key and phase Stable", st.SecretKey)
	}
	if st.SecretKey.LastRotationTime == nil || st.SecretKey.NextRotationTime == nil ||
		st.SecretKey.NextRotationTime.Sub(st.SecretKey.LastRotationTime.Time) != ready.Spec.SecretKey.RotationPeriod.Duration {
		t.Errorf("rotation times %+v, want next = last + rotationPeriod", st.SecretKey)
	}
	for _, condType := range []string{packnowv1alpha1.ConditionSecretsReady, packnowv1alpha1.ConditionProgressing, packnowv1alpha1.ConditionDegraded} {
		c := conditionOf(ready, condType)
		want := metav1.ConditionTrue
		if condType != packnowv1alpha1.ConditionSecretsReady {
			want = metav1.ConditionFalse
		}
		if c == nil || c.Status != want || c.ObservedGeneration != ready.Generation {
			t.Errorf("%s = %+v, want %s at generation %d", condType, c, want, ready.Generation)
		}
	}
	// The creation is one event naming every child, not one event per child.
	note := s.waitEvent(t, ns, app.Name, corev1.EventTypeNormal, "Created")
	for _, child := range []string{"Secret demo-secret-key", "Secret demo-postgres", "Secret demo-redis",
		"ServiceAccount demo-api", "Service demo-api", "NetworkPolicy demo-api", "PodDisruptionBudget demo-api",
		"Deployment demo-api"} {
		if !strings.Contains(note, child) {
			t.Errorf("the Created event %q does not name %s", note, child)
		}
	}
	if notes := s.eventNotes(t, ns, app.Name, "Created"); len(notes) != 1 {
		t.Errorf("%d Created events about the app, want 1: %q", len(notes), notes)
	}
}

func TestSteadyStateMakesNoWrites(t *testing.T) {
	s := env(t)
	ns := s.namespace(t, "steady")
	s.create(t, newApp(ns, "calm"))
	s.markRolledOut(t, ns, "calm-api")
	app := s.waitCondition(t, ns, "calm", packnowv1alpha1.ConditionReady, metav1.ConditionTrue)

	reconciles := s.reconciles(client.ObjectKeyFromObject(app))
	// The status write that made the app Ready triggers one more reconcile; wait for the queue to drain.
	settle := func() {
		t.Helper()
		eventually(t, "reconciles to stop", func() error {
			before := reconciles.Load()
			for range 5 {
				if reconciles.Load() != before {
					return fmt.Errorf("still reconciling")
				}
				time.Sleep(pollInterval)
			}
			return nil
		})
	}
	settle()
	writes := s.writesIn(ns)

	// Each touch of the app or of its Service enqueues the app; none changes what the operator wants (the
	// operator owns no annotation of either).
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "calm-api"}}
	const n = 6
	for i := range n {
		before := reconciles.Load()
		touched := client.Object(app)
		if i%2 == 1 {
			touched = svc
		}
		// A merge patch, not a read-modify-write: re-sending a spec read back can change it ("15m" comes back
		// as "15m0s"), which is a real change the status must follow.
		touch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"annotations":{"test/touch":"%d"}}}`, i))
		if err := s.k8s.Patch(context.Background(), touched, touch); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a reconcile after the touch", func() error {
			if reconciles.Load() == before {
				return fmt.Errorf("no reconcile yet")
			}
			return nil
		})
	}
	settle()
	if got := s.writesIn(ns) - writes; got != 0 {
		t.Errorf("%d reconciles of a converged app made %d writes, want 0", n, got)
	}
}

func TestDriftIsRepaired(t *testing.T) {
	s := env(t)
	ns := s.namespace(t, "drift")
	s.create(t, newApp(ns, "shop"))
	s.markRolledOut(t, ns, "shop-api")
	s.waitCondition(t, ns, "shop", packnowv1alpha1.ConditionReady, metav1.ConditionTrue)

	t.Run("deleted Service", func(t *testing.T) {
		svc := &corev1.Service{}
		if err := s.get(ns, "shop-api", svc); err != nil {
			t.Fatal(err)
		}
		if err := s.k8s.Delete(context.Background(), svc); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the Service is re-created", func() error {
			again := &corev1.Service{}
			if err := s.get(ns, "shop-api", again); err != nil {
				return err
			}
			if again.UID == svc.UID {
				return fmt.Errorf("still the deleted Service")
			}
			return nil
		})
		s.waitEvent(t, ns, "shop", corev1.EventTypeNormal, "Repaired")
	})

	t.Run("Service port moved", func(t *testing.T) {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-api"}}
		// Another port under the operator's name: server-side apply alone would keep it beside port 80.
		s.update(t, svc, func() { svc.Spec.Ports[0].Port = 81 })
		eventually(t, "port 80 is back, alone", func() error {
			if err := s.get(ns, "shop-api", svc); err != nil {
				return err
			}
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].Name != "http" {
				return fmt.Errorf("ports %+v", svc.Spec.Ports)
			}
			return nil
		})
		s.waitCondition(t, ns, "shop", packnowv1alpha1.ConditionDegraded, metav1.ConditionFalse)
	})

	t.Run("weakened securityContext", func(t *testing.T) {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-api"}}
		s.update(t, d, func() {
			sc := d.Spec.Template.Spec.Containers[0].SecurityContext
			sc.AllowPrivilegeEscalation = ptr.To(true)
			sc.ReadOnlyRootFilesystem = ptr.To(false)
			sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN"}}
			d.Spec.Template.Spec.HostNetwork = true
			d.Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil
		})
		eventually(t, "the securityContext is restored", func() error {
			if err := s.get(ns, "shop-api", d); err != nil {
				return err
			}
			sc := d.Spec.Template.Spec.Containers[0].SecurityContext
			if ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
				sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
				len(sc.Capabilities.Add) != 0 {
				return fmt.Errorf("container securityContext %+v", sc)
			}
			pod := d.Spec.Template.Spec
			if pod.HostNetwork || !ptr.Deref(pod.SecurityContext.RunAsNonRoot, false) {
				return fmt.Errorf("hostNetwork %v, pod securityContext %+v", pod.HostNetwork, pod.SecurityContext)
			}
			return nil
		})
	})

	t.Run("deleted Redis Secret", func(t *testing.T) {
		old := &corev1.Secret{}
		if err := s.get(ns, "shop-redis", old); err != nil {
			t.Fatal(err)
		}
		if err := s.k8s.Delete(context.Background(), old); err != nil {
			t.Fatal(err)
		}
		fresh := &corev1.Secret{}
		eventually(t, "the Redis Secret is generated again", func() error {
			if err := s.get(ns, "shop-redis", fresh); err != nil {
				return err
			}
			if fresh.UID == old.UID {
				return fmt.Errorf("still the deleted Secret")
			}
			return nil
		})
		if string(fresh.Data["password"]) == string(old.Data["password"]) || len(fresh.Data["password"]) < 32 {
			t.Error("the regenerated Redis password is the old one or short")
		}
		note := s.waitEvent(t, ns, "shop", corev1.EventTypeWarning, "PasswordRegenerated")
		if !strings.Contains(note, "shop-redis") {
			t.Errorf("the warning %q does not name the Secret", note)
		}
	})

	t.Run("deleted SECRET_KEY Secret", func(t *testing.T) {
		old := &corev1.Secret{}
		d := &appsv1.Deployment{}
		if err := errors.Join(s.get(ns, "shop-secret-key", old), s.get(ns, "shop-api", d)); err != nil {
			t.Fatal(err)
		}
		oldHash := d.Spec.Template.Annotations["packnow.io/secret-key-hash"]
		if err := s.k8s.Delete(context.Background(), old); err != nil {
			t.Fatal(err)
		}
		fresh := &corev1.Secret{}
		eventually(t, "a new key", func() error {
			if err := s.get(ns, "shop-secret-key", fresh); err != nil {
				return err
			}
			if fresh.UID == old.UID {
				return fmt.Errorf("still the deleted Secret")
			}
			return nil
		})
		if string(fresh.Data["SECRET_KEY"]) == string(old.Data["SECRET_KEY"]) {
			t.Error("the regenerated SECRET_KEY is the old one")
		}
		s.waitEvent(t, ns, "shop", corev1.EventTypeWarning, "SecretKeyRegenerated")
		eventually(t, "status and pods follow the new key", func() error {
			app := &packnowv1alpha1.PackNowApp{}
			if err := errors.Join(s.get(ns, "shop", app), s.get(ns, "shop-api", d)); err != nil {
				return err
			}
			if app.Status.SecretKey.CurrentKeyID != keyring.KeyID(string(fresh.Data["SECRET_KEY"])) {
				return fmt.Errorf("status reports key %s", app.Status.SecretKey.CurrentKeyID)
			}
			if d.Spec.Template.Annotations["packnow.io/secret-key-hash"] == oldHash {
				return fmt.Errorf("the pod template still carries the old key's hash")
			}
			return nil
		})
	})

	t.Run("Postgres host change keeps the password", func(t *testing.T) {
		before := &corev1.Secret{}
		if err := s.get(ns, "shop-postgres", before); err != nil {
			t.Fatal(err)
		}
		app := &packnowv1alpha1.PackNowApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}}
		s.update(t, app, func() { app.Spec.Database.Host = "pg-replacement.drift.svc"; app.Spec.Database.Port = 6432 })
		after := &corev1.Secret{}
		eventually(t, "DATABASE_URL follows the host", func() error {
			if err := s.get(ns, "shop-postgres", after); err != nil {
				return err
			}
			if !strings.Contains(string(after.Data["DATABASE_URL"]), "@pg-replacement.drift.svc:6432/") {
				return fmt.Errorf("DATABASE_URL not rebuilt yet")
			}
			return nil
		})
		if string(after.Data["password"]) != string(before.Data["password"]) ||
			!strings.Contains(string(after.Data["DATABASE_URL"]), ":"+string(before.Data["password"])+"@") {
			t.Error("the host change replaced the generated Postgres password")
		}
		np := &networkingv1.NetworkPolicy{}
		eventually(t, "egress follows the port", func() error {
			if err := s.get(ns, "shop-api", np); err != nil {
				return err
			}
			if got := egressPorts(np); got != "UDP/53 TCP/53 TCP/6432 TCP/6379" {
				return fmt.Errorf("egress %s", got)
			}
			return nil
		})
	})

	t.Run("scaling to one replica drops the budget", func(t *testing.T) {
		app := &packnowv1alpha1.PackNowApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}}
		s.update(t, app, func() { app.Spec.Replicas = ptr.To[int32](1) })
		eventually(t, "the PodDisruptionBudget goes", func() error {
			if err := s.get(ns, "shop-api", &policyv1.PodDisruptionBudget{}); err == nil {
				return fmt.Errorf("still there")
			} else if client.IgnoreNotFound(err) != nil {
				return err
			}
			return nil
		})
		s.update(t, app, func() { app.Spec.Replicas = ptr.To[int32](3) })
		eventually(t, "the PodDisruptionBudget is back", func() error {
			return s.get(ns, "shop-api", &policyv1.PodDisruptionBudget{})
		})
	})
}

// With many apps among many unrelated Secrets, the operator's memory must not grow with the cluster.
func TestCacheHoldsOnlyGeneratedObjects(t *testing.T) {
	s := env(t)
	ns := s.namespace(t, "narrow")
	unrelated := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "someone-elses"}}
	if err := s.k8s.Create(context.Background(), unrelated); err != nil {
		t.Fatal(err)
	}
	s.create(t, newApp(ns, "lean"))
	eventually(t, "the generated Secret in the cache", func() error {
		return s.cache.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "lean-redis"}, &corev1.Secret{})
	})
	err := s.cache.Get(context.Background(), client.ObjectKeyFromObject(unrelated), &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the cache holds an unrelated Secret (get: %v)", err)
	}
}

func TestExistingSecretsAreOnlyRead(t *testing.T) {
	s := env(t)
	ns := s.namespace(t, "byo")
	app := newApp(ns, "byo")
	app.Spec.Database = packnowv1alpha1.DatabaseSpec{ExistingSecret: "team-db"}
	s.create(t, app)

	notReady := s.waitCondition(t, ns, "byo", packnowv1alpha1.ConditionSecretsReady, metav1.ConditionFalse)
	if c := conditionOf(notReady, packnowv1alpha1.ConditionSecretsReady); !strings.Contains(c.Message, "team-db") || !strings.Contains(c.Message, "not found") {
		t.Errorf("SecretsReady message %q does not say that team-db is missing", c.Message)
	}
	if c := conditionOf(notReady, packnowv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Ready %+v, want False", c)
	}

	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "team-db"},
		Data:       map[string][]byte{"password": []byte("theirs")},
	}
	if err := s.k8s.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the condition names the missing key", func() error {
		c, _, err := s.condition(ns, "byo", packnowv1alpha1.ConditionSecretsReady)
		if err != nil {
			return err
		}
		if !strings.Contains(c.Message, "team-db") || !strings.Contains(c.Message, "DATABASE_URL") {
			return fmt.Errorf("message %q", c.Message)
		}
		return nil
	})
	if err := s.get(ns, "byo-api", &appsv1.Deployment{}); client.IgnoreNotFound(err) != nil || err == nil {
		t.Errorf("a Deployment exists while its Secret is incomplete (get: %v)", err)
	}

	const url = "postgresql://team:theirs@db.team.svc:5433/packnow?sslmode=verify-full"
	s.update(t, secret, func() { secret.Data["DATABASE_URL"] = []byte(url) })
	written := secret.ResourceVersion
	s.waitCondition(t, ns, "byo", packnowv1alpha1.ConditionSecretsReady, metav1.ConditionTrue)

	d := &appsv1.Deployment{}
	eventually(t, "the Deployment", func() error { return s.get(ns, "byo-api", d) })
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "DATABASE_URL" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != "team-db" || e.ValueFrom.SecretKeyRef.Key != "DATABASE_URL") {
			t.Errorf("DATABASE_URL from %+v, want team-db's DATABASE_URL", e.ValueFrom)
		}
	}
	np := &networkingv1.NetworkPolicy{}
	eventually(t, "egress to the Secret's port", func() error {
		if err := s.get(ns, "byo-api", np); err != nil {
			return err
		}
		if got := egressPorts(np); got != "UDP/53 TCP/53 TCP/5433 TCP/6379" {
			return fmt.Errorf("egress %s", got)
		}
		return nil
	})
	s.markRolledOut(t, ns, "byo-api")
	done := s.waitCondition(t, ns, "byo", packnowv1alpha1.ConditionReady, metav1.ConditionTrue)
	if done.Status.Secrets.Postgres != "team-db" {
		t.Errorf("status names %q as the Postgres Secret", done.Status.Secrets.Postgres)
	}

	if err := s.get(ns, "team-db", secret); err != nil {
		t.Fatal(err)
	}
	if secret.ResourceVersion != written || len(secret.OwnerReferences) != 0 || len(secret.Labels) != 0 {
		t.Errorf("the user's Secret was modified: resourceVersion %s (wrote %s), owners %v, labels %v",
			secret.ResourceVersion, written, secret.OwnerReferences, secret.Labels)
	}
	for _, f := range secret.ManagedFields {
		if f.Manager == "packnow-operator" {
			t.Errorf("the operator manages fields of the user's Secret: %+v", f)
		}
	}
	if err := s.get(ns, "byo-postgres", &corev1.Secret{}); client.IgnoreNotFound(err) != nil || err == nil {
		t.Errorf("a Postgres Secret was generated although existingSecret is set (get: %v)", err)
	}
}

// envtest runs no garbage collector, so deleting an app cannot show its children going. What makes them go in
// a cluster is their owner reference (controller, blockOwnerDeletion) to the app: the test asserts those, that
// a retained credential Secret has none (so the collector leaves it), that retainOnDelete=false adds one, and
// that nothing (no finalizer) holds up the app's deletion.
func TestDeletionKeepsOnlyRetainedSecrets(t *testing.T) {
	s := env(t)
	ns := s.namespace(t, "deletion")
	app := newApp(ns, "gone")
	app.Spec.Database.RetainOnDelete = ptr.To(false)
	s.create(t, app)
	s.waitCondition(t, ns, "gone", packnowv1alpha1.ConditionSecretsReady, metav1.ConditionTrue)

	owned := map[string]client.Object{
		"Deployment":          &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "gone-api"}},
		"Service":             &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "gone-api"}},
		"ServiceAccount":      &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "gone-api"}},
		"PodDisruptionBudget": &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "gone-api"}},
		"NetworkPolicy":       &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "gone-api"}},
		"SECRET_KEY Secret":   &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "gone-secret-key"}},
		"Postgres Secret with retainOnDelete false": &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "gone-postgres"}},
	}
	for what, obj := range owned {
		eventually(t, what, func() error { return s.get(ns, obj.GetName(), obj) })
		refs := obj.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != app.UID || !ptr.Deref(refs[0].Controller, false) || !ptr.Deref(refs[0].BlockOwnerDeletion, false) {
			t.Errorf("%s owner references %+v, want the app as blocking controller", what, refs)
		}
	}
	redis := &corev1.Secret{}
	eventually(t, "Redis Secret", func() error { return s.get(ns, "gone-redis", redis) })
	if len(redis.OwnerReferences) != 0 {
		t.Errorf("the retained Redis Secret has owner references %+v", redis.OwnerReferences)
	}

	s.update(t, app, func() { app.Spec.Redis.RetainOnDelete = ptr.To(false) })
	eventually(t, "retainOnDelete=false hands the Redis Secret to the app", func() error {
		if err := s.get(ns, "gone-redis", redis); err != nil {
			return err
		}
		if len(redis.OwnerReferences) != 1 || redis.OwnerReferences[0].UID != app.UID {
			return fmt.Errorf("owner references %+v", redis.OwnerReferences)
		}
		return nil
	})
	s.update(t, app, func() { app.Spec.Redis.RetainOnDelete = ptr.To(true) })
	eventually(t, "retainOnDelete=true takes it back", func() error {
		if err := s.get(ns, "gone-redis", redis); err != nil {
			return err
		}
		if len(redis.OwnerReferences) != 0 {
			return fmt.Errorf("owner references %+v", redis.OwnerReferences)
		}
		return nil
	})

	if err := s.k8s.Delete(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the app is deleted", func() error {
		if err := s.get(ns, "gone", &packnowv1alpha1.PackNowApp{}); client.IgnoreNotFound(err) != nil || err == nil {
			return fmt.Errorf("still there (get: %v)", err)
		}
		return nil
	})
	if err := s.get(ns, "gone-redis", redis); err != nil {
		t.Errorf("the retained Redis Secret: %v", err)
	}
}

func TestFiftyAppsConvergeConcurrently(t *testing.T) {
	s := env(t)
	const namespaces, perNamespace = 5, 10
	var apps []*packnowv1alpha1.PackNowApp
	for i := range namespaces {
		ns := s.namespace(t, fmt.Sprintf("fleet-%d", i))
		for j := range perNamespace {
			apps = append(apps, newApp(ns, fmt.Sprintf("app-%d", j)))
		}
	}
	errs := make(chan error, len(apps))
	for _, app := range apps {
		go func() { errs <- s.k8s.Create(context.Background(), app) }()
	}
	for range apps {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, app := range apps {
		s.markRolledOut(t, app.Namespace, app.Name+"-api")
	}
	for _, app := range apps {
		ready := s.waitCondition(t, app.Namespace, app.Name, packnowv1alpha1.ConditionReady, metav1.ConditionTrue)
		if c := conditionOf(ready, packnowv1alpha1.ConditionDegraded); c == nil || c.Status != metav1.ConditionFalse {
			t.Errorf("%s/%s Degraded %+v", app.Namespace, app.Name, c)
		}
		key := &corev1.Secret{}
		if err := s.get(app.Namespace, app.Name+"-secret-key", key); err != nil {
			t.Fatal(err)
		}
		if ready.Status.SecretKey.CurrentKeyID != keyring.KeyID(string(key.Data["SECRET_KEY"])) {
			t.Errorf("%s/%s reports key %s, the Secret holds another", app.Namespace, app.Name, ready.Status.SecretKey.CurrentKeyID)
		}
	}
}

func conditionOf(app *packnowv1alpha1.PackNowApp, condType string) *metav1.Condition {
	for i, c := range app.Status.Conditions {
		if c.Type == condType {
			return &app.Status.Conditions[i]
		}
	}
	return nil
}

func egressPorts(np *networkingv1.NetworkPolicy) string {
	var ports []string
	for _, rule := range np.Spec.Egress {
		for _, p := range rule.Ports {
			ports = append(ports, fmt.Sprintf("%s/%s", ptr.Deref(p.Protocol, corev1.ProtocolTCP), p.Port.String()))
		}
	}
	return strings.Join(ports, " ")
}

func keys(s *corev1.Secret) []string {
	var out []string
	for k := range s.Data {
		out = append(out, k)
	}
	return out
}
