package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/controllers"
	"github.com/packnow/packnow-operator/hack/testenv"
)

var middlewareGVK = schema.GroupVersionKind{Group: "traefik.io", Version: "v1alpha1", Kind: "Middleware"}

// edgeApp is an app published on api.<namespace>.example for the web app's origin.
func edgeApp(namespace, name string, in packnowv1alpha1.IngressSpec) *packnowv1alpha1.PackNowApp {
	app := newApp(namespace, name)
	in.Hosts = []string{"api." + namespace + ".example"}
	app.Spec.Ingress = &in
	app.Spec.CORS.AllowedOrigins = []string{"https://app.example"}
	return app
}

// gone waits until the object of that name no longer exists.
func (s *suite) gone(t *testing.T, namespace, name string, obj client.Object) {
	t.Helper()
	eventually(t, fmt.Sprintf("%T %s deleted", obj, name), func() error {
		err := s.get(namespace, name, obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return errors.Join(err, errors.New("still there"))
	})
}

func middleware(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(middlewareGVK)
	u.SetName(name)
	return u
}

func responseHeaders(route *gatewayv1.HTTPRoute) map[string]string {
	out := map[string]string{}
	for _, f := range route.Spec.Rules[0].Filters {
		if f.ResponseHeaderModifier != nil {
			for _, h := range f.ResponseHeaderModifier.Set {
				out[string(h.Name)] = h.Value
			}
		}
	}
	return out
}

func corsOf(route *gatewayv1.HTTPRoute) *gatewayv1.HTTPCORSFilter {
	for _, f := range route.Spec.Rules[0].Filters {
		if f.CORS != nil {
			return f.CORS
		}
	}
	return nil
}

func TestGatewayAPIEdgeFollowsTheSpec(t *testing.T) {
	s := env(t)
	ns := s.namespace(t, "gateway")
	app := s.create(t, edgeApp(ns, "web", packnowv1alpha1.IngressSpec{
		GatewayRef: &packnowv1alpha1.GatewayRef{Name: "public", Namespace: "infra", SectionName: "https"},
	}))

	route := &gatewayv1.HTTPRoute{}
	eventually(t, "HTTPRoute web-api", func() error { return s.get(ns, "web-api", route) })
	p := route.Spec.ParentRefs
	if len(p) != 1 || p[0].Name != "public" || ptr.Deref(p[0].Namespace, "") != "infra" || ptr.Deref(p[0].SectionName, "") != "https" {
		t.Errorf("parentRefs %+v, want Gateway infra/public listener https", p)
	}
	if h := route.Spec.Hostnames; len(h) != 1 || string(h[0]) != "api."+ns+".example" {
		t.Errorf("hostnames %v", h)
	}
	b := route.Spec.Rules[0].BackendRefs
	if len(b) != 1 || b[0].Name != "web-api" || ptr.Deref(b[0].Port, 0) != 80 {
		t.Errorf("backendRefs %+v, want Service web-api port 80", b)
	}
	wantHeaders := map[string]string{
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
		"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
		"X-Frame-Options":           "DENY",
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "strict-origin-when-cross-origin",
		"Permissions-Policy":        "geolocation=(), microphone=(), camera=(), payment=()",
		"X-XSS-Protection":          "1; mode=block",
	}
	if got := responseHeaders(route); fmt.Sprint(got) != fmt.Sprint(wantHeaders) {
		t.Errorf("response headers %v, want %v", got, wantHeaders)
	}
	cors := corsOf(route)
	if cors == nil || fmt.Sprint(cors.AllowOrigins) != "[https://app.example]" || !ptr.Deref(cors.AllowCredentials, false) ||
		cors.MaxAge != 600 || len(cors.AllowMethods) != 5 {
		t.Errorf("CORS filter %+v", cors)
	}

	pending := s.waitCondition(t, ns, "web", packnowv1alpha1.ConditionEdgeReady, metav1.ConditionFalse)
	if c := conditionOf(pending, packnowv1alpha1.ConditionEdgeReady); c.Reason != "Pending" || !strings.Contains(c.Message, "no rate-limit field") {
		t.Errorf("EdgeReady %+v, want Pending saying Gateway API has no rate limit", c)
	}
	if pending.Status.URL != "https://api."+ns+".example" {
		t.Errorf("url %q, want the first host over HTTPS", pending.Status.URL)
	}

	// Play the Gateway's controller.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := s.get(ns, "web-api", route); err != nil {
			return err
		}
		cond := func(t gatewayv1.RouteConditionType) metav1.Condition {
			return metav1.Condition{Type: string(t), Status: metav1.ConditionTrue, Reason: string(t),
				ObservedGeneration: route.Generation, LastTransitionTime: metav1.Now()}
		}
		route.Status.Parents = []gatewayv1.RouteParentStatus{{
			ParentRef:      route.Spec.ParentRefs[0],
			ControllerName: "example.com/gateway",
			Conditions:     []metav1.Condition{cond(gatewayv1.RouteConditionAccepted), cond(gatewayv1.RouteConditionResolvedRefs)},
		}}
		return s.k8s.Status().Update(context.Background(), route)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.waitCondition(t, ns, "web", packnowv1alpha1.ConditionEdgeReady, metav1.ConditionTrue)
	s.touchCostsNoWrites(t, app)

	s.update(t, app, func() {
		app.Spec.SecurityHeaders.ContentSecurityPolicy = "default-src 'self'"
		app.Spec.CORS.AllowedOrigins = []string{"https://shop.example"}
	})
	eventually(t, "the route follows the header and the origin", func() error {
		if err := s.get(ns, "web-api", route); err != nil {
			return err
		}
		csp, origins := responseHeaders(route)["Content-Security-Policy"], fmt.Sprint(corsOf(route).AllowOrigins)
		if csp != "default-src 'self'" || origins != "[https://shop.example]" {
			return fmt.Errorf("CSP %q origins %s", csp, origins)
		}
		return nil
	})

	// Switching to an Ingress replaces the route.
	s.update(t, app, func() {
		app.Spec.Ingress.Provider = packnowv1alpha1.ProviderIngress
		app.Spec.Ingress.GatewayRef = nil
	})
	s.gone(t, ns, "web-api", &gatewayv1.HTTPRoute{})
	eventually(t, "Ingress web-api", func() error { return s.get(ns, "web-api", &networkingv1.Ingress{}) })

	s.update(t, app, func() { app.Spec.Ingress = nil })
	s.gone(t, ns, "web-api", &networkingv1.Ingress{})
	s.gone(t, ns, "web-api", &corev1.ConfigMap{})
	eventually(t, "EdgeReady removed and the in-cluster URL back", func() error {
		a := &packnowv1alpha1.PackNowApp{}
		if err := s.get(ns, "web", a); err != nil {
			return err
		}
		if c := conditionOf(a, packnowv1alpha1.ConditionEdgeReady); c != nil || a.Status.URL != "http://web-api."+ns+".svc" {
			return fmt.Errorf("EdgeReady %+v url %q", c, a.Status.URL)
		}
		return nil
	})
}

