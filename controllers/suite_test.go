package controllers_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/controllers"
	"github.com/packnow/packnow-operator/hack/testenv"
)

const testImage = "packnow-api:test"

// suite is one API server and one manager shared by the tests of this package; each test works in its own
// namespaces.
type suite struct {
	apiServer *testenv.APIServer
	// operator is the configuration of the operator's user, for further managers.
	operator *rest.Config
	// k8s is the tests' own client, uncached and not counted.
	k8s client.Client
	// cache is the manager's.
	cache client.Reader
	stop  context.CancelFunc
	done  chan error
	// writes counts the manager's writes per namespace; reconciles counts reads of each PackNowApp, which
	// every reconcile starts with.
	mu        sync.Mutex
	writes    map[string]int
	reconcile map[client.ObjectKey]*atomic.Int64
}

var (
	shared     *suite
	sharedErr  error
	sharedOnce sync.Once
)

// env starts the API server and the manager on first use, so that the builders' unit tests in this folder run
// without a control plane.
func env(t *testing.T) *suite {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = startSuite() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func TestMain(m *testing.M) {
	flag.Parse()
	logger := logr.Discard()
	if testing.Verbose() {
		logger = zap.New(zap.UseDevMode(true))
	}
	ctrl.SetLogger(logger)
	code := m.Run()
	if shared != nil {
		if err := shared.shutdown(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// startSuite starts an API server with the edge providers' CRDs and the operator on it.
func startSuite() (*suite, error) {
	edgeCRDs, err := testenv.EdgeCRDPaths()
	if err != nil {
		return nil, err
	}
	srv, err := testenv.StartAPIServer(testenv.APIServerOptions{CRDDirectoryPaths: edgeCRDs})
	if err != nil {
		return nil, err
	}
	s, err := startOperator(srv)
	if err != nil {
		return nil, errors.Join(err, srv.Stop())
	}
	return s, nil
}

// startOperator runs the operator's manager on srv as the operator's user.
func startOperator(srv *testenv.APIServer) (*suite, error) {
	s := &suite{apiServer: srv, k8s: srv.Client, writes: map[string]int{}, reconcile: map[client.ObjectKey]*atomic.Int64{}}
	operator, err := s.operatorUser()
	if err != nil {
		return nil, err
	}
	s.operator = operator
	reconciler := &controllers.PackNowAppReconciler{DefaultImage: testImage}
	mgr, err := ctrl.NewManager(operator, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Cache:                  appsWithout(reconciler, testManagerLabel),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		NewClient:              s.countingClient,
		// The fault tests run a second suite in this process, which registers the same controller.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, err
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	s.cache = mgr.GetCache()
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan error, 1)
	go func() { s.done <- mgr.Start(ctx) }()
	return s, nil
}

// shutdown stops the manager, then the API server.
func (s *suite) shutdown() error {
	s.stop()
	var errs []error
	if err := <-s.done; err != nil {
		errs = append(errs, fmt.Errorf("manager: %w", err))
	}
	if err := s.apiServer.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("stop envtest: %w", err))
	}
	return errors.Join(errs...)
}

// operatorUser is a user holding only the ClusterRole that `make manifests` generates from the RBAC markers,
// so that every test also proves the role sufficient.
func (s *suite) operatorUser() (*rest.Config, error) {
	user, err := s.apiServer.OperatorUser("packnow-operator")
	if err != nil {
		return nil, err
	}
	return user.Config(), nil
}

// countingClient is the manager's client, wrapped to count what the reconciler reads and writes.
func (s *suite) countingClient(config *rest.Config, options client.Options) (client.Client, error) {
	c, err := client.NewWithWatch(config, options)
	if err != nil {
		return nil, err
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*packnowv1alpha1.PackNowApp); ok {
				s.reconciles(key).Add(1)
			}
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			s.countWrite(obj.GetNamespace())
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			s.countWrite(obj.GetNamespace())
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			s.countWrite(obj.GetNamespace())
			return c.Patch(ctx, obj, patch, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			if named, ok := obj.(interface{ GetNamespace() *string }); ok {
				s.countWrite(ptr.Deref(named.GetNamespace(), ""))
			} else {
				s.countWrite("")
			}
			return c.Apply(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			s.countWrite(obj.GetNamespace())
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			s.countWrite(obj.GetNamespace())
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			s.countWrite(obj.GetNamespace())
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			s.countWrite("")
			return c.SubResource(sub).Apply(ctx, obj, opts...)
		},
	}), nil
}

func (s *suite) countWrite(namespace string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes[namespace]++
}

// writesIn is how many writes the manager has made in namespace so far; writes it cannot attribute to a
// namespace count everywhere.
func (s *suite) writesIn(namespace string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes[namespace] + s.writes[""]
}

func (s *suite) reconciles(key client.ObjectKey) *atomic.Int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reconcile[key] == nil {
		s.reconcile[key] = &atomic.Int64{}
	}
	return s.reconcile[key]
}

