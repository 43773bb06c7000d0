package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1ac "sigs.k8s.io/gateway-api/applyconfiguration/apis/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// header is one HTTP response header the edge sets.
type header struct{ name, value string }

// securityHeaders are the seed's seven response headers, as the API itself sends them, in a fixed order so that
// the objects built from them do not change between reconciles. Strict-Transport-Security is left out when its
// max-age is 0, which the spec documents as HSTS off.
func securityHeaders(app *packnowv1alpha1.PackNowApp) []header {
	sh := app.Spec.SecurityHeaders
	var hs []header
	if v := hstsValue(sh.HSTS); v != "" {
		hs = append(hs, header{"Strict-Transport-Security", v})
	}
	return append(hs,
		header{"Content-Security-Policy", sh.ContentSecurityPolicy},
		header{"X-Frame-Options", sh.FrameOptions},
		header{"X-Content-Type-Options", "nosniff"},
		header{"Referrer-Policy", sh.ReferrerPolicy},
		header{"Permissions-Policy", sh.PermissionsPolicy},
		header{"X-XSS-Protection", "1; mode=block"},
	)
}

func hstsValue(h packnowv1alpha1.HSTSSpec) string {
	maxAge := hstsMaxAge(h)
	if maxAge == 0 {
		return ""
	}
	v := "max-age=" + strconv.Itoa(int(maxAge))
	if h.IncludeSubDomains == nil || *h.IncludeSubDomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return v
}

// hstsMaxAge is the max-age directive: the CRD default (a year) when the field is unset.
func hstsMaxAge(h packnowv1alpha1.HSTSSpec) int32 {
	if h.MaxAgeSeconds == nil {
		return 31536000
	}
	return *h.MaxAgeSeconds
}

// corsAllowedHeaders are the request headers the API's browser clients send cross-origin.
var corsAllowedHeaders = []string{"Authorization", "Content-Type"}

// corsMethods are the allowed methods, with the CRD's default when the list is empty.
func corsMethods(app *packnowv1alpha1.PackNowApp) []string {
	if m := app.Spec.CORS.AllowedMethods; len(m) > 0 {
		return m
	}
	return []string{"GET", "POST", "PUT", "DELETE", "PATCH"}
}

func corsCredentials(app *packnowv1alpha1.PackNowApp) bool {
	return app.Spec.CORS.AllowCredentials == nil || *app.Spec.CORS.AllowCredentials
}

// edgeURL is where the API is reachable from outside: the first public host over HTTPS.
func edgeURL(app *packnowv1alpha1.PackNowApp) string {
	return "https://" + app.Spec.Ingress.Hosts[0]
}

// rateLimitNote is said in the EdgeReady message of every provider, so the user knows where spec.rateLimit is
// enforced.
func rateLimitNote(app *packnowv1alpha1.PackNowApp) string {
	return fmt.Sprintf("spec.rateLimit (%d requests/minute) is enforced by the API's Redis limiter, global across replicas",
		app.Spec.RateLimit.RequestsPerMinute)
}

// Edge provider kinds whose CRDs a cluster may lack.
var (
	httpRouteGVK = gatewayv1.SchemeGroupVersion.WithKind("HTTPRoute")
	// edgeCRDs are the CRDs whose appearance the reconciler watches for.
	edgeCRDs = map[string]schema.GroupVersionKind{
		"httproutes.gateway.networking.k8s.io": httpRouteGVK,
		"middlewares.traefik.io":               middlewareGVK,
	}
	crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
)

// Condition reasons of EdgeReady.
const (
	ReasonProviderNotInstalled = "ProviderNotInstalled"
	ReasonRouteAccepted        = "Accepted"
	ReasonRoutePending         = "Pending"
	ReasonIngressApplied       = "IngressApplied"
)

// edgeObservation is what the edge reconcile found: the EdgeReady condition and whether an edge object exists.
type edgeObservation struct {
	status  metav1.ConditionStatus
	reason  string
	message string
	// published is true when the edge objects are in place, so status.url is the public one.
	published bool
}

