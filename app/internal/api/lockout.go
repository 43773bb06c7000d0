package api

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// lockout counts failed logins per phone number in Redis, so that all replicas share the count.
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

// countFailure adds a failure. The count lives for the lockout duration from the first failure;
// the failure that reaches the threshold restarts that clock, so a lock always lasts the full
// duration and then lifts by itself when the key expires.
var countFailure = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or n == tonumber(ARGV[2]) then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`)

// lockedFor returns how long the account under key stays locked; zero when it is not.
func (l *lockout) lockedFor(ctx context.Context, key string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	n, err := l.redis.Get(ctx, "lockout:"+key).Int()
	if errors.Is(err, redis.Nil) || (err == nil && n < l.threshold) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	ttl, err := l.redis.PTTL(ctx, "lockout:"+key).Result()
	if err != nil || ttl <= 0 {
		return 0, err
	}
	return ttl, nil
}

// fail records a failed login and reports whether it locked the account.
func (l *lockout) fail(ctx context.Context, key string) (lockedNow bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	n, err := countFailure.Run(ctx, l.redis, []string{"lockout:" + key}, l.duration.Milliseconds(), l.threshold).Int()
	return n == l.threshold, err
}

// reset forgets the failures after a successful login.
func (l *lockout) reset(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	return l.redis.Del(ctx, "lockout:"+key).Err()
}
