package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/packnow/packnow-operator/hack/testenv"
)

func TestRunRefusesBadConfigurationNamingEachVariable(t *testing.T) {
	env := map[string]string{"SECRET_KEY": "too-short", "DEBUG": "true", "ALLOWED_ORIGINS": "*"}
	var out bytes.Buffer
	err := run(context.Background(), []string{"packnow-api"}, func(k string) string { return env[k] }, &out)
	if err == nil {
		t.Fatal("run started with bad configuration")
	}
	for _, want := range []string{"SECRET_KEY:", "DATABASE_URL:", "REDIS_URL:", "ALLOWED_ORIGINS:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

func TestRunRejectsArguments(t *testing.T) {
	err := run(context.Background(), []string{"packnow-api", "serve"}, func(string) string { return "" }, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Fatalf("err = %v", err)
	}
}

// TestRunMigratesServesAndShutsDown starts the real binary's entry point against real servers,
// waits until it answers, and stops it as SIGTERM would.
func TestRunMigratesServesAndShutsDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	databaseURL := testenv.StartPostgres(t)
	env := map[string]string{
		"SECRET_KEY":   strings.Repeat("s", 64),
		"DATABASE_URL": databaseURL,
		"REDIS_URL":    testenv.StartRedis(t),
		"LISTEN_ADDR":  addr,
		"BCRYPT_COST":  "4",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &testenv.LogBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"packnow-api"}, func(k string) string { return env[k] }, logs) }()

	ready := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, logs)
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://%s/readyz", addr))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ready = true
				break
			}
		}
	}
	if !ready {
		t.Fatalf("server never became ready:\n%s", logs)
	}
	resp, err := http.Post(fmt.Sprintf("http://%s/api/v1/auth/register", addr), "application/json",
		strings.NewReader(`{"phone":"+14155550123","password":"Tr0ub4dor&3x","role":"user"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: status %d, so the schema was not migrated", resp.StatusCode)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after shutdown: %v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"shutting down"`) {
		t.Fatalf("no shutdown in the logs:\n%s", logs)
	}
	// Shutdown flushed the audit writer: the registration is on record.
	conn, err := pgx.Connect(context.Background(), databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var registrations int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE action = 'register'`).Scan(&registrations); err != nil {
		t.Fatal(err)
	}
	if registrations != 1 {
		t.Fatalf("%d register audit rows after shutdown, want 1", registrations)
	}
	if !strings.Contains(logs.String(), `"msg":"request"`) || !strings.Contains(logs.String(), `"route":"POST /api/v1/auth/register"`) {
		t.Fatalf("no request log line:\n%s", logs)
	}
}
