// Command reconcile measures the operator at scale on a real API server (envtest): it runs the operator binary
// as its own process with only its generated RBAC role, creates many PackNowApps at once, and reports how long
// each takes to get all its children and its status, the operator's peak memory and CPU time, and the API
// requests it made (from the API server's audit log). It then watches a quiet period, in which the operator
// should write nothing at all.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/hack/bench/report"
	"github.com/packnow/packnow-operator/hack/testenv"
)

// operatorUser is the name the operator authenticates as, by which the audit log tells its requests apart.
const operatorUser = "packnow-operator"

// Targets from issue 11.
const (
	targetTotal = 60 * time.Second
	targetRSS   = 128 << 20
)

type options struct {
	apps, namespaces, createWorkers int
	steady, timeout                 time.Duration
	keep                            bool
	operatorArgs, operatorEnv       string
}

func main() {
	var o options
	flag.IntVar(&o.apps, "apps", 1000, "PackNowApps to create")
	flag.IntVar(&o.namespaces, "namespaces", 20, "namespaces to spread them over")
	flag.IntVar(&o.createWorkers, "create-workers", 100, "creates in flight at once")
	flag.DurationVar(&o.steady, "steady", 5*time.Minute, "steady state to watch for writes once every app is done")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up waiting for the apps after this long")
	flag.StringVar(&o.operatorArgs, "operator-args", "", "extra operator flags, space-separated (e.g. --max-concurrent-reconciles=16)")
	flag.StringVar(&o.operatorEnv, "operator-env", "", "extra operator environment, space-separated NAME=value (e.g. GOMEMLIMIT=96MiB)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (audit log, operator log) for inspection")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "reconcile:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	dir, err := os.MkdirTemp("", "bench-reconcile-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Fprintln(os.Stderr, "kept", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	manager, err := testenv.Build(dir, ".", "manager")
	if err != nil {
		return err
	}
	auditLog := filepath.Join(dir, "audit.log")
	srv, err := testenv.StartAPIServer(testenv.APIServerOptions{
		// Every app has a ClusterIP Service; envtest's default range holds 254.
		Flags:        map[string]string{"service-cluster-ip-range": "10.0.0.0/16"},
		AuditLogPath: auditLog, AuditPolicy: operatorOnlyPolicy,
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Stop()) }()

	op, err := srv.StartOperatorProcess(ctx, operatorUser, manager, dir,
		append([]string{"--enable-webhooks=false"}, strings.Fields(o.operatorArgs)...), strings.Fields(o.operatorEnv))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, op.Stop()) }()

	// The watches end before the API server stops, which otherwise waits for them.
	trackCtx, stopTracking := context.WithCancel(ctx)
	defer stopTracking()
	tr, err := newTracker(trackCtx, srv.Config)
	if err != nil {
		return err
	}
	namespaces, err := createNamespaces(ctx, srv, o.namespaces)
	if err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "creating", o.apps, "PackNowApps in", o.namespaces, "namespaces")
	start := time.Now()
	createErrs := createApps(ctx, srv, tr, namespaces, o.apps, o.createWorkers)
	allCreated := time.Since(start)
	if createErrs != nil {
		return createErrs
	}
	waitCtx, cancel := context.WithTimeout(ctx, o.timeout)
	allDone := tr.wait(waitCtx, o.apps)
	cancel()
	total := time.Since(start)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	burstUsage, err := report.ProcessUsage(op.Cmd.Process.Pid)
	if err != nil {
		return err
	}
	burstMetrics, err := metrics(op)
	if err != nil {
		return err
	}

	steadyStart := time.Now()
	fmt.Fprintln(os.Stderr, "steady state for", o.steady)
	select {
	case <-time.After(o.steady):
	case <-ctx.Done():
		return ctx.Err()
	}
	steadyEnd := time.Now()
	endUsage, err := report.ProcessUsage(op.Cmd.Process.Pid)
	if err != nil {
		return err
	}
	endMetrics, err := metrics(op)
	if err != nil {
		return err
	}
	// The API server writes a request's audit line once its response is complete; a moment lets the last ones in.
	time.Sleep(2 * time.Second)
	audit, err := readAudit(auditLog, operatorUser, steadyStart, steadyEnd)
	if err != nil {
		return err
	}

	res := results{
		opts: o, latencies: tr.latencies(), done: tr.doneCount(), allDone: allDone,
		allCreated: allCreated, total: total, burst: burstUsage, end: endUsage,
		burstMetrics: burstMetrics, steadyReconciles: endMetrics.reconciles.minus(burstMetrics.reconciles),
		audit: audit, operatorErrors: op.ErrorLines(),
	}
	res.print(os.Stdout)
	return nil
}

