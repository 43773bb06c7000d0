package config_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/packnow/packnow-operator/app/internal/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func valid() map[string]string {
	return map[string]string{
		"SECRET_KEY":   strings.Repeat("k", 64),
		"DATABASE_URL": "postgresql://u:p@db:5432/packnow?sslmode=require",
		"REDIS_URL":    "redis://redis:6379/0",
	}
}

func TestLoadAppliesDefaults(t *testing.T) {
	c, err := config.Load(env(valid()))
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessTokenTTL != 15*time.Minute || c.RefreshTokenTTL != 7*24*time.Hour || c.Algorithm != "HS256" ||
		c.BcryptCost != 12 || c.ListenAddr != ":8000" || c.LogLevel != slog.LevelInfo || c.Debug ||
		c.LockoutThreshold != 5 || c.LockoutDuration != 15*time.Minute || c.RateLimit.PerMinute != 60 ||
		c.DatabaseMaxConns != 10 {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestLoadReadsEveryVariable(t *testing.T) {
	m := valid()
	m["SECRET_KEY_NEXT"] = strings.Repeat("n", 64)
	m["SECRET_KEY_PREVIOUS"] = strings.Repeat("p", 64)
	m["DEBUG"] = "true"
	m["ALLOWED_ORIGINS"] = "https://a.example, https://b.example"
	m["ALLOWED_HOSTS"] = "api.example"
	m["ACCESS_TOKEN_EXPIRE_MINUTES"] = "5"
	m["REFRESH_TOKEN_EXPIRE_DAYS"] = "2"
	m["ALGORITHM"] = "HS512"
	m["BCRYPT_COST"] = "4"
	m["LOG_LEVEL"] = "debug"
	m["LISTEN_ADDR"] = "127.0.0.1:9000"
	c, err := config.Load(env(m))
	if err != nil {
		t.Fatal(err)
	}
	if c.Keys.Next != m["SECRET_KEY_NEXT"] || c.Keys.Previous != m["SECRET_KEY_PREVIOUS"] || !c.Debug ||
		len(c.AllowedOrigins) != 2 || c.AllowedOrigins[1] != "https://b.example" || c.AllowedHosts[0] != "api.example" ||
		c.AccessTokenTTL != 5*time.Minute || c.RefreshTokenTTL != 48*time.Hour || c.Algorithm != "HS512" ||
		c.BcryptCost != 4 || c.LogLevel != slog.LevelDebug || c.ListenAddr != "127.0.0.1:9000" {
		t.Fatalf("variables not read: %+v", c)
	}
}

func TestLoadNamesEveryBadVariableOnItsOwnLine(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		want string
	}{
		{"missing secret key", map[string]string{"SECRET_KEY": ""}, "SECRET_KEY: is required"},
		{"short secret key", map[string]string{"SECRET_KEY": strings.Repeat("k", 63)}, "SECRET_KEY: must be at least 64 characters, got 63"},
		{"short next key", map[string]string{"SECRET_KEY_NEXT": "short"}, "SECRET_KEY_NEXT: must be at least 64"},
		{"wildcard origin with debug", map[string]string{"DEBUG": "true", "ALLOWED_ORIGINS": "https://a.example,*"}, "ALLOWED_ORIGINS: must not contain a wildcard"},
		{"bad debug", map[string]string{"DEBUG": "yes please"}, "DEBUG: must be true or false"},
		{"unknown algorithm", map[string]string{"ALGORITHM": "none"}, "ALGORITHM: must be one of HS256, HS384, HS512"},
		{"RS256 algorithm", map[string]string{"ALGORITHM": "RS256"}, "ALGORITHM: must be one of"},
		{"bcrypt cost too low", map[string]string{"BCRYPT_COST": "3"}, "BCRYPT_COST: must be a whole number from 4 to 31"},
		{"bad minutes", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "0"}, "ACCESS_TOKEN_EXPIRE_MINUTES: must be a whole number"},
		{"missing database", map[string]string{"DATABASE_URL": ""}, "DATABASE_URL: is required"},
		{"wrong database scheme", map[string]string{"DATABASE_URL": "mysql://u:secretpw@db/x"}, "DATABASE_URL: must start with postgres://"},
		{"missing redis", map[string]string{"REDIS_URL": ""}, "REDIS_URL: is required"},
		{"bad lockout duration", map[string]string{"LOCKOUT_DURATION": "forever"}, "LOCKOUT_DURATION: must be a positive duration"},
		{"bad log level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL: must be debug, info, warn or error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			for k, v := range tt.set {
				m[k] = v
			}
			_, err := config.Load(env(m))
			if err == nil {
				t.Fatal("Load accepted bad configuration")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Fatalf("error %q leaks a password", err)
			}
		})
	}
}

func TestLoadReportsAllProblemsAtOnce(t *testing.T) {
	_, err := config.Load(env(map[string]string{"BCRYPT_COST": "99"}))
	if err == nil {
		t.Fatal("Load accepted an empty environment")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 lines (SECRET_KEY, DATABASE_URL, REDIS_URL, BCRYPT_COST), got %q", lines)
	}
}

