package controllers

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// deployment is the API Deployment at generation 4 as the Deployment controller reports it.
func deployment(replicas, observed, updated, available, total int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-api", Generation: 4},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(replicas)},
		Status: appsv1.DeploymentStatus{
			ObservedGeneration: int64(observed), UpdatedReplicas: updated, AvailableReplicas: available,
			ReadyReplicas: available, Replicas: total,
		},
	}
}

func TestStatusConditions(t *testing.T) {
	const missing = "Secret team-db (Postgres existingSecret) has no key DATABASE_URL"
	stuck := deployment(2, 4, 1, 1, 3)
	stuck.Status.Conditions = []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet demo-api-7c9 has timed out progressing",
	}}
	for _, tc := range []struct {
		name                                  string
		obs                                   observation
		ready, progressing, degraded, secrets metav1.ConditionStatus
		readyReason, messageHas               string
	}{
		{"rollout complete", observation{deployment: deployment(2, 4, 2, 2, 2)},
			"True", "False", "False", "True", ReasonAvailable, "2 of 2 pods updated, 2 available"},
		{"pods still rolling", observation{deployment: deployment(2, 4, 1, 2, 3)},
			"False", "True", "False", "True", ReasonRollingOut, "1 of 2 pods updated"},
		{"old pods left", observation{deployment: deployment(2, 4, 2, 2, 3)},
			"False", "True", "False", "True", ReasonRollingOut, ""},
		{"the Deployment controller has not seen the spec", observation{deployment: deployment(2, 3, 2, 2, 2)},
			"False", "True", "False", "True", ReasonRollingOut, "yet to act"},
		{"the Deployment was just changed", observation{deployment: deployment(2, 4, 2, 2, 2), deploymentApplied: true},
			"False", "True", "False", "True", ReasonRollingOut, ""},
		{"the Deployment still has the old replica count", observation{deployment: deployment(3, 4, 3, 3, 3)},
			"False", "True", "False", "True", ReasonRollingOut, ""},
		{"no Deployment yet", observation{},
			"False", "True", "False", "True", ReasonRollingOut, "does not exist"},
		{"a Secret is missing", observation{secretsProblem: missing},
			"False", "False", "True", "False", ReasonSecretMissing, missing},
		{"a Secret went missing under a running Deployment", observation{secretsProblem: missing, deployment: deployment(2, 4, 2, 2, 2)},
			"False", "False", "True", "False", ReasonSecretMissing, missing},
		{"a write failed", observation{applyError: "apply Service demo-api: forbidden", deployment: deployment(2, 4, 2, 2, 2)},
			"False", "False", "True", "True", ReasonApplyFailed, "forbidden"},
		{"the rollout is stuck", observation{deployment: stuck},
			"False", "True", "True", "True", ReasonRollingOut, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := testApp()
			app.Generation = 7
			status := desiredStatus(app, tc.obs)
			for condType, want := range map[string]metav1.ConditionStatus{
				packnowv1alpha1.ConditionReady:        tc.ready,
				packnowv1alpha1.ConditionProgressing:  tc.progressing,
				packnowv1alpha1.ConditionDegraded:     tc.degraded,
				packnowv1alpha1.ConditionSecretsReady: tc.secrets,
			} {
				c := meta.FindStatusCondition(status.Conditions, condType)
				if c == nil || c.Status != want || c.ObservedGeneration != 7 {
					t.Errorf("%s = %+v, want %s at generation 7", condType, c, want)
				}
			}
			ready := meta.FindStatusCondition(status.Conditions, packnowv1alpha1.ConditionReady)
			if ready.Reason != tc.readyReason || !strings.Contains(ready.Message, tc.messageHas) {
				t.Errorf("Ready %s: %q, want %s mentioning %q", ready.Reason, ready.Message, tc.readyReason, tc.messageHas)
			}
			if tc.name == "the rollout is stuck" {
				degraded := meta.FindStatusCondition(status.Conditions, packnowv1alpha1.ConditionDegraded)
				if !strings.Contains(degraded.Message, "ProgressDeadlineExceeded") {
					t.Errorf("Degraded message %q does not relay the Deployment's reason", degraded.Message)
				}
			}
		})
	}
}

func TestStatusFields(t *testing.T) {
	app := testApp()
	app.Generation = 3
	state := secretKeyState{rotatedAt: generatedAt}
	state.keys.Current = strings.Repeat("k", 64)
	status := desiredStatus(app, observation{
		secretKey: &state, postgresSecret: "team-db", redisSecret: "demo-redis",
		deployment: deployment(2, 4, 2, 1, 2),
	})
	if status.ObservedGeneration != 3 || status.Replicas != 2 || status.ReadyReplicas != 1 || status.ReplicasReady != "1/2" {
		t.Errorf("generation %d replicas %d ready %d %q, want 3, 2, 1, 1/2", status.ObservedGeneration, status.Replicas, status.ReadyReplicas, status.ReplicasReady)
	}
	if status.Secrets != (packnowv1alpha1.SecretsStatus{SecretKey: "demo-secret-key", Postgres: "team-db", Redis: "demo-redis"}) {
		t.Errorf("secrets %+v", status.Secrets)
	}
	if status.URL != "http://demo-api.shop.svc" || status.SecretKey.Phase != packnowv1alpha1.PhaseStable {
		t.Errorf("url %q secretKey %+v", status.URL, status.SecretKey)
	}
}

// A reconcile that finds nothing new must produce the very status it read, or every reconcile would write.
func TestStatusIsStableWhenNothingChanges(t *testing.T) {
	app := testApp()
	state := secretKeyState{rotatedAt: generatedAt}
	state.keys.Current = strings.Repeat("k", 64)
	obs := observation{secretKey: &state, postgresSecret: "demo-postgres", redisSecret: "demo-redis", deployment: deployment(2, 4, 2, 2, 2)}
	first := desiredStatus(app, obs)
	for i := range first.Conditions {
		first.Conditions[i].LastTransitionTime = metav1.NewTime(generatedAt.Add(-time.Hour))
	}
	app.Status = first
	if again := desiredStatus(app, obs); !equality.Semantic.DeepEqual(first, again) {
		t.Errorf("status changed without cause:\n%+v\n%+v", first, again)
	}
}

// The status names only Secrets a reconcile got to: naming one whose write failed would make the next reconcile
// warn that it was deleted and its credential regenerated.
func TestStatusNamesOnlySecretsReached(t *testing.T) {
	app := testApp()
	if got := desiredStatus(app, observation{applyError: "apply Secret demo-secret-key: connection refused"}).Secrets; got != (packnowv1alpha1.SecretsStatus{}) {
		t.Errorf("a first reconcile that wrote no Secret names %+v", got)
	}
	state := secretKeyState{rotatedAt: generatedAt}
	state.keys.Current = strings.Repeat("k", 64)
	if got := desiredStatus(app, observation{secretKey: &state, applyError: "apply Secret demo-postgres: connection refused"}).Secrets; got != (packnowv1alpha1.SecretsStatus{SecretKey: "demo-secret-key"}) {
		t.Errorf("a reconcile that stopped at the Postgres Secret names %+v, want the SECRET_KEY Secret only", got)
	}
	named := packnowv1alpha1.SecretsStatus{SecretKey: "demo-secret-key", Postgres: "demo-postgres", Redis: "demo-redis"}
	app.Status.Secrets = named
	if got := desiredStatus(app, observation{applyError: "read Secret demo-secret-key: connection refused"}).Secrets; got != named {
		t.Errorf("a reconcile that stopped short forgot Secrets named before: %+v", got)
	}
}
