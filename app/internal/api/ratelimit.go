package api

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/packnow/packnow-operator/app/internal/audit"
	"github.com/packnow/packnow-operator/app/internal/config"
	"github.com/packnow/packnow-operator/app/internal/ratelog"
)

const (
	// redisTimeout bounds every Redis call on the request path, so a hung Redis costs a request
	// this much and no more before the fail direction applies.
	redisTimeout = 250 * time.Millisecond
	// outageLogInterval is how often a Redis outage is logged while it lasts.
	outageLogInterval = time.Minute
	// rateLimitAuditInterval samples rate-limit hits: one audit row per client per interval.
	rateLimitAuditInterval = time.Minute
	// unavailableRetryAfter is what a request refused because Redis is down is told to wait.
	unavailableRetryAfter = 5
)

// Routes with stricter budgets of their own, and whose requests are refused when Redis is down
// unless RATE_LIMIT_FAIL_AUTH says open.
const (
	routeLogin    = "POST /api/v1/auth/login"
	routeRegister = "POST /api/v1/auth/register"
	routeRefresh  = "POST /api/v1/auth/refresh"
)

// rateLimiter keeps GCRA budgets in Redis, so that every replica draws on the same ones.
type rateLimiter struct {
	redis    *redis.Client
	gcra     *redis_rate.Limiter
	client   redis_rate.Limit
	strict   map[string]redis_rate.Limit
	failOpen struct{ auth, other bool }
	outage   *ratelog.Every
	logger   *slog.Logger
}

func newRateLimiter(rdb *redis.Client, c config.RateLimit, logger *slog.Logger) *rateLimiter {
	l := &rateLimiter{
		redis:  rdb,
		gcra:   redis_rate.NewLimiter(rdb),
		client: redis_rate.Limit{Rate: c.PerMinute, Period: time.Minute, Burst: c.Burst + 1},
		strict: map[string]redis_rate.Limit{
			routeLogin:    redis_rate.PerMinute(c.LoginPerMinute),
			routeRegister: redis_rate.PerMinute(c.RegisterPerMinute),
			routeRefresh:  redis_rate.PerMinute(c.RefreshPerMinute),
		},
		outage: ratelog.New(outageLogInterval),
		logger: logger,
	}
	l.failOpen.auth, l.failOpen.other = c.FailOpenAuth, c.FailOpenOther
	return l
}

// isAuthRoute says whether a route takes credentials and so falls under RATE_LIMIT_FAIL_AUTH.
func isAuthRoute(route string) bool {
	return route == routeLogin || route == routeRegister || route == routeRefresh
}

// redisFailure logs a Redis problem once per interval and reports whether to go on regardless.
func (s *server) redisFailure(r *http.Request, what string, err error) (failOpen bool) {
	failOpen = s.limiter.failOpen.other
	if isAuthRoute(requestInfoOf(r).route) {
		failOpen = s.limiter.failOpen.auth
	}
	if ok, suppressed := s.limiter.outage.Allow(); ok {
		s.logger.ErrorContext(r.Context(), "redis unavailable; applying the configured fail direction",
			"check", what, "auth_endpoints_fail_open", s.limiter.failOpen.auth,
			"other_endpoints_fail_open", s.limiter.failOpen.other,
			"failures_since_last_report", suppressed, "error", err.Error())
	}
	return failOpen
}

var errRedisUnavailable = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
	Message: "the service is temporarily unavailable; retry later", RetryAfter: unavailableRetryAfter}

// rateLimit charges each request to its client fingerprint (IP and User-Agent) and, on the
// credential endpoints, also to its IP alone: a User-Agent costs nothing to change, so the
// stricter budget must not depend on it.
func (s *server) rateLimit(next http.Handler) http.Handler {
	l := s.limiter
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := requestInfoOf(r)
		// Probes come to every pod from one node address; a shared budget would fail healthy pods.
		if probeRoutes[info.route] {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
		defer cancel()
		w.Header().Set("X-RateLimit-Limit", strconv.Itoa(l.client.Rate))
		res, err := l.gcra.Allow(ctx, "client:"+info.client, l.client)
		if err == nil && res.Allowed > 0 {
			if limit, ok := l.strict[info.route]; ok {
				var strict *redis_rate.Result
				strict, err = l.gcra.Allow(ctx, info.route+":"+s.keyedHash("ip", info.clientIP.String()), limit)
				if err == nil && (strict.Allowed == 0 || strict.Remaining < res.Remaining) {
					res = strict
				}
			}
		}
		if err != nil {
			if s.redisFailure(r, "rate limit", err) {
				next.ServeHTTP(w, r)
			} else {
				s.writeError(w, r, errRedisUnavailable)
			}
			return
		}
		h := w.Header()
		h.Set("X-RateLimit-Limit", strconv.Itoa(res.Limit.Rate))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(res.Remaining))
		h.Set("X-RateLimit-Reset", strconv.Itoa(ceilSeconds(res.ResetAfter)))
		if res.Allowed == 0 {
			s.auditRateLimitHit(r, info, res.Limit)
			s.writeError(w, r, &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
				Message: "too many requests; retry later", RetryAfter: max(1, ceilSeconds(res.RetryAfter))})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// auditRateLimitHit records the first refusal of a client per interval; a client hammering
// away would otherwise write a row per request.
func (s *server) auditRateLimitHit(r *http.Request, info *requestInfo, limit redis_rate.Limit) {
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	first, err := s.redis.SetNX(ctx, "ratelimit-audited:"+info.client+":"+info.route, 1, rateLimitAuditInterval).Result()
	if err != nil || !first {
		return
	}
	s.record(r, audit.RateLimitHit, "", map[string]any{"route": info.route, "limit": limit.String(), "client": info.client})
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
