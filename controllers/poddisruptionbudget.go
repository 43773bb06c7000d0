package controllers

import (
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// desiredPodDisruptionBudget keeps one API pod through voluntary disruptions (node drains). It is nil for a
// single replica, where a budget of one would block every drain.
func desiredPodDisruptionBudget(app *packnowv1alpha1.PackNowApp) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	if desiredReplicas(app) <= 1 {
		return nil
	}
	return policyv1ac.PodDisruptionBudget(apiName(app), app.Namespace).
		WithLabels(labels(app)).
		WithOwnerReferences(ownerReference(app)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMinAvailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(app))).
			// A pod that is not ready serves nothing; evicting it must not wait for the budget.
			WithUnhealthyPodEvictionPolicy(policyv1.AlwaysAllow))
}
