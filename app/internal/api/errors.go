package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
)

// Error is an error the client is meant to see. Handlers return it; writeError turns it, and
// any other error, into the JSON error shape of CONVENTIONS.
type Error struct {
	Status  int
	Code    string
	Message string
	Fields  map[string]string
	// RetryAfter, in seconds, is sent as Retry-After when positive.
	RetryAfter int
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s %v", e.Status, e.Code, e.Message, e.Fields)
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

var (
	errUnauthorized = &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "missing, invalid or expired token"}
	errNotFound     = &Error{Status: http.StatusNotFound, Code: "not_found", Message: "not found"}
	errBadLogin     = &Error{Status: http.StatusUnauthorized, Code: "invalid_credentials", Message: "phone number or password is incorrect"}
	errBusy         = &Error{Status: http.StatusServiceUnavailable, Code: "busy", Message: "too many password checks in progress; retry shortly", RetryAfter: 1}
)

func forbidden(message string) *Error {
	return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: message}
}

func conflict(code, message string, fields map[string]string) *Error {
	return &Error{Status: http.StatusConflict, Code: code, Message: message, Fields: fields}
}

// fieldErrors collects validation problems, one message per field.
type fieldErrors map[string]string

func (f fieldErrors) add(field, message string) {
	if _, seen := f[field]; !seen {
		f[field] = message
	}
}

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed", Message: "some fields are invalid", Fields: f}
}

// writeError is the one place errors become responses. Errors that are not *Error are bugs or
// outages: they are logged, and their text reaches the client only in DEBUG mode.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		s.logger.ErrorContext(r.Context(), "request failed", slog.String("method", r.Method),
			slog.String("route", r.Pattern), slog.Any("error", err))
		apiErr = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal server error"}
		if s.debug {
			apiErr.Message = err.Error()
		}
	}
	if apiErr.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(apiErr.RetryAfter))
	}
	if apiErr.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="packnow"`)
	}
	writeJSON(w, apiErr.Status, errorBody{Error: errorDetail{Code: apiErr.Code, Message: apiErr.Message, Fields: apiErr.Fields}})
}
