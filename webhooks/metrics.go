package webhooks

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// violations counts admitted or denied requests that broke the pod policy, so that audit and warn namespaces
// can be watched before they are switched to enforce, and denials can be alerted on.
var violations = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "packnow_pod_security_violations_total",
	Help: "Pod and workload admission requests that violated the PackNow pod security policy, by namespace, mode " +
		"(enforce: denied, warn: admitted with warnings, audit: admitted and recorded) and resource.",
}, []string{"namespace", "mode", "resource"})

func init() {
	metrics.Registry.MustRegister(violations)
}
