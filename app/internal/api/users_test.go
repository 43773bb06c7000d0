package api_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestGetMeNeedsAToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("GET", "/api/v1/users/me", "", nil)
	r.wantError(http.StatusUnauthorized, "unauthorized")
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("WWW-Authenticate = %q", r.Header.Get("WWW-Authenticate"))
	}
}

func TestUpdateMeChangesName(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")
	var u user
	e.do("PATCH", "/api/v1/users/me", a.AccessToken, map[string]string{"name": "New Name"}).want(http.StatusOK).decode(&u)
	if u.Name != "New Name" || u.Phone != a.Phone || u.Role != "user" {
		t.Fatalf("after update: %+v", u)
	}
	e.do("PATCH", "/api/v1/users/me", a.AccessToken, map[string]string{"name": strings.Repeat("n", 101)}).
		wantError(http.StatusUnprocessableEntity, "validation_failed", "name")
}

func TestRoleCannotBeChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")
	for _, body := range []string{
		`{"role": "packer"}`,
		`{"name": "x", "role": "packer"}`,
		`{"Role": "packer"}`,
		`{"id": "00000000-0000-0000-0000-000000000000"}`,
	} {
		e.do("PATCH", "/api/v1/users/me", a.AccessToken, body).wantError(http.StatusBadRequest, "unknown_field")
	}
	var u user
	e.do("GET", "/api/v1/users/me", a.AccessToken, nil).want(http.StatusOK).decode(&u)
	if u.Role != "user" || u.Name != a.Name {
		t.Fatalf("a refused update changed the account: %+v", u)
	}
}

func TestUpdateMePhoneNeedsCurrentPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")
	taken := e.register("user")
	newPhoneNumber := newPhone()

	e.do("PATCH", "/api/v1/users/me", a.AccessToken, map[string]string{"phone": newPhoneNumber}).
		wantError(http.StatusUnprocessableEntity, "validation_failed", "current_password")
	e.do("PATCH", "/api/v1/users/me", a.AccessToken, map[string]string{"phone": newPhoneNumber, "current_password": "Wr0ng&Password"}).
		wantError(http.StatusUnprocessableEntity, "validation_failed", "current_password")
	e.do("PATCH", "/api/v1/users/me", a.AccessToken, map[string]string{"phone": "0123", "current_password": password}).
		wantError(http.StatusUnprocessableEntity, "validation_failed", "phone")
	e.do("PATCH", "/api/v1/users/me", a.AccessToken, map[string]string{"phone": taken.Phone, "current_password": password}).
		wantError(http.StatusConflict, "phone_taken", "phone")

	var u user
	e.do("PATCH", "/api/v1/users/me", a.AccessToken, map[string]string{"phone": newPhoneNumber, "current_password": password}).
		want(http.StatusOK).decode(&u)
	if u.Phone != newPhoneNumber {
		t.Fatalf("phone is %q, want %q", u.Phone, newPhoneNumber)
	}
	e.login(newPhoneNumber, password)
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": a.Phone, "password": password}).
		wantError(http.StatusUnauthorized, "invalid_credentials")
}

func TestPasswordChangeEndsAllOtherSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")
	other := e.login(a.Phone, password)
	const newPassword = "N3w&Different-Pass"

	e.do("PATCH", "/api/v1/users/me", a.AccessToken, map[string]string{"password": "weak", "current_password": password}).
		wantError(http.StatusUnprocessableEntity, "validation_failed", "password")
	e.do("PATCH", "/api/v1/users/me", a.AccessToken, map[string]string{"password": newPassword}).
		wantError(http.StatusUnprocessableEntity, "validation_failed", "current_password")
	e.do("PATCH", "/api/v1/users/me", a.AccessToken, map[string]string{"password": newPassword, "current_password": password}).
		want(http.StatusOK)

	// The session that changed the password goes on; every other one is over.
	e.do("GET", "/api/v1/users/me", a.AccessToken, nil).want(http.StatusOK)
	e.do("GET", "/api/v1/users/me", other.AccessToken, nil).wantError(http.StatusUnauthorized, "unauthorized")
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": other.RefreshToken}).
		wantError(http.StatusUnauthorized, "unauthorized")

	e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": a.Phone, "password": password}).
		wantError(http.StatusUnauthorized, "invalid_credentials")
	e.login(a.Phone, newPassword)
}

func TestDeleteMeErasesTheAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")
	other := e.login(a.Phone, password)

	e.do("DELETE", "/api/v1/users/me", a.AccessToken, map[string]string{}).
		wantError(http.StatusUnprocessableEntity, "validation_failed", "password")
	e.do("DELETE", "/api/v1/users/me", a.AccessToken, map[string]string{"password": "Wr0ng&Password"}).
		wantError(http.StatusUnprocessableEntity, "validation_failed", "password")
	e.do("DELETE", "/api/v1/users/me", a.AccessToken, map[string]string{"password": password}).want(http.StatusNoContent)

	for _, tk := range []string{a.AccessToken, other.AccessToken} {
		e.do("GET", "/api/v1/users/me", tk, nil).wantError(http.StatusUnauthorized, "unauthorized")
	}
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": other.RefreshToken}).
		wantError(http.StatusUnauthorized, "unauthorized")
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": a.Phone, "password": password}).
		wantError(http.StatusUnauthorized, "invalid_credentials")

	var leftovers int
	if err := e.pool.QueryRow(t.Context(),
		`SELECT count(*) FROM users WHERE id = $1 AND (phone IS NOT NULL OR password_hash IS NOT NULL OR name <> '')`,
		a.ID).Scan(&leftovers); err != nil {
		t.Fatal(err)
	}
	if leftovers != 0 {
		t.Fatal("personal data of the deleted account is still stored")
	}
	// The number is free again.
	e.do("POST", "/api/v1/auth/register", "", map[string]string{"phone": a.Phone, "password": password, "role": "packer"}).
		want(http.StatusCreated)
}

func TestDeletingAnOwnerAnonymisesTheirOrders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner, packer := e.newActor("user"), e.newActor("packer")
	open := e.createOrder(owner)
	accepted := e.acceptedOrder(owner, packer)

	e.do("DELETE", "/api/v1/users/me", owner.AccessToken, map[string]string{"password": password}).want(http.StatusNoContent)

	// The open order is withdrawn from the marketplace.
	e.do("GET", "/api/v1/orders/"+open.ID, packer.AccessToken, nil).wantError(http.StatusNotFound, "not_found")
	// The packer still needs the address of the order they accepted...
	var o order
	e.do("GET", "/api/v1/orders/"+accepted.ID, packer.AccessToken, nil).want(http.StatusOK).decode(&o)
	if o.PickupAddress == "" {
		t.Fatal("the accepted order lost its address while the packer still needs it")
	}
	// ...until the job is done.
	e.do("POST", "/api/v1/orders/"+accepted.ID+"/complete", packer.AccessToken, nil).want(http.StatusOK).decode(&o)
	if o.Status != "completed" || o.PickupAddress != "" {
		t.Fatalf("completed order of a deleted owner: %+v", o)
	}
}

func TestDeletingAPackerReturnsTheirJobsToTheMarketplace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner, packer, other := e.newActor("user"), e.newActor("packer"), e.newActor("packer")
	o := e.acceptedOrder(owner, packer)
	e.do("DELETE", "/api/v1/users/me", packer.AccessToken, map[string]string{"password": password}).want(http.StatusNoContent)

	var got order
	e.do("GET", "/api/v1/orders/"+o.ID, owner.AccessToken, nil).want(http.StatusOK).decode(&got)
	if got.Status != "open" || got.PackerID != nil {
		t.Fatalf("order of a deleted packer: %+v", got)
	}
	e.do("POST", "/api/v1/orders/"+o.ID+"/accept", other.AccessToken, nil).want(http.StatusOK)
}

func TestExportHoldsEverythingAboutTheUserButNoSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner, packer := e.newActor("user"), e.newActor("packer")
	e.login(owner.Phone, password)
	o := e.acceptedOrder(owner, packer)

	r := e.do("GET", "/api/v1/users/me/export", owner.AccessToken, nil).want(http.StatusOK)
	var export struct {
		User     user    `json:"user"`
		Orders   []order `json:"orders"`
		Sessions []struct {
			CreatedAt string  `json:"created_at"`
			RevokedAt *string `json:"revoked_at"`
		} `json:"sessions"`
	}
	r.decode(&export)
	if export.User.ID != owner.ID || export.User.Phone != owner.Phone {
		t.Fatalf("export user %+v", export.User)
	}
	if len(export.Orders) != 1 || export.Orders[0].ID != o.ID {
		t.Fatalf("export orders %+v", export.Orders)
	}
	if len(export.Sessions) != 2 {
		t.Fatalf("export has %d sessions, want 2", len(export.Sessions))
	}
	if strings.Contains(string(r.Body), "$2a$") || strings.Contains(string(r.Body), owner.RefreshToken) {
		t.Fatal("export contains a password hash or a token")
	}
	if !strings.Contains(r.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("Content-Disposition = %q", r.Header.Get("Content-Disposition"))
	}

	var packerExport struct {
		Orders []order `json:"orders"`
	}
	e.do("GET", "/api/v1/users/me/export", packer.AccessToken, nil).want(http.StatusOK).decode(&packerExport)
	if len(packerExport.Orders) != 1 {
		t.Fatalf("packer export has %d orders, want the one they accepted", len(packerExport.Orders))
	}
}
