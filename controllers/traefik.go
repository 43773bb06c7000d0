package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// middlewareGVK is Traefik's Middleware, built as unstructured so that the operator does not depend on the
// Traefik module.
var middlewareGVK = schema.GroupVersionKind{Group: "traefik.io", Version: "v1alpha1", Kind: "Middleware"}

// rateLimitMiddlewareName is the second Middleware: Traefik refuses a Middleware that declares more than one
// middleware type, so headers and rate limit cannot share one.
func rateLimitMiddlewareName(app *packnowv1alpha1.PackNowApp) string {
	return apiName(app) + "-ratelimit"
}

// desiredMiddlewares are the Traefik Middlewares the Ingress's router.middlewares annotation chains: the
// security headers and CORS (`<name>-api`), and the rate limit.
func desiredMiddlewares(app *packnowv1alpha1.PackNowApp) []*unstructured.Unstructured {
	return []*unstructured.Unstructured{
		middleware(app, apiName(app), map[string]any{"headers": traefikHeaders(app)}),
		middleware(app, rateLimitMiddlewareName(app), map[string]any{"rateLimit": map[string]any{
			"average": int64(app.Spec.RateLimit.RequestsPerMinute),
			"period":  "1m",
			// Traefik's burst is at least one request.
			"burst": int64(max(app.Spec.RateLimit.Burst, 1)),
		}}),
	}
}

func traefikHeaders(app *packnowv1alpha1.PackNowApp) map[string]any {
	sh := app.Spec.SecurityHeaders
	h := map[string]any{
		"contentSecurityPolicy": sh.ContentSecurityPolicy,
		"contentTypeNosniff":    true,
		"browserXssFilter":      true,
		"referrerPolicy":        sh.ReferrerPolicy,
		"permissionsPolicy":     sh.PermissionsPolicy,
	}
	if sh.FrameOptions == "DENY" {
		h["frameDeny"] = true
	} else {
		h["customFrameOptionsValue"] = sh.FrameOptions
	}
	if maxAge := hstsMaxAge(sh.HSTS); maxAge > 0 {
		h["stsSeconds"] = int64(maxAge)
		h["stsIncludeSubdomains"] = sh.HSTS.IncludeSubDomains == nil || *sh.HSTS.IncludeSubDomains
		h["stsPreload"] = sh.HSTS.Preload
	}
	if c := app.Spec.CORS; len(c.AllowedOrigins) > 0 {
		h["accessControlAllowOriginList"] = toAny(c.AllowedOrigins)
		h["accessControlAllowMethods"] = toAny(corsMethods(app))
		h["accessControlAllowHeaders"] = toAny(corsAllowedHeaders)
		h["accessControlAllowCredentials"] = corsCredentials(app)
		h["accessControlMaxAge"] = int64(c.MaxAgeSeconds)
	}
	return h
}

func middleware(app *packnowv1alpha1.PackNowApp, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(middlewareGVK)
	u.SetNamespace(app.Namespace)
	u.SetName(name)
	u.SetLabels(labels(app))
	o := ownerReference(app)
	u.SetOwnerReferences([]metav1.OwnerReference{{
		APIVersion: *o.APIVersion, Kind: *o.Kind, Name: *o.Name, UID: *o.UID,
		Controller: o.Controller, BlockOwnerDeletion: o.BlockOwnerDeletion,
	}})
	return u
}

// toAny turns a string list into the []any that unstructured content holds.
func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
