package main

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
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
	// transportFailed: no answer (connection, TLS).
	transportFailed
	// tooLate: no answer within the API server's timeout, counted from the due time, when the API server would
	// have sent the request. A slot already that late when a worker frees up is not sent at all, so an
	// overloaded run ends on time instead of working off its backlog.
	tooLate
)

// sample is one measured slot.
type sample struct {
	outcome  outcome
	answered bool
	// latency from the due time to the answer, and when the answer came; set when answered.
	latency time.Duration
	done    time.Time
	// lag from the due time to the send (or to giving up, when tooLate): the generator's own lateness.
	lag time.Duration
}

// tally sums up the measured slots of a run.
type tally struct {
	// Requests is the number of measured slots, sent or not.
	Requests int
	// Sent is the number of requests sent, warm-up included.
	Sent int
	// Latency is over the answered requests, late ones included.
	Latency report.Latencies
	// SendLag is over the measured requests sent: how late after its due time each went out, because every
	// connection was busy or the generator woke late. It is part of Latency; a large one at a low rate would
	// mean the generator, not the server, set the figures.
	SendLag report.Latencies
	// AchievedRPS is answered requests per second, from the first measured slot's due time to the last answer.
	AchievedRPS                                           float64
	TransportErrors, StatusErrors, WrongVerdicts, TooLate int
}

// Errors is every measured slot without the answer it should have had in time.
func (t tally) Errors() int { return t.TransportErrors + t.StatusErrors + t.WrongVerdicts + t.TooLate }

func summarize(windowStart time.Time, samples []sample) tally {
	t := tally{Requests: len(samples)}
	var latencies, lags []time.Duration
	last := windowStart
	for _, s := range samples {
		if s.outcome != tooLate {
			lags = append(lags, s.lag)
		}
		switch s.outcome {
		case transportFailed:
			t.TransportErrors++
		case statusNot200:
			t.StatusErrors++
		case verdictWrong:
			t.WrongVerdicts++
		case tooLate:
			t.TooLate++
		}
		if !s.answered {
			continue
		}
		latencies = append(latencies, s.latency)
		if s.done.After(last) {
			last = s.done
		}
	}
	t.Latency = report.Summarize(latencies)
	t.SendLag = report.Summarize(lags)
	if elapsed := last.Sub(windowStart); elapsed > 0 {
		t.AchievedRPS = float64(len(latencies)) / elapsed.Seconds()
	}
	return t
}

// runOpenLoop sends every slot of s, one goroutine per sender (a keep-alive connection each), and tallies the
// measured ones. A worker takes the next slot, waits for its due time if it is early, and sends; latency counts
// from the due time, not from the send. When every worker is busy the slots behind wait, and that wait is part
// of their latency: a slow server cannot lower the offered rate and hide its stalls (coordinated omission).
// A slot not answered within limit of its due time is tooLate. It stops taking slots once ctx is done.
func runOpenLoop(ctx context.Context, s schedule, senders []func(slot int) outcome, limit time.Duration) tally {
	var (
		next    atomic.Int64
		mu      sync.Mutex
		samples []sample
		sent    atomic.Int64
		wg      sync.WaitGroup
	)
	for _, send := range senders {
		wg.Go(func() {
			var mine []sample
			for {
				i := int(next.Add(1) - 1)
				if i >= s.slots || ctx.Err() != nil {
					break
				}
				due := s.due(i)
				sleepUntil(due)
				var smp sample
				if smp.lag = time.Since(due); smp.lag > limit {
					smp.outcome = tooLate
				} else {
					sent.Add(1)
					smp.outcome = send(i)
					smp.done = time.Now()
					smp.latency = smp.done.Sub(due)
					smp.answered = smp.outcome != transportFailed
					if smp.latency > limit {
						smp.outcome = tooLate
					}
				}
				if i >= s.warmup {
					mine = append(mine, smp)
				}
			}
			mu.Lock()
			samples = append(samples, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	t := summarize(s.due(s.warmup), samples)
	t.Sent = int(sent.Load())
	return t
}

// sleepUntil sleeps in the kernel until t. time.Sleep would not do: the Go runtime waits for timers in
// epoll_wait, whose timeout is in whole milliseconds, so an idle generator wakes up to a millisecond late — as
// much as the latencies it measures.
func sleepUntil(t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	for {
		// Interrupted by a signal, it leaves the remaining time in ts.
		if err := syscall.Nanosleep(&ts, &ts); err != syscall.EINTR {
			return
		}
	}
}
