package testenv_test

import (
	"context"
	"net"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/packnow/packnow-operator/hack/testenv"
)

func TestStartPostgresGivesAUsableIsolatedDatabase(t *testing.T) {
	pg, err := testenv.NewPostgres()
	if err != nil {
		t.Fatal(err)
	}
	// Registered first so it runs last, after the databases are dropped.
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	first, second := pg.NewDatabase(t), pg.NewDatabase(t)
	if first == second {
		t.Fatal("two NewDatabase calls returned the same DSN")
	}
	a, err := pgx.Connect(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	if _, err := a.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	b, err := pgx.Connect(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if _, err := b.Exec(ctx, "SELECT * FROM t"); err == nil {
		t.Fatal("a table created in one test database is visible in another")
	}
}

func TestStartRedisAnswers(t *testing.T) {
	u, err := url.Parse(testenv.StartRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := conn.Read(buf); err != nil || string(buf) != "+PONG\r\n" {
		t.Fatalf("PING reply %q, %v", buf, err)
	}
}