// operatorOnlyPolicy logs the operator's requests at level Metadata and nobody else's, so that the audit log
// costs the API server little for the benchmark's own creates and watches.
const operatorOnlyPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: [` + operatorUser + `]
- level: None
`

// reconcileCounts are controller_runtime_reconcile_total by result, summed over the operator's controllers.
type reconcileCounts map[string]float64

func (a reconcileCounts) minus(b reconcileCounts) reconcileCounts {
	d := reconcileCounts{}
	for k, v := range a {
		d[k] = v - b[k]
	}
	return d
}

// operatorMetrics is what the benchmark reads from the operator's metrics endpoint.
type operatorMetrics struct {
	reconciles reconcileCounts
	// heapInUse and heapGoal are the Go heap in use and the size at which the next GC triggers; next to the
	// peak RSS they tell live objects from GC headroom.
	heapInUse, heapGoal float64
}

func metrics(op *testenv.OperatorProcess) (operatorMetrics, error) {
	text, err := op.Metrics()
	if err != nil {
		return operatorMetrics{}, err
	}
	return parseMetrics(text), nil
}

// parseMetrics reads the lines it needs of the Prometheus text format.
func parseMetrics(text string) operatorMetrics {
	m := operatorMetrics{reconciles: reconcileCounts{}}
	for _, line := range strings.Split(text, "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(value, &v); err != nil {
			continue
		}
		switch {
		case name == "go_memstats_heap_inuse_bytes":
			m.heapInUse = v
		case name == "go_gc_heap_goal_bytes":
			m.heapGoal = v
		case strings.HasPrefix(name, "controller_runtime_reconcile_total{"):
			for _, l := range strings.Split(strings.TrimSuffix(name, "}"), ",") {
				if _, result, ok := strings.Cut(l, `result="`); ok {
					m.reconciles[strings.TrimSuffix(result, `"`)] += v
				}
			}
		}
	}
	return m
}

func createNamespaces(ctx context.Context, srv *testenv.APIServer, n int) ([]string, error) {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%02d", i)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}
		if err := srv.Client.Create(ctx, ns); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// createApps creates n apps round-robin over the namespaces, workers at a time, recording when each create
// was sent.
func createApps(ctx context.Context, srv *testenv.APIServer, tr *tracker, namespaces []string, n, workers int) error {
	jobs := make(chan int)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				ns := namespaces[i%len(namespaces)]
				app := &packnowv1alpha1.PackNowApp{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("app-%04d", i)},
					// The least a user writes; the CRD's defaults fill in the rest (two replicas, so a PDB too).
					Spec: packnowv1alpha1.PackNowAppSpec{
						Database: packnowv1alpha1.DatabaseSpec{Host: "postgres." + ns + ".svc"},
						Redis:    packnowv1alpha1.RedisSpec{Host: "redis." + ns + ".svc"},
					},
				}
				tr.created(app.Namespace, app.Name)
				if err := srv.Client.Create(ctx, app); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("create %s/%s: %w", app.Namespace, app.Name, err))
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return errors.Join(errs...)
}

// listedWrites is how many steady-state writes the report names one by one.
const listedWrites = 20

type results struct {
	opts              options
	latencies         []time.Duration
	done              int
	allDone           bool
	allCreated, total time.Duration
	burst, end        report.Process
	burstMetrics      operatorMetrics
	steadyReconciles  reconcileCounts
	audit             auditSummary
	operatorErrors    int
}

