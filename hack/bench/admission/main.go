// Command admission measures what the pod security webhook adds to admission. It starts a real API server
// (envtest) and the operator — the manager binary, as its own process with its generated RBAC role, its own
// webhook CA and every controller — then
//
//   - handler: sends pod AdmissionReviews over TLS on loopback to /validate-pods at fixed rates (open loop)
//     and reports latency percentiles, achieved rate and errors per rate;
//   - apiserver: creates the same pod with DryRun=All through the API server in an enforced namespace and in
//     an unscoped one, and reports what the webhook adds.
//
// It prints tables for docs/performance.md; the target is reported, not asserted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/packnow/packnow-operator/hack/bench/report"
	"github.com/packnow/packnow-operator/hack/testenv"
	"github.com/packnow/packnow-operator/webhooks"
)

// Target of the issue: handler p99 under 2 ms at 1,000 requests per second.
const (
	targetRate = 1000
	targetP99  = 2 * time.Millisecond
)

// The webhook configurations envtest installs from config/webhook/manifests.yaml, unprefixed.
const (
	validatingConfiguration = "validating-webhook-configuration"
	mutatingConfiguration   = "mutating-webhook-configuration"
	podWebhook              = "pods.pod-security.packnow.io"
	operatorNamespace       = "packnow-system"
	operatorUser            = "packnow-operator"
)

type options struct {
	modes       []string
	rates       []int
	warmup      time.Duration
	duration    time.Duration
	connections int
	requests    int
	concurrency int
	cpuProfile  string
	keep        bool
	operatorEnv string
}

func main() {
	var o options
	modes := flag.String("modes", "handler,apiserver", "which measurements to run, comma-separated: handler, apiserver")
	rates := flag.String("rates", "100,500,1000,2000", "handler mode: request rates (per second), comma-separated")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "handler mode: unmeasured warm-up at each rate")
	flag.DurationVar(&o.duration, "duration", 12*time.Second, "handler mode: measured time at each rate")
	flag.IntVar(&o.connections, "connections", 32, "handler mode: keep-alive TLS connections")
	flag.IntVar(&o.requests, "requests", 1000, "apiserver mode: measured dry-run creates per namespace")
	flag.IntVar(&o.concurrency, "concurrency", 4, "apiserver mode: requests in flight")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "handler mode: write a CPU profile of the operator over all rates to the file")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (the operator's log) for inspection")
	flag.StringVar(&o.operatorEnv, "operator-env", "", "extra operator environment, space-separated NAME=value (e.g. GOGC=200)")
	flag.Parse()

	var err error
	if o.modes, err = parseModes(*modes); err == nil {
		o.rates, err = parseRates(*rates)
	}
	if err == nil && (o.connections < 1 || o.requests < 1 || o.concurrency < 1 || o.duration <= 0 || o.warmup < 0) {
		err = errors.New("-connections, -requests, -concurrency and -duration must be positive")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission:", err)
		flag.Usage()
		os.Exit(2)
	}
	ctrl.SetLogger(logr.Discard())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, os.Stdout, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission:", err)
		os.Exit(1)
	}
}

func parseModes(s string) ([]string, error) {
	var modes []string
	for m := range strings.SplitSeq(s, ",") {
		m = strings.TrimSpace(m)
		if m != "handler" && m != "apiserver" {
			return nil, fmt.Errorf("-modes: unknown mode %q (handler, apiserver)", m)
		}
		modes = append(modes, m)
	}
	return modes, nil
}

func parseRates(s string) ([]int, error) {
	var rates []int
	for f := range strings.SplitSeq(s, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r < 1 {
			return nil, fmt.Errorf("-rates: %q is not a positive number of requests per second", f)
		}
		rates = append(rates, r)
	}
	return rates, nil
}

