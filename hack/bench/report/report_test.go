package report

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSummarizeNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := Summarize(ds)
	want := Latencies{Count: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond,
		Max: 100 * time.Millisecond, Mean: 50500 * time.Microsecond}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if (Summarize(nil) != Latencies{}) {
		t.Fatal("an empty set must summarise to zeros")
	}
}

func TestHeaderNamesMachineAndCommit(t *testing.T) {
	var b bytes.Buffer
	Header(&b, "admission")
	out := b.String()
	for _, want := range []string{"# admission", "cores", "RAM", "commit:"} {
		if !strings.Contains(out, want) {
			t.Errorf("header lacks %q:\n%s", want, out)
		}
	}
}

func TestProcessUsageOfThisProcess(t *testing.T) {
	// Burn some CPU and hold some memory so both figures are visibly above zero.
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		buf[x%len(buf)]++
	}
	p, err := ProcessUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p.PeakRSS < 64<<20 {
		t.Errorf("peak RSS %s, want at least the 64 MiB touched", MiB(p.PeakRSS))
	}
	if p.CPU < 100*time.Millisecond {
		t.Errorf("CPU %s, want at least the busy loop", p.CPU)
	}
}
