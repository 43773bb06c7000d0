package webhooks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// operatorProcessEnv, set in the environment of the test binary, makes it run an operator instead of the tests:
// a process that a test can kill outright. Its value is an operatorSpec in JSON.
const operatorProcessEnv = "PACKNOW_TEST_OPERATOR"

type operatorSpec struct {
	KubeConfig []byte
	Host       string
	Port       int
	Options    Options
}

// runOperatorProcess is the operator process: it says "ready" on stdout once its readiness check passes and
// exits when its parent goes away.
func runOperatorProcess(spec string) int {
	var s operatorSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(s.KubeConfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	mgr, err := newManager(cfg, s.Host, s.Port, s.Options.CertDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ready, err := Setup(mgr, s.Options)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	go func() {
		for ready(nil) != nil {
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println("ready")
	}()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(1) // the test is gone
	}()
	if err := mgr.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// operatorProcess is an operator running in a child process of the test binary.
type operatorProcess struct {
	cmd     *exec.Cmd
	started time.Time
	ready   chan struct{} // closed once it is ready
	readyAt time.Time     // set before ready is closed
	logs    *bytes.Buffer
	exited  chan error
}

func startOperatorProcess(t testing.TB, o Options) *operatorProcess {
	t.Helper()
	s := apiServer(t)
	wh := s.Env.WebhookInstallOptions
	spec, err := json.Marshal(operatorSpec{KubeConfig: s.Env.KubeConfig, Host: wh.LocalServingHost, Port: wh.LocalServingPort, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	p := &operatorProcess{ready: make(chan struct{}), logs: &bytes.Buffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(os.Args[0])
	p.cmd.Env = append(os.Environ(), operatorProcessEnv+"="+string(spec))
	p.cmd.Stderr = p.logs
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.cmd.StdinPipe(); err != nil { // closed when the test binary exits
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.started = time.Now()
	go func() {
		if line, _ := bufio.NewReader(stdout).ReadString('\n'); line == "ready\n" {
			p.readyAt = time.Now()
			close(p.ready)
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			logs := p.logs.String()
			t.Logf("operator process started at %s, last logs:\n%s", p.started.Format(time.StampMilli), logs[max(0, len(logs)-4000):])
		}
	})
	return p
}

func (p *operatorProcess) waitReady(t testing.TB) {
	t.Helper()
	select {
	case <-p.ready:
	case <-time.After(2 * time.Minute):
		t.Fatal("operator process not ready after 2 minutes")
	}
}

func (p *operatorProcess) isReady() bool {
	select {
	case <-p.ready:
		return true
	default:
		return false
	}
}

// kill ends the process with SIGKILL, once, and returns when.
func (p *operatorProcess) kill() time.Time {
	at := time.Now()
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.exited <- nil // a later call returns at once
	return at
}