func run(ctx context.Context, out io.Writer, o options) (err error) {
	report.Header(out, "admission: latency of the pod security webhook")
	fmt.Fprintln(out, "setup:   envtest API server + etcd, the operator (manager binary, webhooks on, own CA) and the load generator, each its own process, on this machine")
	fmt.Fprintln(out, loadAverage())

	dir, err := os.MkdirTemp("", "bench-admission-")
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
	s, err := testenv.StartAPIServer(testenv.APIServerOptions{Webhooks: testenv.WebhookOptions()})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Stop()) }()
	op, pprofAddr, err := startOperator(ctx, s, dir, strings.Fields(o.operatorEnv))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, op.Stop()) }()

	enforced, unscoped, err := namespaces(ctx, s.Client)
	if err != nil {
		return err
	}
	c, err := unthrottledClient(s)
	if err != nil {
		return err
	}
	if err := waitForWebhook(ctx, c, enforced, unscoped); err != nil {
		return err
	}

	for _, mode := range o.modes {
		fmt.Fprintln(out)
		switch mode {
		case "handler":
			err = measureHandler(ctx, out, s, op, pprofAddr, c, enforced, unscoped, o)
		case "apiserver":
			err = measureAPIServer(ctx, out, c, enforced, unscoped, o)
		}
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// startOperator builds the manager and runs it as its own process, as a cluster runs it (its generated RBAC
// role, its own webhook CA, every controller), serving the webhooks on the address the webhook configurations
// call, and Go's profiling endpoints on pprofAddr; it returns once the server answers with a certificate the
// configurations trust.
func startOperator(ctx context.Context, s *testenv.APIServer, dir string, env []string) (op *testenv.OperatorProcess, pprofAddr string, err error) {
	wh := s.Env.WebhookInstallOptions
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}
	if err := s.Client.Create(ctx, ns); err != nil {
		return nil, "", err
	}
	bin, err := testenv.Build(dir, ".", "manager")
	if err != nil {
		return nil, "", err
	}
	certDir := filepath.Join(dir, "certs")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		return nil, "", err
	}
	if pprofAddr, err = testenv.FreeLoopbackAddr(); err != nil {
		return nil, "", err
	}
	op, err = s.StartOperatorProcess(ctx, operatorUser, bin, dir, []string{
		"--webhook-port=" + strconv.Itoa(wh.LocalServingPort), "--webhook-cert-dir=" + certDir,
		"--operator-namespace=" + operatorNamespace,
		"--validating-webhook-configuration=" + validatingConfiguration,
		"--mutating-webhook-configuration=" + mutatingConfiguration,
		"--webhook-extra-dns-names=" + testenv.WebhookHost,
		"--pprof-bind-address=" + pprofAddr,
	}, env)
	return op, pprofAddr, err
}

// namespaces creates the namespace the pod webhook enforces in and one it does not select.
func namespaces(ctx context.Context, c client.Client) (enforced, unscoped string, err error) {
	enf := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench-enforced",
		Labels: map[string]string{webhooks.PodSecurityLabel: string(webhooks.ModeEnforce)}}}
	uns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench-unscoped"}}
	for _, ns := range []*corev1.Namespace{enf, uns} {
		if err := c.Create(ctx, ns); err != nil {
			return "", "", err
		}
	}
	return enf.Name, uns.Name, nil
}

// unthrottledClient has client-go's default limit of 5 requests per second lifted, which would otherwise be
// what the API server mode measures.
func unthrottledClient(s *testenv.APIServer) (client.Client, error) {
	cfg := rest.CopyConfig(s.Config)
	cfg.QPS = -1
	return client.New(cfg, client.Options{Scheme: testenv.Scheme(), Mapper: s.Client.RESTMapper()})
}

// waitForWebhook waits until the API server calls the webhook for the enforced namespace, with the CA the
// operator injected, and the webhook's cache knows the namespace: a violating pod is denied there and
// admitted in the unscoped namespace.
func waitForWebhook(ctx context.Context, c client.Client, enforced, unscoped string) error {
	return poll(ctx, 2*time.Minute, func() error {
		if err := c.Create(ctx, violatingPod(enforced, runAsRoot), client.DryRunAll); err == nil {
			return errors.New("a violating pod was admitted in the enforced namespace")
		} else if !strings.Contains(err.Error(), "violates PackNow pod security") {
			return err
		}
		if err := c.Create(ctx, compliantPod(enforced), client.DryRunAll); err != nil {
			return err
		}
		return c.Create(ctx, violatingPod(unscoped, runAsRoot), client.DryRunAll)
	})
}

func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// compliantPod is what a typical Deployment's ReplicaSet creates: labels, an owner, requests and limits, a
// probe, a few environment variables, non-root.
func compliantPod(namespace string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "web-7d9f8b6c5-",
			Namespace:    namespace,
			Labels:       map[string]string{"app.kubernetes.io/name": "web", "pod-template-hash": "7d9f8b6c5"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8b6c5",
				UID: "3b0e7c52-1f0a-4c8e-9a51-6d2f4b8e7a90", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:  "web",
				Image: "registry.example/web:1.4.2",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}},
				Env: []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "LISTEN_ADDR", Value: ":8000"},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
					HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}}},
				SecurityContext: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false)},
			}},
		},
	}
}

// runAsRoot leaves runAsNonRoot unset: the pod may run as root.
func runAsRoot(p *corev1.Pod) { p.Spec.Containers[0].SecurityContext = nil }

// privileged runs the container privileged (the API server rejects that together with
// allowPrivilegeEscalation=false, so it goes).
func privileged(p *corev1.Pod) {
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), Privileged: ptr.To(true)}
}

func violatingPod(namespace string, violate func(*corev1.Pod)) *corev1.Pod {
	p := compliantPod(namespace)
	violate(p)
	return p
}

