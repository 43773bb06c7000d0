// Package ratelog keeps a repeating problem (Redis down, a full queue) from flooding the logs:
// it is reported once per interval, with the number of occurrences not reported.
package ratelog

import (
	"sync/atomic"
	"time"
)

// Every lets one report through per interval.
type Every struct {
	interval   time.Duration
	last       atomic.Int64
	suppressed atomic.Int64
}

// New returns an Every that allows one report per interval.
func New(interval time.Duration) *Every {
	return &Every{interval: interval}
}

// Allow reports whether this occurrence should be logged and, if so, how many occurrences were
// held back since the last one logged.
func (e *Every) Allow() (ok bool, suppressed int64) {
	now := time.Now().UnixNano()
	last := e.last.Load()
	if last != 0 && now-last < int64(e.interval) || !e.last.CompareAndSwap(last, now) {
		e.suppressed.Add(1)
		return false, 0
	}
	return true, e.suppressed.Swap(0)
}