// edgeWatches knows which provider kinds the cluster serves, and starts the watch of each when it first
// finds it served: at start, or on the reconcile that a provider CRD's appearance triggers. Objects of those
// kinds are read through a cache of their own, narrowed to the operator's label, since the manager's cache
// options are fixed before the kinds may exist.
type edgeWatches struct {
	mapper meta.RESTMapper
	cache  cache.Cache
	// watch starts the watch of a kind; nil until the controller is built.
	watch func(gvk schema.GroupVersionKind) error

	mu     sync.Mutex
	served map[schema.GroupVersionKind]bool
}

// ensure reports whether the cluster serves gvk, starting its watch the first time it does. A kind not yet
// served costs one discovery request per call, made only by reconciles of apps that ask for it.
func (w *edgeWatches) ensure(gvk schema.GroupVersionKind) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.served[gvk] {
		return true, nil
	}
	if _, err := w.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		if meta.IsNoMatchError(err) {
			return false, nil
		}
		return false, fmt.Errorf("discover %s: %w", gvk.Kind, err)
	}
	if err := w.watch(gvk); err != nil {
		return false, fmt.Errorf("watch %s: %w", gvk.Kind, err)
	}
	w.served[gvk] = true
	return true, nil
}

// isServed reports what ensure last found, without asking the API server.
func (w *edgeWatches) isServed(gvk schema.GroupVersionKind) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.served[gvk]
}

// setupEdge creates the edge cache, starts the watches of the provider kinds already served and watches the
// provider CRDs' metadata, whose appearance enqueues every app with an edge.
func (r *PackNowAppReconciler) setupEdge(mgr ctrl.Manager, c controller.Controller) error {
	edgeCache, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient:           mgr.GetHTTPClient(),
		Scheme:               mgr.GetScheme(),
		Mapper:               mgr.GetRESTMapper(),
		DefaultLabelSelector: k8slabels.SelectorFromSet(k8slabels.Set{LabelManagedBy: ManagedByValue}),
	})
	if err != nil {
		return err
	}
	if err := mgr.Add(edgeCache); err != nil {
		return err
	}
	owner := handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &packnowv1alpha1.PackNowApp{}, handler.OnlyControllerOwner())
	r.edge = &edgeWatches{
		mapper: mgr.GetRESTMapper(),
		cache:  edgeCache,
		served: map[schema.GroupVersionKind]bool{},
		watch: func(gvk schema.GroupVersionKind) error {
			return c.Watch(source.Kind(edgeCache, newEdgeObject(gvk), owner))
		},
	}
	for _, gvk := range edgeCRDs {
		if _, err := r.edge.ensure(gvk); err != nil {
			return err
		}
	}
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(crdGVK)
	isEdgeCRD := predicate.NewPredicateFuncs(func(o client.Object) bool { _, ok := edgeCRDs[o.GetName()]; return ok })
	return c.Watch(source.Kind(mgr.GetCache(), client.Object(crd), handler.EnqueueRequestsFromMapFunc(r.appsWithEdge), isEdgeCRD))
}

// newEdgeObject is an empty object of an edge provider kind.
func newEdgeObject(gvk schema.GroupVersionKind) client.Object {
	if gvk == httpRouteGVK {
		return &gatewayv1.HTTPRoute{}
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u
}

// appsWithEdge maps a provider CRD event to every app that publishes an edge, so that apps waiting for the
// provider pick it up.
func (r *PackNowAppReconciler) appsWithEdge(ctx context.Context, _ client.Object) []reconcile.Request {
	apps := &packnowv1alpha1.PackNowAppList{}
	if err := r.Client.List(ctx, apps); err != nil {
		log.FromContext(ctx).Error(err, "list PackNowApps after a provider CRD changed")
		return nil
	}
	var reqs []reconcile.Request
	for _, a := range apps.Items {
		if a.Spec.Ingress != nil {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)})
		}
	}
	return reqs
}

