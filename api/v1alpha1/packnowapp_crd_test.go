package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/hack/testenv"
)

var k8s client.Client

func TestMain(m *testing.M) {
	srv, err := testenv.StartAPIServer(testenv.APIServerOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s = srv.Client
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

// minimalSpec is the least a user has to write.
const minimalSpec = `{"database": {"host": "pg.example"}, "redis": {"host": "redis.example"}}`

func newApp(t *testing.T, name, specJSON string) *unstructured.Unstructured {
	t.Helper()
	var spec map[string]any
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind("PackNowApp")
	u.SetNamespace("default")
	u.SetName(name)
	return u
}

func TestSampleIsAcceptedAsWritten(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", "packnow_v1alpha1_packnowapp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetNamespace("default")
	u.SetName("sample")
	if err := k8s.Create(context.Background(), u); err != nil {
		t.Fatalf("the sample is rejected: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), u) })

	var app v1alpha1.PackNowApp
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(u), &app); err != nil {
		t.Fatal(err)
	}
	if got := app.Spec.CORS.AllowedOrigins; len(got) != 1 || got[0] != "https://app.packnow.example" {
		t.Errorf("allowedOrigins = %v", got)
	}
}

func TestAPIServerFillsEveryDefault(t *testing.T) {
	ctx := context.Background()
	u := newApp(t, "defaults", minimalSpec)
	if err := k8s.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, u) })

	var got v1alpha1.PackNowApp
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(u), &got); err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal(got.Spec)
	want := `{
	  "replicas": 2, "resources": {},
	  "auth": {"accessTokenTTL": "15m0s", "refreshTokenTTL": "168h0m0s", "algorithm": "HS256"},
	  "secretKey": {"rotationPeriod": "2160h0m0s", "length": 64},
	  "database": {"host": "pg.example", "port": 5432, "name": "packnow", "user": "packnow", "sslMode": "require",
	               "retainOnDelete": true},
	  "redis": {"host": "redis.example", "port": 6379, "retainOnDelete": true},
	  "cors": {"allowedMethods": ["GET", "POST", "PUT", "DELETE", "PATCH"], "allowCredentials": true,
	           "maxAgeSeconds": 600},
	  "rateLimit": {"requestsPerMinute": 60, "burst": 10},
	  "securityHeaders": {
	    "hsts": {"maxAgeSeconds": 31536000, "includeSubDomains": true},
	    "contentSecurityPolicy": "default-src 'none'; frame-ancestors 'none'",
	    "frameOptions": "DENY", "referrerPolicy": "strict-origin-when-cross-origin",
	    "permissionsPolicy": "geolocation=(), microphone=(), camera=(), payment=()"},
	  "podSecurity": {"mode": "Enforce", "level": "NonRoot"}
	}`
	var wantSpec, gotSpec map[string]any
	if err := json.Unmarshal([]byte(want), &wantSpec); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(gotJSON, &gotSpec); err != nil {
		t.Fatal(err)
	}
	wantNorm, _ := json.Marshal(wantSpec)
	gotNorm, _ := json.Marshal(gotSpec)
	if string(wantNorm) != string(gotNorm) {
		t.Errorf("defaulted spec\n got: %s\nwant: %s", gotNorm, wantNorm)
	}
}

func TestIngressDefaults(t *testing.T) {
	ctx := context.Background()
	u := newApp(t, "edge-defaults", `{"database": {"host": "pg"}, "redis": {"host": "redis"},
		"ingress": {"hosts": ["api.example.com"], "gatewayRef": {"name": "public"}}}`)
	if err := k8s.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, u) })
	var got v1alpha1.PackNowApp
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(u), &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Ingress.Provider != v1alpha1.ProviderGatewayAPI || got.Spec.Ingress.Controller != v1alpha1.ControllerNginx {
		t.Errorf("ingress defaults: provider %q controller %q", got.Spec.Ingress.Provider, got.Spec.Ingress.Controller)
	}
}

