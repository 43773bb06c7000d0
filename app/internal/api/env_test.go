package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/packnow/packnow-operator/app/internal/api"
	"github.com/packnow/packnow-operator/app/internal/audit"
	"github.com/packnow/packnow-operator/app/internal/config"
	"github.com/packnow/packnow-operator/app/internal/credentials"
	"github.com/packnow/packnow-operator/app/internal/store"
	"github.com/packnow/packnow-operator/app/internal/token"
	"github.com/packnow/packnow-operator/app/keyring"
	"github.com/packnow/packnow-operator/hack/testenv"
)

// One PostgreSQL and one Redis serve the whole package; each test gets its own database.
var (
	postgres *testenv.Postgres
	redisURL string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// quietRedis drops go-redis's own messages: the outage tests would print one per request.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func runTests(m *testing.M) int {
	redis.SetLogger(quietRedis{})
	var err error
	postgres, err = testenv.NewPostgres()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer postgres.Stop()
	r, err := testenv.NewRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer r.Stop()
	redisURL = r.URL()
	if err := migrateTemplate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// migrateTemplate migrates the database every test database is copied from.
func migrateTemplate() error {
	ctx := context.Background()
	pool, err := store.Connect(ctx, postgres.TemplateDSN(), 1)
	if err != nil {
		return err
	}
	defer pool.Close()
	return store.Migrate(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

const (
	secretKey = "test-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOP"
	password  = "Tr0ub4dor&3x"
)

type env struct {
	t       *testing.T
	handler http.Handler
	pool    *pgxpool.Pool
	redis   *redis.Client
	audit   *audit.Writer
	cfg     config.Config
	logs    *testenv.LogBuffer
	gate    *credentials.Gate
	// remoteAddr is the socket peer of requests; each env has its own, so that tests sharing
	// the package's Redis never share a rate-limit budget.
	remoteAddr string
}

type options struct {
	debug    bool
	redisURL string
	// environment overrides the test defaults, as the operator's env would.
	environment map[string]string
	gate        *credentials.Gate
}

var ipCounter atomic.Int64

// uniqueIP returns an address no other test (or rerun, with -count) uses, from 100.64.0.0/10, so
// that rate-limit budgets in the shared Redis are never shared by accident.
func uniqueIP() string {
	n := ipCounter.Add(1)
	return fmt.Sprintf("100.%d.%d.%d", 64+(n>>16)&63, (n>>8)&255, n&255)
}

// testEnvironment is the environment of every test server: what the operator passes, with
// limits high enough that tests about other things never meet them.
func testEnvironment(o options) map[string]string {
	m := map[string]string{
		"SECRET_KEY":                     secretKey,
		"DATABASE_URL":                   "postgres://unused",
		"REDIS_URL":                      "redis://unused",
		"BCRYPT_COST":                    "4",
		"RATE_LIMIT_PER_MINUTE":          "100000",
		"RATE_LIMIT_LOGIN_PER_MINUTE":    "100000",
		"RATE_LIMIT_REGISTER_PER_MINUTE": "100000",
		"RATE_LIMIT_REFRESH_PER_MINUTE":  "100000",
		"DEBUG":                          fmt.Sprint(o.debug),
	}
	for k, v := range o.environment {
		m[k] = v
	}
	return m
}

func newEnv(t *testing.T) *env {
	return newEnvWith(t, options{})
}

func newEnvWith(t *testing.T, o options) *env {
	t.Helper()
	ctx := context.Background()
	pool, err := store.Connect(ctx, postgres.NewDatabase(t), 30)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if o.redisURL == "" {
		o.redisURL = redisURL
	}
	redisOpts, err := redis.ParseURL(o.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	redisOpts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(redisOpts)
	t.Cleanup(func() { rdb.Close() })
	vars := testEnvironment(o)
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	w := audit.NewWriter(store.New(pool), slog.New(slog.NewJSONHandler(logs, nil)), cfg.AuditQueueSize)
	t.Cleanup(func() {
		if err := w.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	e := &env{t: t, pool: pool, redis: rdb, audit: w, cfg: cfg, logs: logs, gate: o.gate,
		remoteAddr: uniqueIP() + ":40000"}
	e.handler = e.serverWithKeys(keyring.Set{Current: secretKey})
	return e
}

// serverWithKeys builds a server over the same database and Redis with another key set, as a
// pod of another generation would be.
func (e *env) serverWithKeys(keys keyring.Set) http.Handler {
	e.t.Helper()
	ring, err := keys.Ring()
	if err != nil {
		e.t.Fatal(err)
	}
	tokens, err := token.NewManager(ring, "HS256", 15*time.Minute, 7*24*time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Keys = keys
	return api.NewServer(api.Deps{
		Store: store.New(e.pool), Redis: e.redis, Tokens: tokens, Audit: e.audit,
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil)), Config: cfg, BcryptGate: e.gate,
	})
}

type response struct {
	t      *testing.T
	Code   int
	Header http.Header
	Body   []byte
}

// decode reads the JSON body into v.
func (r response) decode(v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		r.t.Fatalf("response %d is not the JSON expected: %v\n%s", r.Code, err, r.Body)
	}
}

type apiError struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields"`
	} `json:"error"`
}

func (r response) apiError() apiError {
	r.t.Helper()
	var e apiError
	r.decode(&e)
	return e
}

// want fails the test unless the response has the status code.
func (r response) want(code int) response {
	r.t.Helper()
	if r.Code != code {
		r.t.Fatalf("status %d, want %d; body: %s", r.Code, code, r.Body)
	}
	return r
}

// wantError fails the test unless the response is an error with this status and code, and, for
// each field named, a message mentioning it.
func (r response) wantError(code int, errCode string, fields ...string) apiError {
	r.t.Helper()
	r.want(code)
	e := r.apiError()
	if e.Error.Code != errCode {
		r.t.Fatalf("error code %q, want %q; body: %s", e.Error.Code, errCode, r.Body)
	}
	for _, f := range fields {
		if e.Error.Fields[f] == "" {
			r.t.Fatalf("error does not name field %q; body: %s", f, r.Body)
		}
	}
	return e
}

// do sends a request. body is sent as is when it is a string, and as JSON otherwise.
func (e *env) do(method, path, accessToken string, body any) response {
	e.t.Helper()
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		reader = bytes.NewReader(data)
	}
	req := httptest.NewRequest(method, path, reader)
	req.RemoteAddr = e.remoteAddr
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return response{t: e.t, Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

var phoneCounter atomic.Int64

// newPhone returns a valid phone number no other test uses.
func newPhone() string {
	return fmt.Sprintf("+1415555%04d", phoneCounter.Add(1)%10000)
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

type user struct {
	ID    string `json:"id"`
	Phone string `json:"phone"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

// actor is a registered, logged-in account.
type actor struct {
	user
	tokens
}

func (e *env) register(role string) user {
	e.t.Helper()
	var u user
	e.do("POST", "/api/v1/auth/register", "", map[string]string{
		"phone": newPhone(), "password": password, "role": role, "name": "Test " + role,
	}).want(http.StatusCreated).decode(&u)
	return u
}

func (e *env) login(phone, pw string) tokens {
	e.t.Helper()
	var tk tokens
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"phone": phone, "password": pw}).
		want(http.StatusOK).decode(&tk)
	return tk
}

func (e *env) newActor(role string) actor {
	e.t.Helper()
	u := e.register(role)
	return actor{user: u, tokens: e.login(u.Phone, password)}
}

type order struct {
	ID            string    `json:"id"`
	OwnerID       string    `json:"owner_id"`
	PackerID      *string   `json:"packer_id"`
	Status        string    `json:"status"`
	PickupAddress string    `json:"pickup_address"`
	Items         []item    `json:"items"`
	PreferredTime time.Time `json:"preferred_time"`
}

type item struct {
	Name     string `json:"name"`
	Quantity int    `json:"quantity"`
}

func validOrder() map[string]any {
	return map[string]any{
		"pickup_address": "1 Market St, San Francisco",
		"items":          []item{{Name: "books", Quantity: 3}, {Name: "lamp", Quantity: 1}},
		"preferred_time": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339),
	}
}

func (e *env) createOrder(owner actor) order {
	e.t.Helper()
	var o order
	e.do("POST", "/api/v1/orders", owner.AccessToken, validOrder()).want(http.StatusCreated).decode(&o)
	return o
}

func (e *env) acceptedOrder(owner, packer actor) order {
	e.t.Helper()
	o := e.createOrder(owner)
	e.do("POST", "/api/v1/orders/"+o.ID+"/accept", packer.AccessToken, nil).want(http.StatusOK).decode(&o)
	return o
}

// doRaw sends body with the given content type.
func (e *env) doRaw(method, path, contentType, body string) response {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = e.remoteAddr
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return response{t: e.t, Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// send serves a prepared request, from the env's client address unless the request has one.
func (e *env) send(req *http.Request) response {
	e.t.Helper()
	if req.RemoteAddr == "192.0.2.1:1234" { // httptest.NewRequest's default
		req.RemoteAddr = e.remoteAddr
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return response{t: e.t, Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// flushAudit waits until every audit event recorded so far is in the database.
func (e *env) flushAudit() {
	e.t.Helper()
	if err := e.audit.Flush(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func jsonUnmarshalBase64(segment string, v any) error {
	data, err := base64.RawURLEncoding.DecodeString(segment)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func mustUnescape(t *testing.T, path string) string {
	t.Helper()
	p, err := url.PathUnescape(path)
	if err != nil {
		return path
	}
	return p
}
