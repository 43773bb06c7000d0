package faults

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/hack/testenv"
)

// testImage is the API image of the apps the tests create; no pod ever runs it on envtest.
const testImage = "packnow-api:test"

// operator is one manager process, running as operatorUserName.
type operator struct {
	name   string
	cmd    *exec.Cmd
	logs   testenv.LogBuffer
	exited chan struct{}
}

// startOperator runs the manager with webhooks off, metrics and probes on free loopback ports, and args. The
// process is killed when the test ends; its log is printed if the test failed.
func startOperator(t *testing.T, name string, args ...string) *operator {
	t.Helper()
	o := &operator{name: name, exited: make(chan struct{})}
	o.cmd = exec.Command(managerBinary, append([]string{
		"--enable-webhooks=false",
		"--metrics-secure=false", "--metrics-bind-address=" + freeLoopbackAddr(t),
		"--health-probe-bind-address=" + freeLoopbackAddr(t),
		"--default-api-image=" + testImage,
	}, args...)...)
	o.cmd.Env = append(os.Environ(), "KUBECONFIG="+operatorKubeconfig)
	o.cmd.Stdout, o.cmd.Stderr = &o.logs, &o.logs
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = o.cmd.Wait()
		close(o.exited)
	}()
	t.Cleanup(func() {
		o.kill()
		if t.Failed() {
			t.Logf("log of operator %s:\n%s", name, o.logs.String())
		}
	})
	return o
}

// kill sends SIGKILL, so that nothing of the operator's own shutdown runs (it does not release its Lease),
// and waits until the process is gone.
func (o *operator) kill() {
	_ = o.cmd.Process.Kill() // fails only if the process has exited already
	<-o.exited
}

// mustRun fails the test at once if the process has exited, rather than waiting for what it will never do.
func (o *operator) mustRun(t *testing.T) {
	t.Helper()
	select {
	case <-o.exited:
		t.Fatalf("operator %s exited: %v\n%s", o.name, o.cmd.ProcessState, o.logs.String())
	default:
	}
}

// freeLoopbackAddr is a loopback address with a port that was free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	addr, err := testenv.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// pollInterval is how often the tests' waits look again.
const pollInterval = 50 * time.Millisecond

// waitFor polls check until it returns nil, failing the test with its last error after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, after %s: %v", what, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// createNamespace creates a fresh namespace named after prefix, so that tests can run again (-count) on the
// same API server.
func createNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := apiServer.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// createApp creates the least a user writes, and deletes it when the test ends so that operators of later
// tests have nothing left over to reconcile.
func createApp(t *testing.T, namespace, name string) *packnowv1alpha1.PackNowApp {
	t.Helper()
	app := &packnowv1alpha1.PackNowApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: packnowv1alpha1.PackNowAppSpec{
			Database: packnowv1alpha1.DatabaseSpec{Host: "postgres." + namespace + ".svc"},
			Redis:    packnowv1alpha1.RedisSpec{Host: "redis." + namespace + ".svc"},
		},
	}
	if err := apiServer.Client.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := apiServer.Client.Delete(context.Background(), app); err != nil {
			t.Errorf("delete the app: %v", err)
		}
	})
	return app
}
