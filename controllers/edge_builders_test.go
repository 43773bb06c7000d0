package controllers

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// edgeTestApp is testApp published through in.
func edgeTestApp(in packnowv1alpha1.IngressSpec) *packnowv1alpha1.PackNowApp {
	app := testApp()
	in.Hosts = []string{"api.packnow.example", "api2.packnow.example"}
	app.Spec.Ingress = &in
	return app
}

var (
	gatewayIngress = packnowv1alpha1.IngressSpec{
		Provider:   packnowv1alpha1.ProviderGatewayAPI,
		GatewayRef: &packnowv1alpha1.GatewayRef{Name: "public", Namespace: "infra", SectionName: "https"},
	}
	nginxIngress = packnowv1alpha1.IngressSpec{
		Provider: packnowv1alpha1.ProviderIngress, Controller: packnowv1alpha1.ControllerNginx,
		IngressClassName: "nginx", TLSSecretName: "api-tls",
	}
	traefikIngress = packnowv1alpha1.IngressSpec{
		Provider: packnowv1alpha1.ProviderIngress, Controller: packnowv1alpha1.ControllerTraefik, TLSSecretName: "api-tls",
	}
)

// TestEdgeGolden pins every edge object; review a diff in testdata/ like code (go test ./controllers -run
// Golden -update rewrites them).
func TestEdgeGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		obj  any
	}{
		{"httproute.yaml", desiredHTTPRoute(edgeTestApp(gatewayIngress))},
		{"ingress-nginx.yaml", desiredIngress(edgeTestApp(nginxIngress))},
		{"ingress-nginx-headers.yaml", desiredHeadersConfigMap(edgeTestApp(nginxIngress))},
		{"ingress-traefik.yaml", desiredIngress(edgeTestApp(traefikIngress))},
		{"traefik-middlewares.yaml", desiredMiddlewares(edgeTestApp(traefikIngress))},
	} {
		t.Run(tc.file, func(t *testing.T) { assertGolden(t, tc.file, tc.obj) })
	}
}

func TestSecurityHeadersFollowTheSpec(t *testing.T) {
	app := testApp()
	app.Spec.SecurityHeaders.HSTS = packnowv1alpha1.HSTSSpec{MaxAgeSeconds: ptr.To[int32](63072000), IncludeSubDomains: ptr.To(true), Preload: true}
	app.Spec.SecurityHeaders.FrameOptions = "SAMEORIGIN"
	got := map[string]string{}
	for _, h := range securityHeaders(app) {
		got[h.name] = h.value
	}
	if len(got) != 7 || got["Strict-Transport-Security"] != "max-age=63072000; includeSubDomains; preload" ||
		got["X-Frame-Options"] != "SAMEORIGIN" {
		t.Errorf("headers %v", got)
	}
	if m := desiredMiddlewares(edgeTestApp(traefikIngress))[0].Object["spec"].(map[string]any)["headers"].(map[string]any); m["frameDeny"] != true {
		t.Errorf("Traefik headers %v, want frameDeny for DENY", m)
	}
	app.Spec.Ingress = &traefikIngress
	if m := traefikHeaders(app); m["customFrameOptionsValue"] != "SAMEORIGIN" || m["frameDeny"] != nil || m["stsPreload"] != true {
		t.Errorf("Traefik headers %v, want SAMEORIGIN as a custom value and preload", m)
	}

	// HSTS off: no header anywhere.
	app.Spec.SecurityHeaders.HSTS.MaxAgeSeconds = ptr.To[int32](0)
	for _, h := range securityHeaders(app) {
		if h.name == "Strict-Transport-Security" {
			t.Errorf("max-age 0 still sends %s", h.value)
		}
	}
	if _, ok := traefikHeaders(app)["stsSeconds"]; ok {
		t.Error("max-age 0 still sets Traefik's stsSeconds")
	}
}

func TestNoOriginsMeansNoCORSAtTheEdge(t *testing.T) {
	for _, in := range []packnowv1alpha1.IngressSpec{gatewayIngress, nginxIngress, traefikIngress} {
		app := edgeTestApp(in)
		app.Spec.CORS.AllowedOrigins = nil
		switch {
		case in.Provider == packnowv1alpha1.ProviderGatewayAPI:
			if f := desiredHTTPRoute(app).Spec.Rules[0].Filters; len(f) != 1 {
				t.Errorf("route filters %d, want only the response headers", len(f))
			}
		case in.Controller == packnowv1alpha1.ControllerNginx:
			for k := range desiredIngress(app).Annotations {
				if strings.Contains(k, "cors") {
					t.Errorf("annotation %s without origins", k)
				}
			}
		default:
			for k := range traefikHeaders(app) {
				if strings.HasPrefix(k, "accessControl") {
					t.Errorf("Traefik header setting %s without origins", k)
				}
			}
		}
	}
}

func TestBurstMultiplierRoundsUp(t *testing.T) {
	for _, tc := range []struct {
		rpm, burst int32
		want       int
	}{{60, 10, 1}, {60, 0, 1}, {60, 60, 1}, {60, 61, 2}, {10, 45, 5}} {
		if got := burstMultiplier(packnowv1alpha1.RateLimitSpec{RequestsPerMinute: tc.rpm, Burst: tc.burst}); got != tc.want {
			t.Errorf("rpm %d burst %d: multiplier %d, want %d", tc.rpm, tc.burst, got, tc.want)
		}
	}
}

