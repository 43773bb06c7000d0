// Package controllers reconciles PackNowApps. Every object the operator owns is built by a pure function of the
// PackNowApp (one file per kind); the reconciler only applies those objects with server-side apply and reports
// status.
package controllers

import (
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// FieldManager is the one server-side apply field manager of every write the operator makes.
const FieldManager = "packnow-operator"

// Label keys and values shared by every generated object (CONVENTIONS, "Names").
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"

	appName   = "packnow-api"
	component = "api"
	// ManagedByValue marks objects the operator generated; the manager's cache holds only objects carrying it.
	ManagedByValue = "packnow-operator"
)

// Annotations the operator owns.
const (
	// AnnotationSecretKeyHash on the pod template changes whenever a SECRET_KEY* value changes, rolling the pods.
	AnnotationSecretKeyHash = "packnow.io/secret-key-hash"
	// AnnotationCredentialsHash on the pod template changes whenever DATABASE_URL or REDIS_URL changes.
	AnnotationCredentialsHash = "packnow.io/credentials-hash"
	// AnnotationRotatedAt on the SECRET_KEY Secret is when the current key started signing (RFC 3339).
	AnnotationRotatedAt = "packnow.io/rotated-at"
	// AnnotationStagedAt on the SECRET_KEY Secret is when SECRET_KEY_NEXT was staged (RFC 3339).
	AnnotationStagedAt = "packnow.io/staged-at"
	// AnnotationRotateSecretKey on a PackNowApp requests a rotation whenever its value changes.
	AnnotationRotateSecretKey = "packnow.io/rotate-secret-key"
	// AnnotationRotateSecretKeyHandled on the SECRET_KEY Secret is the request value last answered. It is
	// written with the stage step, so a request is answered exactly once even across a crash.
	AnnotationRotateSecretKeyHandled = "packnow.io/rotate-secret-key-handled"
	// AnnotationRetirePreviousKey on a PackNowApp retires SECRET_KEY_PREVIOUS at once (once the promote rollout
	// is complete) whenever its value changes: for a previous key that is compromised.
	AnnotationRetirePreviousKey = "packnow.io/retire-previous-key"
	// AnnotationRetirePreviousKeyHandled on the SECRET_KEY Secret is the retire request value last answered,
	// written with the retire step, or on its own when there was no previous key to retire.
	AnnotationRetirePreviousKeyHandled = "packnow.io/retire-previous-key-handled"
)

// apiName is the name of the Deployment, Service, ServiceAccount, PodDisruptionBudget and NetworkPolicy.
func apiName(app *packnowv1alpha1.PackNowApp) string { return app.Name + "-api" }

func secretKeySecretName(app *packnowv1alpha1.PackNowApp) string { return app.Name + "-secret-key" }
func postgresSecretName(app *packnowv1alpha1.PackNowApp) string  { return app.Name + "-postgres" }
func redisSecretName(app *packnowv1alpha1.PackNowApp) string     { return app.Name + "-redis" }

// labels go on every generated object.
func labels(app *packnowv1alpha1.PackNowApp) map[string]string {
	l := selectorLabels(app)
	l[LabelManagedBy] = ManagedByValue
	return l
}

// selectorLabels select the API pods. They never change for an app, since a Deployment's selector is immutable.
func selectorLabels(app *packnowv1alpha1.PackNowApp) map[string]string {
	return map[string]string{
		LabelName:      appName,
		LabelInstance:  app.Name,
		LabelComponent: component,
	}
}

// ownerReference makes the PackNowApp the controller of a generated object, so that the garbage collector
// deletes the object with the app and the manager's Owns() watches map its events back to the app.
func ownerReference(app *packnowv1alpha1.PackNowApp) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(packnowv1alpha1.GroupVersion.String()).
		WithKind("PackNowApp").
		WithName(app.Name).
		WithUID(app.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}
