package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/packnow/packnow-operator/app/internal/store"
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

// FuzzDecodeCursor checks that any cursor a client sends is either refused or yields a position
// that encodes back to an equivalent cursor.
func FuzzDecodeCursor(f *testing.F) {
	valid := encodeCursor(store.OrderCursor{CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), ID: "0b7e1a52-8a52-4a0e-9a4e-0d7f6f1c2b3a"})
	for _, seed := range []string{valid, "", "e30", "bogus", "eyJ0IjoiMjAyNi0wMS0wMlQwMzowNDowNVoiLCJpZCI6IngifQ", valid + "A"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := decodeCursor(raw)
		if err != nil {
			return
		}
		if !store.ValidID(c.ID) || c.CreatedAt.IsZero() {
			t.Fatalf("cursor %q decoded to an incomplete position %+v", raw, c)
		}
		again, err := decodeCursor(encodeCursor(c))
		if err != nil || !again.CreatedAt.Equal(c.CreatedAt) || again.ID != c.ID {
			t.Fatalf("cursor %q does not round-trip: %+v, %v", raw, again, err)
		}
	})
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc": "abc", "bearer abc": "abc", "BEARER  abc ": "abc",
		"": "", "Bearer": "", "Bearer ": "", "Basic abc": "", "Bearerabc": "",
	} {
		got, ok := bearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("bearerToken(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
}
