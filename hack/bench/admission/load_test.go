package main

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestScheduleSlotsAndDueTimes(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSchedule(start, 3, 2*time.Second, 10*time.Second)
	if s.warmup != 6 || s.slots != 36 {
		t.Fatalf("warmup %d, slots %d; want 6 and 36", s.warmup, s.slots)
	}
	// 3 per second: 1/3 s apart without accumulating rounding, exactly 10 s apart 30 slots later.
	for i, want := range map[int]time.Duration{0: 0, 1: 333333333, 2: 666666666, 3: time.Second, 36: 12 * time.Second} {
		if got := s.due(i).Sub(start); got != want {
			t.Errorf("slot %d due after %s, want %s", i, got, want)
		}
	}
}

func TestRunOpenLoopSendsEverySlotOnceAndMeasuresOnlyAfterWarmup(t *testing.T) {
	// Started an hour ago, every slot is overdue: nothing waits, and every latency is at least that hour.
	s := newSchedule(time.Now().Add(-time.Hour), 100, time.Second, 2*time.Second)
	var (
		mu   sync.Mutex
		sent = map[int]int{}
	)
	tl := runOpenLoop(context.Background(), s, senders(8, func(slot int) outcome {
		mu.Lock()
		defer mu.Unlock()
		sent[slot]++
		return outcome(slot % 4)
	}), 2*time.Hour)
	if len(sent) != 300 {
		t.Fatalf("%d distinct slots sent, want 300", len(sent))
	}
	for slot, n := range sent {
		if n != 1 {
			t.Errorf("slot %d sent %d times", slot, n)
		}
	}
	if tl.Requests != 200 || tl.Sent != 300 || tl.WrongVerdicts != 50 || tl.StatusErrors != 50 || tl.TransportErrors != 50 {
		t.Errorf("tally %+v; want 300 sent, 200 measured, 50 of each failure", tl)
	}
	// Transport failures have no answer, hence no latency; every measured request was sent an hour late.
	if tl.Latency.Count != 150 || tl.Latency.P50 < time.Hour-3*time.Second {
		t.Errorf("latencies %+v; want 150, counted from the due time", tl.Latency)
	}
	if tl.SendLag.Count != 200 || tl.SendLag.P50 < time.Hour-3*time.Second || tl.SendLag.Max > tl.Latency.Max {
		t.Errorf("send lag %+v; want 200, an hour each, within the latency", tl.SendLag)
	}
}

func TestRunOpenLoopSendsNoSlotEarly(t *testing.T) {
	// 200 slots, 5 ms apart, to a sender that answers at once: the workers wait for each slot's due time.
	start := time.Now().Add(50 * time.Millisecond)
	s := newSchedule(start, 200, 0, time.Second)
	var (
		mu    sync.Mutex
		early []int
	)
	tl := runOpenLoop(context.Background(), s, senders(2, func(slot int) outcome {
		if time.Now().Before(s.due(slot)) {
			mu.Lock()
			early = append(early, slot)
			mu.Unlock()
		}
		return verdictExpected
	}), time.Minute)
	if len(early) > 0 {
		t.Errorf("slots %v sent before they were due", early)
	}
	if tl.SendLag.Count != 200 || tl.Latency.Count != 200 {
		t.Errorf("send lag %+v, latency %+v; want 200 sends answered", tl.SendLag, tl.Latency)
	}
}

// senders is n senders sharing send.
func senders(n int, send func(slot int) outcome) []func(int) outcome {
	s := make([]func(int) outcome, n)
	for i := range s {
		s[i] = send
	}
	return s
}

func TestRunOpenLoopStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := newSchedule(time.Now(), 1, 0, time.Hour)
	if tl := runOpenLoop(ctx, s, senders(4, func(int) outcome { return verdictExpected }), time.Minute); tl.Requests != 0 {
		t.Fatalf("%d requests sent after cancellation", tl.Requests)
	}
}

func TestRunOpenLoopSkipsSlotsPastTheTimeout(t *testing.T) {
	// Every slot is an hour overdue, far past the API server's timeout: none is worth sending.
	s := newSchedule(time.Now().Add(-time.Hour), 100, 0, time.Second)
	tl := runOpenLoop(context.Background(), s, senders(4, func(int) outcome {
		t.Error("a slot past the timeout was sent")
		return verdictExpected
	}), time.Minute)
	if tl.Requests != 100 || tl.Sent != 0 || tl.TooLate != 100 || tl.Errors() != 100 || tl.Latency.Count != 0 || tl.AchievedRPS != 0 {
		t.Fatalf("tally %+v; want 100 slots, all too late, none answered", tl)
	}
}

func TestSummarizeAchievedRate(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var samples []sample
	// 100 requests over a window whose last answer comes 2 s after it opened: 50 per second, whatever the target.
	for i := range 100 {
		samples = append(samples, sample{answered: true, latency: time.Millisecond, done: start.Add(time.Duration(i+1) * 20 * time.Millisecond)})
	}
	if tl := summarize(start, samples); tl.AchievedRPS != 50 || tl.Latency.P99 != time.Millisecond {
		t.Fatalf("achieved %.1f rps, p99 %s; want 50 rps, 1ms", tl.AchievedRPS, tl.Latency.P99)
	}
	if tl := summarize(start, nil); tl.AchievedRPS != 0 || tl.Requests != 0 {
		t.Fatalf("empty run: %+v", tl)
	}
}

func TestPodCaseIsAnAdmissionReviewWithTheSlotsUID(t *testing.T) {
	pc, err := newPodCase("compliant", true, compliantPod("elsewhere"), "bench-enforced")
	if err != nil {
		t.Fatal(err)
	}
	uid := requestUID(0x2a)
	if uid != "00000000-0000-4000-8000-00000000002a" {
		t.Fatalf("uid %q", uid)
	}
	body := append(append(append([]byte{}, pc.prefix...), uid...), pc.suffix...)
	if len(body) != pc.size() {
		t.Errorf("size %d, body %d bytes", pc.size(), len(body))
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		t.Fatal(err)
	}
	r := review.Request
	if review.Kind != "AdmissionReview" || r == nil || string(r.UID) != uid || r.Namespace != "bench-enforced" ||
		r.Operation != admissionv1.Create || r.Kind.Kind != "Pod" || r.Resource.Resource != "pods" {
		t.Fatalf("review %+v", review)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(r.Object.Raw, &pod); err != nil {
		t.Fatal(err)
	}
	if pod.Kind != "Pod" || pod.Namespace != "bench-enforced" || len(pod.Spec.Containers) != 1 {
		t.Fatalf("pod %+v", pod)
	}
}