func TestNginxIngressFollowsTheSpec(t *testing.T) {
	s := env(t)
	ns := s.namespace(t, "nginx")
	app := s.create(t, edgeApp(ns, "web", packnowv1alpha1.IngressSpec{
		Provider: packnowv1alpha1.ProviderIngress, IngressClassName: "nginx", TLSSecretName: "web-tls",
	}))

	ing := &networkingv1.Ingress{}
	eventually(t, "Ingress web-api", func() error { return s.get(ns, "web-api", ing) })
	host := "api." + ns + ".example"
	if ptr.Deref(ing.Spec.IngressClassName, "") != "nginx" || len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "web-tls" ||
		fmt.Sprint(ing.Spec.TLS[0].Hosts) != "["+host+"]" {
		t.Errorf("class %v TLS %+v", ing.Spec.IngressClassName, ing.Spec.TLS)
	}
	r := ing.Spec.Rules
	if len(r) != 1 || r[0].Host != host || r[0].HTTP.Paths[0].Backend.Service.Name != "web-api" || r[0].HTTP.Paths[0].Backend.Service.Port.Number != 80 {
		t.Errorf("rules %+v", r)
	}
	want := map[string]string{
		"nginx.ingress.kubernetes.io/limit-rpm":              "60",
		"nginx.ingress.kubernetes.io/limit-burst-multiplier": "1",
		"nginx.ingress.kubernetes.io/force-ssl-redirect":     "true",
		"nginx.ingress.kubernetes.io/custom-headers":         ns + "/web-api",
		"nginx.ingress.kubernetes.io/enable-cors":            "true",
		"nginx.ingress.kubernetes.io/cors-allow-origin":      "https://app.example",
		"nginx.ingress.kubernetes.io/cors-allow-methods":     "GET, POST, PUT, DELETE, PATCH",
		"nginx.ingress.kubernetes.io/cors-allow-headers":     "Authorization, Content-Type",
		"nginx.ingress.kubernetes.io/cors-allow-credentials": "true",
		"nginx.ingress.kubernetes.io/cors-max-age":           "600",
	}
	for k, v := range want {
		if ing.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, ing.Annotations[k], v)
		}
	}
	hash := ing.Annotations["packnow.io/headers-hash"]
	cm := &corev1.ConfigMap{}
	eventually(t, "ConfigMap web-api", func() error { return s.get(ns, "web-api", cm) })
	if len(cm.Data) != 7 || cm.Data["X-Frame-Options"] != "DENY" {
		t.Errorf("headers ConfigMap %v", cm.Data)
	}
	c := conditionOf(s.waitCondition(t, ns, "web", packnowv1alpha1.ConditionEdgeReady, metav1.ConditionTrue), packnowv1alpha1.ConditionEdgeReady)
	if !strings.Contains(c.Message, "global-allowed-response-headers") {
		t.Errorf("EdgeReady message %q does not say what ingress-nginx must allow", c.Message)
	}
	s.touchCostsNoWrites(t, app)

	s.update(t, app, func() {
		app.Spec.RateLimit.RequestsPerMinute = 120
		app.Spec.SecurityHeaders.FrameOptions = "SAMEORIGIN"
	})
	eventually(t, "the Ingress and ConfigMap follow the rate and the header", func() error {
		if err := errors.Join(s.get(ns, "web-api", ing), s.get(ns, "web-api", cm)); err != nil {
			return err
		}
		if ing.Annotations["nginx.ingress.kubernetes.io/limit-rpm"] != "120" || cm.Data["X-Frame-Options"] != "SAMEORIGIN" ||
			ing.Annotations["packnow.io/headers-hash"] == hash {
			return fmt.Errorf("annotations %v, X-Frame-Options %q", ing.Annotations, cm.Data["X-Frame-Options"])
		}
		return nil
	})
}

