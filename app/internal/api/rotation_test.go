package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/packnow/packnow-operator/app/keyring"
)

// TestSessionsSurviveSecretKeyRotation runs the three rotation steps of CONVENTIONS with one pod
// per generation sharing the database. A session started before the rotation keeps working on
// every generation, and tokens signed with the old key stop working once it is retired.
func TestSessionsSurviveSecretKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	original := keyring.Set{Current: secretKey}
	staged, err := original.Stage(strings.Repeat("n", 64))
	if err != nil {
		t.Fatal(err)
	}
	promoted, err := staged.Promote()
	if err != nil {
		t.Fatal(err)
	}
	retired := promoted.Retire()
	pods := map[string]http.Handler{
		"original": e.handler,
		"staged":   e.serverWithKeys(staged),
		"promoted": e.serverWithKeys(promoted),
		"retired":  e.serverWithKeys(retired),
	}
	on := func(pod string) *env {
		copied := *e
		copied.handler = pods[pod]
		return &copied
	}

	a := e.newActor("user")
	for _, pod := range []string{"original", "staged", "promoted"} {
		on(pod).do("GET", "/api/v1/users/me", a.AccessToken, nil).want(http.StatusOK)
	}

	// A promoted pod refreshes the session with the new key; staged pods already verify it, so a
	// client bouncing between generations during the roll is never logged out.
	var renewed tokens
	on("promoted").do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": a.RefreshToken}).
		want(http.StatusOK).decode(&renewed)
	on("staged").do("GET", "/api/v1/users/me", renewed.AccessToken, nil).want(http.StatusOK)
	on("retired").do("GET", "/api/v1/users/me", renewed.AccessToken, nil).want(http.StatusOK)
	on("original").do("GET", "/api/v1/users/me", renewed.AccessToken, nil).wantError(http.StatusUnauthorized, "unauthorized")

	// After retire, nothing signed with the old key verifies.
	b := e.newActor("user")
	on("retired").do("GET", "/api/v1/users/me", b.AccessToken, nil).wantError(http.StatusUnauthorized, "unauthorized")
	on("retired").do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": b.RefreshToken}).
		wantError(http.StatusUnauthorized, "unauthorized")
}
