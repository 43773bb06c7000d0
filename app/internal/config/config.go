// Package config reads the API's settings from the environment (names and defaults are the
// "App environment" contract in CONVENTIONS) and reports every problem at once.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/packnow/packnow-operator/app/keyring"
)

// Config is the validated configuration of the API process.
type Config struct {
	Keys             keyring.Set
	Debug            bool
	AllowedOrigins   []string
	AllowedHosts     []string
	AccessTokenTTL   time.Duration
	RefreshTokenTTL  time.Duration
	Algorithm        string
	DatabaseURL      string
	DatabaseMaxConns int32
	RedisURL         string
	RateLimit        RateLimit
	CORS             CORS
	Headers          Headers
	// TrustedProxies are the peers whose X-Forwarded-For is believed; empty means the client
	// is always the socket's peer.
	TrustedProxies    []netip.Prefix
	BcryptCost        int
	BcryptConcurrency int
	LockoutThreshold  int
	LockoutDuration   time.Duration
	AuditRetention    time.Duration
	AuditQueueSize    int
	ListenAddr        string
	LogLevel          slog.Level
}

// RateLimit is the per-client request budget kept in Redis.
type RateLimit struct {
	PerMinute int
	// Burst is how many requests a client may make at once beyond the steady rate, as
	// ingress-nginx counts it: the bucket holds Burst+1 requests.
	Burst int
	// Stricter budgets per client IP for the credential endpoints.
	LoginPerMinute    int
	RegisterPerMinute int
	RefreshPerMinute  int
	// What happens when Redis cannot be asked: true lets the request through.
	FailOpenAuth  bool
	FailOpenOther bool
}

// CORS is the cross-origin policy.
type CORS struct {
	AllowedMethods   []string
	AllowCredentials bool
	MaxAge           int
}

// Headers are the security headers set on every response.
type Headers struct {
	HSTSMaxAge            int64
	HSTSIncludeSubdomains bool
	HSTSPreload           bool
	ContentSecurityPolicy string
	FrameOptions          string
	ReferrerPolicy        string
	PermissionsPolicy     string
}

// Algorithms are the JWT algorithms the API can sign with; all are HMAC because the keys are
// shared secrets.
var Algorithms = []string{"HS256", "HS384", "HS512"}

// Load reads the configuration through getenv. The error, if any, has one line per problem,
// each naming its variable.
func Load(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	c := Config{
		Keys: keyring.Set{
			Current:  r.secretKey(keyring.EnvCurrent, true),
			Next:     r.secretKey(keyring.EnvNext, false),
			Previous: r.secretKey(keyring.EnvPrevious, false),
		},
		Debug:            r.boolean("DEBUG", false),
		AllowedOrigins:   r.list("ALLOWED_ORIGINS"),
		AllowedHosts:     r.list("ALLOWED_HOSTS"),
		AccessTokenTTL:   time.Duration(r.integer("ACCESS_TOKEN_EXPIRE_MINUTES", 15, 1, 24*60)) * time.Minute,
		RefreshTokenTTL:  time.Duration(r.integer("REFRESH_TOKEN_EXPIRE_DAYS", 7, 1, 365)) * 24 * time.Hour,
		Algorithm:        r.oneOf("ALGORITHM", "HS256", Algorithms),
		DatabaseURL:      r.url("DATABASE_URL", "postgres", "postgresql"),
		DatabaseMaxConns: int32(r.integer("DATABASE_MAX_CONNS", 10, 1, 1000)),
		RedisURL:         r.url("REDIS_URL", "redis", "rediss"),
		CORS: CORS{
			AllowedMethods:   r.methods("CORS_ALLOWED_METHODS", []string{"GET", "POST", "PUT", "DELETE", "PATCH"}),
			AllowCredentials: r.boolean("CORS_ALLOW_CREDENTIALS", true),
			MaxAge:           r.integer("CORS_MAX_AGE", 600, 0, 86400),
		},
		Headers: Headers{
			HSTSMaxAge:            int64(r.integer("HSTS_MAX_AGE", 31536000, 0, 2*31536000)),
			HSTSIncludeSubdomains: r.boolean("HSTS_INCLUDE_SUBDOMAINS", true),
			HSTSPreload:           r.boolean("HSTS_PRELOAD", false),
			ContentSecurityPolicy: r.headerValue("CONTENT_SECURITY_POLICY", "default-src 'none'; frame-ancestors 'none'"),
			FrameOptions:          r.oneOf("FRAME_OPTIONS", "DENY", []string{"DENY", "SAMEORIGIN"}),
			ReferrerPolicy: r.oneOf("REFERRER_POLICY", "strict-origin-when-cross-origin", []string{
				"no-referrer", "no-referrer-when-downgrade", "origin", "origin-when-cross-origin",
				"same-origin", "strict-origin", "strict-origin-when-cross-origin"}),
			PermissionsPolicy: r.headerValue("PERMISSIONS_POLICY", "geolocation=(), microphone=(), camera=(), payment=()"),
		},
		TrustedProxies:    r.prefixes("TRUSTED_PROXIES"),
		BcryptCost:        r.integer("BCRYPT_COST", 12, bcrypt.MinCost, bcrypt.MaxCost),
		BcryptConcurrency: r.integer("BCRYPT_CONCURRENCY", runtime.GOMAXPROCS(0), 1, 1024),
		LockoutThreshold:  r.integer("LOCKOUT_THRESHOLD", 5, 1, 1000),
		LockoutDuration:   r.duration("LOCKOUT_DURATION", 15*time.Minute),
		AuditRetention:    time.Duration(r.integer("AUDIT_RETENTION_DAYS", 90, 1, 3650)) * 24 * time.Hour,
		AuditQueueSize:    r.integer("AUDIT_QUEUE_SIZE", 10000, 1, 1_000_000),
		ListenAddr:        r.text("LISTEN_ADDR", ":8000"),
		LogLevel:          r.logLevel("LOG_LEVEL", slog.LevelInfo),
	}
	perMinute := r.integer("RATE_LIMIT_PER_MINUTE", 60, 1, 1_000_000)
	c.RateLimit = RateLimit{
		PerMinute: perMinute,
		// By default a client may spend a whole minute's budget at once, as the seed's "60
		// requests per minute" reads.
		Burst:             r.integer("RATE_LIMIT_BURST", perMinute-1, 0, 1_000_000),
		LoginPerMinute:    r.integer("RATE_LIMIT_LOGIN_PER_MINUTE", 10, 1, 1_000_000),
		RegisterPerMinute: r.integer("RATE_LIMIT_REGISTER_PER_MINUTE", 5, 1, 1_000_000),
		RefreshPerMinute:  r.integer("RATE_LIMIT_REFRESH_PER_MINUTE", 30, 1, 1_000_000),
		FailOpenAuth:      r.failDirection("RATE_LIMIT_FAIL_AUTH", false),
		FailOpenOther:     r.failDirection("RATE_LIMIT_FAIL_OTHER", true),
	}
	if c.Headers.HSTSPreload && (c.Headers.HSTSMaxAge < 31536000 || !c.Headers.HSTSIncludeSubdomains) {
		r.fail("HSTS_PRELOAD", "needs HSTS_MAX_AGE of at least 31536000 and HSTS_INCLUDE_SUBDOMAINS true")
	}
	if c.Debug {
		for _, o := range c.AllowedOrigins {
			if strings.Contains(o, "*") {
				r.fail("ALLOWED_ORIGINS", "must not contain a wildcard origin (%q) while DEBUG is true", o)
			}
		}
	}
	if len(r.problems) > 0 {
		return Config{}, errors.New(strings.Join(r.problems, "\n"))
	}
	return c, nil
}

