package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/packnow/packnow-operator/app/keyring"
	"github.com/packnow/packnow-operator/hack/testenv"
)

// seedLimits are the seed's rate limit, 60 requests a minute, with the app's default burst.
var seedLimits = map[string]string{"RATE_LIMIT_PER_MINUTE": "60", "RATE_LIMIT_BURST": ""}

// TestRateLimitHoldsAcrossReplicas alternates requests between two servers sharing one Redis,
// as two pods do: the budget is one, and the 61st request is refused on either.
func TestRateLimitHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: seedLimits})
	replicas := []http.Handler{e.handler, e.serverWithKeys(keyring.Set{Current: secretKey})}
	send := func(i int) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/api/v1/orders", nil)
		req.RemoteAddr = e.remoteAddr
		rec := httptest.NewRecorder()
		replicas[i%2].ServeHTTP(rec, req)
		return rec
	}
	// GCRA gives back one request per second at 60 a minute, so a run slower than a second
	// may see more than 60 allowed: one more per second elapsed, never more.
	start := time.Now()
	allowed := 0
	for ; allowed < 200; allowed++ {
		rec := send(allowed)
		if rec.Code == http.StatusTooManyRequests {
			break
		}
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("request %d: status %d: %s", allowed+1, rec.Code, rec.Body)
		}
		if allowed == 0 && rec.Header().Get("X-RateLimit-Remaining") != "59" {
			t.Fatalf("first request: X-RateLimit-Remaining %s, want 59", rec.Header().Get("X-RateLimit-Remaining"))
		}
		if rec.Header().Get("X-RateLimit-Limit") != "60" || rec.Header().Get("X-RateLimit-Reset") == "" {
			t.Fatalf("request %d: rate-limit headers %v", allowed+1, rec.Header())
		}
	}
	if regained := int(time.Since(start).Seconds()); allowed < 60 || allowed > 60+regained {
		t.Fatalf("%d requests allowed in %s, want 60 (plus one per second elapsed)", allowed, time.Since(start))
	}
	// The refusal above came from one replica; the other refuses too.
	for i := allowed + 1; i < allowed+3; i++ {
		rec := send(i)
		if rec.Code != http.StatusTooManyRequests {
			t.Fatalf("request %d on replica %d: status %d, want 429", i+1, i%2, rec.Code)
		}
		// GCRA gives back one request per second at 60 a minute.
		if got := rec.Header().Get("Retry-After"); got != "1" {
			t.Fatalf("Retry-After %q, want 1", got)
		}
		if rec.Header().Get("X-RateLimit-Remaining") != "0" || !strings.Contains(rec.Body.String(), `"rate_limited"`) {
			t.Fatalf("429 headers %v body %s", rec.Header(), rec.Body)
		}
		wantSecurityHeaders(t, "429", rec.Header())
	}
	time.Sleep(time.Second)
	if rec := send(0); rec.Code != http.StatusUnauthorized {
		t.Fatalf("after waiting Retry-After: status %d", rec.Code)
	}
}

func TestRateLimitKeysOnTheClientFingerprint(t *testing.T) {
	t.Parallel()
	limits := map[string]string{"RATE_LIMIT_PER_MINUTE": "2", "RATE_LIMIT_BURST": "1"}
	e := newEnvWith(t, options{environment: limits})
	request := func(remote, userAgent, forwardedFor string) int {
		req := httptest.NewRequest("GET", "/api/v1/orders", nil)
		req.RemoteAddr = remote
		req.Header.Set("User-Agent", userAgent)
		if forwardedFor != "" {
			req.Header.Set("X-Forwarded-For", forwardedFor)
		}
		return e.send(req).Code
	}
	exhaust := func(remote, userAgent, forwardedFor string) {
		t.Helper()
		for i := range 2 {
			if code := request(remote, userAgent, forwardedFor); code != http.StatusUnauthorized {
				t.Fatalf("%s %s %s: request %d got %d", remote, userAgent, forwardedFor, i+1, code)
			}
		}
		if code := request(remote, userAgent, forwardedFor); code != http.StatusTooManyRequests {
			t.Fatalf("%s %s %s: third request got %d, want 429", remote, userAgent, forwardedFor, code)
		}
	}
	client, otherClient, forged := uniqueIP(), uniqueIP(), uniqueIP()
	exhaust(client+":1000", "app/1.0", "")
	// Another User-Agent from the same address is another client.
	exhaust(client+":1000", "app/2.0", "")
	// Without trusted proxies, X-Forwarded-For is the client's own claim and changes nothing.
	if code := request(client+":1001", "app/1.0", forged); code != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For bought a fresh budget: %d", code)
	}

	limits["TRUSTED_PROXIES"] = "10.0.0.0/8"
	e = newEnvWith(t, options{environment: limits})
	// Behind a trusted proxy the client is the first untrusted address from the right.
	client, otherClient, forged = uniqueIP(), uniqueIP(), uniqueIP()
	exhaust("10.1.1.1:1000", "app/1.0", client)
	if code := request("10.2.2.2:1000", "app/1.0", client+", 10.3.3.3"); code != http.StatusTooManyRequests {
		t.Fatalf("same client through two proxies: %d, want 429", code)
	}
	if code := request("10.1.1.1:1000", "app/1.0", forged+", "+client); code != http.StatusTooManyRequests {
		t.Fatalf("an address the client put left of the proxy's entry counted: %d, want 429", code)
	}
	if code := request("10.1.1.1:1000", "app/1.0", otherClient); code != http.StatusUnauthorized {
		t.Fatalf("another client behind the same proxy was refused: %d", code)
	}
}

