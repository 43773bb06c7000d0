package main

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// The heap may grow by half its live size between collections, and never by less than minGCHeadroom.
func TestGCPercentGivesHalfTheLiveHeapOrTheMinimumHeadroom(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, wantHeadroom uint64
	}{
		{4 * mib, minGCHeadroom},
		{24 * mib, minGCHeadroom},
		{48 * mib, 24 * mib},
		{200 * mib, 100 * mib},
	} {
		pct := gcPercentFor(tc.live)
		if got := tc.live * uint64(pct) / 100; got < tc.wantHeadroom-mib/100 || got > tc.wantHeadroom+mib/100 {
			t.Errorf("live %d MiB: GOGC %d gives %.1f MiB of headroom, want %d MiB", tc.live/mib, pct, float64(got)/mib, tc.wantHeadroom/mib)
		}
	}
	if pct := gcPercentFor(0); pct != 100 {
		t.Errorf("before any live heap is known: GOGC %d, want Go's default 100", pct)
	}
}

func currentGCPercent() int {
	pct := debug.SetGCPercent(100)
	debug.SetGCPercent(pct)
	return pct
}

// After a collection the tuner sets GOGC from the live heap: a test binary's few MiB get the minimum headroom,
// far more than GOGC=100 would give, and it keeps doing so cycle after cycle.
func TestTunerSetsGOGCAfterEveryCollection(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tuneGCAfterEachCycle()
	for cycle := range 3 {
		debug.SetGCPercent(100)
		deadline := time.Now().Add(10 * time.Second)
		for currentGCPercent() == 100 {
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: GOGC is still 100 after collections", cycle)
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
		if pct := currentGCPercent(); pct <= 100 {
			t.Errorf("cycle %d: GOGC %d for a heap of a few MiB, want more than 100", cycle, pct)
		}
	}
}
