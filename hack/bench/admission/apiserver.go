package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// dryRunResult is one namespace's share of the API server measurement.
type dryRunResult struct {
	latencies []time.Duration
	errors    int
	firstErr  error
}

// measureDryRuns creates pod with DryRun=All in the enforced and the unscoped namespace in turn, warmup+n times
// each, from concurrency workers, and keeps the latencies of the last n of each. Alternating requests see the
// same load on the machine, so the difference between the two is the webhook's. Closed loop: at this modest
// concurrency the API server, not a schedule, sets the pace.
func measureDryRuns(ctx context.Context, c client.Client, pod *corev1.Pod, enforced, unscoped string, warmup, n, concurrency int) (enf, uns dryRunResult) {
	var (
		next atomic.Int64
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	namespaces := []string{enforced, unscoped}
	results := []*dryRunResult{&enf, &uns}
	total := 2 * (warmup + n)
	for range concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				p := pod.DeepCopy()
				p.Namespace = namespaces[i%2]
				start := time.Now()
				err := c.Create(ctx, p, client.DryRunAll)
				latency := time.Since(start)
				if i/2 < warmup {
					continue
				}
				mu.Lock()
				r := results[i%2]
				if err != nil {
					r.errors++
					if r.firstErr == nil {
						r.firstErr = err
					}
				} else {
					r.latencies = append(r.latencies, latency)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return enf, uns
}
