package main

import (
	"errors"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"
)

func TestKindNamesStatusAndErrorCode(t *testing.T) {
	metered := http.Header{"X-Ratelimit-Limit": {"60"}, "X-Ratelimit-Remaining": {"59"}}
	unmetered := http.Header{"X-Ratelimit-Limit": {"60"}}
	for _, tc := range []struct {
		status int
		header http.Header
		body   string
		want   string
	}{
		{200, metered, `{"access_token":"x"}`, "200"},
		{200, unmetered, `{"items":[]}`, "200 unmetered"},
		{200, nil, `{"status":"ok"}`, "200"},
		{503, metered, `{"error":{"code":"busy","message":"too many password checks in progress; retry shortly"}}`, "503 busy"},
		{429, metered, `{"error":{"code":"account_locked","message":"..."}}`, "429 account_locked"},
		{502, nil, `<html>bad gateway</html>`, "502"},
	} {
		if got := kindOf(tc.status, tc.header, []byte(tc.body)); got != tc.want {
			t.Errorf("kindOf(%d, %s) = %q, want %q", tc.status, tc.body, got, tc.want)
		}
	}
}

func TestTallyMixListsMostFirstAndKeepsOKLatencies(t *testing.T) {
	var a, b tally
	a.add(outcome{kind: "200", latency: time.Millisecond}, nil)
	a.add(outcome{kind: "200 unmetered", latency: time.Millisecond}, nil)
	a.add(outcome{kind: "503 busy"}, nil)
	b.add(outcome{kind: "503 busy"}, nil)
	b.add(outcome{kind: "error"}, errors.New("connection reset"))
	b.add(outcome{kind: "429 rate_limited"}, nil)
	a.merge(b)
	if got, want := a.mix(), "503 busy: 2, 200: 1, 200 unmetered: 1, 429 rate_limited: 1, error: 1"; got != want {
		t.Errorf("mix = %q, want %q", got, want)
	}
	if a.requests != 6 || len(a.ok) != 2 || a.firstError != "connection reset" {
		t.Errorf("tally = %+v", a)
	}
}

func TestDuringAndDrainedUseWhenRequestsWereSent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int, latencyMs int) outcome {
		return outcome{start: t0.Add(time.Duration(ms) * time.Millisecond), latency: time.Duration(latencyMs) * time.Millisecond, kind: "200"}
	}
	polls := []outcome{at(0, 1), at(50, 1), at(100, 400), at(550, 1)}
	if got := during(polls, t0.Add(50*time.Millisecond), t0.Add(550*time.Millisecond)); got.requests != 2 {
		t.Errorf("during [50ms, 550ms) = %d polls, want the two sent at 50 and 100 ms", got.requests)
	}
	if got := drained(t0, []outcome{at(0, 300), at(5, 900), at(10, 20)}); got != 905*time.Millisecond {
		t.Errorf("drained = %s, want 905ms", got)
	}
}

func TestBenchmarkUsersHaveValidDistinctPhonesAndAddresses(t *testing.T) {
	phones := map[string]bool{}
	for i := ordersUser; i <= lastUser; i++ {
		p := phone(i)
		if phones[p] {
			t.Fatalf("phone(%d) = %s again", i, p)
		}
		phones[p] = true
		n, err := phonenumbers.Parse(p, "")
		if err != nil || !phonenumbers.IsValidNumber(n) || phonenumbers.Format(n, phonenumbers.E164) != p {
			t.Fatalf("phone(%d) = %s is not a valid E.164 number", i, p)
		}
	}
	addrs := map[netip.Addr]bool{}
	for i := range lastUser + 1 - floodUsers {
		a := clientIP(i)
		if addrs[a] || a.IsLoopback() || !a.IsPrivate() {
			t.Fatalf("clientIP(%d) = %s: repeated, loopback or public", i, a)
		}
		addrs[a] = true
	}
}

func TestOptionsRejectUsersBeyondTheirRanges(t *testing.T) {
	for _, tc := range []struct {
		conns, scenarios string
		flood            int
		ok               bool
	}{
		{"16,64,256", "orders,login,flood", 500, true},
		{"4000", "login", 500, true},
		{"4000,1", "login", 500, false},
		{"16", "login", 5001, false},
		{"16,x", "login", 500, false},
		{"16", "orders,logins", 500, false},
	} {
		o := options{flood: tc.flood}
		if err := o.parse(tc.conns, tc.scenarios); (err == nil) != tc.ok {
			t.Errorf("parse(%q, %q) with -flood %d: err = %v, want ok %v", tc.conns, tc.scenarios, tc.flood, err, tc.ok)
		}
	}
}
