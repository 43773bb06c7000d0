// Command manager is the PackNow operator: it reconciles PackNowApps and serves the admission webhooks.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/controllers"
	"github.com/packnow/packnow-operator/webhooks"
)

// defaultAPIImage is the PackNow API image deployed when a PackNowApp names none; release builds set it with
// -ldflags "-X main.defaultAPIImage=...".
var defaultAPIImage = "packnow-api:dev"

// version is the operator's release, set by release builds with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	var (
		metricsAddr     string
		probeAddr       string
		pprofAddr       string
		secureMetrics   bool
		enableHTTP2     bool
		leaderElect     bool
		webhookPort     int
		webhookCertDir  string
		apiImage        string
		leaderElectionN string
		leaseDuration   time.Duration
		renewDeadline   time.Duration
		retryPeriod     time.Duration
		webhooksOn      bool
		certManager     bool
		namespace       string
		whOpts          webhooks.Options
		printVersion    bool
		maxReconciles   int
	)
	flag.BoolVar(&printVersion, "version", false, "Print the version and exit.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443",
		"Address of the metrics endpoint (HTTPS unless --metrics-secure=false); \"0\" disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS, authenticated and authorized through the API server.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0",
		"Address of Go's profiling endpoints (/debug/pprof/), unauthenticated, for diagnosing CPU and memory use; \"0\" disables them.")
	flag.BoolVar(&leaderElect, "leader-elect", runningInCluster(),
		"Elect a leader so that only one replica reconciles (default: on in a cluster, off outside).")
	flag.StringVar(&leaderElectionN, "leader-election-namespace", "",
		"Namespace of the leader-election Lease (default: the pod's namespace).")
	// The defaults are controller-runtime's. A standby takes over a leader that died without releasing the
	// Lease once the lease duration has passed since the last renewal.
	flag.DurationVar(&leaseDuration, "leader-election-lease-duration", 15*time.Second,
		"How long a standby waits after the leader's last renewal before it takes the Lease over.")
	flag.DurationVar(&renewDeadline, "leader-election-renew-deadline", 10*time.Second,
		"How long the leader keeps retrying to renew the Lease before it steps down; shorter than the lease duration.")
	flag.DurationVar(&retryPeriod, "leader-election-retry-period", 2*time.Second,
		"How often candidates try to acquire or renew the Lease.")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "Port of the admission webhook server.")
	flag.StringVar(&webhookCertDir, "webhook-cert-dir", "",
		"Directory with tls.crt and tls.key of the webhook server (default: <temp>/k8s-webhook-server/serving-certs).")
	flag.BoolVar(&webhooksOn, "enable-webhooks", true,
		"Serve the admission webhooks (pod security, PackNowApp defaulting and validation).")
	flag.BoolVar(&certManager, "webhook-cert-manager", false,
		"Take the webhook serving certificate from cert-manager (mounted in --webhook-cert-dir) instead of managing it.")
	flag.StringVar(&namespace, "operator-namespace", podNamespace(),
		"Namespace the operator runs in, which holds its webhook certificate Secret (default: the pod's namespace).")
	flag.StringVar(&whOpts.ServiceName, "webhook-service-name", "packnow-operator-webhook-service",
		"Service the API server calls the webhooks through; the serving certificate is issued for it.")
	flag.StringVar(&whOpts.CertSecretName, "webhook-cert-secret", "packnow-operator-webhook-cert",
		"Secret in which the operator keeps its webhook CA and serving certificate.")
	flag.StringVar(&whOpts.ValidatingWebhookConfiguration, "validating-webhook-configuration",
		"packnow-operator-validating-webhook-configuration", "ValidatingWebhookConfiguration whose caBundle the operator keeps current.")
	flag.StringVar(&whOpts.MutatingWebhookConfiguration, "mutating-webhook-configuration",
		"packnow-operator-mutating-webhook-configuration", "MutatingWebhookConfiguration whose caBundle the operator keeps current.")
	flag.Func("webhook-extra-dns-names",
		"Comma-separated extra DNS names for the operator-managed serving certificate, for a webhook server reached "+
			"outside its Service (e.g. localhost when the manager runs on your machine).",
		func(v string) error {
			whOpts.ExtraDNSNames = append(whOpts.ExtraDNSNames, strings.Split(v, ",")...)
			return nil
		})
	flag.StringVar(&apiImage, "default-api-image", defaultAPIImage,
		"PackNow API image for PackNowApps that name none.")
	flag.IntVar(&maxReconciles, "max-concurrent-reconciles", controllers.DefaultMaxConcurrentReconciles,
		"PackNowApps reconciled at once. More converge many apps faster after a mass change or an operator "+
			"restart, at the cost of more concurrent requests to the API server.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"Serve HTTP/2 on the metrics and webhook servers (off by default: CVE-2023-44487 rapid reset).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if printVersion {
		fmt.Println("packnow-operator", version)
		return
	}
	if maxReconciles < 1 {
		fmt.Fprintln(os.Stderr, "--max-concurrent-reconciles must be at least 1")
		os.Exit(2)
	}
	if webhookCertDir == "" {
		webhookCertDir = filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	// A soft memory limit at 90 % of the container's: close to it the garbage collector runs more often rather
	// than the pod being OOM-killed. GOMEMLIMIT in the environment takes precedence; without a cgroup memory
	// limit nothing changes. Set logs what it did and any error, which is no reason not to start.
	_, _ = memlimit.Set(memlimit.WithRatio(0.9), memlimit.WithProvider(memlimit.FromCgroup),
		memlimit.WithLogger(slog.New(logr.ToSlogHandler(ctrl.Log.WithName("memlimit")))))
	// GOGC in the environment turns the tuning of the collector's headroom off.
	if os.Getenv("GOGC") == "" {
		tuneGCAfterEachCycle()
	}

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: tlsOpts}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	reconciler := &controllers.PackNowAppReconciler{DefaultImage: apiImage, MaxConcurrentReconciles: maxReconciles}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  newScheme(),
		Cache:                   reconciler.CacheOptions(),
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "packnow-operator.packnow.io",
		LeaderElectionNamespace: leaderElectionN,
		LeaseDuration:           &leaseDuration,
		RenewDeadline:           &renewDeadline,
		RetryPeriod:             &retryPeriod,
		// The manager exits right after losing the lease, so stepping down early is safe and speeds failover.
		LeaderElectionReleaseOnCancel: true,
		WebhookServer: webhook.NewServer(webhook.Options{
			Port: webhookPort, CertDir: webhookCertDir, TLSOpts: tlsOpts,
		}),
	})
	if err != nil {
		log.Error(err, "unable to create the manager")
		os.Exit(1)
	}
	log.Info("PackNow operator", "version", version)
	log.Info("default PackNow API image", "image", apiImage)

	if err := reconciler.SetupWithManager(mgr); err != nil {
		log.Error(err, "unable to set up the PackNowApp controller")
		os.Exit(1)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the health check")
		os.Exit(1)
	}
	ready := healthz.Ping
	if webhooksOn {
		whOpts.Namespace, whOpts.CertDir, whOpts.CertManager = namespace, webhookCertDir, certManager
		if ready, err = webhooks.Setup(mgr, whOpts); err != nil {
			log.Error(err, "unable to set up the webhooks")
			os.Exit(1)
		}
	}
	if err := mgr.AddReadyzCheck("readyz", ready); err != nil {
		log.Error(err, "unable to set up the ready check")
		os.Exit(1)
	}

	log.Info("starting the manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "the manager stopped with an error")
		os.Exit(1)
	}
}

