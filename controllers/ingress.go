package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// ingress-nginx annotations.
const (
	nginxPrefix = "nginx.ingress.kubernetes.io/"
	// nginxCustomHeaders names the ConfigMap whose entries ingress-nginx (v1.10 and later) sets as response
	// headers. Unlike configuration-snippet, which ingress-nginx disables by default since v1.9 because it
	// injects raw nginx configuration, it only sets headers, and only those the controller allows in its
	// global-allowed-response-headers.
	nginxCustomHeaders = nginxPrefix + "custom-headers"
)

// AnnotationHeadersHash on an ingress-nginx Ingress changes with the response headers, since ingress-nginx
// does not reload when only the custom-headers ConfigMap changes.
const AnnotationHeadersHash = "packnow.io/headers-hash"

// traefikMiddlewares is the Traefik router annotation that chains Middlewares into the Ingress's routes.
const traefikMiddlewares = "traefik.ingress.kubernetes.io/router.middlewares"

// desiredIngress routes every host to the API's Service, with TLS from spec.ingress.tlsSecretName and the
// annotations of the chosen controller.
func desiredIngress(app *packnowv1alpha1.PackNowApp) *networkingv1ac.IngressApplyConfiguration {
	in := app.Spec.Ingress
	spec := networkingv1ac.IngressSpec()
	if in.IngressClassName != "" {
		spec.WithIngressClassName(in.IngressClassName)
	}
	if in.TLSSecretName != "" {
		spec.WithTLS(networkingv1ac.IngressTLS().WithHosts(in.Hosts...).WithSecretName(in.TLSSecretName))
	}
	for _, h := range in.Hosts {
		spec.WithRules(networkingv1ac.IngressRule().
			WithHost(h).
			WithHTTP(networkingv1ac.HTTPIngressRuleValue().WithPaths(networkingv1ac.HTTPIngressPath().
				WithPath("/").
				WithPathType(networkingv1.PathTypePrefix).
				WithBackend(networkingv1ac.IngressBackend().WithService(networkingv1ac.IngressServiceBackend().
					WithName(apiName(app)).
					WithPort(networkingv1ac.ServiceBackendPort().WithNumber(servicePort)))))))
	}
	annotations := nginxAnnotations(app)
	if in.Controller == packnowv1alpha1.ControllerTraefik {
		annotations = traefikAnnotations(app)
	}
	return networkingv1ac.Ingress(apiName(app), app.Namespace).
		WithLabels(labels(app)).
		WithAnnotations(annotations).
		WithOwnerReferences(ownerReference(app)).
		WithSpec(spec)
}

// nginxAnnotations carry the rate limit, CORS, the HTTPS redirect and the response headers to ingress-nginx.
// Its limits count per replica of the controller, unlike the API's global Redis limiter.
func nginxAnnotations(app *packnowv1alpha1.PackNowApp) map[string]string {
	rl := app.Spec.RateLimit
	a := map[string]string{
		nginxPrefix + "limit-rpm":              strconv.Itoa(int(rl.RequestsPerMinute)),
		nginxPrefix + "limit-burst-multiplier": strconv.Itoa(burstMultiplier(rl)),
		nginxPrefix + "force-ssl-redirect":     "true",
		nginxCustomHeaders:                     app.Namespace + "/" + apiName(app),
		AnnotationHeadersHash:                  headersHash(securityHeaders(app)),
	}
	if c := app.Spec.CORS; len(c.AllowedOrigins) > 0 {
		a[nginxPrefix+"enable-cors"] = "true"
		a[nginxPrefix+"cors-allow-origin"] = strings.Join(c.AllowedOrigins, ", ")
		a[nginxPrefix+"cors-allow-methods"] = strings.Join(corsMethods(app), ", ")
		a[nginxPrefix+"cors-allow-headers"] = strings.Join(corsAllowedHeaders, ", ")
		a[nginxPrefix+"cors-allow-credentials"] = strconv.FormatBool(corsCredentials(app))
		a[nginxPrefix+"cors-max-age"] = strconv.Itoa(int(c.MaxAgeSeconds))
	}
	return a
}

// burstMultiplier expresses spec.rateLimit.burst the way ingress-nginx does, as a multiple of the rate,
// rounded up and at least one.
func burstMultiplier(rl packnowv1alpha1.RateLimitSpec) int {
	if rl.RequestsPerMinute <= 0 {
		return 1
	}
	return max(1, int(math.Ceil(float64(rl.Burst)/float64(rl.RequestsPerMinute))))
}

func headersHash(hs []header) string {
	sum := sha256.New()
	for _, h := range hs {
		sum.Write([]byte(h.name + ": " + h.value + "\n"))
	}
	return hex.EncodeToString(sum.Sum(nil))[:16]
}

// desiredHeadersConfigMap holds the response headers that the custom-headers annotation points ingress-nginx
// at.
func desiredHeadersConfigMap(app *packnowv1alpha1.PackNowApp) *corev1ac.ConfigMapApplyConfiguration {
	data := map[string]string{}
	for _, h := range securityHeaders(app) {
		data[h.name] = h.value
	}
	return corev1ac.ConfigMap(apiName(app), app.Namespace).
		WithLabels(labels(app)).
		WithOwnerReferences(ownerReference(app)).
		WithData(data)
}

// nginxAllowedHeaders is the global-allowed-response-headers value the ingress-nginx ConfigMap must include.
func nginxAllowedHeaders(app *packnowv1alpha1.PackNowApp) string {
	var names []string
	for _, h := range securityHeaders(app) {
		names = append(names, h.name)
	}
	return strings.Join(names, ",")
}

// traefikAnnotations chain the rate-limit and the headers Middlewares into the Ingress's routes.
func traefikAnnotations(app *packnowv1alpha1.PackNowApp) map[string]string {
	ref := func(name string) string { return app.Namespace + "-" + name + "@kubernetescrd" }
	return map[string]string{
		traefikMiddlewares: ref(rateLimitMiddlewareName(app)) + "," + ref(apiName(app)),
	}
}