// measureHandler drives the webhook server directly at each rate and prints a table.
func measureHandler(ctx context.Context, out io.Writer, s *testenv.APIServer, op *testenv.OperatorProcess, pprofAddr string,
	c client.Client, enforced, unscoped string, o options) error {
	deck, err := podDeck(ctx, c, enforced, unscoped)
	if err != nil {
		return err
	}
	caBundle, err := podWebhookCA(ctx, c)
	if err != nil {
		return err
	}
	wh := s.Env.WebhookInstallOptions
	rc, err := newReviewClient(net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort)), testenv.WebhookHost, caBundle, deck)
	if err != nil {
		return err
	}
	if err := rc.check(); err != nil {
		return err
	}
	senders := make([]func(int) outcome, o.connections)
	for i := range senders {
		conn := rc.newConn()
		defer conn.close()
		senders[i] = conn.send
	}

	allowed := 0
	for _, pc := range deck {
		if pc.allowed {
			allowed++
		}
	}
	fmt.Fprintf(out, "## handler: pod AdmissionReviews (CREATE) over TLS on loopback to %s, %d keep-alive HTTP/1.1 connections\n",
		webhooks.PodsPath, o.connections)
	fmt.Fprintf(out, "open loop at a fixed rate; latency counts from each request's scheduled send time, so queueing behind a slow\n"+
		"request is included (no coordinated omission). Mix: %d%% compliant, %d%% violating (run as root, privileged), verdict checked;\n"+
		"each review carries the pod as the API server passes it (defaulted, with managedFields), %.1f KiB.\n"+
		"%s warm-up, then %s measured per rate. Percentiles are over answered requests; errors: late (no answer within the\n"+
		"webhook's %s timeout of the scheduled time: the API server would have failed the admission; such slots are not sent),\n"+
		"transport, non-200, wrong verdict. Achieved rps counts answered requests. Send lag: how late after its due time a\n"+
		"request went out (every connection busy, or the generator woke late); it is part of the latency.\n",
		100*allowed/len(deck), 100*(len(deck)-allowed)/len(deck), float64(deck[0].size())/1024, o.warmup, o.duration, webhookTimeout)
	fmt.Fprintln(out, "CPU/req: CPU time per request sent, warm-up included, of the operator (server) and of the load generator.")
	if o.cpuProfile != "" {
		profiled := time.Duration(len(o.rates)) * (o.warmup + o.duration)
		wait, err := startCPUProfile(ctx, pprofAddr, profiled, o.cpuProfile)
		if err != nil {
			return err
		}
		defer func() {
			if err := wait(); err != nil {
				fmt.Fprintln(os.Stderr, "admission: CPU profile:", err)
			}
		}()
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "rate rps\tachieved rps\trequests\tp50 ms\tp90 ms\tp99 ms\tmax ms\tsend lag p50/p99 ms\tlate > %s\ttransport err\tnon-200\twrong verdict\tserver CPU/req µs\tgenerator CPU/req µs\t\n", webhookTimeout)
	var atTarget *tally
	for _, rate := range o.rates {
		sched := newSchedule(time.Now(), rate, o.warmup, o.duration)
		before, err := usage(op)
		if err != nil {
			return err
		}
		t := runOpenLoop(ctx, sched, senders, webhookTimeout)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		after, err := usage(op)
		if err != nil {
			return err
		}
		perReq := func(d time.Duration) int64 { return d.Microseconds() / int64(max(t.Sent, 1)) }
		fmt.Fprintf(tw, "%d\t%.0f\t%d\t%s\t%s\t%s\t%s\t%s / %s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", rate, t.AchievedRPS, t.Requests,
			report.Ms(t.Latency.P50), report.Ms(t.Latency.P90), report.Ms(t.Latency.P99), report.Ms(t.Latency.Max),
			report.Ms(t.SendLag.P50), report.Ms(t.SendLag.P99), t.TooLate, t.TransportErrors, t.StatusErrors, t.WrongVerdicts,
			perReq(after.server.CPU-before.server.CPU), perReq(after.generator.CPU-before.generator.CPU))
		if rate == targetRate {
			atTarget = &t
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if u, err := usage(op); err == nil {
		fmt.Fprintf(out, "operator peak RSS (VmHWM): %s\n", report.MiB(u.server.PeakRSS))
	}
	if rc.firstErr.err != nil {
		fmt.Fprintln(out, "first error:", rc.firstErr.err)
	}
	fmt.Fprintln(out, loadAverage())
	if atTarget == nil {
		fmt.Fprintf(out, "target (p99 < %s at %d rps): not measured, %d rps is not among -rates\n", ms(targetP99), targetRate, targetRate)
		return nil
	}
	verdict := "not met"
	if atTarget.Latency.P99 < targetP99 && atTarget.Errors() == 0 {
		verdict = "met"
	}
	fmt.Fprintf(out, "target (p99 < %s at %d rps, no errors): %s, p99 %s ms, %d errors\n", ms(targetP99), targetRate, verdict,
		report.Ms(atTarget.Latency.P99), atTarget.Errors())
	return nil
}

// loadAverage tells how busy the machine was, which the figures above depend on.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return fmt.Sprintf("load average (1, 5, 15 min): %s %s %s", f[0], f[1], f[2])
	}
	return "load average: unknown"
}

