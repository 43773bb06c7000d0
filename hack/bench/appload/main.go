// Command appload benchmarks the PackNow API binary through its full middleware stack against a
// throwaway PostgreSQL and redis-server (hack/testenv): authenticated GET /api/v1/orders and
// POST /api/v1/auth/login at several connection counts, then a flood of concurrent logins while
// /healthz is polled. It prints a table per scenario; the load generator shares the machine with
// the server, so the figures are a floor, not a capacity.
//
//	go run ./hack/bench/appload [-duration 15s] [-conns 16,64,256] [-flood 500] ...
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/packnow/packnow-operator/hack/bench/report"
	"github.com/packnow/packnow-operator/hack/testenv"
)

// User numbers (see phone): the orders user, the login users from loginUsers on, one per
// connection of every row, and the flood's users from floodUsers on.
const (
	ordersUser = 0
	loginUsers = 1000
	floodUsers = 5000
	lastUser   = 9999
)

type options struct {
	bin          string
	conns        []int
	duration     time.Duration
	warmup       time.Duration
	orders       int
	loginCost    int
	flood        int
	floodCost    int
	healthzEvery time.Duration
	idle         time.Duration
	scenarios    map[string]bool
}

func main() {
	var o options
	var conns, scenarios string
	flag.StringVar(&o.bin, "bin", "", "packnow-api binary to run (default: build app/cmd/packnow-api into a temporary directory)")
	flag.StringVar(&conns, "conns", "16,64,256", "connection counts of the orders and login tables")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measured time per row of the orders and login tables")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each row")
	flag.IntVar(&o.orders, "orders", 20, "orders the user owns (one page of the list)")
	flag.IntVar(&o.loginCost, "login-cost", 0, "BCRYPT_COST of the login table's server (0: the app's default)")
	flag.IntVar(&o.flood, "flood", 500, "concurrent logins of the flood")
	flag.IntVar(&o.floodCost, "flood-cost", 12, "BCRYPT_COST of the flood's server")
	flag.DurationVar(&o.healthzEvery, "healthz-every", 50*time.Millisecond, "how often /healthz is polled around the flood")
	flag.DurationVar(&o.idle, "idle", 2*time.Second, "how long /healthz is polled before the flood, for comparison")
	flag.StringVar(&scenarios, "scenarios", "orders,login,flood", "which scenarios to run")
	flag.Parse()
	err := o.parse(conns, scenarios)
	if err == nil {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "appload:", err)
		os.Exit(1)
	}
}

func (o *options) parse(conns, scenarios string) error {
	for _, c := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("-conns: %q is not a positive number", c)
		}
		o.conns = append(o.conns, n)
	}
	o.scenarios = map[string]bool{}
	for _, s := range strings.Split(scenarios, ",") {
		if s = strings.TrimSpace(s); s != "orders" && s != "login" && s != "flood" {
			return fmt.Errorf("-scenarios: %q is none of orders, login, flood", s)
		}
		o.scenarios[s] = true
	}
	var sum int
	for _, n := range o.conns {
		sum += n
	}
	if loginUsers+sum > floodUsers {
		return fmt.Errorf("-conns: at most %d connections over all rows", floodUsers-loginUsers)
	}
	if o.flood < 1 || floodUsers+o.flood > lastUser+1 {
		return fmt.Errorf("-flood: between 1 and %d", lastUser+1-floodUsers)
	}
	return nil
}

func run(o options) error {
	report.Header(os.Stdout, "PackNow API through the full middleware stack: orders, login, login flood")
	pg, err := testenv.NewPostgres()
	if err != nil {
		return err
	}
	defer pg.Stop()
	redis, err := testenv.NewRedis()
	if err != nil {
		return err
	}
	defer redis.Stop()
	if o.bin == "" {
		dir, err := os.MkdirTemp("", "bench-app-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if o.bin, err = testenv.Build(dir, "./app/cmd/packnow-api", "packnow-api"); err != nil {
			return err
		}
	}
	fmt.Printf("setup:   packnow-api built from this commit; PostgreSQL and redis-server started by hack/testenv on loopback;\n"+
		"         the load generator runs on the same %d cores, so figures are a floor, not a capacity\n", runtime.NumCPU())
	// A server lives for one run, so the template database is as good as any.
	env := []string{
		"DATABASE_URL=" + pg.TemplateDSN(),
		"DATABASE_MAX_CONNS=20",
		"REDIS_URL=" + redis.URL(),
		"ALLOWED_HOSTS=127.0.0.1",
	}
	ctx := context.Background()
	if o.scenarios["orders"] || o.scenarios["login"] {
		if err := throughput(ctx, o, env, pg.TemplateDSN()); err != nil {
			return err
		}
	}
	if o.scenarios["flood"] {
		return loginFlood(ctx, o, env, pg.TemplateDSN())
	}
	return nil
}

