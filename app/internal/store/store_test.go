package store_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/packnow/packnow-operator/app/internal/store"
	"github.com/packnow/packnow-operator/hack/testenv"
)

// TestMigrateIsSafeForReplicasStartingTogether runs the migrations from several "replicas" at
// once and then again: all must succeed and the schema must be applied exactly once.
func TestMigrateIsSafeForReplicasStartingTogether(t *testing.T) {
	dsn := testenv.StartPostgres(t)
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	const replicas = 4
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			pool, err := store.Connect(ctx, dsn, 2)
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			errs[i] = store.Migrate(ctx, pool, logger)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}

	pool, err := store.Connect(ctx, dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := store.Migrate(ctx, pool, logger); err != nil {
		t.Fatalf("second run: %v", err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var applied, versions int
	if err := pool.QueryRow(ctx,
		`SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0 AND is_applied`,
	).Scan(&applied, &versions); err != nil {
		t.Fatal(err)
	}
	if applied != len(files) || versions != len(files) {
		t.Fatalf("%d migration records of %d versions, want one for each of %d migrations", applied, versions, len(files))
	}
	if _, err := store.New(pool).CreateUser(ctx, "+14155550100", "hash", "", store.RoleUser); err != nil {
		t.Fatalf("schema unusable after migration: %v", err)
	}
}

func TestConnectDoesNotLeakThePassword(t *testing.T) {
	_, err := store.Connect(context.Background(), "postgres://user:s3cret@[::1/db", 1)
	if err == nil {
		t.Fatal("Connect accepted a malformed URL")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error leaks the password: %v", err)
	}
}
