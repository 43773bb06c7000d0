package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const redisInstallHint = "redis-server not found: run `make test-deps` (installs redis-server)"

// Redis is a throwaway redis-server that keeps nothing on disk.
type Redis struct {
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedis starts a redis-server for t alone and returns its URL; it stops when t ends.
func StartRedis(t testing.TB) string {
	t.Helper()
	r, err := NewRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("stop redis: %v", err)
		}
	})
	return r.URL()
}

// NewRedis starts a redis-server meant to be shared by a test package: start it in TestMain and
// Stop it after m.Run.
func NewRedis() (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New(redisInstallHint)
	}
	dir, err := os.MkdirTemp("", "testenv-redis-")
	if err != nil {
		return nil, err
	}
	r := &Redis{dir: dir, exited: make(chan struct{})}
	if err := r.start(bin); err != nil {
		_ = r.Stop()
		return nil, err
	}
	return r, nil
}

func (r *Redis) start(bin string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	r.port = port
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		"--save", "",
		"--appendonly", "no",
	)
	logFile, err := os.Create(filepath.Join(r.dir, "redis.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The server must not outlive a test binary that dies without running cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.cmd = cmd
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(r.exited)
	}()
	return r.waitReady()
}

func (r *Redis) waitReady() error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := r.ping()
		if err == nil {
			return nil
		}
		select {
		case <-r.exited:
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			return fmt.Errorf("redis-server exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server not ready after 15s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping speaks just enough RESP to know the server answers, so this package needs no client.
func (r *Redis) ping() error {
	conn, err := net.DialTimeout("tcp", r.addr(), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected PING reply %q", line)
	}
	return nil
}

func (r *Redis) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
}

// URL returns the server's address as a REDIS_URL.
func (r *Redis) URL() string {
	return "redis://" + r.addr() + "/0"
}

// Stop stops the server and removes its files.
func (r *Redis) Stop() error {
	var err error
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(15 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
			err = errors.New("redis-server did not stop within 15s and was killed")
		}
	}
	return errors.Join(err, os.RemoveAll(r.dir))
}
