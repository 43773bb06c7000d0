package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// outcome is one response, or a transport error, as the load generator saw it.
type outcome struct {
	start   time.Time
	latency time.Duration
	// kind is the status and, for refusals, the API's error code ("200", "503 busy"); "error"
	// when no response came back, and "200 unmetered" when the rate limit let the request through
	// without asking Redis (RATE_LIMIT_FAIL_OTHER=open after a Redis error or timeout).
	kind string
}

// tally is what a set of requests came to.
type tally struct {
	requests int
	// ok are the latencies of 200 responses.
	ok    []time.Duration
	kinds map[string]int
	// firstError is the first transport error, to say what "error" means.
	firstError string
}

func (t *tally) add(o outcome, err error) {
	if t.kinds == nil {
		t.kinds = map[string]int{}
	}
	t.requests++
	t.kinds[o.kind]++
	if o.ok() {
		t.ok = append(t.ok, o.latency)
	}
	if err != nil && t.firstError == "" {
		t.firstError = err.Error()
	}
}

func (t *tally) merge(other tally) {
	for kind, n := range other.kinds {
		if t.kinds == nil {
			t.kinds = map[string]int{}
		}
		t.kinds[kind] += n
	}
	t.requests += other.requests
	t.ok = append(t.ok, other.ok...)
	if t.firstError == "" {
		t.firstError = other.firstError
	}
}

// mix lists the kinds of response by how many there were, most first: "200: 80, 503 busy: 12".
func (t *tally) mix() string {
	kinds := make([]string, 0, len(t.kinds))
	for k := range t.kinds {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int {
		if t.kinds[a] != t.kinds[b] {
			return t.kinds[b] - t.kinds[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = k + ": " + strconv.Itoa(t.kinds[k])
	}
	return strings.Join(parts, ", ")
}

// send makes one request and classifies the answer; the body is read to the end so the
// connection can be reused, and the latency includes it.
func send(client *http.Client, req *http.Request) (outcome, error) {
	o := outcome{start: time.Now()}
	resp, err := client.Do(req)
	if err != nil {
		o.latency, o.kind = time.Since(o.start), "error"
		return o, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	o.latency = time.Since(o.start)
	if err != nil {
		o.kind = "error"
		return o, err
	}
	o.kind = kindOf(resp.StatusCode, resp.Header, body)
	return o, nil
}

func (o outcome) ok() bool { return strings.HasPrefix(o.kind, "200") }

// kindOf names a response by its status and, when it is an API error, its code: a 429 from the
// rate limit and one from the lockout mean different things. A limited route whose answer lacks
// X-RateLimit-Remaining was served without its budget being checked.
func kindOf(status int, header http.Header, body []byte) string {
	if status == http.StatusOK {
		if header.Get("X-RateLimit-Limit") != "" && header.Get("X-RateLimit-Remaining") == "" {
			return "200 unmetered"
		}
		return "200"
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		return fmt.Sprintf("%d %s", status, e.Error.Code)
	}
	return strconv.Itoa(status)
}

// drive keeps conns connections busy for the duration, each sending its next request as soon as
// the previous one is answered (closed loop, no Retry-After honoured). newRequest makes the
// request of connection i.
func drive(conns int, duration time.Duration, newRequest func(i int) *http.Request) tally {
	transport := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var (
		mu    sync.Mutex
		total tally
		wg    sync.WaitGroup
	)
	for i := range conns {
		wg.Go(func() {
			var mine tally
			for ctx.Err() == nil {
				mine.add(send(client, newRequest(i)))
			}
			mu.Lock()
			total.merge(mine)
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}

// flood sends one request per client all at once, each on a new connection, and returns what
// came back and when it started; newRequest makes client i's request.
func flood(clients int, newRequest func(i int) *http.Request) (tally, []outcome, time.Time) {
	transport := &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 2 * time.Minute}
	requests := make([]*http.Request, clients)
	for i := range requests {
		requests[i] = newRequest(i)
	}
	outcomes := make([]outcome, clients)
	errs := make([]error, clients)
	var ready, done sync.WaitGroup
	ready.Add(clients)
	gate := make(chan struct{})
	for i := range clients {
		done.Go(func() {
			ready.Done()
			<-gate
			outcomes[i], errs[i] = send(client, requests[i])
		})
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	done.Wait()
	var t tally
	for i, o := range outcomes {
		t.add(o, errs[i])
	}
	return t, outcomes, start
}

// drained is how long after start the last of the outcomes was answered.
func drained(start time.Time, outcomes []outcome) time.Duration {
	var last time.Time
	for _, o := range outcomes {
		if end := o.start.Add(o.latency); end.After(last) {
			last = end
		}
	}
	return last.Sub(start)
}

// poll requests url every interval (or right after the previous answer, if that took longer)
// until ctx ends, and returns every outcome.
func poll(ctx context.Context, url string, interval time.Duration) []outcome {
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var outcomes []outcome
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for ctx.Err() == nil {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		o, _ := send(client, req)
		outcomes = append(outcomes, o)
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	return outcomes
}

// during are the outcomes of requests sent in [from, to).
func during(outcomes []outcome, from, to time.Time) tally {
	var t tally
	for _, o := range outcomes {
		if !o.start.Before(from) && o.start.Before(to) {
			t.add(o, nil)
		}
	}
	return t
}

// clientIP is flood client i's address, distinct for every i below 2^16, in 10.77.0.0/16 so
// it can never be a trusted proxy or loopback.
func clientIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 77, byte(i >> 8), byte(i)})
}

// phone is benchmark user i's number: +1 415 555 with four digits, which the API accepts as a
// valid US number.
func phone(i int) string {
	return fmt.Sprintf("+1415555%04d", i)
}