// reconcileEdge applies the edge objects of the app's provider and deletes those of any other, so that
// removing spec.ingress or switching provider leaves nothing behind.
func (r *PackNowAppReconciler) reconcileEdge(ctx context.Context, app *packnowv1alpha1.PackNowApp) (*edgeObservation, error) {
	in := app.Spec.Ingress
	var obs *edgeObservation
	keep := map[string]bool{}
	switch {
	case in == nil:
	case in.Provider == packnowv1alpha1.ProviderIngress && in.Controller == packnowv1alpha1.ControllerTraefik:
		served, err := r.requireKind(ctx, middlewareGVK)
		if err != nil {
			return nil, err
		}
		if !served {
			obs = notInstalled(app, middlewareGVK, "Traefik's CRDs (the kubernetesCRD provider)")
			break
		}
		for _, m := range desiredMiddlewares(app) {
			if err := r.applyUnstructured(ctx, app, m); err != nil {
				return nil, err
			}
			keep["Middleware/"+m.GetName()] = true
		}
		if err := applyChild(ctx, r, app, &networkingv1.Ingress{}, desiredIngress(app), networkingv1ac.ExtractIngress); err != nil {
			return nil, err
		}
		keep["Ingress"] = true
		obs = &edgeObservation{status: metav1.ConditionTrue, reason: ReasonIngressApplied, published: true, message: fmt.Sprintf(
			"Ingress %[1]s and Middlewares %[1]s (headers, CORS) and %[2]s (rate limit) applied; Traefik must run its kubernetesIngress and kubernetesCRD providers; its rate limit counts per Traefik replica, and %[3]s",
			apiName(app), rateLimitMiddlewareName(app), rateLimitNote(app))}
	case in.Provider == packnowv1alpha1.ProviderIngress:
		if err := applyChild(ctx, r, app, &corev1.ConfigMap{}, desiredHeadersConfigMap(app), corev1ac.ExtractConfigMap); err != nil {
			return nil, err
		}
		if err := applyChild(ctx, r, app, &networkingv1.Ingress{}, desiredIngress(app), networkingv1ac.ExtractIngress); err != nil {
			return nil, err
		}
		keep["ConfigMap"], keep["Ingress"] = true, true
		obs = &edgeObservation{status: metav1.ConditionTrue, reason: ReasonIngressApplied, published: true, message: fmt.Sprintf(
			"Ingress %s applied for ingress-nginx (v1.10 or later), which must allow the response headers of ConfigMap %s: its controller ConfigMap needs global-allowed-response-headers to list %s, and annotations-risk-level at least Medium, or it denies every path of the Ingress; its rate limit counts per controller replica, and %s",
			apiName(app), apiName(app), nginxAllowedHeaders(app), rateLimitNote(app))}
	default:
		served, err := r.requireKind(ctx, httpRouteGVK)
		if err != nil {
			return nil, err
		}
		if !served {
			obs = notInstalled(app, httpRouteGVK, "the Gateway API CRDs (standard channel)")
			break
		}
		live := &gatewayv1.HTTPRoute{}
		found, err := get(ctx, r.edge.cache, app, apiName(app), live)
		if err != nil {
			return nil, err
		}
		if _, err := applyIfChanged(ctx, r, app, live, found, desiredHTTPRoute(app), gatewayv1ac.ExtractHTTPRoute); err != nil {
			return nil, err
		}
		keep["HTTPRoute"] = true
		obs = routeObservation(app, live)
	}
	return obs, r.deleteStaleEdge(ctx, app, keep)
}

