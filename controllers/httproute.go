package controllers

import (
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1ac "sigs.k8s.io/gateway-api/applyconfiguration/apis/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// desiredHTTPRoute attaches the API's Service to the Gateway listener of spec.ingress.gatewayRef for the hosts,
// with the security headers set on every response and the standard CORS filter. Gateway API has no rate-limit
// field: the API's own limiter enforces spec.rateLimit. TLS is the listener's.
func desiredHTTPRoute(app *packnowv1alpha1.PackNowApp) *gatewayv1ac.HTTPRouteApplyConfiguration {
	in := app.Spec.Ingress
	parent := gatewayv1ac.ParentReference().
		WithGroup(gatewayv1.GroupName).
		WithKind("Gateway").
		WithName(gatewayv1.ObjectName(in.GatewayRef.Name))
	if ns := in.GatewayRef.Namespace; ns != "" {
		parent.WithNamespace(gatewayv1.Namespace(ns))
	}
	if sn := in.GatewayRef.SectionName; sn != "" {
		parent.WithSectionName(gatewayv1.SectionName(sn))
	}
	hostnames := make([]gatewayv1.Hostname, len(in.Hosts))
	for i, h := range in.Hosts {
		hostnames[i] = gatewayv1.Hostname(h)
	}

	set := gatewayv1ac.HTTPHeaderFilter()
	for _, h := range securityHeaders(app) {
		set.WithSet(gatewayv1ac.HTTPHeader().WithName(gatewayv1.HTTPHeaderName(h.name)).WithValue(h.value))
	}
	filters := []*gatewayv1ac.HTTPRouteFilterApplyConfiguration{
		gatewayv1ac.HTTPRouteFilter().
			WithType(gatewayv1.HTTPRouteFilterResponseHeaderModifier).
			WithResponseHeaderModifier(set),
	}
	if cors := corsFilter(app); cors != nil {
		filters = append(filters, gatewayv1ac.HTTPRouteFilter().WithType(gatewayv1.HTTPRouteFilterCORS).WithCORS(cors))
	}

	return gatewayv1ac.HTTPRoute(apiName(app), app.Namespace).
		WithLabels(labels(app)).
		WithOwnerReferences(ownerReference(app)).
		WithSpec(gatewayv1ac.HTTPRouteSpec().
			WithParentRefs(parent).
			WithHostnames(hostnames...).
			WithRules(gatewayv1ac.HTTPRouteRule().
				WithMatches(gatewayv1ac.HTTPRouteMatch().WithPath(gatewayv1ac.HTTPPathMatch().
					WithType(gatewayv1.PathMatchPathPrefix).
					WithValue("/"))).
				WithFilters(filters...).
				WithBackendRefs(gatewayv1ac.HTTPBackendRef().
					WithGroup("").
					WithKind("Service").
					WithName(gatewayv1.ObjectName(apiName(app))).
					WithPort(servicePort).
					// The schema's default, spelled out: backendRefs is atomic, so the operator owns what the
					// server fills in and would otherwise see a difference on every reconcile.
					WithWeight(1))))
}

// corsFilter is the standard (v1) CORS filter; nil when no origin may call the API cross-origin, so that the
// Gateway answers no preflight at all.
func corsFilter(app *packnowv1alpha1.PackNowApp) *gatewayv1ac.HTTPCORSFilterApplyConfiguration {
	c := app.Spec.CORS
	if len(c.AllowedOrigins) == 0 {
		return nil
	}
	f := gatewayv1ac.HTTPCORSFilter().WithAllowCredentials(corsCredentials(app))
	// The filter's minimum is 1 second; 0 (no caching) has no closer equivalent.
	f.WithMaxAge(max(c.MaxAgeSeconds, 1))
	for _, o := range c.AllowedOrigins {
		f.WithAllowOrigins(gatewayv1.CORSOrigin(o))
	}
	for _, m := range corsMethods(app) {
		f.WithAllowMethods(gatewayv1.HTTPMethodWithWildcard(m))
	}
	for _, h := range corsAllowedHeaders {
		f.WithAllowHeaders(gatewayv1.HTTPHeaderName(h))
	}
	return f
}
