package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// OperatorProcess is the manager binary running as a process of its own, as it runs in a cluster, so that a
// benchmark can tell its memory and CPU time from everything else's.
type OperatorProcess struct {
	Cmd *exec.Cmd
	// LogPath is the file its standard output and error go to.
	LogPath     string
	metricsAddr string
	exited      chan error
}

// StartOperatorProcess runs the manager binary bin as user (one of OperatorUser) against the API server, with
// plain-HTTP metrics and probes on free loopback ports, leader election off, args after those and env added to
// this process's environment. dir holds its kubeconfig and log. It returns once the readiness probe passes:
// the caches have synced and, with webhooks on, the webhook server serves a certificate the configurations trust.
func (s *APIServer) StartOperatorProcess(ctx context.Context, user, bin, dir string, args, env []string) (*OperatorProcess, error) {
	u, err := s.OperatorUser(user)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := u.KubeConfig()
	if err != nil {
		return nil, err
	}
	kubeconfigPath := filepath.Join(dir, "operator.kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	metricsAddr, err := FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	probeAddr, err := FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "operator.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, append([]string{
		"--leader-elect=false",
		"--metrics-bind-address=" + metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address=" + probeAddr,
	}, args...)...)
	cmd.Env = append(append(os.Environ(), env...), "KUBECONFIG="+kubeconfigPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	op := &OperatorProcess{Cmd: cmd, LogPath: logPath, metricsAddr: metricsAddr, exited: make(chan error, 1)}
	go func() { op.exited <- cmd.Wait() }()
	if err := op.waitReady(ctx, probeAddr); err != nil {
		return nil, errors.Join(err, op.Stop())
	}
	return op, nil
}

func (op *OperatorProcess) waitReady(ctx context.Context, probeAddr string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-op.exited:
			op.exited <- err
			return fmt.Errorf("the operator exited before it was ready (%v); its log is %s", err, op.LogPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := http.Get("http://" + probeAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("the operator was not ready within 2 minutes; its log is %s", op.LogPath)
}

// Stop ends the operator with SIGTERM, as Kubernetes would, and kills it if it does not exit in time.
func (op *OperatorProcess) Stop() error {
	_ = op.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-op.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = op.Cmd.Process.Kill()
		<-op.exited
		return errors.New("the operator did not stop within 30s of SIGTERM")
	}
}

// Metrics is the operator's metrics endpoint in the Prometheus text format.
func (op *OperatorProcess) Metrics() (string, error) {
	resp, err := http.Get("http://" + op.metricsAddr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// ErrorLines counts the operator's log lines at level error, a sign of trouble worth a look; -1 when the log
// cannot be read.
func (op *OperatorProcess) ErrorLines() int {
	raw, err := os.ReadFile(op.LogPath)
	if err != nil {
		return -1
	}
	n := 0
	for line := range strings.SplitSeq(string(raw), "\n") {
		if strings.Contains(line, `"level":"error"`) || strings.Contains(line, "\tERROR\t") {
			n++
		}
	}
	return n
}