func TestTraefikEdgeFollowsTheSpec(t *testing.T) {
	s := env(t)
	ns := s.namespace(t, "traefik")
	app := s.create(t, edgeApp(ns, "web", packnowv1alpha1.IngressSpec{
		Provider: packnowv1alpha1.ProviderIngress, Controller: packnowv1alpha1.ControllerTraefik,
	}))

	ing := &networkingv1.Ingress{}
	eventually(t, "Ingress web-api", func() error { return s.get(ns, "web-api", ing) })
	if got, want := ing.Annotations["traefik.ingress.kubernetes.io/router.middlewares"],
		ns+"-web-api-ratelimit@kubernetescrd,"+ns+"-web-api@kubernetescrd"; got != want {
		t.Errorf("router.middlewares %q, want %q", got, want)
	}
	headers, limit := middleware("web-api"), middleware("web-api-ratelimit")
	eventually(t, "Middlewares", func() error {
		return errors.Join(s.get(ns, "web-api", headers), s.get(ns, "web-api-ratelimit", limit))
	})
	wantHeaders := map[string]any{
		"stsSeconds": int64(31536000), "stsIncludeSubdomains": true, "stsPreload": false,
		"contentSecurityPolicy": "default-src 'none'; frame-ancestors 'none'", "frameDeny": true,
		"contentTypeNosniff": true, "browserXssFilter": true, "referrerPolicy": "strict-origin-when-cross-origin",
		"permissionsPolicy":             "geolocation=(), microphone=(), camera=(), payment=()",
		"accessControlAllowOriginList":  []any{"https://app.example"},
		"accessControlAllowMethods":     []any{"GET", "POST", "PUT", "DELETE", "PATCH"},
		"accessControlAllowHeaders":     []any{"Authorization", "Content-Type"},
		"accessControlAllowCredentials": true, "accessControlMaxAge": int64(600),
	}
	if got := headers.Object["spec"]; fmt.Sprint(got) != fmt.Sprint(map[string]any{"headers": wantHeaders}) {
		t.Errorf("headers Middleware spec\n%v\nwant\n%v", got, map[string]any{"headers": wantHeaders})
	}
	wantLimit := map[string]any{"rateLimit": map[string]any{"average": int64(60), "period": "1m", "burst": int64(10)}}
	if got := limit.Object["spec"]; fmt.Sprint(got) != fmt.Sprint(wantLimit) {
		t.Errorf("rate-limit Middleware spec %v, want %v", got, wantLimit)
	}
	s.waitCondition(t, ns, "web", packnowv1alpha1.ConditionEdgeReady, metav1.ConditionTrue)
	s.touchCostsNoWrites(t, app)

	s.update(t, app, func() { app.Spec.RateLimit.RequestsPerMinute = 30 })
	eventually(t, "the rate-limit Middleware follows", func() error {
		if err := s.get(ns, "web-api-ratelimit", limit); err != nil {
			return err
		}
		if avg, _, _ := unstructured.NestedInt64(limit.Object, "spec", "rateLimit", "average"); avg != 30 {
			return fmt.Errorf("average %d", avg)
		}
		return nil
	})

	s.update(t, app, func() { app.Spec.Ingress = nil })
	s.gone(t, ns, "web-api", &networkingv1.Ingress{})
	s.gone(t, ns, "web-api", middleware("web-api"))
	s.gone(t, ns, "web-api-ratelimit", middleware("web-api-ratelimit"))
}