// requireKind is whether the provider kind is served. When it is not but its CRD exists, the kind is about
// to be served: an error retries with backoff, which the CRD's events alone would not.
func (r *PackNowAppReconciler) requireKind(ctx context.Context, gvk schema.GroupVersionKind) (bool, error) {
	served, err := r.edge.ensure(gvk)
	if served || err != nil {
		return served, err
	}
	for name, g := range edgeCRDs {
		if g != gvk {
			continue
		}
		crd := &metav1.PartialObjectMetadata{}
		crd.SetGroupVersionKind(crdGVK)
		err := r.Client.Get(ctx, client.ObjectKey{Name: name}, crd)
		if err == nil {
			return false, fmt.Errorf("CRD %s exists but %s is not served yet", name, gvk.Kind)
		}
		return false, client.IgnoreNotFound(err)
	}
	return false, nil
}

func notInstalled(app *packnowv1alpha1.PackNowApp, gvk schema.GroupVersionKind, what string) *edgeObservation {
	return &edgeObservation{status: metav1.ConditionFalse, reason: ReasonProviderNotInstalled, message: fmt.Sprintf(
		"the cluster does not serve %s (%s): install %s; the operator creates the edge of %s when they appear",
		gvk.Kind, gvk.GroupVersion(), what, app.Name)}
}

// routeObservation turns what the Gateway's controller reported about the route into EdgeReady.
func routeObservation(app *packnowv1alpha1.PackNowApp, route *gatewayv1.HTTPRoute) *edgeObservation {
	ref := app.Spec.Ingress.GatewayRef
	gwNamespace := ref.Namespace
	if gwNamespace == "" {
		gwNamespace = app.Namespace
	}
	gateway := gwNamespace + "/" + ref.Name
	noRateLimit := "Gateway API has no rate-limit field: " + rateLimitNote(app)
	obs := &edgeObservation{status: metav1.ConditionFalse, reason: ReasonRoutePending, published: true, message: fmt.Sprintf(
		"waiting for the controller of Gateway %s to accept HTTPRoute %s; %s", gateway, apiName(app), noRateLimit)}
	for _, p := range route.Status.Parents {
		pr := p.ParentRef
		ns := app.Namespace
		if pr.Namespace != nil {
			ns = string(*pr.Namespace)
		}
		if string(pr.Name) != ref.Name || ns != gwNamespace || string(ptr.Deref(pr.SectionName, "")) != ref.SectionName {
			continue
		}
		for _, t := range []gatewayv1.RouteConditionType{gatewayv1.RouteConditionAccepted, gatewayv1.RouteConditionResolvedRefs} {
			c := meta.FindStatusCondition(p.Conditions, string(t))
			switch {
			case c == nil || c.ObservedGeneration < route.Generation:
				return obs
			case c.Status != metav1.ConditionTrue:
				obs.reason = c.Reason
				obs.message = fmt.Sprintf("Gateway %s (%s): %s %s: %s; %s", gateway, p.ControllerName, t, c.Reason, c.Message, noRateLimit)
				return obs
			}
		}
		obs.status, obs.reason = metav1.ConditionTrue, ReasonRouteAccepted
		obs.message = fmt.Sprintf("HTTPRoute %s is accepted by Gateway %s (%s) and its backend resolved; %s",
			apiName(app), gateway, p.ControllerName, noRateLimit)
		return obs
	}
	return obs
}

