package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/packnow/packnow-operator/hack/bench/report"
)

// schedule is an open-loop plan: slot i is due at start + i/rate whatever happened to the slots before it. The
// first warmup slots only warm connections and caches; the rest are measured.
type schedule struct {
	start  time.Time
	rate   int
	warmup int
	slots  int
}

func newSchedule(start time.Time, rate int, warmup, measured time.Duration) schedule {
	n := func(d time.Duration) int { return int(int64(rate) * int64(d) / int64(time.Second)) }
	return schedule{start: start, rate: rate, warmup: n(warmup), slots: n(warmup) + n(measured)}
}

// due is computed from the start rather than by adding periods, so that rounding never accumulates.
func (s schedule) due(i int) time.Time {
	return s.start.Add(time.Duration(int64(i) * int64(time.Second) / int64(s.rate)))
}

// outcome is what became of one request.
type outcome int

const (
	// verdictExpected: HTTP 200 with the verdict the pod deserves.
	verdictExpected outcome = iota
	// verdictWrong: HTTP 200, but allowed where a denial was due or the other way round, or a malformed review.
	verdictWrong
	// statusNot200: the server answered with another status.
	statusNot200
	// transportFailed: no answer (connection, TLS, timeout).
	transportFailed
)

// sample is one measured request.
type sample struct {
	latency time.Duration
	done    time.Time
	outcome outcome
}

// tally sums up the measured slots of a run.
type tally struct {
	Requests                                     int
	Latency                                      report.Latencies
	AchievedRPS                                  float64
	TransportErrors, StatusErrors, WrongVerdicts int
}

// summarize counts outcomes and takes percentiles over every request that got an HTTP answer. Achieved rps is
// measured requests over the time from the first measured slot's due time to the last completion, so a server
// that falls behind shows a rate below the target.
func summarize(windowStart time.Time, samples []sample) tally {
	t := tally{Requests: len(samples)}
	var latencies []time.Duration
	last := windowStart
	for _, s := range samples {
		switch s.outcome {
		case transportFailed:
			t.TransportErrors++
		case statusNot200:
			t.StatusErrors++
		case verdictWrong:
			t.WrongVerdicts++
		}
		if s.outcome != transportFailed {
			latencies = append(latencies, s.latency)
		}
		if s.done.After(last) {
			last = s.done
		}
	}
	t.Latency = report.Summarize(latencies)
	if elapsed := last.Sub(windowStart); elapsed > 0 {
		t.AchievedRPS = float64(len(samples)) / elapsed.Seconds()
	}
	return t
}

// runOpenLoop sends every slot of s from workers goroutines (one keep-alive connection each) and tallies the
// measured ones. A worker takes the next slot, waits for its due time if it is early, and sends; latency counts
// from the due time, not from the send. When every worker is busy the slots behind wait, and that wait is part
// of their latency: a slow server cannot lower the offered rate and hide its stalls (coordinated omission).
// It stops taking slots once ctx is done.
func runOpenLoop(ctx context.Context, s schedule, workers int, send func(slot int) outcome) tally {
	var (
		next    atomic.Int64
		mu      sync.Mutex
		samples []sample
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			var mine []sample
			for {
				i := int(next.Add(1) - 1)
				if i >= s.slots || ctx.Err() != nil {
					break
				}
				due := s.due(i)
				time.Sleep(time.Until(due))
				o := send(i)
				done := time.Now()
				if i >= s.warmup {
					mine = append(mine, sample{latency: done.Sub(due), done: done, outcome: o})
				}
			}
			mu.Lock()
			samples = append(samples, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return summarize(s.due(s.warmup), samples)
}
