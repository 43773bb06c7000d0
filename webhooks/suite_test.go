package webhooks

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/packnow/packnow-operator/hack/testenv"
)

// env is the API server shared by the integration tests, started by the first of them, so that unit tests and
// fuzzing run without it.
var (
	env      *testenv.APIServer
	envErr   error
	envStart sync.Once
)

func TestMain(m *testing.M) {
	// go test shows this only for a failing package.
	log.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	if spec := os.Getenv(operatorProcessEnv); spec != "" {
		os.Exit(runOperatorProcess(spec))
	}
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// apiServer returns the shared API server, failing the test (naming the make target that builds the control
// plane) when it cannot start.
func apiServer(t testing.TB) *testenv.APIServer {
	t.Helper()
	envStart.Do(func() {
		env, envErr = testenv.StartAPIServer(testenv.APIServerOptions{Webhooks: testenv.WebhookOptions()})
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
	return env
}

// startOperator runs a manager with the webhooks on the port the webhook configurations call, until the test
// ends. With o.CertManager the certificate is envtest's; otherwise the operator manages its own.
func startOperator(t testing.TB, o Options) {
	t.Helper()
	ready, _ := runOperator(t, o)
	eventually(t, 2*time.Minute, func() error { return ready(nil) })
	waitAdmitting(t)
}

// waitAdmitting waits, once the webhook server accepts connections, until the API server's calls succeed too (a
// request in a namespace the webhooks do not select tells nothing, so create a labelled namespace's compliant pod).
func waitAdmitting(t testing.TB) {
	t.Helper()
	ns := namespace(t, ModeEnforce)
	eventually(t, time.Minute, func() error {
		return apiServer(t).Client.Create(context.Background(), compliantPod("probe-"+randSuffix(), ns), client.DryRunAll)
	})
}

// runOperator starts a manager with the webhooks on the port the webhook configurations call and returns at once,
// with its readiness check. stop cancels the manager, a graceful stop (startOperatorProcess's kill is a crash); it
// runs when the test ends at the latest.
func runOperator(t testing.TB, o Options) (ready healthz.Checker, stop func()) {
	t.Helper()
	s := apiServer(t)
	wh := s.Env.WebhookInstallOptions
	if o.CertDir == "" {
		o.CertDir = wh.LocalServingCertDir
	}
	mgr, err := newManager(s.Config, wh.LocalServingHost, wh.LocalServingPort, o.CertDir)
	if err != nil {
		t.Fatal(err)
	}
	ready, err = Setup(mgr, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return ready, stop
}

// newManager is an operator's manager with no metrics or probe server and its webhook server on host:port.
func newManager(cfg *rest.Config, host string, port int, certDir string) (manager.Manager, error) {
	return ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          webhook.NewServer(webhook.Options{Host: host, Port: port, CertDir: certDir}),
		// Each test starts its own manager, with the same controller names.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
}

// namespace creates a namespace labelled with mode ("" for none), deleted when the test ends.
func namespace(t testing.TB, mode Mode) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "pod-security-"}}
	if mode != "" {
		ns.Labels = map[string]string{PodSecurityLabel: string(mode)}
	}
	c := apiServer(t).Client
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ns) })
	return ns.Name
}

func compliantPod(name, ns string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.com/web:1", SecurityContext: nonRootSC()}}},
	}
}

// eventually retries f until it succeeds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %s: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var suffix struct {
	sync.Mutex
	n int
}

func randSuffix() string {
	suffix.Lock()
	defer suffix.Unlock()
	suffix.n++
	return fmt.Sprintf("%d-%d", time.Now().UnixNano()%100000, suffix.n)
}

// warnings collects the admission warnings a client receives.
type warnings struct {
	sync.Mutex
	texts []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.Lock()
	defer w.Unlock()
	w.texts = append(w.texts, text)
}

func (w *warnings) take() []string {
	w.Lock()
	defer w.Unlock()
	t := w.texts
	w.texts = nil
	return t
}

// warningClient is a client whose responses' warnings end up in the returned collector.
func warningClient(t testing.TB) (client.Client, *warnings) {
	t.Helper()
	s := apiServer(t)
	w := &warnings{}
	cfg := rest.CopyConfig(s.Config)
	cfg.WarningHandlerWithContext = w
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme(), Mapper: s.Client.RESTMapper()})
	if err != nil {
		t.Fatal(err)
	}
	return c, w
}