// deleteStaleEdge deletes the edge objects of providers the app no longer uses; keep names those it does.
// Kinds the cluster does not serve have no objects to delete.
func (r *PackNowAppReconciler) deleteStaleEdge(ctx context.Context, app *packnowv1alpha1.PackNowApp, keep map[string]bool) error {
	type stale struct {
		key    string
		reader client.Reader
		obj    client.Object
	}
	candidates := []stale{
		{"Ingress", r.Client, &networkingv1.Ingress{}},
		{"ConfigMap", r.Client, &corev1.ConfigMap{}},
	}
	if r.edge.isServed(httpRouteGVK) {
		candidates = append(candidates, stale{"HTTPRoute", r.edge.cache, &gatewayv1.HTTPRoute{}})
	}
	if r.edge.isServed(middlewareGVK) {
		for _, name := range []string{apiName(app), rateLimitMiddlewareName(app)} {
			u := newEdgeObject(middlewareGVK).(*unstructured.Unstructured)
			u.SetName(name)
			candidates = append(candidates, stale{"Middleware/" + name, r.edge.cache, u})
		}
	}
	for _, c := range candidates {
		if keep[c.key] {
			continue
		}
		name := c.obj.GetName()
		if name == "" {
			name = apiName(app)
		}
		found, err := get(ctx, c.reader, app, name, c.obj)
		if err != nil || !found {
			if err != nil {
				return err
			}
			continue
		}
		kind := c.obj.GetObjectKind().GroupVersionKind().Kind
		if kind == "" {
			kind = kindOf(r.Client.Scheme(), c.obj)
		}
		uid := c.obj.GetUID()
		if err := r.Client.Delete(ctx, c.obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete %s %s: %w", kind, name, err)
		}
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "Deleted", "Delete",
			"deleted %s %s: spec.ingress no longer asks for it", kind, name)
	}
	return nil
}

// applyUnstructured applies a Traefik object unless the live one already holds every desired field and value.
// A subset check stands in for the typed extraction the other kinds use, which needs the kind's schema.
func (r *PackNowAppReconciler) applyUnstructured(ctx context.Context, app *packnowv1alpha1.PackNowApp, desired *unstructured.Unstructured) error {
	live := newEdgeObject(desired.GroupVersionKind()).(*unstructured.Unstructured)
	found, err := get(ctx, r.edge.cache, app, desired.GetName(), live)
	if err != nil {
		return err
	}
	if found {
		same, err := containsJSON(live.Object, map[string]any{
			"metadata": map[string]any{"labels": desired.GetLabels(), "ownerReferences": desired.Object["metadata"].(map[string]any)["ownerReferences"]},
			"spec":     desired.Object["spec"],
		})
		if err != nil || same {
			return err
		}
	}
	want, err := json.Marshal(desired)
	if err != nil {
		return err
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(desired), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, ReasonApplyFailed, "Apply",
			"could not apply Middleware %s: %v", desired.GetName(), err)
		return fmt.Errorf("apply Middleware %s: %w", desired.GetName(), err)
	}
	// The client decodes the answer into desired.
	prior := r.applied.recordWritten(desired.GetUID(), desired.GetResourceVersion(), sha256.Sum256(want))
	r.tellApplied(ctx, app, found, prior, childChange{kind: "Middleware", name: desired.GetName()})
	return nil
}

// containsJSON reports whether every field of want is in have with the same value, comparing both as JSON so
// that integers and floats of one number match. Lists must match element by element.
func containsJSON(have, want any) (bool, error) {
	var h, w any
	for _, x := range []struct {
		in  any
		out *any
	}{{have, &h}, {want, &w}} {
		raw, err := json.Marshal(x.in)
		if err != nil {
			return false, err
		}
		if err := json.Unmarshal(raw, x.out); err != nil {
			return false, err
		}
	}
	return contains(h, w), nil
}

func contains(have, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !contains(h[k], v) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !contains(h[i], w[i]) {
				return false
			}
		}
		return true
	default:
		return have == want
	}
}

// edgeStatus sets EdgeReady and the public URL. Without spec.ingress there is no EdgeReady; a reconcile that
// stopped before the edge leaves both as they were.
func edgeStatus(app *packnowv1alpha1.PackNowApp, obs *edgeObservation, status *packnowv1alpha1.PackNowAppStatus) {
	switch {
	case app.Spec.Ingress == nil:
		meta.RemoveStatusCondition(&status.Conditions, packnowv1alpha1.ConditionEdgeReady)
	case obs == nil:
		if app.Status.URL != "" {
			status.URL = app.Status.URL
		}
	default:
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: packnowv1alpha1.ConditionEdgeReady, Status: obs.status, Reason: obs.reason, Message: obs.message,
			ObservedGeneration: app.Generation,
		})
		if obs.published {
			status.URL = edgeURL(app)
		}
	}
}