// processes is the resource use of the webhook server (the operator) and of the load generator (this process).
type processes struct{ server, generator report.Process }

func usage(op *testenv.OperatorProcess) (processes, error) {
	server, err := report.ProcessUsage(op.Cmd.Process.Pid)
	if err != nil {
		return processes{}, err
	}
	generator, err := report.ProcessUsage(os.Getpid())
	return processes{server, generator}, err
}

// startCPUProfile asks the operator's pprof endpoint for a CPU profile of the next d and writes it to path;
// wait returns once it is written.
func startCPUProfile(ctx context.Context, pprofAddr string, d time.Duration, path string) (wait func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, int(d.Round(time.Second).Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		f.Close()
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- errors.Join(err, f.Close())
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- errors.Join(fmt.Errorf("%s: %s", url, resp.Status), f.Close())
			return
		}
		_, err = io.Copy(f, resp.Body)
		done <- errors.Join(err, f.Close())
	}()
	return func() error { return <-done }, nil
}

func ms(d time.Duration) string { return report.Ms(d) + " ms" }

// podDeck is the load mix in the order it is sent: 18 compliant pods, one that may run as root, one privileged.
// Each pod is what the API server hands to webhooks: created with DryRun=All in the unscoped namespace (which
// no webhook selects), it comes back defaulted, named and with uid and creation time.
func podDeck(ctx context.Context, c client.Client, enforced, unscoped string) ([]podCase, error) {
	var cases []podCase
	for _, k := range []struct {
		name    string
		pod     *corev1.Pod
		allowed bool
	}{
		{"compliant", compliantPod(unscoped), true},
		{"run-as-root", violatingPod(unscoped, runAsRoot), false},
		{"privileged", violatingPod(unscoped, privileged), false},
	} {
		if err := c.Create(ctx, k.pod, client.DryRunAll); err != nil {
			return nil, err
		}
		pc, err := newPodCase(k.name, k.allowed, k.pod, enforced)
		if err != nil {
			return nil, err
		}
		cases = append(cases, pc)
	}
	deck := slices.Repeat(cases[:1], 18)
	return append(deck, cases[1:]...), nil
}

// podWebhookCA is the caBundle the API server trusts for the pod webhook, which the operator injected.
func podWebhookCA(ctx context.Context, c client.Client) ([]byte, error) {
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: validatingConfiguration}, &v); err != nil {
		return nil, err
	}
	for _, w := range v.Webhooks {
		if w.Name == podWebhook {
			return w.ClientConfig.CABundle, nil
		}
	}
	return nil, fmt.Errorf("%s has no webhook %s", validatingConfiguration, podWebhook)
}

// measureAPIServer compares dry-run creates of the same pod in the enforced and the unscoped namespace.
func measureAPIServer(ctx context.Context, out io.Writer, c client.Client, enforced, unscoped string, o options) error {
	warmup := max(o.requests/10, 20)
	enf, uns := measureDryRuns(ctx, c, compliantPod(""), enforced, unscoped, warmup, o.requests, o.concurrency)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Fprintf(out, "## through the API server: pod create with DryRun=All, %d per namespace after %d warm-up, %d in flight,\n"+
		"the two namespaces alternating; latency as the client sees it (closed loop)\n", o.requests, warmup, o.concurrency)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	// The mean is there for comparison with figures published as averages.
	fmt.Fprintln(tw, "namespace\trequests\terrors\tmean ms\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	row := func(name string, r dryRunResult) report.Latencies {
		l := report.Summarize(r.latencies)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name, len(r.latencies)+r.errors, r.errors,
			report.Ms(l.Mean), report.Ms(l.P50), report.Ms(l.P90), report.Ms(l.P99), report.Ms(l.Max))
		return l
	}
	le := row("enforced (webhook called)", enf)
	lu := row("unscoped (no webhook)", uns)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range []dryRunResult{enf, uns} {
		if r.firstErr != nil {
			fmt.Fprintln(out, "first error:", r.firstErr)
		}
	}
	fmt.Fprintf(out, "added by the webhook: p50 %+.2f ms, p99 %+.2f ms (difference of the percentiles)\n",
		float64(le.P50-lu.P50)/float64(time.Millisecond), float64(le.P99-lu.P99)/float64(time.Millisecond))
	fmt.Fprintln(out, loadAverage())
	return nil
}
