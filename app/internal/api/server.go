// Package api is the HTTP API of PackNow: accounts, sessions and orders under /api/v1, plus
// health and metrics endpoints.
package api

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/packnow/packnow-operator/app/internal/credentials"
	"github.com/packnow/packnow-operator/app/internal/store"
	"github.com/packnow/packnow-operator/app/internal/token"
)

// Deps is everything the API needs from outside.
type Deps struct {
	Store      *store.Store
	Redis      *redis.Client
	Tokens     *token.Manager
	Logger     *slog.Logger
	BcryptCost int
	// Debug lets internal error messages through to clients; never in production.
	Debug bool
}

type server struct {
	store      *store.Store
	redis      *redis.Client
	tokens     *token.Manager
	logger     *slog.Logger
	bcryptCost int
	debug      bool
	metrics    *metrics
	// dummyHash is compared against when a login names no account, so that an unknown phone
	// costs as much time as a wrong password.
	dummyHash string
}

// NewServer returns the API's handler. BcryptCost must be within bcrypt's range, as config.Load
// ensures; anything else is a programming error and panics.
func NewServer(d Deps) http.Handler {
	dummy, err := credentials.HashPassword(rand.Text(), d.BcryptCost)
	if err != nil {
		panic(fmt.Sprintf("api.NewServer: bcrypt cost %d: %v", d.BcryptCost, err))
	}
	s := &server{
		store:      d.Store,
		redis:      d.Redis,
		tokens:     d.Tokens,
		logger:     d.Logger,
		bcryptCost: d.BcryptCost,
		debug:      d.Debug,
		metrics:    newMetrics(),
		dummyHash:  dummy,
	}
	mux := http.NewServeMux()
	s.routes(mux)
	// Middleware, outermost first.
	return s.instrument(s.recoverPanics(s.jsonFallback(mux)))
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
