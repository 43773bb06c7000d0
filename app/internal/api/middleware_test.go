package api_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// securityHeaders are the headers every response must carry, with the defaults' values.
var securityHeaders = map[string]string{
	"X-Content-Type-Options":    "nosniff",
	"X-Frame-Options":           "DENY",
	"X-XSS-Protection":          "1; mode=block",
	"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
	"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
	"Referrer-Policy":           "strict-origin-when-cross-origin",
	"Permissions-Policy":        "geolocation=(), microphone=(), camera=(), payment=()",
}

func wantSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	for name, want := range securityHeaders {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %s = %q, want %q", what, name, got, want)
		}
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: map[string]string{
		// example.com is what e.do sends.
		"ALLOWED_HOSTS": "api.example,example.com", "RATE_LIMIT_LOGIN_PER_MINUTE": "2", "ALLOWED_ORIGINS": "https://app.example",
	}})
	a := e.newActor("user")
	preflight := httptest.NewRequest("OPTIONS", "http://api.example/api/v1/orders", nil)
	preflight.Header.Set("Origin", "https://app.example")
	preflight.Header.Set("Access-Control-Request-Method", "POST")
	badHost := httptest.NewRequest("GET", "http://evil.example/api/v1/users/me", nil)

	tests := []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"success", get("/api/v1/users/me", a.AccessToken), http.StatusOK},
		{"not found", get("/api/v1/nothing", ""), http.StatusNotFound},
		{"method not allowed", httptest.NewRequest("PUT", "http://api.example/api/v1/auth/login", nil), http.StatusMethodNotAllowed},
		{"unauthorized", get("/api/v1/users/me", "not-a-token"), http.StatusUnauthorized},
		{"validation", post("/api/v1/auth/login", `{"phone":"x","password":""}`), http.StatusUnprocessableEntity},
		{"rate limited", post("/api/v1/auth/login", `{"phone":"`+newPhone()+`","password":"x"}`), http.StatusTooManyRequests},
		{"bad host", badHost, http.StatusBadRequest},
		{"preflight", preflight, http.StatusNoContent},
		{"health", get("/healthz", ""), http.StatusOK},
	}
	for _, tt := range tests {
		r := e.send(tt.req)
		if r.Code != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.name, r.Code, tt.status, r.Body)
		}
		wantSecurityHeaders(t, tt.name, r.Header)
	}
}

func get(path, accessToken string) *http.Request {
	req := httptest.NewRequest("GET", "http://api.example"+path, nil)
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	return req
}

func post(path, body string) *http.Request {
	req := httptest.NewRequest("POST", "http://api.example"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

func TestSecurityHeadersFollowTheEnvironment(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: map[string]string{
		"HSTS_MAX_AGE": "0", "FRAME_OPTIONS": "SAMEORIGIN", "REFERRER_POLICY": "no-referrer",
		"CONTENT_SECURITY_POLICY": "default-src 'self'", "PERMISSIONS_POLICY": "camera=()",
	}})
	h := e.send(get("/healthz", "")).want(http.StatusOK).Header
	for name, want := range map[string]string{
		"Strict-Transport-Security": "", "X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "no-referrer",
		"Content-Security-Policy": "default-src 'self'", "Permissions-Policy": "camera=()",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	e = newEnvWith(t, options{environment: map[string]string{"HSTS_PRELOAD": "true", "HSTS_MAX_AGE": "63072000"}})
	if got := e.send(get("/healthz", "")).Header.Get("Strict-Transport-Security"); got != "max-age=63072000; includeSubDomains; preload" {
		t.Errorf("HSTS %q", got)
	}
}

func TestTrustedHosts(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: map[string]string{"ALLOWED_HOSTS": "api.example, *.shop.example"}})
	tests := []struct {
		host, path string
		status     int
	}{
		{"api.example", "/api/v1/orders", http.StatusUnauthorized},
		{"API.Example:8443", "/api/v1/orders", http.StatusUnauthorized},
		{"eu.shop.example", "/api/v1/orders", http.StatusUnauthorized},
		{"a.b.shop.example", "/api/v1/orders", http.StatusUnauthorized},
		{"shop.example", "/api/v1/orders", http.StatusBadRequest},
		{"api.example.evil", "/api/v1/orders", http.StatusBadRequest},
		{"evilapi.example", "/api/v1/orders", http.StatusBadRequest},
		{"10.1.2.3:8000", "/api/v1/orders", http.StatusBadRequest},
		{"", "/api/v1/orders", http.StatusBadRequest},
		// Probes address pods by IP.
		{"10.1.2.3:8000", "/healthz", http.StatusOK},
		{"10.1.2.3:8000", "/metrics", http.StatusOK},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", tt.path, nil)
		req.Host = tt.host
		r := e.send(req)
		if r.Code != tt.status {
			t.Errorf("Host %q %s: status %d, want %d", tt.host, tt.path, r.Code, tt.status)
		}
		if tt.status == http.StatusBadRequest {
			r.wantError(http.StatusBadRequest, "bad_host")
		}
	}
}