// pollInterval is how often the tests' waits look again.
const pollInterval = 100 * time.Millisecond

// eventually polls check until it returns nil, failing the test with its last error after a minute.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(pollInterval)
	}
}

// namespace creates a fresh namespace named after prefix, so that tests can run again (-count) on the same API
// server.
func (s *suite) namespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := s.k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// newApp is the least a user writes; the API server fills in the rest.
func newApp(namespace, name string) *packnowv1alpha1.PackNowApp {
	return &packnowv1alpha1.PackNowApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: packnowv1alpha1.PackNowAppSpec{
			Database: packnowv1alpha1.DatabaseSpec{Host: "postgres." + namespace + ".svc"},
			Redis:    packnowv1alpha1.RedisSpec{Host: "redis." + namespace + ".svc"},
		},
	}
}

func (s *suite) create(t *testing.T, app *packnowv1alpha1.PackNowApp) *packnowv1alpha1.PackNowApp {
	t.Helper()
	if err := s.k8s.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	return app
}

// get reads an object into obj, by the namespace and name given.
func (s *suite) get(namespace, name string, obj client.Object) error {
	return s.k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, obj)
}

// update re-reads obj and applies change to it until the write does not conflict.
func (s *suite) update(t *testing.T, obj client.Object, change func()) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := s.get(obj.GetNamespace(), obj.GetName(), obj); err != nil {
			return err
		}
		change()
		return s.k8s.Update(context.Background(), obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// markRolledOut plays the Deployment controller, which envtest lacks, once the Deployment exists.
func (s *suite) markRolledOut(t *testing.T, namespace, name string) {
	t.Helper()
	eventually(t, "Deployment "+name+" exists", func() error { return s.get(namespace, name, &appsv1.Deployment{}) })
	if err := testenv.MarkRolledOut(context.Background(), s.k8s, namespace, name); err != nil {
		t.Fatal(err)
	}
}

// condition returns the app's condition of type, failing unless the status describes the current generation.
func (s *suite) condition(namespace, name, condType string) (*metav1.Condition, *packnowv1alpha1.PackNowApp, error) {
	app := &packnowv1alpha1.PackNowApp{}
	if err := s.get(namespace, name, app); err != nil {
		return nil, nil, err
	}
	if app.Status.ObservedGeneration != app.Generation {
		return nil, app, fmt.Errorf("status describes generation %d, spec is at %d", app.Status.ObservedGeneration, app.Generation)
	}
	for i, c := range app.Status.Conditions {
		if c.Type == condType {
			return &app.Status.Conditions[i], app, nil
		}
	}
	return nil, app, fmt.Errorf("no %s condition in %+v", condType, app.Status.Conditions)
}

// waitCondition waits until the app's condition has the status and returns the app.
func (s *suite) waitCondition(t *testing.T, namespace, name, condType string, want metav1.ConditionStatus) *packnowv1alpha1.PackNowApp {
	t.Helper()
	var app *packnowv1alpha1.PackNowApp
	eventually(t, fmt.Sprintf("%s/%s %s=%s", namespace, name, condType, want), func() error {
		c, a, err := s.condition(namespace, name, condType)
		if err != nil {
			return err
		}
		if c.Status != want {
			return fmt.Errorf("%s is %s (%s: %s)", condType, c.Status, c.Reason, c.Message)
		}
		app = a
		return nil
	})
	return app
}

// eventNotes are the notes of the events with that reason about the PackNowApp.
func (s *suite) eventNotes(t *testing.T, namespace, app, reason string) []string {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := s.k8s.List(context.Background(), list, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Name == app && e.Regarding.Kind == "PackNowApp" && e.Reason == reason {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

// waitEvent waits for an event about the app with the type and reason, and returns its note.
func (s *suite) waitEvent(t *testing.T, namespace, app, eventType, reason string) string {
	t.Helper()
	var note string
	eventually(t, fmt.Sprintf("%s event %s about %s", eventType, reason, app), func() error {
		list := &eventsv1.EventList{}
		if err := s.k8s.List(context.Background(), list, client.InNamespace(namespace)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == app && e.Regarding.Kind == "PackNowApp" && e.Type == eventType && e.Reason == reason {
				note = e.Note
				return nil
			}
		}
		return fmt.Errorf("not among %d events", len(list.Items))
	})
	return note
}
