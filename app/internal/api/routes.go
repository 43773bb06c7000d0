package api

import "net/http"

// router is where routes go: the mux, or a test that lists them.
type router interface {
	Handle(pattern string, handler http.Handler)
}

// routes is the whole URL space of the API. openapi.json documents each route.
func (s *server) routes(mux router) {
	mux.Handle("GET /healthz", s.handle(s.healthz))
	mux.Handle("GET /readyz", s.handle(s.readyz))
	mux.Handle("GET /metrics", s.metrics.handler())
	// Production (DEBUG false) tells nobody how the API works.
	if s.debug {
		mux.Handle("GET /api/openapi.json", s.handle(s.openAPI))
		mux.Handle("GET /api/docs", s.handle(s.docs))
	}

	mux.Handle("POST /api/v1/auth/register", s.handle(s.register))
	mux.Handle("POST /api/v1/auth/login", s.handle(s.login))
	mux.Handle("POST /api/v1/auth/refresh", s.handle(s.refresh))
	mux.Handle("POST /api/v1/auth/logout", s.authed(s.logout))

	mux.Handle("GET /api/v1/users/me", s.authed(s.getMe))
	mux.Handle("PATCH /api/v1/users/me", s.authed(s.updateMe))
	mux.Handle("DELETE /api/v1/users/me", s.authed(s.deleteMe))
	mux.Handle("GET /api/v1/users/me/export", s.authed(s.exportMe))

	mux.Handle("POST /api/v1/orders", s.authed(s.createOrder))
	mux.Handle("GET /api/v1/orders", s.authed(s.listOrders))
	mux.Handle("GET /api/v1/orders/{id}", s.authed(s.getOrder))
	mux.Handle("POST /api/v1/orders/{id}/accept", s.authed(s.transition(acceptOrder)))
	mux.Handle("POST /api/v1/orders/{id}/complete", s.authed(s.transition(completeOrder)))
	mux.Handle("POST /api/v1/orders/{id}/cancel", s.authed(s.transition(cancelOrder)))
}
