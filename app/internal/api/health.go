package api

import (
	"context"
	"net/http"
	"time"
)

// readyTimeout keeps a readiness probe well inside the kubelet's default one-second budget.
const readyTimeout = 800 * time.Millisecond

func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz reports whether PostgreSQL and Redis answer; a replica that cannot reach them should
// get no traffic.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	pgErr := make(chan error, 1)
	go func() { pgErr <- s.store.Ping(ctx) }()
	redisErr := s.redis.Ping(ctx).Err()

	unavailable := fieldErrors{}
	if err := <-pgErr; err != nil {
		unavailable.add("postgres", "unreachable")
	}
	if redisErr != nil {
		unavailable.add("redis", "unreachable")
	}
	if len(unavailable) > 0 {
		return &Error{Status: http.StatusServiceUnavailable, Code: "not_ready", Message: "a dependency is unreachable", Fields: unavailable}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
