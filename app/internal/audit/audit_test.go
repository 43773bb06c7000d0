package audit_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/packnow/packnow-operator/app/internal/audit"
	"github.com/packnow/packnow-operator/app/internal/store"
	"github.com/packnow/packnow-operator/hack/testenv"
)

func newStore(t *testing.T) (*store.Store, func(string) int) {
	t.Helper()
	ctx := context.Background()
	pool, err := store.Connect(ctx, testenv.StartPostgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := store.Migrate(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	count := func(where string) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE `+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return store.New(pool), count
}

// TestWriterFlushCloseAndRetention covers the writer's life and the retention job on one
// database, since each PostgreSQL start costs seconds.
func TestWriterFlushCloseAndRetention(t *testing.T) {
	st, count := newStore(t)
	ctx := context.Background()
	w := audit.NewWriter(st, slog.New(slog.NewTextHandler(io.Discard, nil)), 1000)

	user := "0b9c1c36-0f6d-4b0e-9d43-6f3f3b0f4a11"
	for range 700 {
		w.Record(audit.Event{UserID: user, Action: audit.LoginFailure, IP: netip.MustParseAddr("203.0.113.7"),
			Metadata: map[string]any{"reason": "wrong_password"}})
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(`action = 'login_failure' AND ip_address = '203.0.113.7' AND metadata->>'reason' = 'wrong_password'`); n != 700 {
		t.Fatalf("%d rows after Flush, want 700", n)
	}

	w.Record(audit.Event{Action: audit.RateLimitHit})
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(`action = 'rate_limit_hit' AND user_id IS NULL AND ip_address IS NULL`); n != 1 {
		t.Fatalf("Close did not write what was queued: %d rows", n)
	}
	w.Record(audit.Event{Action: audit.Logout}) // after Close: dropped, not a panic
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := audit.Prune(ctx, st, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := count(`true`); n != 701 {
		t.Fatalf("pruning with an hour's retention deleted fresh rows: %d left", n)
	}
	deleted, err := audit.Prune(ctx, st, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if deleted != 701 || count(`true`) != 0 {
		t.Fatalf("deleted %d, %d left; want every row gone once past retention", deleted, count(`true`))
	}
}

func TestWriterDropsInsteadOfBlockingWhenFull(t *testing.T) {
	st, _ := newStore(t)
	w := audit.NewWriter(st, slog.New(slog.NewTextHandler(io.Discard, nil)), 1)
	defer w.Close(context.Background())
	done := make(chan struct{})
	go func() {
		for range 10000 {
			w.Record(audit.Event{Action: audit.Refresh})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Record blocked on a full queue")
	}
}
