package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func TestRetryDelayIsCapped(t *testing.T) {
	limiter := retryRateLimiter()
	app := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "team", Name: "shop"}}
	other := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "team", Name: "blog"}}

	if d := limiter.When(app); d != 5*time.Millisecond {
		t.Errorf("first retry after %v, want 5ms", d)
	}
	var last time.Duration
	for range 40 { // 5 ms doubled 40 times would be years
		last = limiter.When(app)
	}
	if last != MaxRetryDelay {
		t.Errorf("after 41 failures the retry waits %v, want the cap %v", last, MaxRetryDelay)
	}
	if d := limiter.When(other); d != 5*time.Millisecond {
		t.Errorf("another app's first retry waits %v: one app's failures slow down others", d)
	}
	limiter.Forget(app)
	if d := limiter.When(app); d != 5*time.Millisecond {
		t.Errorf("after a success the next retry waits %v, want 5ms again", d)
	}
}