// TestAPIServerRejectsInvalidApps: each invalid PackNowApp is refused by the API server (OpenAPI schema and CEL
// rules of the CRD, no webhook) with an error naming the offending field.
func TestAPIServerRejectsInvalidApps(t *testing.T) {
	const db = `"database": {"host": "pg"}, "redis": {"host": "redis"}`
	cases := []struct {
		name, spec, field string
	}{
		{"rotation period under 24h", `{` + db + `, "secretKey": {"rotationPeriod": "23h"}}`,
			"spec.secretKey.rotationPeriod"},
		{"rotation period not a duration", `{` + db + `, "secretKey": {"rotationPeriod": "90 days"}}`,
			"spec.secretKey.rotationPeriod"},
		{"key length under 64", `{` + db + `, "secretKey": {"length": 32}}`, "spec.secretKey.length"},
		{"wildcard origin with credentials", `{` + db + `, "cors": {"allowedOrigins": ["*"]}}`,
			"spec.cors.allowedOrigins"},
		{"malformed origin URL", `{` + db + `, "cors": {"allowedOrigins": ["app.example.com/path"]}}`,
			"spec.cors.allowedOrigins[0]"},
		{"origin with a path", `{` + db + `, "cors": {"allowedOrigins": ["https://app.example.com/x"]}}`,
			"spec.cors.allowedOrigins[0]"},
		{"unknown CORS method", `{` + db + `, "cors": {"allowedMethods": ["TRACE"]}}`, "spec.cors.allowedMethods[0]"},
		{"replicas 0", `{` + db + `, "replicas": 0}`, "spec.replicas"},
		{"unknown algorithm", `{` + db + `, "auth": {"algorithm": "RS256"}}`, "spec.auth.algorithm"},
		{"none algorithm", `{` + db + `, "auth": {"algorithm": "none"}}`, "spec.auth.algorithm"},
		{"access TTL not shorter than refresh TTL", `{` + db + `, "auth": {"accessTokenTTL": "24h", "refreshTokenTTL": "24h"}}`,
			"spec.auth.accessTokenTTL"},
		{"access TTL in seconds", `{` + db + `, "auth": {"accessTokenTTL": "90s"}}`, "spec.auth.accessTokenTTL"},
		{"refresh TTL not whole days", `{` + db + `, "auth": {"refreshTokenTTL": "36h"}}`, "spec.auth.refreshTokenTTL"},
		{"bad sslMode", `{"database": {"host": "pg", "sslMode": "on"}, "redis": {"host": "redis"}}`,
			"spec.database.sslMode"},
		{"bad database port", `{"database": {"host": "pg", "port": 70000}, "redis": {"host": "redis"}}`,
			"spec.database.port"},
		{"bad redis port", `{"database": {"host": "pg"}, "redis": {"host": "redis", "port": 0}}`, "spec.redis.port"},
		{"redis db out of range", `{"database": {"host": "pg"}, "redis": {"host": "redis", "db": 16}}`, "spec.redis.db"},
		{"database without host or existingSecret", `{"database": {}, "redis": {"host": "redis"}}`,
			"spec.database.host"},
		{"database host with a slash", `{"database": {"host": "pg/evil"}, "redis": {"host": "redis"}}`,
			"spec.database.host"},
		{"frame options ALLOW-FROM", `{` + db + `, "securityHeaders": {"frameOptions": "ALLOW-FROM https://x"}}`,
			"spec.securityHeaders.frameOptions"},
		{"CR LF in a header value", `{` + db + `, "securityHeaders": {"contentSecurityPolicy": "default-src 'none'\r\nSet-Cookie: a=b"}}`,
			"spec.securityHeaders.contentSecurityPolicy"},
		{"negative HSTS max-age", `{` + db + `, "securityHeaders": {"hsts": {"maxAgeSeconds": -1}}}`,
			"spec.securityHeaders.hsts.maxAgeSeconds"},
		{"unknown referrer policy", `{` + db + `, "securityHeaders": {"referrerPolicy": "unsafe-url"}}`,
			"spec.securityHeaders.referrerPolicy"},
		{"Gateway API without gatewayRef", `{` + db + `, "ingress": {"hosts": ["api.example.com"]}}`,
			"spec.ingress.gatewayRef"},
		{"TLS secret on Gateway API", `{` + db + `, "ingress": {"hosts": ["api.example.com"], "gatewayRef": {"name": "gw"}, "tlsSecretName": "tls"}}`,
			"spec.ingress.tlsSecretName"},
		{"unknown provider", `{` + db + `, "ingress": {"provider": "Istio", "hosts": ["api.example.com"]}}`,
			"spec.ingress.provider"},
		{"ingress without hosts", `{` + db + `, "ingress": {"provider": "Ingress", "hosts": []}}`, "spec.ingress.hosts"},
		{"upper-case ingress host", `{` + db + `, "ingress": {"provider": "Ingress", "hosts": ["API.example.com"]}}`,
			"spec.ingress.hosts[0]"},
		{"allowed host with a port and path", `{` + db + `, "allowedHosts": ["api.example.com/x"]}`, "spec.allowedHosts[0]"},
		{"unknown pod security mode", `{` + db + `, "podSecurity": {"mode": "Deny"}}`, "spec.podSecurity.mode"},
		{"rate limit 0", `{` + db + `, "rateLimit": {"requestsPerMinute": 0}}`, "spec.rateLimit.requestsPerMinute"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := newApp(t, fmt.Sprintf("invalid-%d", i), tc.spec)
			err := k8s.Create(context.Background(), u)
			if err == nil {
				_ = k8s.Delete(context.Background(), u)
				t.Fatalf("accepted; want a rejection naming %s", tc.field)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.field+":") {
				t.Errorf("error does not name %s:\n%v", tc.field, err)
			}
		})
	}
}

