// Command packnow-api serves the PackNow API. It is configured only through the environment;
// see the "App environment" section of CONVENTIONS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/packnow/packnow-operator/app/internal/api"
	"github.com/packnow/packnow-operator/app/internal/audit"
	"github.com/packnow/packnow-operator/app/internal/config"
	"github.com/packnow/packnow-operator/app/internal/ratelog"
	"github.com/packnow/packnow-operator/app/internal/store"
	"github.com/packnow/packnow-operator/app/internal/token"
	"github.com/packnow/packnow-operator/app/keyring"
)

// shutdownGrace is how long in-flight requests get after SIGTERM; Kubernetes allows 30 s
// before it kills the pod.
const shutdownGrace = 20 * time.Second

// version is the API's release, set by release builds with -ldflags "-X main.version=...".
var version = "dev"

// auditRetentionInterval is how often audit entries past AUDIT_RETENTION_DAYS are deleted.
const auditRetentionInterval = time.Hour

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// redisLogger puts go-redis's own messages in the JSON log, at most one a minute: while Redis is
// down it would write a line per request, and the API reports the outage itself.
type redisLogger struct {
	logger *slog.Logger
	every  *ratelog.Every
}

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if ok, suppressed := l.every.Allow(); ok {
		l.logger.WarnContext(ctx, fmt.Sprintf(format, v...), "messages_since_last_report", suppressed)
	}
}

// run serves until ctx is cancelled, then drains in-flight requests and returns.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	flags := flag.NewFlagSet(args[0], flag.ContinueOnError)
	flags.SetOutput(stdout)
	printVersion := flags.Bool("version", false, "print the version and exit")
	flags.Usage = func() {
		fmt.Fprintf(stdout, "Usage: %s\n\nServes the PackNow API. Configuration comes from environment variables only.\n\n", args[0])
		flags.PrintDefaults()
	}
	if err := flags.Parse(args[1:]); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if *printVersion {
		fmt.Fprintln(stdout, "packnow-api", version)
		return nil
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", flags.Args())
	}

	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))

	ring, err := keyring.New(cfg.Keys.Current, cfg.Keys.Next, cfg.Keys.Previous)
	if err != nil {
		return err
	}
	tokens, err := token.NewManager(ring, cfg.Algorithm, cfg.AccessTokenTTL, cfg.RefreshTokenTTL)
	if err != nil {
		return err
	}

	pool, err := store.Connect(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := store.Migrate(ctx, pool, logger); err != nil {
		return err
	}

	redisOpts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		// go-redis errors may quote the URL, password included.
		return errors.New("REDIS_URL: cannot be parsed as a Redis URL")
	}
	// Deadlines on request contexts must bound Redis calls; see api's redisTimeout.
	redisOpts.ContextTimeoutEnabled = true
	redis.SetLogger(redisLogger{logger: logger, every: ratelog.New(time.Minute)})
	rdb := redis.NewClient(redisOpts)
	defer rdb.Close()

	st := store.New(pool)
	auditLog := audit.NewWriter(st, logger, cfg.AuditQueueSize)
	retentionCtx, stopRetention := context.WithCancel(context.Background())
	retentionDone := make(chan struct{})
	go func() {
		defer close(retentionDone)
		audit.RunRetention(retentionCtx, st, cfg.AuditRetention, auditRetentionInterval, logger)
	}()
	defer func() {
		stopRetention()
		<-retentionDone
	}()

	handler := api.NewServer(api.Deps{
		Store:  st,
		Redis:  rdb,
		Tokens: tokens,
		Audit:  auditLog,
		Logger: logger,
		Config: cfg,
	})
	srv := &http.Server{
		Addr:              cfg.ListenAddr,
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	listener, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	logger.Info("serving", "addr", listener.Addr().String(), "debug", cfg.Debug, "signing_kid", ring.Signing().ID)
	if len(cfg.AllowedHosts) == 0 {
		logger.Warn("ALLOWED_HOSTS is empty: any Host header is accepted")
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(listener) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	// The audit writer outlives the last request, so that nothing a request recorded is lost.
	if err := auditLog.Close(shutdownCtx); err != nil {
		shutdownErr = errors.Join(shutdownErr, fmt.Errorf("flush audit log: %w", err))
	}
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	return nil
}
