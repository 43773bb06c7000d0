package controllers

import (
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// desiredServiceAccount is the API pods' identity. The API never calls the Kubernetes API, so no token is
// mounted: a compromised pod holds no credentials for the cluster.
func desiredServiceAccount(app *packnowv1alpha1.PackNowApp) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(apiName(app), app.Namespace).
		WithLabels(labels(app)).
		WithOwnerReferences(ownerReference(app)).
		WithAutomountServiceAccountToken(false)
}