// Between two collections the heap may grow by gcGrowthPercent of what was live after the first, but by no less
// than minGCHeadroom. A large live heap is the cache of many apps, which Go's default (GOGC=100) would double:
// for 1,000 apps, 40 MiB of headroom the collector does not need. A small one is mostly the webhook's
// short-lived garbage, where more headroom means fewer collections and a shorter admission latency tail.
// docs/performance.md has the figures.
const (
	gcGrowthPercent = 50
	minGCHeadroom   = 24 << 20
)

// gcPercentFor is the GOGC that gives a live heap of that size its headroom.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return 100
	}
	return int(max(gcGrowthPercent, minGCHeadroom*100/live))
}

// gcCycle is allocated to notice the next garbage collection, which frees it. It holds a pointer so that it
// is not batched with other tiny allocations, which would delay its cleanup.
type gcCycle struct{ _ *byte }

// tuneGCAfterEachCycle sets GOGC from the live heap after every garbage collection.
func tuneGCAfterEachCycle() {
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var next func(struct{})
	next = func(struct{}) {
		metrics.Read(live)
		debug.SetGCPercent(gcPercentFor(live[0].Value.Uint64()))
		goruntime.AddCleanup(&gcCycle{}, next, struct{}{})
	}
	goruntime.AddCleanup(&gcCycle{}, next, struct{}{})
}

func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(packnowv1alpha1.AddToScheme(scheme))
	utilruntime.Must(gatewayv1.AddToScheme(scheme))
	return scheme
}

// podNamespace is the namespace of the pod the process runs in, or "" outside a cluster.
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// runningInCluster reports whether the process runs in a pod, where leader election is wanted by default.
func runningInCluster() bool {
	_, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token")
	return err == nil && os.Getenv("KUBERNETES_SERVICE_HOST") != ""
}