// settled waits until n has not moved for half a second and returns its value.
func settled(t *testing.T, n func() int64) int64 {
	t.Helper()
	var v int64
	eventually(t, "reconciles to stop", func() error {
		v = n()
		for range 5 {
			time.Sleep(pollInterval)
			if n() != v {
				return errors.New("still reconciling")
			}
		}
		return nil
	})
	return v
}

// TestMissingProviderWaitsWithoutLooping runs the operator against an API server without the Gateway API
// CRDs, then installs them.
func TestMissingProviderWaitsWithoutLooping(t *testing.T) {
	srv, err := testenv.StartAPIServer(testenv.APIServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	}()
	var reconciles, writes atomic.Int64
	count := func(config *rest.Config, options client.Options) (client.Client, error) {
		c, err := client.NewWithWatch(config, options)
		return interceptor.NewClient(c, interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*packnowv1alpha1.PackNowApp); ok {
					reconciles.Add(1)
				}
				return c.Get(ctx, key, obj, opts...)
			},
			Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
				writes.Add(1)
				return c.Apply(ctx, obj, opts...)
			},
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				writes.Add(1)
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
		}), err
	}
	reconciler := &controllers.PackNowAppReconciler{DefaultImage: testImage}
	mgr, err := ctrl.NewManager(srv.Config, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Cache:                  reconciler.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		NewClient:              count,
		// The suite's manager in this process already registered the controller's name.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	s := &suite{k8s: srv.Client}
	ns := s.namespace(t, "bare")
	app := s.create(t, edgeApp(ns, "web", packnowv1alpha1.IngressSpec{GatewayRef: &packnowv1alpha1.GatewayRef{Name: "public"}}))
	waiting := s.waitCondition(t, ns, "web", packnowv1alpha1.ConditionEdgeReady, metav1.ConditionFalse)
	if c := conditionOf(waiting, packnowv1alpha1.ConditionEdgeReady); c.Reason != "ProviderNotInstalled" || !strings.Contains(c.Message, "HTTPRoute") {
		t.Errorf("EdgeReady %+v, want ProviderNotInstalled naming HTTPRoute", c)
	}
	if waiting.Status.URL != "http://web-api."+ns+".svc" {
		t.Errorf("url %q, want the in-cluster URL while there is no edge", waiting.Status.URL)
	}

	// No hot loop: the reconciles stop, and one more event costs one reconcile and no write.
	before := settled(t, reconciles.Load)
	wrote := writes.Load()
	touch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"test/touch":"1"}}}`))
	if err := s.k8s.Patch(context.Background(), app, touch); err != nil {
		t.Fatal(err)
	}
	if got := settled(t, reconciles.Load) - before; got != 1 {
		t.Errorf("a touch of the waiting app caused %d reconciles, want 1", got)
	}
	if got := writes.Load() - wrote; got != 0 {
		t.Errorf("a touch of the waiting app caused %d writes, want 0", got)
	}

	// The CRDs appear: the operator starts watching HTTPRoutes and publishes the app.
	paths, err := testenv.EdgeCRDPaths()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(srv.Config, envtest.CRDInstallOptions{Paths: paths}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "HTTPRoute web-api", func() error { return s.get(ns, "web-api", &gatewayv1.HTTPRoute{}) })
	eventually(t, "EdgeReady Pending", func() error {
		c, _, err := s.condition(ns, "web", packnowv1alpha1.ConditionEdgeReady)
		if err != nil {
			return err
		}
		if c.Reason != "Pending" {
			return fmt.Errorf("EdgeReady %s: %s", c.Reason, c.Message)
		}
		return nil
	})
}

// touchCostsNoWrites checks that a converged app stays converged: an event reconciles it without a write.
func (s *suite) touchCostsNoWrites(t *testing.T, app *packnowv1alpha1.PackNowApp) {
	t.Helper()
	reconciles := s.reconciles(client.ObjectKeyFromObject(app))
	before := settled(t, reconciles.Load)
	writes := s.writesIn(app.Namespace)
	touch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"annotations":{"test/touch":"%d"}}}`, before))
	if err := s.k8s.Patch(context.Background(), app.DeepCopy(), touch); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a reconcile after the touch", func() error {
		if reconciles.Load() == before {
			return errors.New("no reconcile yet")
		}
		return nil
	})
	settled(t, reconciles.Load)
	if got := s.writesIn(app.Namespace) - writes; got != 0 {
		t.Errorf("a converged edge cost %d writes on a reconcile, want 0", got)
	}
}
