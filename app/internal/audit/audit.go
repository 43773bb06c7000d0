// Package audit records security events in PostgreSQL's audit_log table off the request path:
// handlers enqueue, one goroutine writes in batches.
package audit

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/packnow/packnow-operator/app/internal/ratelog"
	"github.com/packnow/packnow-operator/app/internal/store"
)

// Actions recorded.
const (
	Register       = "register"
	LoginSuccess   = "login_success"
	LoginFailure   = "login_failure"
	Lockout        = "lockout"
	Logout         = "logout"
	Refresh        = "refresh"
	RefreshReuse   = "refresh_reuse_detected"
	PasswordChange = "password_change"
	OrderCreated   = "order_created"
	OrderAccepted  = "order_accepted"
	OrderCompleted = "order_completed"
	OrderCancelled = "order_cancelled"
	Export         = "export"
	Deletion       = "deletion"
	RateLimitHit   = "rate_limit_hit"
)

const (
	// maxBatch bounds one COPY; under load the queue drains in batches of this size.
	maxBatch        = 500
	writeTimeout    = 10 * time.Second
	dropLogInterval = time.Minute
)

// Event is one thing that happened. UserID is empty and IP invalid when unknown.
type Event struct {
	UserID   string
	Action   string
	IP       netip.Addr
	Metadata map[string]any
}

type item struct {
	entry store.AuditEntry
	// flushed, when set, marks a Flush: it is closed once everything before it is written.
	flushed chan struct{}
}

// Writer queues events and writes them in the background. When the queue is full, events are
// dropped (and the drops logged) rather than slowing requests down.
type Writer struct {
	store   *store.Store
	logger  *slog.Logger
	queue   chan item
	stopped chan struct{}
	drops   *ratelog.Every

	mu     sync.RWMutex
	closed bool
}

// NewWriter starts a writer whose queue holds up to size events.
func NewWriter(st *store.Store, logger *slog.Logger, size int) *Writer {
	w := &Writer{
		store:   st,
		logger:  logger,
		queue:   make(chan item, size),
		stopped: make(chan struct{}),
		drops:   ratelog.New(dropLogInterval),
	}
	go w.run()
	return w
}

// Record queues e without waiting; it never fails the request that caused it.
func (w *Writer) Record(e Event) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	entry := store.AuditEntry{UserID: e.UserID, Action: e.Action, IP: e.IP, Timestamp: time.Now().UTC(), Metadata: e.Metadata}
	if !w.closed {
		select {
		case w.queue <- item{entry: entry}:
			return
		default:
		}
	}
	if ok, suppressed := w.drops.Allow(); ok {
		w.logger.Error("audit event dropped: queue full or writer closed", "action", e.Action, "dropped_since_last_report", suppressed)
	}
}

// Flush waits until every event recorded before it has been written (or given up on).
func (w *Writer) Flush(ctx context.Context) error {
	done := make(chan struct{})
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return nil
	}
	select {
	case w.queue <- item{flushed: done}:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued and stops the writer; events recorded afterwards are dropped.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	select {
	case <-w.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer) run() {
	defer close(w.stopped)
	batch := make([]store.AuditEntry, 0, maxBatch)
	for it := range w.queue {
		var flushes []chan struct{}
		add := func(it item) {
			if it.flushed != nil {
				flushes = append(flushes, it.flushed)
			} else {
				batch = append(batch, it.entry)
			}
		}
		add(it)
	drain:
		for len(batch) < maxBatch {
			select {
			case next, ok := <-w.queue:
				if !ok {
					break drain
				}
				add(next)
			default:
				break drain
			}
		}
		w.write(batch)
		batch = batch[:0]
		for _, f := range flushes {
			close(f)
		}
	}
}

func (w *Writer) write(batch []store.AuditEntry) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := w.store.InsertAudit(ctx, batch); err != nil {
		w.logger.Error("audit events lost: cannot write to PostgreSQL", "events", len(batch), "error", err)
	}
}

// Prune deletes entries older than retention.
func Prune(ctx context.Context, st *store.Store, retention time.Duration) (int64, error) {
	return st.DeleteAuditBefore(ctx, time.Now().Add(-retention))
}

// RunRetention prunes at once and then every interval until ctx ends. Every replica runs it;
// deleting the same old rows twice is harmless.
func RunRetention(ctx context.Context, st *store.Store, retention, interval time.Duration, logger *slog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		n, err := Prune(ctx, st, retention)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Error("audit retention failed", "error", err)
		case n > 0:
			logger.Info("audit entries past retention deleted", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
