// Package testenv starts the real servers that integration tests run against.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const postgresInstallHint = "PostgreSQL server binaries not found: run `make test-deps` (installs postgresql)"

// Postgres is a throwaway PostgreSQL server in a temporary directory.
type Postgres struct {
	dir       string
	port      int
	cmd       *exec.Cmd
	exited    chan struct{}
	databases atomic.Int64
}

// StartPostgres starts a PostgreSQL server for t alone and returns the DSN of an empty database.
// The server stops and its files go away when t ends.
func StartPostgres(t testing.TB) string {
	t.Helper()
	pg, err := NewPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	return pg.NewDatabase(t)
}

// NewPostgres starts a server meant to be shared by a test package: start it in TestMain, give
// each test its own database with NewDatabase, and Stop it after m.Run.
func NewPostgres() (*Postgres, error) {
	bindir, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "testenv-postgres-")
	if err != nil {
		return nil, err
	}
	pg := &Postgres{dir: dir, exited: make(chan struct{})}
	if err := pg.start(bindir); err != nil {
		_ = pg.Stop()
		return nil, err
	}
	return pg, nil
}

func postgresBinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	// Debian keeps the server binaries off PATH, one directory per major version.
	if found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres"); len(found) > 0 {
		slices.Sort(found)
		return filepath.Dir(found[len(found)-1]), nil
	}
	return "", errors.New(postgresInstallHint)
}

// postgresCommand prepares a PostgreSQL program; as root it runs as the postgres system user,
// because initdb and postgres refuse to run as root.
func postgresCommand(name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	// The server must not outlive a test binary that dies without running cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if os.Geteuid() != 0 {
		return cmd, nil
	}
	uid, gid, err := postgresUser()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: gid}
	return cmd, nil
}

func postgresUser() (uid, gid uint32, err error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("running as root needs the postgres system user (%v): run `make test-deps`", err)
	}
	id, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, 0, err
	}
	group, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return 0, 0, err
	}
	return uint32(id), uint32(group), nil
}

func (pg *Postgres) start(bindir string) error {
	if os.Geteuid() == 0 {
		uid, gid, err := postgresUser()
		if err != nil {
			return err
		}
		if err := os.Chown(pg.dir, int(uid), int(gid)); err != nil {
			return err
		}
	}
	data := filepath.Join(pg.dir, "data")
	initdb, err := postgresCommand(filepath.Join(bindir, "initdb"),
		"-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	if err != nil {
		return err
	}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}

	port, err := freePort()
	if err != nil {
		return err
	}
	pg.port = port
	// Durability is worthless for a throwaway server; turning it off makes tests much faster.
	cmd, err := postgresCommand(filepath.Join(bindir, "postgres"),
		"-D", data,
		"-p", strconv.Itoa(port),
		"-k", pg.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=32MB",
	)
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(pg.dir, "postgres.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	pg.cmd = cmd
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(pg.exited)
	}()
	return pg.waitReady()
}

func (pg *Postgres) waitReady() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, pg.dsn("postgres"))
		cancel()
		if err == nil {
			return conn.Close(context.Background())
		}
		select {
		case <-pg.exited:
			log, _ := os.ReadFile(filepath.Join(pg.dir, "postgres.log"))
			return fmt.Errorf("postgres exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after 30s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (pg *Postgres) dsn(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.port, database)
}

// TemplateDSN is the DSN of the database that NewDatabase copies. A package that migrates it
// once (and closes its connections) gets every test database ready-made, which is much faster
// than migrating each one.
func (pg *Postgres) TemplateDSN() string {
	return pg.dsn("template1")
}

// NewDatabase creates a database for t alone, a copy of the template database, and returns its
// DSN; it is dropped when t ends, so tests sharing the server never see each other's rows.
func (pg *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", pg.databases.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.dsn("postgres"))
	if err != nil {
		t.Fatalf("connect to test postgres: %v", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+""); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, pg.dsn("postgres"))
		if err != nil {
			t.Errorf("connect to test postgres: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return pg.dsn(name)
}

// Stop stops the server and removes its files.
func (pg *Postgres) Stop() error {
	var err error
	if pg.cmd != nil && pg.cmd.Process != nil {
		// SIGINT is PostgreSQL's "fast shutdown": it does not wait for clients to disconnect.
		_ = pg.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-pg.exited:
		case <-time.After(30 * time.Second):
			_ = pg.cmd.Process.Kill()
			<-pg.exited
			err = errors.New("postgres did not stop within 30s and was killed")
		}
	}
	return errors.Join(err, os.RemoveAll(pg.dir))
}

// FreeLoopbackAddr is a loopback address (host:port) whose port was free a moment ago, for a server a test or
// benchmark starts.
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func freePort() (int, error) {
	addr, err := FreeLoopbackAddr()
	if err != nil {
		return 0, err
	}
	_, port, _ := net.SplitHostPort(addr)
	return strconv.Atoi(port)
}