func TestCredentialEndpointsHaveStricterLimitsPerIP(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: map[string]string{
		"RATE_LIMIT_LOGIN_PER_MINUTE": "3", "RATE_LIMIT_REGISTER_PER_MINUTE": "1", "RATE_LIMIT_REFRESH_PER_MINUTE": "2",
	}})
	for _, tt := range []struct {
		path, body string
		allowed    int
	}{
		{"/api/v1/auth/login", `{"phone":"` + newPhone() + `","password":"Wr0ng&Password"}`, 3},
		{"/api/v1/auth/register", `{}`, 1},
		{"/api/v1/auth/refresh", `{"refresh_token":"x"}`, 2},
	} {
		for i := range tt.allowed + 1 {
			req := post(tt.path, tt.body)
			req.Host = "example.com"
			// A new User-Agent each time: the stricter budget is per IP, since a User-Agent is free.
			req.Header.Set("User-Agent", fmt.Sprintf("bot/%d", i))
			r := e.send(req)
			if refused := r.Code == http.StatusTooManyRequests; refused != (i == tt.allowed) {
				t.Fatalf("%s request %d: status %d", tt.path, i+1, r.Code)
			}
		}
	}
	// Other endpoints keep the general budget.
	e.do("GET", "/api/v1/orders", "", nil).want(http.StatusUnauthorized)
}

func TestProbesAreNeverRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: map[string]string{"RATE_LIMIT_PER_MINUTE": "1", "RATE_LIMIT_BURST": "0"}})
	for range 5 {
		e.do("GET", "/healthz", "", nil).want(http.StatusOK)
		e.do("GET", "/readyz", "", nil).want(http.StatusOK)
		e.do("GET", "/metrics", "", nil).want(http.StatusOK)
	}
	e.do("GET", "/api/v1/orders", "", nil).want(http.StatusUnauthorized)
	e.do("GET", "/api/v1/orders", "", nil).want(http.StatusTooManyRequests)
}

func TestRateLimitHitsAreAuditedOncePerClientAndMinute(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: map[string]string{"RATE_LIMIT_PER_MINUTE": "1", "RATE_LIMIT_BURST": "0"}})
	e.do("GET", "/api/v1/orders", "", nil).want(http.StatusUnauthorized)
	for range 5 {
		e.do("GET", "/api/v1/orders", "", nil).want(http.StatusTooManyRequests)
	}
	e.flushAudit()
	var n int
	var route string
	if err := e.pool.QueryRow(context.Background(),
		`SELECT count(*), max(metadata->>'route') FROM audit_log WHERE action = 'rate_limit_hit' AND ip_address = $1`,
		strings.Split(e.remoteAddr, ":")[0]).Scan(&n, &route); err != nil {
		t.Fatal(err)
	}
	if n != 1 || route != "GET /api/v1/orders" {
		t.Fatalf("%d rate_limit_hit rows for route %q, want 1 for GET /api/v1/orders", n, route)
	}
}

// TestRedisDownFailsInTheConfiguredDirection stops Redis under running servers: by default the
// credential endpoints refuse (503) and the rest carry on, and the outage is logged once, not
// per request.
func TestRedisDownFailsInTheConfiguredDirection(t *testing.T) {
	t.Parallel()
	r, err := testenv.NewRedis()
	if err != nil {
		t.Fatal(err)
	}
	defaults := newEnvWith(t, options{redisURL: r.URL()})
	swapped := newEnvWith(t, options{redisURL: r.URL(), environment: map[string]string{
		"RATE_LIMIT_FAIL_AUTH": "open", "RATE_LIMIT_FAIL_OTHER": "closed",
	}})
	a := defaults.newActor("user")
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}

	for range 3 {
		got := defaults.do("GET", "/api/v1/users/me", a.AccessToken, nil).want(http.StatusOK)
		if got.Header.Get("X-RateLimit-Limit") == "" || got.Header.Get("X-RateLimit-Remaining") != "" {
			t.Fatalf("fail-open response claims a budget it could not read: %v", got.Header)
		}
		refused := defaults.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": a.Phone, "password": password})
		refused.wantError(http.StatusServiceUnavailable, "unavailable")
		if refused.Header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
		wantSecurityHeaders(t, "503", refused.Header)
	}
	if n := strings.Count(defaults.logs.String(), "redis unavailable"); n != 1 {
		t.Fatalf("outage logged %d times, want once:\n%s", n, defaults.logs)
	}

	swapped.do("GET", "/api/v1/orders", "", nil).wantError(http.StatusServiceUnavailable, "unavailable")
	// Open for credentials: the login goes on to the lockout check, which needs Redis too and
	// follows the same direction, and then to the password.
	swapped.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": a.Phone, "password": "Wr0ng&Password"}).
		wantError(http.StatusUnauthorized, "invalid_credentials")
}
