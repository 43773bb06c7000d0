package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/packnow/packnow-operator/app/internal/credentials"
)

func TestLockoutAfterThresholdFailures(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: map[string]string{"LOCKOUT_THRESHOLD": "3", "LOCKOUT_DURATION": "2s"}})
	victim := e.register("user")
	unknown := newPhone()
	attempt := func(phone, pw string) response {
		return e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": phone, "password": pw})
	}
	for _, phone := range []string{victim.Phone, unknown} {
		for range 3 {
			attempt(phone, "Wr0ng&Password").wantError(http.StatusUnauthorized, "invalid_credentials")
		}
	}
	// Locked: even the right password is refused, and an account that exists is answered
	// exactly like a number that has none.
	locked := attempt(victim.Phone, password)
	locked.wantError(http.StatusTooManyRequests, "account_locked")
	lockedUnknown := attempt(unknown, password)
	lockedUnknown.wantError(http.StatusTooManyRequests, "account_locked")
	if string(locked.Body) != string(lockedUnknown.Body) {
		t.Fatalf("locked bodies differ: %s vs %s", locked.Body, lockedUnknown.Body)
	}
	if ra, _ := strconv.Atoi(locked.Header.Get("Retry-After")); ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q, want the lock's remaining seconds", locked.Header.Get("Retry-After"))
	}
	// Another account is untouched.
	other := e.register("user")
	e.login(other.Phone, password)

	// The lock lifts by itself.
	time.Sleep(2100 * time.Millisecond)
	e.login(victim.Phone, password)
}

func TestSuccessfulLoginResetsTheFailureCount(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: map[string]string{"LOCKOUT_THRESHOLD": "3"}})
	u := e.register("user")
	for range 3 {
		for range 2 {
			e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": u.Phone, "password": "Wr0ng&Password"}).
				want(http.StatusUnauthorized)
		}
		e.login(u.Phone, password)
	}
}

// TestBusyLoginsDoNotLockTheAccount: answers of "busy" are the server's load, not guesses; however
// many a user gets, the right password still logs in once a slot is free.
func TestBusyLoginsDoNotLockTheAccount(t *testing.T) {
	t.Parallel()
	gate := credentials.NewGate(1, 10*time.Millisecond)
	e := newEnvWith(t, options{gate: gate, environment: map[string]string{"LOCKOUT_THRESHOLD": "3"}})
	u := e.register("user")
	if err := gate.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	login := map[string]string{"phone": u.Phone, "password": password}
	for range 5 {
		e.do("POST", "/api/v1/auth/login", "", login).wantError(http.StatusServiceUnavailable, "busy")
	}
	gate.Release()
	e.login(u.Phone, password)

	// Wrong passwords, checked, still lock as before.
	for range 3 {
		e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": u.Phone, "password": "Wr0ng&Password"}).
			want(http.StatusUnauthorized)
	}
	e.do("POST", "/api/v1/auth/login", "", login).wantError(http.StatusTooManyRequests, "account_locked")
}

