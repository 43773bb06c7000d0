package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/packnow/packnow-operator/hack/testenv"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var body map[string]string
	e.do("GET", "/healthz", "", nil).want(http.StatusOK).decode(&body)
	if body["status"] != "ok" {
		t.Fatalf("healthz body %v", body)
	}
}

func TestReadyzChecksPostgresAndRedis(t *testing.T) {
	t.Parallel()
	r, err := testenv.NewRedis()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, options{redisURL: r.URL()})
	e.do("GET", "/readyz", "", nil).want(http.StatusOK)

	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	got := e.do("GET", "/readyz", "", nil).wantError(http.StatusServiceUnavailable, "not_ready", "redis")
	if _, named := got.Error.Fields["postgres"]; named {
		t.Fatal("readyz blames PostgreSQL, which is up")
	}

	e.pool.Close()
	e.do("GET", "/readyz", "", nil).wantError(http.StatusServiceUnavailable, "not_ready", "redis", "postgres")
}

func TestMetricsCountRequestsByRouteAndLoginsByOutcome(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": a.Phone, "password": "Wr0ng&Password"})
	o := e.createOrder(a)
	e.do("GET", "/api/v1/orders/"+o.ID, a.AccessToken, nil).want(http.StatusOK)
	e.do("GET", "/no/such/path", "", nil)

	body := string(e.do("GET", "/metrics", "", nil).want(http.StatusOK).Body)
	for _, want := range []string{
		`packnow_http_requests_total{method="GET",route="GET /api/v1/orders/{id}",status="200"} 1`,
		`packnow_http_requests_total{method="POST",route="POST /api/v1/auth/register",status="201"} 1`,
		`packnow_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`packnow_http_request_duration_seconds_count{method="POST",route="POST /api/v1/auth/login"} 2`,
		`packnow_logins_total{outcome="success"} 1`,
		`packnow_logins_total{outcome="invalid_credentials"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, o.ID) {
		t.Error("metrics are labelled with a raw path")
	}
}

func TestUnknownRoutesAndMethodsGetJSONErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("GET", "/api/v1/nothing-here", "", nil).wantError(http.StatusNotFound, "not_found")
	r := e.do("DELETE", "/api/v1/auth/login", "", nil)
	r.wantError(http.StatusMethodNotAllowed, "method_not_allowed")
	if r.Header.Get("Allow") == "" {
		t.Fatal("405 without an Allow header")
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

func TestDocsOnlyInDebugMode(t *testing.T) {
	t.Parallel()
	production := newEnv(t)
	for _, path := range []string{"/api/docs", "/api/openapi.json"} {
		production.do("GET", path, "", nil).wantError(http.StatusNotFound, "not_found")
	}

	debug := newEnvWith(t, options{debug: true})
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	r := debug.do("GET", "/api/openapi.json", "", nil).want(http.StatusOK)
	r.decode(&doc)
	if doc.OpenAPI == "" || doc.Paths["/api/v1/orders/{id}/accept"] == nil {
		t.Fatalf("not the OpenAPI document: %.200s", r.Body)
	}
	page := debug.do("GET", "/api/docs", "", nil).want(http.StatusOK)
	html := string(page.Body)
	if ct := page.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if !strings.Contains(html, "/api/v1/orders/{id}/accept") || !strings.Contains(html, "Log in") {
		t.Fatalf("the page does not list the endpoints:\n%.500s", html)
	}
	// Nothing is loaded from anywhere: no scripts, no external references, and a CSP that
	// allows only the page's own inline stylesheet.
	for _, banned := range []string{"<script", "src=", "http://", "https://", "<link"} {
		if strings.Contains(html, banned) {
			t.Errorf("the docs page contains %q", banned)
		}
	}
	csp := page.Header.Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'none'; style-src 'sha256-") || strings.Contains(csp, "script-src") {
		t.Fatalf("docs CSP %q", csp)
	}
}

func TestInternalErrorsStayInternalUnlessDebug(t *testing.T) {
	t.Parallel()
	for _, debug := range []bool{false, true} {
		e := newEnvWith(t, options{debug: debug})
		a := e.newActor("user")
		e.pool.Close()
		got := e.do("GET", "/api/v1/users/me", a.AccessToken, nil).wantError(http.StatusInternalServerError, "internal")
		leaked := strings.Contains(got.Error.Message, "closed pool")
		if leaked != debug {
			t.Fatalf("debug=%v: message %q", debug, got.Error.Message)
		}
	}
}
