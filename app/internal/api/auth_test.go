package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestRegisterCreatesAccountWithNormalisedPhone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var u user
	e.do("POST", "/api/v1/auth/register", "", map[string]string{
		"phone": "+1 (415) 555-0199", "password": password, "role": "packer", "name": "  Pat  ",
	}).want(http.StatusCreated).decode(&u)
	if u.Phone != "+14155550199" || u.Role != "packer" || u.Name != "Pat" || u.ID == "" {
		t.Fatalf("registered user %+v", u)
	}
	// The same number written another way is the same number.
	e.do("POST", "/api/v1/auth/register", "", map[string]string{
		"phone": "+14155550199", "password": password, "role": "user",
	}).wantError(http.StatusConflict, "phone_taken", "phone")
}

func TestRegisterRejectsBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	valid := func() map[string]any {
		return map[string]any{"phone": newPhone(), "password": password, "role": "user"}
	}
	with := func(k string, v any) map[string]any {
		m := valid()
		m[k] = v
		return m
	}
	tests := []struct {
		name     string
		body     any
		status   int
		code     string
		field    string
		contains string
	}{
		{"local phone", with("phone", "4155550123"), 422, "validation_failed", "phone", "international format"},
		{"invalid phone", with("phone", "+1 555"), 422, "validation_failed", "phone", "not a valid phone number"},
		{"missing phone", with("phone", ""), 422, "validation_failed", "phone", ""},
		{"weak password", with("password", "password"), 422, "validation_failed", "password", "uppercase letter"},
		{"common password", with("password", "P@ssw0rd"), 422, "validation_failed", "password", "most commonly used"},
		{"password over 72 bytes", with("password", "Aa1!"+strings.Repeat("x", 69)), 422, "validation_failed", "password", "at most 72 bytes"},
		{"unknown role", with("role", "admin"), 422, "validation_failed", "role", `"user" or "packer"`},
		{"missing role", with("role", ""), 422, "validation_failed", "role", ""},
		{"name too long", with("name", strings.Repeat("n", 101)), 422, "validation_failed", "name", "at most 100"},
		{"unknown field", with("is_admin", true), 400, "unknown_field", "is_admin", ""},
		{"wrong type", with("phone", 4155550123), 400, "invalid_json", "phone", "a string"},
		{"not JSON", `{"phone": `, 400, "invalid_json", "", "ends too early"},
		{"syntax error", `{"phone" "x"}`, 400, "invalid_json", "", "not valid JSON"},
		{"array body", `[{"phone": "+14155550123"}]`, 400, "invalid_json", "", "JSON object"},
		{"null body", `null`, 400, "invalid_json", "", "JSON object"},
		{"empty body", ``, 400, "invalid_json", "", "JSON object"},
		{"two objects", `{"role": "user"} {"role": "packer"}`, 400, "invalid_json", "", "single JSON object"},
		{"too large", `{"name": "` + strings.Repeat("x", 70<<10) + `"}`, 413, "body_too_large", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			var fields []string
			if tt.field != "" {
				fields = append(fields, tt.field)
			}
			got := e.do("POST", "/api/v1/auth/register", "", tt.body).wantError(tt.status, tt.code, fields...)
			text := got.Error.Message
			if tt.field != "" {
				text = got.Error.Fields[tt.field]
			}
			if !strings.Contains(text, tt.contains) {
				t.Fatalf("message %q does not contain %q", text, tt.contains)
			}
		})
	}
}

func TestRegisterRefusesNonJSONContentType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req := `phone=%2B14155550123&password=x&role=user`
	r := e.doRaw("POST", "/api/v1/auth/register", "application/x-www-form-urlencoded", req)
	r.wantError(http.StatusUnsupportedMediaType, "unsupported_media_type")
}

func TestLoginIssuesWorkingTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.register("user")
	// Any formatting of the registered number logs in.
	formatted := "+1 (" + u.Phone[2:5] + ") " + u.Phone[5:8] + "-" + u.Phone[8:]
	tk := e.login(formatted, password)
	if tk.TokenType != "Bearer" || tk.ExpiresIn != 900 || tk.AccessToken == "" || tk.RefreshToken == "" {
		t.Fatalf("unexpected token response %+v", tk)
	}
	var me user
	e.do("GET", "/api/v1/users/me", tk.AccessToken, nil).want(http.StatusOK).decode(&me)
	if me.ID != u.ID {
		t.Fatalf("token is for %s, want %s", me.ID, u.ID)
	}
}

