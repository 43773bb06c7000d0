package api_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/packnow/packnow-operator/app/keyring"
)

// TestTokenAttacksAreRejected forges, alters and misuses tokens of a live session. Every one must
// get the same 401 as no token at all, so the response teaches an attacker nothing.
func TestTokenAttacksAreRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	victim := e.newActor("user")
	otherUser := e.register("user")

	var claims jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(victim.AccessToken, &claims); err != nil {
		t.Fatal(err)
	}
	realKid := keyring.KeyID(secretKey)
	otherKey := strings.Repeat("z", 64)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&rsaKey.PublicKey))})

	// forge signs the victim's claims, changed by edit, with method and key under kid.
	forge := func(method jwt.SigningMethod, key any, kid any, edit func(jwt.MapClaims)) string {
		c := maps.Clone(claims)
		if edit != nil {
			edit(c)
		}
		tok := jwt.NewWithClaims(method, c)
		if kid != nil {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	set := func(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }
	hour := time.Hour

	// The forging works: the same recipe with nothing wrong is accepted.
	e.do("GET", "/api/v1/users/me", forge(jwt.SigningMethodHS256, []byte(secretKey), realKid, nil), nil).want(http.StatusOK)

	attacks := []struct {
		name  string
		token string
	}{
		{"alg none", forge(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, realKid, nil)},
		{"alg none without signature or kid", forge(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, nil)},
		{"HS256 signed with another key", forge(jwt.SigningMethodHS256, []byte(otherKey), realKid, nil)},
		{"algorithm not on the allow-list, right key", forge(jwt.SigningMethodHS512, []byte(secretKey), realKid, nil)},
		{"RS256 token", forge(jwt.SigningMethodRS256, rsaKey, realKid, nil)},
		{"HS256 keyed with an RSA public key", forge(jwt.SigningMethodHS256, publicPEM, realKid, nil)},
		{"kid pointing nowhere", forge(jwt.SigningMethodHS256, []byte(otherKey), keyring.KeyID(otherKey), nil)},
		{"kid path injection", forge(jwt.SigningMethodHS256, []byte("x"), "../../../../dev/null", nil)},
		{"kid SQL injection", forge(jwt.SigningMethodHS256, []byte(otherKey), "' OR '1'='1", nil)},
		{"kid not a string", forge(jwt.SigningMethodHS256, []byte(secretKey), 42, nil)},
		{"no kid", forge(jwt.SigningMethodHS256, []byte(secretKey), nil, nil)},
		{"expired", forge(jwt.SigningMethodHS256, []byte(secretKey), realKid, set("exp", time.Now().Add(-hour).Unix()))},
		{"no expiry", forge(jwt.SigningMethodHS256, []byte(secretKey), realKid, func(c jwt.MapClaims) { delete(c, "exp") })},
		{"not yet valid", forge(jwt.SigningMethodHS256, []byte(secretKey), realKid, set("nbf", time.Now().Add(hour).Unix()))},
		{"issued in the future", forge(jwt.SigningMethodHS256, []byte(secretKey), realKid, set("iat", time.Now().Add(hour).Unix()))},
		{"wrong issuer", forge(jwt.SigningMethodHS256, []byte(secretKey), realKid, set("iss", "someone-else"))},
		{"wrong audience", forge(jwt.SigningMethodHS256, []byte(secretKey), realKid, set("aud", "another-api"))},
		{"refresh token used as access token", victim.RefreshToken},
		{"typ missing", forge(jwt.SigningMethodHS256, []byte(secretKey), realKid, func(c jwt.MapClaims) { delete(c, "typ") })},
		{"session of someone else", forge(jwt.SigningMethodHS256, []byte(secretKey), realKid, set("sub", otherUser.ID))},
		{"unknown session", forge(jwt.SigningMethodHS256, []byte(secretKey), realKid, set("sid", "made-up"))},
		{"tampered payload", tamper(t, victim.AccessToken, "sub", otherUser.ID)},
		{"signature stripped", victim.AccessToken[:strings.LastIndex(victim.AccessToken, ".")+1]},
		{"garbage", "not.a.jwt"},
	}
	noToken := e.do("GET", "/api/v1/users/me", "", nil).want(http.StatusUnauthorized)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			e.t = t
			r := e.do("GET", "/api/v1/users/me", a.token, nil).want(http.StatusUnauthorized)
			if !bytes.Equal(r.Body, noToken.Body) {
				t.Fatalf("the rejection says more than a missing token does: %s", r.Body)
			}
		})
	}

	e.t = t
	// The other way round: an access token is not a refresh token.
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": victim.AccessToken}).
		wantError(http.StatusUnauthorized, "unauthorized")
	// After all that, the victim's real session still works.
	e.do("GET", "/api/v1/users/me", victim.AccessToken, nil).want(http.StatusOK)
}

// tamper changes one claim of a signed token and keeps the original signature.
func tamper(t *testing.T, token, claim string, value any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	c[claim] = value
	parts[1] = base64.RawURLEncoding.EncodeToString(must(json.Marshal(c)))
	return strings.Join(parts, ".")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
