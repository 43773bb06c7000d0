package controllers

import (
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

const dnsPort = 53

// desiredNetworkPolicy lets traffic reach the API pods only on the app port, and lets them reach only DNS,
// PostgreSQL and Redis. postgresPort and redisPort are where the connection URLs point.
func desiredNetworkPolicy(app *packnowv1alpha1.PackNowApp, postgresPort, redisPort int32) *networkingv1ac.NetworkPolicyApplyConfiguration {
	return networkingv1ac.NetworkPolicy(apiName(app), app.Namespace).
		WithLabels(labels(app)).
		WithOwnerReferences(ownerReference(app)).
		WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(app))).
			WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress).
			WithIngress(networkingv1ac.NetworkPolicyIngressRule().WithPorts(tcpPort(appPort))).
			WithEgress(
				networkingv1ac.NetworkPolicyEgressRule().WithPorts(
					networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolUDP).WithPort(intstr.FromInt32(dnsPort)),
					tcpPort(dnsPort)),
				networkingv1ac.NetworkPolicyEgressRule().WithPorts(tcpPort(postgresPort)),
				networkingv1ac.NetworkPolicyEgressRule().WithPorts(tcpPort(redisPort)),
			))
}

func tcpPort(port int32) *networkingv1ac.NetworkPolicyPortApplyConfiguration {
	return networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromInt32(port))
}

// urlPort is the port of a connection URL, or fallback when the URL names none (or is unreadable): an
// existingSecret's URL may point elsewhere than the spec's port.
func urlPort(rawURL string, fallback int32) int32 {
	u, err := url.Parse(rawURL)
	if err != nil || u.Port() == "" {
		return fallback
	}
	p, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil || p == 0 {
		return fallback
	}
	return int32(p)
}