// TestEdgeStringsRejectHeaderInjection: every string that reaches a response header, an Ingress annotation or
// an edge object's name is refused when it could break out of its line or list.
func TestEdgeStringsRejectHeaderInjection(t *testing.T) {
	const db = `"database": {"host": "pg"}, "redis": {"host": "redis"}`
	hostile := []string{"a\r\nSet-Cookie: x=y", "a\nX-Injected: 1", "a\rb", "a\u0000b", "a\tb", "a\u0085b"}
	fields := []struct {
		name, field string
		spec        func(v string) string
	}{
		{"CSP", "spec.securityHeaders.contentSecurityPolicy", func(v string) string {
			return `{` + db + `, "securityHeaders": {"contentSecurityPolicy": ` + v + `}}`
		}},
		{"permissions policy", "spec.securityHeaders.permissionsPolicy", func(v string) string {
			return `{` + db + `, "securityHeaders": {"permissionsPolicy": ` + v + `}}`
		}},
		{"frame options", "spec.securityHeaders.frameOptions", func(v string) string {
			return `{` + db + `, "securityHeaders": {"frameOptions": ` + v + `}}`
		}},
		{"origin", "spec.cors.allowedOrigins[0]", func(v string) string {
			return `{` + db + `, "cors": {"allowedOrigins": [` + v + `]}}`
		}},
		{"ingress host", "spec.ingress.hosts[0]", func(v string) string {
			return `{` + db + `, "ingress": {"provider": "Ingress", "hosts": [` + v + `]}}`
		}},
		{"allowed host", "spec.allowedHosts[0]", func(v string) string { return `{` + db + `, "allowedHosts": [` + v + `]}` }},
		{"TLS secret", "spec.ingress.tlsSecretName", func(v string) string {
			return `{` + db + `, "ingress": {"provider": "Ingress", "hosts": ["api.example.com"], "tlsSecretName": ` + v + `}}`
		}},
		{"ingress class", "spec.ingress.ingressClassName", func(v string) string {
			return `{` + db + `, "ingress": {"provider": "Ingress", "hosts": ["api.example.com"], "ingressClassName": ` + v + `}}`
		}},
		{"gateway name", "spec.ingress.gatewayRef.name", func(v string) string {
			return `{` + db + `, "ingress": {"hosts": ["api.example.com"], "gatewayRef": {"name": ` + v + `}}}`
		}},
		{"gateway namespace", "spec.ingress.gatewayRef.namespace", func(v string) string {
			return `{` + db + `, "ingress": {"hosts": ["api.example.com"], "gatewayRef": {"name": "gw", "namespace": ` + v + `}}}`
		}},
		{"listener", "spec.ingress.gatewayRef.sectionName", func(v string) string {
			return `{` + db + `, "ingress": {"hosts": ["api.example.com"], "gatewayRef": {"name": "gw", "sectionName": ` + v + `}}}`
		}},
	}
	n := 0
	for _, f := range fields {
		for _, v := range hostile {
			n++
			t.Run(fmt.Sprintf("%s %q", f.name, v), func(t *testing.T) {
				quoted, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				u := newApp(t, fmt.Sprintf("hostile-%d", n), f.spec(string(quoted)))
				err = k8s.Create(context.Background(), u)
				if err == nil {
					_ = k8s.Delete(context.Background(), u)
					t.Fatalf("accepted; want a rejection naming %s", f.field)
				}
				if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), f.field) {
					t.Errorf("want an Invalid error naming %s, got %v", f.field, err)
				}
			})
		}
	}
	t.Run("wildcard origin among others", func(t *testing.T) {
		u := newApp(t, "hostile-wildcard", `{`+db+`, "cors": {"allowCredentials": false, "allowedOrigins": ["*", "https://a.example"]}}`)
		if err := k8s.Create(context.Background(), u); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.cors.allowedOrigins") {
			t.Errorf("want an Invalid error naming spec.cors.allowedOrigins, got %v", err)
		}
	})
}

