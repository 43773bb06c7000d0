// Package faults holds the fault tests (`make test-faults`): they run the real operator binary against a real
// API server and break something under it.
package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/packnow/packnow-operator/hack/testenv"
)

// operatorUserName is the user the operator processes run as: the generated ClusterRole, plus the
// leader-election Role where a test grants it.
const operatorUserName = "packnow-operator"

var (
	apiServer *testenv.APIServer
	// managerBinary is main.go built once for every test.
	managerBinary string
	// operatorKubeconfig is the kubeconfig file of operatorUserName.
	operatorKubeconfig string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// The operators log to their own outputs; the tests' clients log nothing.
	ctrl.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "packnow-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := setUp(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if apiServer != nil {
			_ = apiServer.Stop()
		}
		return 1
	}
	code := m.Run()
	if err := apiServer.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	return code
}

// setUp builds the manager into dir, starts the API server and writes the operator's kubeconfig into dir.
func setUp(dir string) error {
	var err error
	if managerBinary, err = testenv.Build(dir, ".", "manager"); err != nil {
		return err
	}
	if apiServer, err = testenv.StartAPIServer(testenv.APIServerOptions{}); err != nil {
		return err
	}
	user, err := apiServer.OperatorUser(operatorUserName)
	if err != nil {
		return err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	operatorKubeconfig = filepath.Join(dir, "operator.kubeconfig")
	return os.WriteFile(operatorKubeconfig, kubeconfig, 0o600)
}
