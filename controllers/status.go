package controllers

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// Condition reasons.
const (
	ReasonSecretsResolved   = "SecretsResolved"
	ReasonSecretMissing     = "SecretMissing"
	ReasonApplyFailed       = "ApplyFailed"
	ReasonRolloutComplete   = "RolloutComplete"
	ReasonRollingOut        = "RollingOut"
	ReasonWaitingForSecrets = "WaitingForSecrets"
	ReasonDeploymentFailing = "DeploymentFailing"
	ReasonAsExpected        = "AsExpected"
	ReasonAvailable         = "Available"
)

// observation is what one reconcile found and did, the input of the status.
type observation struct {
	// secretsProblem says which Secret or key is missing; empty when every Secret the app needs is there.
	secretsProblem string
	// applyError is the last failed write; empty when every write succeeded.
	applyError string
	// secretKey is the signing key's state; nil when it could not be read or generated.
	secretKey *secretKeyState
	// keyRotation is where the key's rotation stands, valid when secretKey is set.
	keyRotation keyRotation
	// postgresSecret and redisSecret are the Secrets holding the connection URLs; empty unless this reconcile
	// wrote or read them.
	postgresSecret string
	redisSecret    string
	// deployment is the API Deployment as last seen; nil when it does not exist yet.
	deployment *appsv1.Deployment
	// deploymentApplied is true when the Deployment was just written (by this reconcile, or by one the cache
	// does not show yet), so its rollout has yet to start.
	deploymentApplied bool
	// edge is the edge's state; nil when the app has no edge or the reconcile stopped before it.
	edge *edgeObservation
}

// desiredStatus is the status that describes app given what the reconcile observed. Conditions keep their
// transition times when their status does not change.
func desiredStatus(app *packnowv1alpha1.PackNowApp, obs observation) packnowv1alpha1.PackNowAppStatus {
	status := *app.Status.DeepCopy()
	status.ObservedGeneration = app.Generation
	status.Replicas = desiredReplicas(app)
	status.ReadyReplicas = 0
	if obs.deployment != nil {
		status.ReadyReplicas = obs.deployment.Status.ReadyReplicas
	}
	status.ReplicasReady = fmt.Sprintf("%d/%d", status.ReadyReplicas, status.Replicas)
	// A Secret is named once a reconcile has written or read it, and stays named when a later reconcile stops
	// short of it: the name is what tells a deleted Secret, whose regeneration warns, from one never created.
	if obs.postgresSecret != "" {
		status.Secrets.Postgres = obs.postgresSecret
	}
	if obs.redisSecret != "" {
		status.Secrets.Redis = obs.redisSecret
	}
	if obs.secretKey != nil {
		status.Secrets.SecretKey = secretKeySecretName(app)
		status.SecretKey = secretKeyStatus(app, *obs.secretKey)
		meta.SetStatusCondition(&status.Conditions, keyRotationCondition(app, *obs.secretKey, obs.keyRotation))
	}
	status.URL = serviceURL(app)

	set := func(condType string, s metav1.ConditionStatus, reason, message string) {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: condType, Status: s, Reason: reason, Message: message, ObservedGeneration: app.Generation,
		})
	}

	edgeStatus(app, obs.edge, &status)

	if obs.secretsProblem == "" {
		set(packnowv1alpha1.ConditionSecretsReady, metav1.ConditionTrue, ReasonSecretsResolved,
			"the SECRET_KEY, Postgres and Redis Secrets are in place")
	} else {
		set(packnowv1alpha1.ConditionSecretsReady, metav1.ConditionFalse, ReasonSecretMissing, obs.secretsProblem)
	}

	complete, progress := rollout(obs.deployment, obs.deploymentApplied, desiredReplicas(app))
	switch {
	case obs.deployment == nil && obs.secretsProblem != "":
		set(packnowv1alpha1.ConditionProgressing, metav1.ConditionFalse, ReasonWaitingForSecrets,
			"the Deployment is created once its Secrets are in place")
	case complete:
		set(packnowv1alpha1.ConditionProgressing, metav1.ConditionFalse, ReasonRolloutComplete, progress)
	default:
		set(packnowv1alpha1.ConditionProgressing, metav1.ConditionTrue, ReasonRollingOut, progress)
	}

	failing := deploymentFailure(obs.deployment)
	switch {
	case obs.applyError != "":
		set(packnowv1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonApplyFailed, obs.applyError)
	case obs.secretsProblem != "":
		set(packnowv1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonSecretMissing, obs.secretsProblem)
	case failing != "":
		set(packnowv1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonDeploymentFailing, failing)
	default:
		set(packnowv1alpha1.ConditionDegraded, metav1.ConditionFalse, ReasonAsExpected, "nothing needs attention")
	}

	switch {
	case obs.secretsProblem != "":
		set(packnowv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonSecretMissing, obs.secretsProblem)
	case obs.applyError != "":
		set(packnowv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonApplyFailed, obs.applyError)
	case !complete:
		set(packnowv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonRollingOut, progress)
	default:
		set(packnowv1alpha1.ConditionReady, metav1.ConditionTrue, ReasonAvailable, progress)
	}
	return status
}

// rollout reports whether the Deployment's rollout of the desired replicas is complete (the controller has seen
// the latest spec and every desired pod is updated and available, with no old pod left) and describes it.
func rollout(d *appsv1.Deployment, justApplied bool, desired int32) (complete bool, progress string) {
	switch {
	// A Deployment created by this reconcile is not in the cache yet; saying so here rather than "does not
	// exist" spares the status write the next reconcile would otherwise make once the cache shows it.
	case justApplied || d != nil && d.Status.ObservedGeneration < d.Generation:
		return false, "the Deployment controller has yet to act on the latest spec"
	case d == nil:
		return false, "the Deployment does not exist yet"
	}
	s := d.Status
	progress = fmt.Sprintf("%d of %d pods updated, %d available", s.UpdatedReplicas, desired, s.AvailableReplicas)
	specReplicas := ptr.Deref(d.Spec.Replicas, 1)
	complete = specReplicas == desired && s.UpdatedReplicas == desired && s.AvailableReplicas == desired &&
		s.Replicas == desired
	return complete, progress
}

// deploymentFailure is the Deployment controller's own report that the rollout is stuck; empty when it is not.
func deploymentFailure(d *appsv1.Deployment) string {
	if d == nil {
		return ""
	}
	for _, c := range d.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue,
			c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse:
			return fmt.Sprintf("Deployment %s: %s: %s", d.Name, c.Reason, c.Message)
		}
	}
	return ""
}