// TestStatusIsASubresource: a spec update cannot write status and a status update cannot write spec.
func TestStatusIsASubresource(t *testing.T) {
	ctx := context.Background()
	u := newApp(t, "subresource", minimalSpec)
	if err := k8s.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, u) })
	var app v1alpha1.PackNowApp
	key := client.ObjectKeyFromObject(u)
	if err := k8s.Get(ctx, key, &app); err != nil {
		t.Fatal(err)
	}

	app.Spec.Replicas = ptr(int32(3))
	app.Status.URL = "http://written-through-spec"
	if err := k8s.Update(ctx, &app); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, key, &app); err != nil {
		t.Fatal(err)
	}
	if *app.Spec.Replicas != 3 || app.Status.URL != "" {
		t.Fatalf("after a spec update: replicas %d, status.url %q (status must not be written)", *app.Spec.Replicas, app.Status.URL)
	}

	app.Spec.Replicas = ptr(int32(5))
	app.Status.URL = "http://subresource.default.svc"
	app.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: "Test", Message: "written through status", LastTransitionTime: metav1.Now()}}
	if err := k8s.Status().Update(ctx, &app); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, key, &app); err != nil {
		t.Fatal(err)
	}
	if *app.Spec.Replicas != 3 || app.Status.URL != "http://subresource.default.svc" {
		t.Fatalf("after a status update: replicas %d (spec must not be written), status.url %q", *app.Spec.Replicas, app.Status.URL)
	}
}

func ptr[T any](v T) *T { return &v }

// TestEveryFieldIsDocumented keeps `kubectl explain packnowapp --recursive` a manual: every property of the
// generated schema has a description.
func TestEveryFieldIsDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", "packnow.io_packnowapps.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	var undocumented []string
	var walk func(path string, schema map[string]any)
	walk = func(path string, schema map[string]any) {
		props, _ := schema["properties"].(map[string]any)
		for name, p := range props {
			prop := p.(map[string]any)
			if d, _ := prop["description"].(string); strings.TrimSpace(d) == "" {
				undocumented = append(undocumented, path+"."+name)
			}
			walk(path+"."+name, prop)
			if items, ok := prop["items"].(map[string]any); ok {
				walk(path+"."+name+"[]", items)
			}
		}
	}
	root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema["properties"].(map[string]any)
	for _, top := range []string{"spec", "status"} {
		walk("."+top, root[top].(map[string]any))
	}
	if len(undocumented) > 0 {
		t.Errorf("fields without a description: %v", undocumented)
	}
}

// TestTypedClientGetsDefaults: a Go program that fills in only the required fields gets the same defaults as a
// YAML user, so zero values of optional fields must not be sent.
func TestTypedClientGetsDefaults(t *testing.T) {
	ctx := context.Background()
	app := &v1alpha1.PackNowApp{
		ObjectMeta: metav1.ObjectMeta{Name: "typed", Namespace: "default"},
		Spec: v1alpha1.PackNowAppSpec{
			Database: v1alpha1.DatabaseSpec{Host: "pg.example"},
			Redis:    v1alpha1.RedisSpec{Host: "redis.example"},
		},
	}
	if err := k8s.Create(ctx, app); err != nil {
		t.Fatalf("a typed client's minimal app is rejected: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, app) })
	s := app.Spec
	if s.SecretKey.RotationPeriod.Duration.Hours() != 2160 || s.Auth.AccessTokenTTL.Duration.Minutes() != 15 ||
		*s.CORS.AllowCredentials != true || *s.SecurityHeaders.HSTS.MaxAgeSeconds != 31536000 || *s.Replicas != 2 {
		t.Errorf("defaults missing for a typed client: %+v", s)
	}
}