func TestWildcardOriginIsAllowedWithoutDebug(t *testing.T) {
	m := valid()
	m["ALLOWED_ORIGINS"] = "*"
	if _, err := config.Load(env(m)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadReadsTheHardeningVariables(t *testing.T) {
	c, err := config.Load(env(valid()))
	if err != nil {
		t.Fatal(err)
	}
	h, rl := c.Headers, c.RateLimit
	if h.HSTSMaxAge != 31536000 || !h.HSTSIncludeSubdomains || h.HSTSPreload || h.FrameOptions != "DENY" ||
		h.ContentSecurityPolicy != "default-src 'none'; frame-ancestors 'none'" || h.ReferrerPolicy != "strict-origin-when-cross-origin" ||
		h.PermissionsPolicy != "geolocation=(), microphone=(), camera=(), payment=()" {
		t.Fatalf("header defaults: %+v", h)
	}
	if strings.Join(c.CORS.AllowedMethods, ",") != "GET,POST,PUT,DELETE,PATCH" || !c.CORS.AllowCredentials || c.CORS.MaxAge != 600 {
		t.Fatalf("CORS defaults: %+v", c.CORS)
	}
	if rl.Burst != 59 || rl.LoginPerMinute != 10 || rl.RegisterPerMinute != 5 || rl.RefreshPerMinute != 30 ||
		rl.FailOpenAuth || !rl.FailOpenOther {
		t.Fatalf("rate-limit defaults: %+v", rl)
	}
	if len(c.TrustedProxies) != 0 || c.AuditRetention != 90*24*time.Hour || c.BcryptConcurrency < 1 {
		t.Fatalf("defaults: %+v", c)
	}

	m := valid()
	for k, v := range map[string]string{
		"CORS_ALLOWED_METHODS": "get, post", "CORS_MAX_AGE": "60", "CORS_ALLOW_CREDENTIALS": "false",
		"HSTS_MAX_AGE": "0", "HSTS_INCLUDE_SUBDOMAINS": "false", "FRAME_OPTIONS": "SAMEORIGIN",
		"RATE_LIMIT_PER_MINUTE": "120", "RATE_LIMIT_BURST": "10", "RATE_LIMIT_FAIL_AUTH": "open", "RATE_LIMIT_FAIL_OTHER": "closed",
		"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7, fd00::/8", "AUDIT_RETENTION_DAYS": "30", "BCRYPT_CONCURRENCY": "3",
	} {
		m[k] = v
	}
	c, err = config.Load(env(m))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.CORS.AllowedMethods, ",") != "GET,POST" || c.CORS.MaxAge != 60 || c.CORS.AllowCredentials ||
		c.Headers.HSTSMaxAge != 0 || c.Headers.FrameOptions != "SAMEORIGIN" || c.RateLimit.PerMinute != 120 ||
		c.RateLimit.Burst != 10 || !c.RateLimit.FailOpenAuth || c.RateLimit.FailOpenOther ||
		len(c.TrustedProxies) != 3 || c.TrustedProxies[1].String() != "192.168.1.7/32" ||
		c.AuditRetention != 30*24*time.Hour || c.BcryptConcurrency != 3 {
		t.Fatalf("variables not read: %+v", c)
	}
}

func TestLoadRejectsBadHardeningVariables(t *testing.T) {
	for name, want := range map[string]map[string]string{
		"FRAME_OPTIONS: must be one of DENY, SAMEORIGIN":          {"FRAME_OPTIONS": "ALLOW-FROM x"},
		"TRUSTED_PROXIES: must be a comma-separated list of CIDR": {"TRUSTED_PROXIES": "10.0.0.0/33"},
		"RATE_LIMIT_FAIL_AUTH: must be open or closed":            {"RATE_LIMIT_FAIL_AUTH": "sometimes"},
		"CORS_ALLOWED_METHODS: must be a comma-separated list":    {"CORS_ALLOWED_METHODS": "GET,P0ST"},
		"CONTENT_SECURITY_POLICY: must be printable ASCII":        {"CONTENT_SECURITY_POLICY": "default-src 'none'\r\nX-Evil: 1"},
		"HSTS_PRELOAD: needs HSTS_MAX_AGE of at least 31536000":   {"HSTS_PRELOAD": "true", "HSTS_MAX_AGE": "600"},
		"RATE_LIMIT_BURST: must be a whole number from 0":         {"RATE_LIMIT_BURST": "-1"},
		"REFERRER_POLICY: must be one of":                         {"REFERRER_POLICY": "unsafe-url"},
		"AUDIT_RETENTION_DAYS: must be a whole number from 1":     {"AUDIT_RETENTION_DAYS": "0"},
	} {
		m := valid()
		for k, v := range want {
			m[k] = v
		}
		_, err := config.Load(env(m))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: error %v, want %q", want, err, name)
		}
	}
}