func TestLoginDoesNotRevealWhichPhonesHaveAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.register("user")
	wrongPassword := e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": u.Phone, "password": "Wr0ng&Password"})
	unknownPhone := e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": newPhone(), "password": "Wr0ng&Password"})
	wrongPassword.wantError(http.StatusUnauthorized, "invalid_credentials")
	unknownPhone.wantError(http.StatusUnauthorized, "invalid_credentials")
	if !bytes.Equal(wrongPassword.Body, unknownPhone.Body) {
		t.Fatalf("bodies differ:\n%s\n%s", wrongPassword.Body, unknownPhone.Body)
	}
	// bcrypt ignores bytes past the 72nd; the API must not let them ride along.
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": u.Phone, "password": password + strings.Repeat("x", 70)}).
		wantError(http.StatusUnauthorized, "invalid_credentials")
}

func TestLoginRejectsMalformedInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": "12345", "password": password}).
		wantError(http.StatusUnprocessableEntity, "validation_failed", "phone")
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": newPhone()}).
		wantError(http.StatusUnprocessableEntity, "validation_failed", "password")
	e.do("POST", "/api/v1/auth/login", "", `{"phone": "+14155550123", "password": "x", "role": "packer"}`).
		wantError(http.StatusBadRequest, "unknown_field", "role")
}

func TestRefreshRotatesAndReuseEndsTheSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")

	var second tokens
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": a.RefreshToken}).
		want(http.StatusOK).decode(&second)
	if second.RefreshToken == a.RefreshToken || second.AccessToken == a.AccessToken {
		t.Fatal("refresh did not hand out new tokens")
	}
	e.do("GET", "/api/v1/users/me", second.AccessToken, nil).want(http.StatusOK)

	var third tokens
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": second.RefreshToken}).
		want(http.StatusOK).decode(&third)

	// Replaying the first refresh token is theft or a bug: the whole session ends.
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": a.RefreshToken}).
		wantError(http.StatusUnauthorized, "unauthorized")
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": third.RefreshToken}).
		wantError(http.StatusUnauthorized, "unauthorized")
	e.do("GET", "/api/v1/users/me", third.AccessToken, nil).wantError(http.StatusUnauthorized, "unauthorized")

	// Another login of the same user is another session and is untouched.
	other := e.login(a.Phone, password)
	e.do("GET", "/api/v1/users/me", other.AccessToken, nil).want(http.StatusOK)
}

func TestRefreshRejectsBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{}).
		wantError(http.StatusUnprocessableEntity, "validation_failed", "refresh_token")
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": "not-a-token"}).
		wantError(http.StatusUnauthorized, "unauthorized")
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": a.AccessToken}).
		wantError(http.StatusUnauthorized, "unauthorized")
}

func TestLogoutEndsOnlyThisSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")
	other := e.login(a.Phone, password)

	e.do("POST", "/api/v1/auth/logout", a.AccessToken, nil).want(http.StatusNoContent)
	e.do("GET", "/api/v1/users/me", a.AccessToken, nil).wantError(http.StatusUnauthorized, "unauthorized")
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": a.RefreshToken}).
		wantError(http.StatusUnauthorized, "unauthorized")
	e.do("POST", "/api/v1/auth/logout", a.AccessToken, nil).wantError(http.StatusUnauthorized, "unauthorized")

	e.do("GET", "/api/v1/users/me", other.AccessToken, nil).want(http.StatusOK)
	e.do("POST", "/api/v1/auth/logout", "", nil).wantError(http.StatusUnauthorized, "unauthorized")
}

// TestConcurrentUsesOfOneRefreshTokenEndTheSession races two clients presenting the same refresh
// token: one of them is a replay, whichever comes second, so the session must end for both.
func TestConcurrentUsesOfOneRefreshTokenEndTheSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")
	results := make([]response, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			results[i] = e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": a.RefreshToken})
		})
	}
	wg.Wait()
	won := 0
	for _, r := range results {
		if r.Code == http.StatusOK {
			won++
			var tk tokens
			r.decode(&tk)
			e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tk.RefreshToken}).
				wantError(http.StatusUnauthorized, "unauthorized")
		} else {
			r.wantError(http.StatusUnauthorized, "unauthorized")
		}
	}
	if won != 1 {
		t.Fatalf("%d of two uses of one refresh token succeeded, want exactly 1", won)
	}
	e.do("GET", "/api/v1/users/me", a.AccessToken, nil).wantError(http.StatusUnauthorized, "unauthorized")
}