// throughput runs the orders and login tables against one server whose rate limits are raised out
// of the way: every connection comes from 127.0.0.1.
func throughput(ctx context.Context, o options, env []string, dsn string) error {
	env = append(env,
		"SECRET_KEY="+strings.Repeat("b", 64),
		"RATE_LIMIT_PER_MINUTE=1000000",
		"RATE_LIMIT_LOGIN_PER_MINUTE=1000000",
	)
	if o.loginCost > 0 {
		env = append(env, "BCRYPT_COST="+strconv.Itoa(o.loginCost))
	}
	s, err := startAPI(o.bin, env)
	if err != nil {
		return err
	}
	defer s.stop()
	fmt.Println()
	fmt.Println("Server of the orders and login tables: RATE_LIMIT_PER_MINUTE=1000000 and RATE_LIMIT_LOGIN_PER_MINUTE=1000000")
	fmt.Println("(defaults 60 per client and 10 per IP; raised out of the way, as every connection comes from 127.0.0.1),")
	fmt.Println("lockout at its default (each connection logs in as its own user with the right password),")
	fmt.Printf("DATABASE_MAX_CONNS=20, request log on. Each row: %s measured after %s unmeasured; closed loop: each\n",
		o.duration, o.warmup)
	fmt.Println("connection sends its next request on the previous answer, Retry-After not honoured. Latencies are of")
	fmt.Println("200 responses; \"responses\" counts every answer by status and error code.")
	fmt.Println(legend)

	if o.scenarios["orders"] {
		if _, err := registerUsers(ctx, s, dsn, ordersUser, 1); err != nil {
			return err
		}
		token, err := login(s, ordersUser)
		if err != nil {
			return err
		}
		if err := postOrders(s, token, o.orders); err != nil {
			return err
		}
		fmt.Printf("\n## GET /api/v1/orders: one user's page of %d orders, bearer token, gzip accepted\n\n", o.orders)
		table(o, func(i int) *http.Request {
			req, _ := http.NewRequest(http.MethodGet, s.base+"/api/v1/orders", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Accept-Encoding", "gzip")
			return req
		}, nil)
	}
	if o.scenarios["login"] {
		var users int
		for _, n := range o.conns {
			users += n
		}
		cost, err := registerUsers(ctx, s, dsn, loginUsers, users)
		if err != nil {
			return err
		}
		costSource := "the app's default, unset"
		if o.loginCost > 0 {
			costSource = "set by -login-cost"
		}
		fmt.Printf("\n## POST /api/v1/auth/login: BCRYPT_COST=%d (%s; read back from a hash the server made),\n", cost, costSource)
		fmt.Println("## BCRYPT_CONCURRENCY default (GOMAXPROCS); each connection logs in as its own user, right password")
		fmt.Println()
		first := loginUsers
		table(o, nil, func(conns int) func(i int) *http.Request {
			base := first
			first += conns
			return func(i int) *http.Request { return loginRequest(s.base, base+i, "") }
		})
	}
	if usage, err := report.ProcessUsage(s.cmd.Process.Pid); err == nil {
		fmt.Printf("\nServer after the tables: peak RSS %s, CPU %.1f s.\n", report.MiB(usage.PeakRSS), usage.CPU.Seconds())
	}
	s.stop()
	fmt.Printf("Server log: %d warnings, %d errors.%s\n", s.logs.warnings, s.logs.errors, firstLine(s.logs.firstError))
	return nil
}

// table prints one row per connection count. Either newRequest serves every row, or
// rowRequests gives each row its own.
func table(o options, newRequest func(i int) *http.Request, rowRequests func(conns int) func(i int) *http.Request) {
	fmt.Println("| connections | requests/s | 200/s | p50 ms | p90 ms | p99 ms | max ms | responses |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---|")
	var firstError string
	for _, conns := range o.conns {
		requests := newRequest
		if rowRequests != nil {
			requests = rowRequests(conns)
		}
		drive(conns, o.warmup, requests)
		t := drive(conns, o.duration, requests)
		l := report.Summarize(t.ok)
		fmt.Printf("| %d | %.0f | %.0f | %s | %s | %s | %s | %s |\n", conns,
			float64(t.requests)/o.duration.Seconds(), float64(len(t.ok))/o.duration.Seconds(),
			report.Ms(l.P50), report.Ms(l.P90), report.Ms(l.P99), report.Ms(l.Max), t.mix())
		if firstError == "" {
			firstError = t.firstError
		}
	}
	if firstError != "" {
		fmt.Printf("\nFirst transport error: %s\n", firstError)
	}
}

// legend explains the kinds of answer that say Redis did not answer the rate limit in time.
const legend = "\"200 unmetered\" and \"503 unavailable\": the rate limit's Redis call failed or exceeded its 250 ms, so\n" +
	"the request was let through (RATE_LIMIT_FAIL_OTHER=open) or, on login, refused (RATE_LIMIT_FAIL_AUTH=closed)."

// loginRequest logs user i in; a non-empty forwardedFor is the client address a trusted proxy
// would report.
func loginRequest(base string, i int, forwardedFor string) *http.Request {
	body := fmt.Sprintf(`{"phone":%q,"password":%q}`, phone(i), password)
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/auth/login", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	return req
}

// loginFlood starts a fresh server (so that its peak RSS is the flood's) with the default rate
// limits and lockout, and sends every flood user's login at once, each from its own client
// address as an ingress would forward it, while /healthz is polled.
func loginFlood(ctx context.Context, o options, env []string, dsn string) error {
	env = append(env,
		// Another key: rate-limit and lockout keys are keyed from it, so nothing carries over.
		"SECRET_KEY="+strings.Repeat("f", 64),
		"BCRYPT_COST="+strconv.Itoa(o.floodCost),
		"TRUSTED_PROXIES=127.0.0.1/32",
	)
	s, err := startAPI(o.bin, env)
	if err != nil {
		return err
	}
	defer s.stop()
	cost, err := registerUsers(ctx, s, dsn, floodUsers, o.flood)
	if err != nil {
		return err
	}
	pollCtx, stopPolling := context.WithCancel(ctx)
	polled := make(chan []outcome, 1)
	pollStart := time.Now()
	go func() { polled <- poll(pollCtx, s.base+"/healthz", o.healthzEvery) }()
	time.Sleep(o.idle)
	before, err := report.ProcessUsage(s.cmd.Process.Pid)
	if err != nil {
		stopPolling()
		return err
	}
	logins, outcomes, start := flood(o.flood, func(i int) *http.Request {
		return loginRequest(s.base, floodUsers+i, clientIP(i).String())
	})
	drain := drained(start, outcomes)
	after, err := report.ProcessUsage(s.cmd.Process.Pid)
	stopPolling()
	polls := <-polled
	if err != nil {
		return err
	}

	fmt.Printf("\n## Login flood: %d logins at once, BCRYPT_COST=%d (read back from a hash the server made)\n\n", o.flood, cost)
	fmt.Printf("A fresh server with the default rate limits, lockout and BCRYPT_CONCURRENCY (GOMAXPROCS); each login is its own\n"+
		"user's, right password, one attempt, no retry, on its own connection, from its own client address\n"+
		"(X-Forwarded-For, TRUSTED_PROXIES=127.0.0.1/32), as %d users behind an ingress. /healthz is polled every %s on\n"+
		"one kept-alive connection.\n%s\n\n", o.flood, o.healthzEvery, legend)
	idle := report.Summarize(during(polls, pollStart, start).ok)
	busy := during(polls, start, start.Add(drain))
	flooded := report.Summarize(busy.ok)
	login := report.Summarize(logins.ok)
	fmt.Println("| measure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| time until every login was answered | %s ms |\n", report.Ms(drain))
	fmt.Printf("| login responses | %s |\n", logins.mix())
	fmt.Printf("| login 200 latency p50 / p99 / max | %s / %s / %s ms |\n", report.Ms(login.P50), report.Ms(login.P99), report.Ms(login.Max))
	fmt.Printf("| /healthz during the flood p50 / p99 / max (n) | %s / %s / %s ms (%d; %s) |\n",
		report.Ms(flooded.P50), report.Ms(flooded.P99), report.Ms(flooded.Max), flooded.Count, busy.mix())
	fmt.Printf("| /healthz before it, idle, p50 / p99 / max (n) | %s / %s / %s ms (%d) |\n",
		report.Ms(idle.P50), report.Ms(idle.P99), report.Ms(idle.Max), idle.Count)
	fmt.Printf("| server peak RSS (VmHWM) | %s (%s before the flood) |\n", report.MiB(after.PeakRSS), report.MiB(before.PeakRSS))
	fmt.Printf("| server CPU time from the first login to the drain | %.2f s |\n", (after.CPU - before.CPU).Seconds())
	if logins.firstError != "" {
		fmt.Printf("\nFirst transport error: %s\n", logins.firstError)
	}
	s.stop()
	fmt.Printf("\nServer log: %d warnings, %d errors.%s\n", s.logs.warnings, s.logs.errors, firstLine(s.logs.firstError))
	if busy.requests == 0 {
		return errors.New("no /healthz poll fell within the flood; lower -healthz-every")
	}
	return nil
}

func firstLine(logLine string) string {
	if logLine == "" {
		return ""
	}
	return " First error: " + logLine
}
