// Command appload measures the PackNow API binary under load: it starts a throwaway PostgreSQL
// and redis-server, runs packnow-api against them with the full middleware stack (rate limit
// raised out of the way), and drives authenticated GET /api/v1/orders from concurrent clients,
// reporting requests per second and latency percentiles.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/packnow/packnow-operator/hack/testenv"
)

func main() {
	bin := flag.String("bin", "bin/packnow-api", "the packnow-api binary")
	clients := flag.Int("clients", 16, "concurrent clients")
	duration := flag.Duration("duration", 15*time.Second, "how long to drive load")
	orders := flag.Int("orders", 20, "orders the user owns (one page of the list)")
	flag.Parse()
	if err := run(*bin, *clients, *duration, *orders); err != nil {
		fmt.Fprintln(os.Stderr, "appload:", err)
		os.Exit(1)
	}
}

func run(bin string, clients int, duration time.Duration, orders int) error {
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

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	server := exec.Command(bin)
	server.Env = append(os.Environ(),
		"SECRET_KEY="+strings.Repeat("b", 64),
		// The template database is as good as any on a server that lives for one run.
		"DATABASE_URL="+pg.TemplateDSN(),
		"DATABASE_MAX_CONNS=20",
		"REDIS_URL="+redis.URL(),
		"LISTEN_ADDR="+addr,
		"RATE_LIMIT_PER_MINUTE=1000000",
		"BCRYPT_COST=4",
	)
	// Request logs are part of the stack being measured; where they go is not.
	server.Stdout, server.Stderr = io.Discard, os.Stderr
	if err := server.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()
	defer func() {
		_ = server.Process.Signal(os.Interrupt)
		<-exited
	}()
	base := "http://" + addr
	if err := waitReady(base, exited); err != nil {
		return err
	}

	access, err := setUp(base, orders)
	if err != nil {
		return err
	}
	latencies, failures := drive(base, access, clients, duration)
	if len(latencies) == 0 {
		return errors.New("no request succeeded")
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	fmt.Printf("GET /api/v1/orders (page of %d orders), %d clients, %s, full middleware stack\n", orders, clients, duration)
	fmt.Printf("requests: %d ok, %d failed\n", len(latencies), failures)
	fmt.Printf("throughput: %.0f requests/s\n", float64(len(latencies))/duration.Seconds())
	fmt.Printf("latency: p50 %s, p90 %s, p99 %s, max %s\n",
		pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), latencies[len(latencies)-1].Round(10*time.Microsecond))
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitReady(base string, exited chan error) error {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("packnow-api exited at start: %v", err)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("packnow-api did not become ready within 60s")
}

// setUp registers a user, logs in and posts orders; it returns the access token.
func setUp(base string, orders int) (string, error) {
	const phone, password = "+14155550199", "Bench&Mark-2026"
	if err := call(base, "POST", "/api/v1/auth/register", "",
		map[string]string{"phone": phone, "password": password, "role": "user"}, http.StatusCreated, nil); err != nil {
		return "", err
	}
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	if err := call(base, "POST", "/api/v1/auth/login", "",
		map[string]string{"phone": phone, "password": password}, http.StatusOK, &tokens); err != nil {
		return "", err
	}
	order := map[string]any{
		"pickup_address": "1 Market St, San Francisco",
		"items":          []map[string]any{{"name": "books", "quantity": 3}, {"name": "lamp", "quantity": 1}},
		"preferred_time": time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339),
	}
	for range orders {
		if err := call(base, "POST", "/api/v1/orders", tokens.AccessToken, order, http.StatusCreated, nil); err != nil {
			return "", err
		}
	}
	return tokens.AccessToken, nil
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

// drive sends requests from each client back to back until the duration is over.
func drive(base, access string, clients int, duration time.Duration) ([]time.Duration, int) {
	transport := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  int
		wg        sync.WaitGroup
	)
	for range clients {
		wg.Go(func() {
			var mine []time.Duration
			failed := 0
			for ctx.Err() == nil {
				req, _ := http.NewRequest("GET", base+"/api/v1/orders", nil)
				req.Header.Set("Authorization", "Bearer "+access)
				req.Header.Set("Accept-Encoding", "gzip")
				start := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed++
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			failures += failed
			mu.Unlock()
		})
	}
	wg.Wait()
	return latencies, failures
}
