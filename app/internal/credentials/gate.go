package credentials

import (
	"context"
	"errors"
	"time"
)

// ErrBusy means every bcrypt slot stayed taken for the whole wait.
var ErrBusy = errors.New("too many password hashes in progress")

// Gate bounds how many bcrypt operations run at once. bcrypt is deliberately slow and CPU-bound:
// beyond one per core, more at once only make each slower, and a flood of logins would starve
// every other request. Work that finds no slot within the wait is refused instead of queued.
type Gate struct {
	slots chan struct{}
	wait  time.Duration
}

// NewGate allows n operations at once and makes callers wait at most wait for a slot.
func NewGate(n int, wait time.Duration) *Gate {
	return &Gate{slots: make(chan struct{}, n), wait: wait}
}

// Acquire takes a slot, waiting at most the gate's wait; on success the caller must Release.
func (g *Gate) Acquire(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-timer.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release gives back a slot taken by Acquire.
func (g *Gate) Release() {
	<-g.slots
}

// Hash is HashPassword within the gate.
func (g *Gate) Hash(ctx context.Context, password string, cost int) (string, error) {
	if err := g.Acquire(ctx); err != nil {
		return "", err
	}
	defer g.Release()
	return HashPassword(password, cost)
}

// Matches is PasswordMatches within the gate.
func (g *Gate) Matches(ctx context.Context, hash, password string) (bool, error) {
	if err := g.Acquire(ctx); err != nil {
		return false, err
	}
	defer g.Release()
	return PasswordMatches(hash, password), nil
}
