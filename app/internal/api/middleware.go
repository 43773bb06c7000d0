package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzhttp"
	"github.com/rs/cors"
	"github.com/unrolled/secure"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	logins   *prometheus.CounterVec
}

// newMetrics gives each server its own registry, so that several servers (in tests) never clash.
func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "packnow_http_requests_total",
			Help: "HTTP requests by method, route pattern and status code.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "packnow_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by method and route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "packnow_logins_total",
			Help: "Login attempts by outcome (success, invalid_credentials, invalid_request, locked).",
		}, []string{"outcome"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.logins,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter {
	return r.ResponseWriter
}

// instrument counts and times requests by route pattern, never by raw path, so that ids in
// URLs cannot blow up the number of series.
func (s *server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		route := requestInfoOf(r).route
		if route == "" {
			route = "unmatched"
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(r.Method, route, strconv.Itoa(rec.status)).Inc()
		s.metrics.latency.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
	})
}

// middleware wraps the mux in the stack of seed-security.md section 7, in its order (trusted
// host, gzip, security headers, rate limit, request log, CORS), inside two layers of
// bookkeeping (request identity, metrics) and around panic recovery.
func (s *server) middleware(mux *http.ServeMux) http.Handler {
	h := s.recoverPanics(s.jsonFallback(mux))
	h = s.cors(h)
	h = s.logRequests(h)
	h = s.rateLimit(h)
	headers := s.securityHeaders()
	h = headers(h)
	h = s.compress(h)
	h = s.trustedHosts(h, headers)
	h = s.instrument(h)
	return s.identify(mux, h)
}

// probeRoutes answer whatever Host they are asked with: the kubelet and Prometheus address pods
// by IP, which no ALLOWED_HOSTS lists, and these routes build nothing from the Host header.
var probeRoutes = map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true}

// trustedHosts answers 400 to a Host header not in ALLOWED_HOSTS, so that nothing built from
// the Host (links, redirects, cache keys) can be steered by a client. An empty list or "*"
// accepts any host. Entries match with any port; a leading "*." matches any subdomain.
func (s *server) trustedHosts(next http.Handler, headers func(http.Handler) http.Handler) http.Handler {
	var patterns []string
	for _, h := range s.cfg.AllowedHosts {
		if h == "*" {
			return next
		}
		p := regexp.QuoteMeta(strings.ToLower(h))
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			p = `(?:[a-z0-9-]+\.)+` + regexp.QuoteMeta(strings.ToLower(rest))
		}
		patterns = append(patterns, `(?i)`+p+`(?::[0-9]+)?`)
	}
	if len(patterns) == 0 {
		return next
	}
	check := secure.New(secure.Options{AllowedHosts: patterns, AllowedHostsAreRegex: true})
	check.SetBadHostHandler(headers(s.handle(func(http.ResponseWriter, *http.Request) error {
		return &Error{Status: http.StatusBadRequest, Code: "bad_host", Message: "the Host header names no host this API serves"}
	})))
	checked := check.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if probeRoutes[requestInfoOf(r).route] {
			next.ServeHTTP(w, r)
			return
		}
		checked.ServeHTTP(w, r)
	})
}

// noCompression marks a response that must not be compressed: one carrying tokens. Compressing
// a secret next to text an attacker can influence leaks the secret through the compressed
// length (BREACH).
func noCompression(w http.ResponseWriter) {
	w.Header().Set(gzhttp.HeaderNoCompression, "1")
}

// compress gzips responses of 1 KiB and more for clients that accept it.
func (s *server) compress(next http.Handler) http.Handler {
	wrap, err := gzhttp.NewWrapper(gzhttp.EnableZstd(false))
	if err != nil {
		panic(fmt.Sprintf("api: gzip options: %v", err))
	}
	return wrap(next)
}

// securityHeaders returns the layer that sets the security headers before anything inside it
// writes, so that every response carries them, errors and refusals included. HSTS is sent over
// plain HTTP too: TLS ends at the edge, and browsers ignore it on plain HTTP anyway.
func (s *server) securityHeaders() func(http.Handler) http.Handler {
	c := s.cfg.Headers
	sec := secure.New(secure.Options{
		ContentTypeNosniff:      true,
		BrowserXssFilter:        true,
		CustomFrameOptionsValue: c.FrameOptions,
		STSSeconds:              c.HSTSMaxAge,
		STSIncludeSubdomains:    c.HSTSIncludeSubdomains,
		STSPreload:              c.HSTSPreload,
		ForceSTSHeader:          true,
		ContentSecurityPolicy:   c.ContentSecurityPolicy,
		ReferrerPolicy:          c.ReferrerPolicy,
		PermissionsPolicy:       c.PermissionsPolicy,
	})
	return sec.Handler
}

// logRequests writes one JSON line per request. It logs the route pattern, not the path, and
// the client as a keyed hash: never addresses, tokens, passwords or phone numbers.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		info := requestInfoOf(r)
		s.logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("route", info.route),
			slog.Int("status", rec.status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("request_id", info.id),
			slog.String("client", info.client))
	})
}

// cors answers preflights and marks cross-origin responses for the origins in ALLOWED_ORIGINS
// only. rs/cors treats an empty list as "every origin", so an empty list is turned into none.
func (s *server) cors(next http.Handler) http.Handler {
	opts := cors.Options{
		AllowedOrigins:   s.cfg.AllowedOrigins,
		AllowedMethods:   s.cfg.CORS.AllowedMethods,
		AllowedHeaders:   []string{"Authorization", "Content-Type", "X-Request-ID"},
		ExposedHeaders:   []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After", "X-Request-ID"},
		AllowCredentials: s.cfg.CORS.AllowCredentials,
		MaxAge:           s.cfg.CORS.MaxAge,
	}
	if len(opts.AllowedOrigins) == 0 {
		opts.AllowOriginFunc = func(string) bool { return false }
	}
	return cors.New(opts).Handler(next)
}

// recoverPanics turns a panic into the generic 500; the stack goes to the log, never to the
// client.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger.ErrorContext(r.Context(), "panic serving request", "route", requestInfoOf(r).route,
					"request_id", requestInfoOf(r).id, "stack", string(debug.Stack()))
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// jsonFallback answers requests no route matches (404) or whose method no route allows (405)
// in the API's JSON error shape instead of the mux's plain text.
func (s *server) jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &headerOnly{header: w.Header()}
		mux.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusNotFound:
			s.writeError(w, r, errNotFound)
		case http.StatusMethodNotAllowed:
			s.writeError(w, r, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
				Message: r.Method + " is not allowed here"})
		default:
			// A redirect to the clean path: its headers are already in w.
			w.WriteHeader(rec.status)
		}
	})
}

// headerOnly lets the mux set headers and a status but drops its plain-text body.
type headerOnly struct {
	header http.Header
	status int
}

func (h *headerOnly) Header() http.Header { return h.header }

func (h *headerOnly) WriteHeader(code int) { h.status = code }

func (h *headerOnly) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return len(b), nil
}