type reader struct {
	getenv   func(string) string
	problems []string
}

func (r *reader) fail(name, format string, args ...any) {
	r.problems = append(r.problems, name+": "+fmt.Sprintf(format, args...))
}

func (r *reader) get(name string) string {
	return strings.TrimSpace(r.getenv(name))
}

func (r *reader) secretKey(name string, required bool) string {
	// Keys are used byte for byte, so they are not trimmed.
	v := r.getenv(name)
	switch {
	case v == "" && required:
		r.fail(name, "is required (a random string of at least %d characters)", keyring.MinKeyLength)
	case v != "" && len(v) < keyring.MinKeyLength:
		r.fail(name, "must be at least %d characters, got %d", keyring.MinKeyLength, len(v))
	}
	return v
}

func (r *reader) text(name, def string) string {
	if v := r.get(name); v != "" {
		return v
	}
	return def
}

func (r *reader) boolean(name string, def bool) bool {
	v := r.get(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, "must be true or false, got %q", v)
	}
	return b
}

func (r *reader) integer(name string, def, minimum, maximum int) int {
	v := r.get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minimum || n > maximum {
		r.fail(name, "must be a whole number from %d to %d, got %q", minimum, maximum, v)
		return def
	}
	return n
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := r.get(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail(name, "must be a positive duration such as 15m, got %q", v)
		return def
	}
	return d
}

func (r *reader) oneOf(name, def string, allowed []string) string {
	v := r.text(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	return def
}

func (r *reader) list(name string) []string {
	var out []string
	for _, item := range strings.Split(r.get(name), ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// url requires a URL with one of the schemes. Problems never echo the value: it holds a password.
func (r *reader) url(name string, schemes ...string) string {
	v := r.get(name)
	if v == "" {
		r.fail(name, "is required")
		return ""
	}
	u, err := url.Parse(v)
	if err != nil {
		r.fail(name, "is not a valid URL")
		return ""
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return v
		}
	}
	r.fail(name, "must start with %s://", strings.Join(schemes, ":// or "))
	return ""
}

func (r *reader) logLevel(name string, def slog.Level) slog.Level {
	v := r.get(name)
	if v == "" {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		r.fail(name, "must be debug, info, warn or error, got %q", v)
		return def
	}
	return l
}

// methods reads a list of HTTP methods, upper-cased.
func (r *reader) methods(name string, def []string) []string {
	list := r.list(name)
	if len(list) == 0 {
		return def
	}
	for i, m := range list {
		list[i] = strings.ToUpper(m)
		if !isToken(list[i]) {
			r.fail(name, "must be a comma-separated list of HTTP methods, got %q", m)
		}
	}
	return list
}

func isToken(s string) bool {
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return s != ""
}

// headerValue is text that goes into a response header as is, so it must be printable ASCII.
func (r *reader) headerValue(name, def string) string {
	v := r.text(name, def)
	for _, c := range v {
		if c < ' ' || c > '~' {
			r.fail(name, "must be printable ASCII")
			return def
		}
	}
	return v
}

// prefixes reads a list of CIDR prefixes; a bare address stands for itself alone.
func (r *reader) prefixes(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, item := range r.list(name) {
		p, err := netip.ParsePrefix(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				r.fail(name, "must be a comma-separated list of CIDR prefixes such as 10.0.0.0/8, got %q", item)
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}

// failDirection reads "open" or "closed" and reports whether it is open.
func (r *reader) failDirection(name string, defOpen bool) bool {
	switch v := r.get(name); v {
	case "":
		return defOpen
	case "open":
		return true
	case "closed":
		return false
	default:
		r.fail(name, "must be open or closed, got %q", v)
		return defOpen
	}
}
