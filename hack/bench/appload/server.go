package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/packnow/packnow-operator/hack/testenv"
)

// password is every benchmark user's password; it passes the API's password policy.
const password = "Bench&Mark-2026"

// apiServer is a running packnow-api process.
type apiServer struct {
	cmd *exec.Cmd
	// exited is closed once the process has exited and its log has been read.
	exited chan struct{}
	base   string
	logs   *logCounter
}

// startAPI starts bin with env on a free loopback port and waits until /readyz says it is ready.
func startAPI(bin string, env []string) (*apiServer, error) {
	addr, err := testenv.FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	// The server must not outlive a benchmark that is killed before it can stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Env = append(os.Environ(), append(env, "LISTEN_ADDR="+addr)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &apiServer{cmd: cmd, exited: make(chan struct{}), base: "http://" + addr, logs: &logCounter{}}
	// The request log is part of the stack being measured, so it is written and read; only its
	// warnings and errors are kept.
	logsRead := make(chan struct{})
	go func() {
		s.logs.read(stdout)
		close(logsRead)
	}()
	go func() {
		<-logsRead
		_ = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *apiServer) waitReady() error {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-s.exited:
			return fmt.Errorf("packnow-api exited at start: %s", s.cmd.ProcessState)
		default:
		}
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("packnow-api did not become ready within 60s")
}

// stop asks the server to shut down as Kubernetes would and waits for it; stopping a stopped
// server does nothing.
func (s *apiServer) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// logCounter reads the server's JSON log and keeps its warnings and errors.
type logCounter struct {
	warnings, errors int
	firstError       string
}

func (c *logCounter) read(r io.Reader) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Bytes()
		switch {
		case bytes.Contains(line, []byte(`"level":"ERROR"`)):
			if c.errors == 0 {
				c.firstError = string(line)
			}
			c.errors++
		case bytes.Contains(line, []byte(`"level":"WARN"`)):
			c.warnings++
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// registerUsers registers the user with phone(first) through the API, so that its password
// hash is what the server makes at its BCRYPT_COST, then gives the same hash to users
// first+1 … first+n-1 straight in the database: hundreds of cost-12 hashes through the API
// would take minutes and measure nothing. It returns the hash's bcrypt cost.
func registerUsers(ctx context.Context, s *apiServer, dsn string, first, n int) (int, error) {
	if err := call(s.base, http.MethodPost, "/api/v1/auth/register", "",
		map[string]string{"phone": phone(first), "password": password, "role": "user"}, http.StatusCreated, nil); err != nil {
		return 0, err
	}
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close(ctx)
	var hash string
	if err := db.QueryRow(ctx, `SELECT password_hash FROM users WHERE phone = $1`, phone(first)).Scan(&hash); err != nil {
		return 0, err
	}
	phones := make([]string, 0, n-1)
	for i := first + 1; i < first+n; i++ {
		phones = append(phones, phone(i))
	}
	// The users table is the app's schema (app/internal/store/migrations); the bench relies on
	// its phone, password_hash and role columns.
	if _, err := db.Exec(ctx, `INSERT INTO users (phone, password_hash, role) SELECT unnest($1::text[]), $2, 'user'`,
		phones, hash); err != nil {
		return 0, err
	}
	return bcrypt.Cost([]byte(hash))
}

// login logs user i in and returns the access token.
func login(s *apiServer, i int) (string, error) {
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	err := call(s.base, http.MethodPost, "/api/v1/auth/login", "",
		map[string]string{"phone": phone(i), "password": password}, http.StatusOK, &tokens)
	return tokens.AccessToken, err
}

// postOrders gives the token's user n orders.
func postOrders(s *apiServer, token string, n int) error {
	order := map[string]any{
		"pickup_address": "1 Market St, San Francisco",
		"items":          []map[string]any{{"name": "books", "quantity": 3}, {"name": "lamp", "quantity": 1}},
		"preferred_time": time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339),
	}
	for range n {
		if err := call(s.base, http.MethodPost, "/api/v1/orders", token, order, http.StatusCreated, nil); err != nil {
			return err
		}
	}
	return nil
}

func call(base, method, path, token string, body any, want int, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, base+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, respBody)
	}
	if out != nil {
		return json.Unmarshal(respBody, out)
	}
	return nil
}
