package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// ApplyServiceTheCacheMisses applies desired as a reconcile does whose cache does not show the Service yet, for
// the envtest suite: only a real API server answers an apply that changes nothing with the version it had.
func ApplyServiceTheCacheMisses(ctx context.Context, r *PackNowAppReconciler, app *packnowv1alpha1.PackNowApp,
	desired *corev1ac.ServiceApplyConfiguration,
) (changed bool, err error) {
	return applyIfChanged(ctx, r, app, &corev1.Service{}, false, desired, corev1ac.ExtractService)
}
