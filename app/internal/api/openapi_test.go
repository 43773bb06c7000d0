package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/packnow/packnow-operator/app/internal/config"
)

// routeList records the patterns routes registers.
type routeList []string

func (l *routeList) Handle(pattern string, _ http.Handler) { *l = append(*l, pattern) }

func testConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	base := map[string]string{
		"SECRET_KEY":   strings.Repeat("k", 64),
		"DATABASE_URL": "postgres://unused",
		"REDIS_URL":    "redis://unused",
		"BCRYPT_COST":  "4",
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := config.Load(func(k string) string { return base[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestOpenAPIDocumentsEveryRouteAndNothingElse(t *testing.T) {
	s := &server{debug: true, metrics: newMetrics()}
	var routes routeList
	s.routes(&routes)

	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want an OpenAPI 3 document", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	for _, r := range routes {
		if !documented[r] {
			t.Errorf("route %q is not in openapi.json", r)
		}
		delete(documented, r)
	}
	for op := range documented {
		t.Errorf("openapi.json documents %q, which routes.go does not serve", op)
	}
}

func TestProductionServesNoDocs(t *testing.T) {
	s := &server{debug: false, metrics: newMetrics()}
	var routes routeList
	s.routes(&routes)
	for _, r := range routes {
		if strings.Contains(r, "/api/docs") || strings.Contains(r, "/api/openapi.json") {
			t.Errorf("DEBUG false registers %q", r)
		}
	}
}

// TestPanicsBecomeTheGeneric500 runs a panicking handler through the whole stack: the client
// gets the usual error shape with the security headers, and the stack goes only to the log.
func TestPanicsBecomeTheGeneric500(t *testing.T) {
	for _, debug := range []bool{false, true} {
		var logs strings.Builder
		s := &server{
			debug:   debug,
			cfg:     testConfig(t, nil),
			logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
			metrics: newMetrics(),
		}
		mux := http.NewServeMux()
		// A probe route, so that no rate limit (and no Redis) is involved.
		mux.Handle("GET /healthz", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			panic("kaboom at a secret place")
		}))
		rec := httptest.NewRecorder()
		s.middleware(mux).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != http.StatusInternalServerError || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("debug=%v: %d %q", debug, rec.Code, rec.Header().Get("Content-Type"))
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("debug=%v: 500 without security headers: %v", debug, rec.Header())
		}
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != "internal" {
			t.Fatalf("debug=%v: body %s", debug, body)
		}
		if strings.Contains(string(body), "goroutine") || strings.Contains(string(body), ".go:") {
			t.Errorf("debug=%v: stack trace in the response: %s", debug, body)
		}
		if leaked := strings.Contains(e.Error.Message, "secret place"); leaked != debug {
			t.Errorf("debug=%v: message %q", debug, e.Error.Message)
		}
		if !strings.Contains(logs.String(), "goroutine") {
			t.Errorf("debug=%v: the stack is not in the log", debug)
		}
	}
}
