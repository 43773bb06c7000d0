package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"
)

// FuzzDecodeBody feeds arbitrary bodies to the decoder of every request type. Whatever comes in,
// the result is either a decoded single JSON object or a client error, never a panic or a 5xx.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		`{"phone":"+14155550123","password":"Tr0ub4dor&3x","role":"user","name":"Ann"}`,
		`{"phone":"+14155550123","password":"x"}`,
		`{"refresh_token":"a.b.c"}`,
		`{"name":"x","phone":"+14155550123","password":"Tr0ub4dor&3x","current_password":"y"}`,
		`{"pickup_address":"1 Main St","items":[{"name":"box","quantity":2}],"preferred_time":"2030-01-01T10:00:00Z"}`,
		`{"role":"packer"}`, `{"items":[{"quantity":1.5}]}`, `{} {}`, `[]`, `null`, `"x"`, ``, `{"a":`,
		"{\"name\":\"\xff\"}", `{"phone":{"nested":true}}`, ` {"password": 12}`,
	} {
		f.Add([]byte(seed))
	}
	targets := []func() any{
		func() any { return new(registerRequest) },
		func() any { return new(loginRequest) },
		func() any { return new(refreshRequest) },
		func() any { return new(updateMeRequest) },
		func() any { return new(deleteMeRequest) },
		func() any { return new(createOrderRequest) },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, newTarget := range targets {
			dst := newTarget()
			err := decodeBody(bytes.NewReader(body), dst)
			if err == nil {
				if !json.Valid(body) || !bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
					t.Fatalf("decoded %q, which is not a single JSON object", body)
				}
				if req, ok := dst.(*createOrderRequest); ok {
					// Validation of whatever decoded must not panic either.
					_, _ = req.validate(time.Now())
				}
				continue
			}
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
				t.Fatalf("body %q: error %v is not a 400", body, err)
			}
		}
	})
}
