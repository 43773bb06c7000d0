package controllers

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// servicePort is the port clients in the cluster use; it forwards to the app's port.
const servicePort = 80

// desiredService is the in-cluster address of the API: ClusterIP port 80 to the pods' port 8000.
func desiredService(app *packnowv1alpha1.PackNowApp) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(apiName(app), app.Namespace).
		WithLabels(labels(app)).
		WithOwnerReferences(ownerReference(app)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(selectorLabels(app)).
			WithPorts(corev1ac.ServicePort().
				WithName(portName).
				WithProtocol(corev1.ProtocolTCP).
				WithPort(servicePort).
				WithTargetPort(intstr.FromInt32(appPort))))
}

// reconcileService applies the Service, first taking back the operator's port name from a port someone else
// changed. Ports are keyed by number and protocol: a port edited from 80 to 81 is another manager's entry, which
// server-side apply keeps beside the operator's port 80, and two ports named http fail validation, so that every
// apply would fail until the edit is undone.
func (r *PackNowAppReconciler) reconcileService(ctx context.Context, app *packnowv1alpha1.PackNowApp) error {
	live := &corev1.Service{}
	found, err := get(ctx, r.Client, app, apiName(app), live)
	if err != nil {
		return err
	}
	if found && slices.ContainsFunc(live.Spec.Ports, takesPortName) {
		before := live.DeepCopy()
		live.Spec.Ports = slices.DeleteFunc(live.Spec.Ports, takesPortName)
		if !slices.ContainsFunc(live.Spec.Ports, isServicePort) {
			// A Service of type ClusterIP needs a port.
			live.Spec.Ports = append(live.Spec.Ports, corev1.ServicePort{
				Name: portName, Protocol: corev1.ProtocolTCP, Port: servicePort, TargetPort: intstr.FromInt32(appPort),
			})
		}
		// Conditional on the copy read, so that a port added since stays.
		patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
		if err := r.Client.Patch(ctx, live, patch, client.FieldOwner(FieldManager)); err != nil {
			return fmt.Errorf("remove the port that took the name %s in Service %s: %w", portName, live.Name, err)
		}
		r.Recorder.Eventf(app, live, corev1.EventTypeNormal, "Repaired", "Patch",
			"removed a port that someone else moved off %d while keeping its name %s in Service %s", servicePort, portName, live.Name)
	}
	_, err = applyIfChanged(ctx, r, app, live, found, desiredService(app), corev1ac.ExtractService)
	return err
}

// takesPortName is true of a port other than the operator's that carries its name.
func takesPortName(p corev1.ServicePort) bool { return p.Name == portName && !isServicePort(p) }

// isServicePort is true of the port the operator applies, whatever else about it changed.
func isServicePort(p corev1.ServicePort) bool {
	return p.Port == servicePort && p.Protocol == corev1.ProtocolTCP
}

// serviceURL is the API's in-cluster URL.
func serviceURL(app *packnowv1alpha1.PackNowApp) string {
	return "http://" + apiName(app) + "." + app.Namespace + ".svc"
}
