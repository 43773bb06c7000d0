// Package api is the HTTP API of PackNow: accounts, sessions and orders under /api/v1, plus
// health and metrics endpoints, behind the middleware stack of seed-security.md section 7.
package api

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/packnow/packnow-operator/app/internal/audit"
	"github.com/packnow/packnow-operator/app/internal/config"
	"github.com/packnow/packnow-operator/app/internal/credentials"
	"github.com/packnow/packnow-operator/app/internal/store"
	"github.com/packnow/packnow-operator/app/internal/token"
)

// bcryptWait is how long a password check waits for a free bcrypt slot before the request is
// answered 503: about one hash at the default cost, so a short burst queues and a flood does not.
const bcryptWait = 250 * time.Millisecond

// Deps is everything the API needs from outside.
type Deps struct {
	Store  *store.Store
	Redis  *redis.Client
	Tokens *token.Manager
	Audit  *audit.Writer
	Logger *slog.Logger
	// Config is the validated configuration; Debug in it lets internal error messages and the
	// API documentation through, never in production.
	Config config.Config
	// BcryptGate bounds concurrent bcrypt work; nil means Config.BcryptConcurrency slots.
	BcryptGate *credentials.Gate
}

type server struct {
	store   *store.Store
	redis   *redis.Client
	tokens  *token.Manager
	audit   *audit.Writer
	logger  *slog.Logger
	cfg     config.Config
	debug   bool
	bcrypt  *credentials.Gate
	metrics *metrics
	limiter *rateLimiter
	lockout *lockout
	// fingerprintKey keys the hashes that stand for clients and phone numbers in Redis and in
	// logs, so that neither holds an address or a number that can be read back.
	fingerprintKey []byte
	// dummyHash is compared against when a login names no account, so that an unknown phone
	// costs as much time as a wrong password.
	dummyHash string
}

// NewServer returns the API's handler. Config must come from config.Load; a bcrypt cost out of
// range is a programming error and panics.
func NewServer(d Deps) http.Handler {
	dummy, err := credentials.HashPassword(rand.Text(), d.Config.BcryptCost)
	if err != nil {
		panic(fmt.Sprintf("api.NewServer: bcrypt cost %d: %v", d.Config.BcryptCost, err))
	}
	gate := d.BcryptGate
	if gate == nil {
		gate = credentials.NewGate(d.Config.BcryptConcurrency, bcryptWait)
	}
	s := &server{
		store:          d.Store,
		redis:          d.Redis,
		tokens:         d.Tokens,
		audit:          d.Audit,
		logger:         d.Logger,
		cfg:            d.Config,
		debug:          d.Config.Debug,
		bcrypt:         gate,
		metrics:        newMetrics(),
		fingerprintKey: fingerprintKey(d.Config.Keys.Current),
		dummyHash:      dummy,
	}
	s.limiter = newRateLimiter(d.Redis, d.Config.RateLimit, d.Logger)
	s.lockout = newLockout(d.Redis, d.Config.LockoutThreshold, d.Config.LockoutDuration)
	mux := http.NewServeMux()
	s.routes(mux)
	return s.middleware(mux)
}

// handlerFunc is an HTTP handler that reports failure by returning an error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *server) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// record queues an audit event about the request's client.
func (s *server) record(r *http.Request, action, userID string, metadata map[string]any) {
	s.audit.Record(audit.Event{UserID: userID, Action: action, IP: requestInfoOf(r).clientIP, Metadata: metadata})
}
