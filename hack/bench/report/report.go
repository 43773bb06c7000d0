// Package report holds what every benchmark under hack/bench prints the same way: the machine and commit a
// figure was measured on, latency percentiles, and a process's peak memory and CPU time.
package report

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Header prints the benchmark's title, the machine (cores, CPU model, memory), the Go version and the commit,
// so a figure copied into docs/performance.md says where it came from.
func Header(w io.Writer, title string) {
	fmt.Fprintf(w, "# %s\n", title)
	fmt.Fprintf(w, "machine: %d cores, %s, %s RAM, %s/%s, %s\n",
		runtime.NumCPU(), cpuModel(), memTotal(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(w, "commit:  %s, %s\n", commit(), time.Now().UTC().Format(time.RFC3339))
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	kib, err := procField("/proc/meminfo", "MemTotal")
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
}

// commit is the checked-out commit, marked dirty when the work tree has changes the figure would include.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	c := strings.TrimSpace(string(out))
	if status, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(status) > 0 {
		c += " (dirty)"
	}
	return c
}

// Latencies summarises a set of request latencies.
type Latencies struct {
	Count              int
	P50, P90, P99, Max time.Duration
	Mean               time.Duration
}

// Summarize sorts ds in place and returns its percentiles (nearest rank); an empty set gives zeros.
func Summarize(ds []time.Duration) Latencies {
	if len(ds) == 0 {
		return Latencies{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	at := func(p float64) time.Duration {
		i := int(p*float64(len(ds))+0.5) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return Latencies{Count: len(ds), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ds[len(ds)-1],
		Mean: sum / time.Duration(len(ds))}
}

// Ms formats d in milliseconds with a precision that suits sub-millisecond and multi-second values alike.
func Ms(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64)
	case ms < 100:
		return strconv.FormatFloat(ms, 'f', 1, 64)
	}
	return strconv.FormatFloat(ms, 'f', 0, 64)
}

// Process is a running process's resource use as Linux accounts it.
type Process struct {
	// PeakRSS is the high-water mark of the resident set (VmHWM), in bytes.
	PeakRSS int64
	// CPU is user plus system time consumed so far.
	CPU time.Duration
}

// ProcessUsage reads pid's peak RSS and CPU time from /proc.
func ProcessUsage(pid int) (Process, error) {
	hwm, err := procField(fmt.Sprintf("/proc/%d/status", pid), "VmHWM")
	if err != nil {
		return Process{}, err
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Process{}, err
	}
	// The command name in parentheses may hold spaces; the fields that follow it are fixed.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 13 {
		return Process{}, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	// utime and stime are fields 14 and 15 of stat, in clock ticks (USER_HZ, 100 on Linux).
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return Process{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return Process{PeakRSS: hwm * 1024, CPU: time.Duration(ticks) * 10 * time.Millisecond}, nil
}

// procField reads a "Name: value kB" line of a /proc file, returning the number.
func procField(path, name string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok || k != name {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("%s: no %s", path, name)
}

// MiB formats a byte count in mebibytes.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