func (r results) print(out io.Writer) {
	report.Header(out, "reconcile scale: PackNowApps on envtest, operator as its own process")
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "\napps\t%d in %d namespaces, %d creates in flight\n", r.opts.apps, r.opts.namespaces, r.opts.createWorkers)
	fmt.Fprintf(w, "operator\tits own process, only its generated ClusterRole, webhooks and leader election off %s %s\n", r.opts.operatorArgs, r.opts.operatorEnv)
	fmt.Fprintf(w, "done means\tall %d children exist (Secrets <app>-secret-key, -postgres, -redis; ServiceAccount, Service,\n", len(expectedChildren("")))
	fmt.Fprintf(w, "\tNetworkPolicy, PodDisruptionBudget, Deployment <app>-api) and the status is written for the\n")
	fmt.Fprintf(w, "\tapp's generation (status.observedGeneration and every condition's), SecretsReady=True,\n")
	fmt.Fprintf(w, "\tDegraded=False; seen through a watch. Ready stays False: envtest runs no Deployment controller.\n")
	fmt.Fprintf(w, "per app\tfrom sending its create to done\n")
	w.Flush()

	l := report.Summarize(r.latencies)
	fmt.Fprintf(w, "\n## burst\n")
	fmt.Fprintf(w, "apps done\t%d of %d\n", r.done, r.opts.apps)
	fmt.Fprintf(w, "per app p50 / p90 / p99 / max (ms)\t%s / %s / %s / %s\n", report.Ms(l.P50), report.Ms(l.P90), report.Ms(l.P99), report.Ms(l.Max))
	fmt.Fprintf(w, "all creates sent (s)\t%.1f\n", r.allCreated.Seconds())
	totalNote := ""
	if !r.allDone {
		totalNote = " (timed out; not every app was done)"
	}
	fmt.Fprintf(w, "total, first create to last done (s)\t%.1f%s\n", r.total.Seconds(), totalNote)
	fmt.Fprintf(w, "operator peak RSS (VmHWM)\t%s\n", report.MiB(r.burst.PeakRSS))
	fmt.Fprintf(w, "operator CPU, start to last done (s)\t%.1f\n", r.burst.CPU.Seconds())
	fmt.Fprintf(w, "operator Go heap in use / GC goal at last done\t%s / %s\n",
		report.MiB(int64(r.burstMetrics.heapInUse)), report.MiB(int64(r.burstMetrics.heapGoal)))
	fmt.Fprintf(w, "reconciles\t%s\n", r.burstMetrics.reconciles)
	fmt.Fprintf(w, "operator log lines at level error\t%d\n", r.operatorErrors)
	w.Flush()

	r.audit.printBurst(w)

	fmt.Fprintf(w, "\n## steady state, %s after the last app was done\n", r.opts.steady)
	fmt.Fprintf(w, "writes by the operator (create/update/patch/delete, leases excluded)\t%d\n", len(r.audit.steadyWrites))
	fmt.Fprintf(w, "lease requests\t%d\n", r.audit.steadyLeases)
	fmt.Fprintf(w, "reconciles\t%s\n", r.steadyReconciles)
	fmt.Fprintf(w, "operator CPU (s)\t%.1f\n", (r.end.CPU - r.burst.CPU).Seconds())
	fmt.Fprintf(w, "operator peak RSS (VmHWM) at the end\t%s\n", report.MiB(r.end.PeakRSS))
	w.Flush()
	for _, wr := range r.audit.steadyWrites[:min(len(r.audit.steadyWrites), listedWrites)] {
		fmt.Fprintf(w, "  write\t%s\n", wr)
	}
	if more := len(r.audit.steadyWrites) - listedWrites; more > 0 {
		fmt.Fprintf(w, "  …\t%d more\n", more)
	}
	w.Flush()

	fmt.Fprintf(w, "\n## targets\ntarget\tmeasured\tverdict\n")
	fmt.Fprintf(w, "total ≤ %.0f s\t%.1f s\t%s\n", targetTotal.Seconds(), r.total.Seconds(), verdict(r.allDone && r.total <= targetTotal))
	fmt.Fprintf(w, "peak RSS < %s\t%s\t%s\n", report.MiB(targetRSS), report.MiB(r.end.PeakRSS), verdict(r.end.PeakRSS < targetRSS))
	fmt.Fprintf(w, "steady writes = 0\t%d\t%s\n", len(r.audit.steadyWrites), verdict(len(r.audit.steadyWrites) == 0))
}

func (c reconcileCounts) String() string {
	return fmt.Sprintf("%.0f success, %.0f requeue, %.0f requeue_after, %.0f error",
		c["success"], c["requeue"], c["requeue_after"], c["error"])
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "not met"
}
