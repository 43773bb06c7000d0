package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

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

// serviceURL is the API's in-cluster URL.
func serviceURL(app *packnowv1alpha1.PackNowApp) string {
	return "http://" + apiName(app) + "." + app.Namespace + ".svc"
}