// TestBcryptWorkIsBounded fills every bcrypt slot: password work that finds none answers 503
// with Retry-After instead of queueing, and works again once a slot is free.
func TestBcryptWorkIsBounded(t *testing.T) {
	t.Parallel()
	gate := credentials.NewGate(2, 10*time.Millisecond)
	e := newEnvWith(t, options{gate: gate})
	u := e.register("user")
	for range 2 {
		if err := gate.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	login := map[string]string{"phone": u.Phone, "password": password}
	r := e.do("POST", "/api/v1/auth/login", "", login)
	r.wantError(http.StatusServiceUnavailable, "busy")
	if r.Header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	e.do("POST", "/api/v1/auth/register", "", map[string]string{"phone": newPhone(), "password": password, "role": "user"}).
		wantError(http.StatusServiceUnavailable, "busy")
	gate.Release()
	e.login(u.Phone, password)
	gate.Release()

	// Many logins at once, of different accounts (one account's attempts in flight would count
	// towards its lockout): each succeeds or is told to come back; none fails otherwise.
	users := make([]user, 20)
	for i := range users {
		users[i] = e.register("user")
	}
	var wg sync.WaitGroup
	codes := make([]int, len(users))
	for i, u := range users {
		wg.Go(func() {
			codes[i] = e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": u.Phone, "password": password}).Code
		})
	}
	wg.Wait()
	for _, c := range codes {
		if c != http.StatusOK && c != http.StatusServiceUnavailable {
			t.Fatalf("concurrent logins: %v", codes)
		}
	}
}

func auditActions(t *testing.T, e *env, userID string) []string {
	t.Helper()
	e.flushAudit()
	rows, err := e.pool.Query(context.Background(),
		`SELECT action FROM audit_log WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		actions = append(actions, a)
	}
	return actions
}

func TestAuditLogRecordsEachEvent(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: map[string]string{"LOCKOUT_THRESHOLD": "2"}})
	owner := e.newActor("user")
	packer := e.newActor("packer")

	o := e.acceptedOrder(owner, packer)
	e.do("POST", "/api/v1/orders/"+o.ID+"/complete", packer.AccessToken, nil).want(http.StatusOK)
	cancelled := e.createOrder(owner)
	e.do("POST", "/api/v1/orders/"+cancelled.ID+"/cancel", owner.AccessToken, nil).want(http.StatusOK)

	var next tokens
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": owner.RefreshToken}).want(http.StatusOK).decode(&next)
	e.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": owner.RefreshToken}).want(http.StatusUnauthorized)
	session := e.login(owner.Phone, password)
	e.do("PATCH", "/api/v1/users/me", session.AccessToken, map[string]string{"password": "N3w&Better-pass", "current_password": password}).
		want(http.StatusOK)
	e.do("GET", "/api/v1/users/me/export", session.AccessToken, nil).want(http.StatusOK)
	e.do("POST", "/api/v1/auth/logout", session.AccessToken, nil).want(http.StatusNoContent)
	// The export tells the user what the audit log holds about them.
	var export struct {
		AuditLog []struct{ Action string } `json:"audit_log"`
	}
	last := e.login(owner.Phone, "N3w&Better-pass")
	e.flushAudit()
	e.do("GET", "/api/v1/users/me/export", last.AccessToken, nil).want(http.StatusOK).decode(&export)
	if len(export.AuditLog) != 12 || export.AuditLog[0].Action != "register" {
		t.Fatalf("export holds the audit entries %v", export.AuditLog)
	}
	for range 2 {
		e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": owner.Phone, "password": "Wr0ng&Password"}).
			want(http.StatusUnauthorized)
	}
	e.do("DELETE", "/api/v1/users/me", packer.AccessToken, map[string]string{"password": password}).want(http.StatusNoContent)

	want := []string{"register", "login_success", "order_created", "order_cancelled", "order_created", "refresh",
		"refresh_reuse_detected", "login_success", "password_change", "export", "logout", "login_success", "export",
		"login_failure", "login_failure", "lockout"}
	got := auditActions(t, e, owner.ID)
	// Orders created for acceptance come before the cancelled one; compare as multisets.
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("owner's audit trail:\n got %v\nwant %v", got, want)
	}
	wantPacker := []string{"register", "login_success", "order_accepted", "order_completed", "deletion"}
	if got := auditActions(t, e, packer.ID); !slices.Equal(got, wantPacker) {
		t.Fatalf("packer's audit trail:\n got %v\nwant %v", got, wantPacker)
	}

	var ip, meta string
	if err := e.pool.QueryRow(context.Background(),
		`SELECT host(ip_address), metadata::text FROM audit_log WHERE user_id = $1 AND action = 'order_cancelled'`,
		owner.ID).Scan(&ip, &meta); err != nil {
		t.Fatal(err)
	}
	if ip != strings.Split(e.remoteAddr, ":")[0] || !strings.Contains(meta, cancelled.ID) {
		t.Fatalf("order_cancelled row: ip %s metadata %s", ip, meta)
	}
}

// TestRequestLogHoldsNoSecrets checks each request is one JSON line with the fields the issue
// lists, and that no token, password or phone number reaches the log.
func TestRequestLogHoldsNoSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newActor("user")
	e.do("GET", "/api/v1/orders?cursor="+a.RefreshToken, a.AccessToken, nil).want(http.StatusUnprocessableEntity)
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": a.Phone, "password": "Wr0ng&Password"})
	logs := e.logs.String()
	for _, secret := range []string{a.AccessToken, a.RefreshToken, password, "Wr0ng&Password", a.Phone, strings.TrimPrefix(a.Phone, "+")} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %.20q...", secret)
		}
	}
	var lines int
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("not a JSON line: %s", line)
		}
		if entry["msg"] != "request" {
			continue
		}
		lines++
		for _, field := range []string{"method", "route", "status", "duration_ms", "request_id", "client"} {
			if _, ok := entry[field]; !ok {
				t.Errorf("log line lacks %s: %s", field, line)
			}
		}
		if entry["route"] == "GET /api/v1/orders" && entry["status"] != float64(http.StatusUnprocessableEntity) {
			t.Errorf("wrong status logged: %s", line)
		}
	}
	if lines != 4 {
		t.Fatalf("%d request lines for 4 requests:\n%s", lines, logs)
	}
}

// TestParallelGuessesCannotOutrunTheLockout sends many wrong passwords at once: attempts are
// counted before passwords are checked, so exactly LOCKOUT_THRESHOLD get checked.
func TestParallelGuessesCannotOutrunTheLockout(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{environment: map[string]string{"LOCKOUT_THRESHOLD": "3"}})
	u := e.register("user")
	codes := make([]int, 20)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			codes[i] = e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": u.Phone, "password": "Wr0ng&Password"}).Code
		})
	}
	wg.Wait()
	checked := 0
	for _, c := range codes {
		switch c {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("statuses %v", codes)
		}
	}
	if checked != 3 {
		t.Fatalf("%d passwords checked, want 3: %v", checked, codes)
	}
}
