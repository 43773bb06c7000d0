package api

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// lockout counts login attempts per phone number in Redis, so that all replicas share the count.
// It keys on the number asked for, whether or not an account has it: an unknown number locks
// exactly like a real one, so a lock says nothing about which numbers are registered.
type lockout struct {
	redis     *redis.Client
	threshold int
	duration  time.Duration
}

func newLockout(rdb *redis.Client, threshold int, duration time.Duration) *lockout {
	return &lockout{redis: rdb, threshold: threshold, duration: duration}
}

// countAttempt counts an attempt before its password is checked, so that guesses sent in
// parallel cannot slip past the threshold between a check and a count. The count lives for the
// lockout duration from the first attempt. It returns the attempt's number and, once past the
// threshold, the milliseconds the lock has left.
var countAttempt = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
if n > tonumber(ARGV[2]) then
	return {n, redis.call('PTTL', KEYS[1])}
end
return {n, 0}
`)

// attempt counts a login attempt and returns its number and how long the phone number under key
// stays locked: zero when this attempt may go ahead.
func (l *lockout) attempt(ctx context.Context, key string) (n int64, locked time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	res, err := countAttempt.Run(ctx, l.redis, []string{"lockout:" + key}, l.duration.Milliseconds(), l.threshold).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if res[0] <= int64(l.threshold) {
		return res[0], 0, nil
	}
	return res[0], max(time.Duration(res[1])*time.Millisecond, time.Second), nil
}

// failed reports whether attempt n, which failed, locks the phone number. The attempt that
// reaches the threshold restarts the clock, so a lock lasts the full duration and then lifts by
// itself when the key expires.
func (l *lockout) failed(ctx context.Context, key string, n int64) (lockedNow bool, err error) {
	if n != int64(l.threshold) {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	return true, l.redis.PExpire(ctx, "lockout:"+key, l.duration).Err()
}

// giveBack uncounts an attempt whose password was never checked (every bcrypt slot busy, the
// database failing): a user with the right password must not be locked out by the server's own
// load. It cannot help a guesser, who learns nothing from an unchecked attempt.
var giveBack = redis.NewScript(`
if redis.call('DECR', KEYS[1]) <= 0 then
	redis.call('DEL', KEYS[1])
end
return 0
`)

// release gives back an attempt counted by attempt whose password was never checked.
func (l *lockout) release(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	return giveBack.Run(ctx, l.redis, []string{"lockout:" + key}).Err()
}

// reset forgets the attempts after a successful login.
func (l *lockout) reset(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	return l.redis.Del(ctx, "lockout:"+key).Err()
}