func TestGzip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")
	for range 10 {
		e.createOrder(a)
	}
	tests := []struct {
		name       string
		req        func() *http.Request
		compressed bool
	}{
		{"large list", func() *http.Request { return get("/api/v1/orders", a.AccessToken) }, true},
		{"small body", func() *http.Request { return get("/healthz", "") }, false},
		{"login carries tokens", func() *http.Request {
			return post("/api/v1/auth/login", `{"phone":"`+a.Phone+`","password":"`+password+`"}`)
		}, false},
		{"refresh carries tokens", func() *http.Request {
			return post("/api/v1/auth/refresh", `{"refresh_token":"`+a.RefreshToken+`"}`)
		}, false},
	}
	for _, tt := range tests {
		req := tt.req()
		req.Header.Set("Accept-Encoding", "gzip")
		r := e.send(req)
		if r.Code >= 300 {
			t.Fatalf("%s: status %d: %s", tt.name, r.Code, r.Body)
		}
		if got := r.Header.Get("Content-Encoding") == "gzip"; got != tt.compressed {
			t.Errorf("%s: compressed %v, want %v", tt.name, got, tt.compressed)
		}
		if r.Header.Get("No-Gzip-Compression") != "" {
			t.Errorf("%s: the internal no-compression marker leaked", tt.name)
		}
		if tt.compressed {
			zr, err := gzip.NewReader(bytes.NewReader(r.Body))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || !bytes.HasPrefix(plain, []byte(`{"orders":[`)) {
				t.Errorf("%s: gunzipped body %.40q, %v", tt.name, plain, err)
			}
			if !strings.Contains(r.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("%s: Vary %q", tt.name, r.Header.Get("Vary"))
			}
		}
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: map[string]string{"ALLOWED_ORIGINS": "https://app.example,https://www.app.example"}})
	preflight := func(origin, method string) response {
		req := httptest.NewRequest("OPTIONS", "/api/v1/orders", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		return e.send(req)
	}

	r := preflight("https://app.example", "PATCH")
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":      "https://app.example",
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "PATCH",
		"Access-Control-Max-Age":           "600",
		"Access-Control-Allow-Headers":     "authorization, content-type",
	} {
		if got := r.Header.Get(name); got != want {
			t.Errorf("allowed preflight: %s = %q, want %q", name, got, want)
		}
	}

	for _, tt := range []struct{ origin, method string }{
		{"https://evil.example", "POST"},
		{"https://app.example.evil.example", "GET"},
		{"null", "GET"},
		{"https://app.example", "TRACE"},
	} {
		r := preflight(tt.origin, tt.method)
		for name := range r.Header {
			if strings.HasPrefix(name, "Access-Control-Allow-") {
				t.Errorf("preflight from %s for %s got %s", tt.origin, tt.method, name)
			}
		}
	}

	req := get("/healthz", "")
	req.Header.Set("Origin", "https://www.app.example")
	r = e.send(req).want(http.StatusOK)
	if r.Header.Get("Access-Control-Allow-Origin") != "https://www.app.example" ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "X-Ratelimit-Remaining") {
		t.Errorf("simple request: %v", r.Header)
	}

	// rs/cors reads an empty list as "any origin"; ours must mean none.
	none := newEnv(t)
	req = httptest.NewRequest("OPTIONS", "/api/v1/orders", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	if got := none.send(req).Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("no ALLOWED_ORIGINS, yet Access-Control-Allow-Origin %q", got)
	}
}
