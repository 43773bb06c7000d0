// Package config reads the API's settings from the environment (names and defaults are the
// "App environment" contract in CONVENTIONS) and reports every problem at once.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/packnow/packnow-operator/app/keyring"
)

// Config is the validated configuration of the API process.
type Config struct {
	Keys               keyring.Set
	Debug              bool
	AllowedOrigins     []string
	AllowedHosts       []string
	AccessTokenTTL     time.Duration
	RefreshTokenTTL    time.Duration
	Algorithm          string
	DatabaseURL        string
	DatabaseMaxConns   int32
	RedisURL           string
	RateLimitPerMinute int
	BcryptCost         int
	LockoutThreshold   int
	LockoutDuration    time.Duration
	ListenAddr         string
	LogLevel           slog.Level
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
		Debug:              r.boolean("DEBUG", false),
		AllowedOrigins:     r.list("ALLOWED_ORIGINS"),
		AllowedHosts:       r.list("ALLOWED_HOSTS"),
		AccessTokenTTL:     time.Duration(r.integer("ACCESS_TOKEN_EXPIRE_MINUTES", 15, 1, 24*60)) * time.Minute,
		RefreshTokenTTL:    time.Duration(r.integer("REFRESH_TOKEN_EXPIRE_DAYS", 7, 1, 365)) * 24 * time.Hour,
		Algorithm:          r.oneOf("ALGORITHM", "HS256", Algorithms),
		DatabaseURL:        r.url("DATABASE_URL", "postgres", "postgresql"),
		DatabaseMaxConns:   int32(r.integer("DATABASE_MAX_CONNS", 10, 1, 1000)),
		RedisURL:           r.url("REDIS_URL", "redis", "rediss"),
		RateLimitPerMinute: r.integer("RATE_LIMIT_PER_MINUTE", 60, 1, 1_000_000),
		BcryptCost:         r.integer("BCRYPT_COST", 12, bcrypt.MinCost, bcrypt.MaxCost),
		LockoutThreshold:   r.integer("LOCKOUT_THRESHOLD", 5, 1, 1000),
		LockoutDuration:    r.duration("LOCKOUT_DURATION", 15*time.Minute),
		ListenAddr:         r.text("LISTEN_ADDR", ":8000"),
		LogLevel:           r.logLevel("LOG_LEVEL", slog.LevelInfo),
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