func TestRouteObservation(t *testing.T) {
	app := edgeTestApp(gatewayIngress)
	parent := gatewayv1.ParentReference{Name: "public", Namespace: ptr.To[gatewayv1.Namespace]("infra"), SectionName: ptr.To[gatewayv1.SectionName]("https")}
	cond := func(t gatewayv1.RouteConditionType, s metav1.ConditionStatus, reason string, gen int64) metav1.Condition {
		return metav1.Condition{Type: string(t), Status: s, Reason: reason, Message: reason + " message", ObservedGeneration: gen}
	}
	route := func(parents ...gatewayv1.RouteParentStatus) *gatewayv1.HTTPRoute {
		r := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
		r.Status.Parents = parents
		return r
	}
	accepted := cond(gatewayv1.RouteConditionAccepted, metav1.ConditionTrue, "Accepted", 2)
	resolved := cond(gatewayv1.RouteConditionResolvedRefs, metav1.ConditionTrue, "ResolvedRefs", 2)
	for _, tc := range []struct {
		name   string
		route  *gatewayv1.HTTPRoute
		status metav1.ConditionStatus
		reason string
	}{
		{"no parent status yet", route(), metav1.ConditionFalse, ReasonRoutePending},
		{"another listener's status", route(gatewayv1.RouteParentStatus{
			ParentRef: gatewayv1.ParentReference{Name: "public", Namespace: parent.Namespace}, Conditions: []metav1.Condition{accepted, resolved},
		}), metav1.ConditionFalse, ReasonRoutePending},
		{"accepted and resolved", route(gatewayv1.RouteParentStatus{ParentRef: parent, Conditions: []metav1.Condition{accepted, resolved}}),
			metav1.ConditionTrue, ReasonRouteAccepted},
		{"status of an older generation", route(gatewayv1.RouteParentStatus{ParentRef: parent, Conditions: []metav1.Condition{
			cond(gatewayv1.RouteConditionAccepted, metav1.ConditionTrue, "Accepted", 1), resolved,
		}}), metav1.ConditionFalse, ReasonRoutePending},
		{"not allowed by the listener", route(gatewayv1.RouteParentStatus{ParentRef: parent, Conditions: []metav1.Condition{
			cond(gatewayv1.RouteConditionAccepted, metav1.ConditionFalse, "NotAllowedByListeners", 2), resolved,
		}}), metav1.ConditionFalse, "NotAllowedByListeners"},
		{"Service not found", route(gatewayv1.RouteParentStatus{ParentRef: parent, Conditions: []metav1.Condition{
			accepted, cond(gatewayv1.RouteConditionResolvedRefs, metav1.ConditionFalse, "BackendNotFound", 2),
		}}), metav1.ConditionFalse, "BackendNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := routeObservation(app, tc.route)
			if obs.status != tc.status || obs.reason != tc.reason || !obs.published {
				t.Errorf("got %+v, want %s %s", obs, tc.status, tc.reason)
			}
			if !strings.Contains(obs.message, "Gateway API has no rate-limit field") {
				t.Errorf("message %q does not say where the rate limit is enforced", obs.message)
			}
		})
	}
}

func TestEdgeStatus(t *testing.T) {
	app := edgeTestApp(gatewayIngress)
	status := app.Status
	edgeStatus(app, &edgeObservation{status: metav1.ConditionFalse, reason: ReasonProviderNotInstalled, message: "m"}, &status)
	if c := conditionOf(status, packnowv1alpha1.ConditionEdgeReady); c == nil || c.Reason != ReasonProviderNotInstalled || status.URL != "" {
		t.Errorf("not installed: EdgeReady %+v url %q, want the condition and no public URL", c, status.URL)
	}
	edgeStatus(app, &edgeObservation{status: metav1.ConditionTrue, reason: ReasonRouteAccepted, published: true}, &status)
	if status.URL != "https://api.packnow.example" {
		t.Errorf("url %q, want the first host over HTTPS", status.URL)
	}
	app.Spec.Ingress = nil
	edgeStatus(app, nil, &status)
	if c := conditionOf(status, packnowv1alpha1.ConditionEdgeReady); c != nil {
		t.Errorf("EdgeReady %+v without spec.ingress, want none", c)
	}
}

func conditionOf(s packnowv1alpha1.PackNowAppStatus, condType string) *metav1.Condition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == condType {
			return &s.Conditions[i]
		}
	}
	return nil
}

func TestContainsJSON(t *testing.T) {
	have := map[string]any{"spec": map[string]any{"a": int64(1), "b": []any{"x"}, "extra": true}}
	for _, tc := range []struct {
		want any
		ok   bool
	}{
		{map[string]any{"spec": map[string]any{"a": 1}}, true},
		{map[string]any{"spec": map[string]any{"a": 1.0, "b": []any{"x"}}}, true},
		{map[string]any{"spec": map[string]any{"a": 2}}, false},
		{map[string]any{"spec": map[string]any{"b": []any{"x", "y"}}}, false},
		{map[string]any{"spec": map[string]any{"missing": "v"}}, false},
	} {
		got, err := containsJSON(have, tc.want)
		if err != nil || got != tc.ok {
			t.Errorf("containsJSON(%v) = %v, %v; want %v", tc.want, got, err, tc.ok)
		}
	}
}
