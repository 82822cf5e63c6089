package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/casts/internal/api"
	"github.com/movies-microservices/casts/internal/cast"
	"github.com/movies-microservices/casts/internal/idempotency"
	"github.com/movies-microservices/casts/internal/logbuf"
	"github.com/movies-microservices/casts/internal/outbox"
	"github.com/movies-microservices/casts/internal/postgres"
	"github.com/movies-microservices/casts/internal/telemetry"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// run is the whole program; main only reports its error. Tests call it with their own environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 1 {
		switch args[1] {
		case "healthcheck":
			return healthcheck(ctx, getenv)
		default:
			return fmt.Errorf("unknown command %q (the only command is healthcheck; without one the service starts)", args[1])
		}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := loadConfig(getenv)
	// The OTEL_ variables with the rest: every bad one is reported at once.
	if err = errors.Join(err, telemetry.CheckEnv(getenv)); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	// Log lines are batched, not written one system call each (see logbuf); the deferred Close
	// writes the last ones when run returns.
	logOut := logbuf.New(stdout, logBufferSize, logFlushInterval)
	defer logOut.Close()
	logger := zerolog.New(logOut).Level(cfg.LogLevel).With().Timestamp().Str("service", "casts").Logger()

	tel, err := telemetry.Setup(ctx, "casts", getenv, logger)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	// Deferred first, so run last: the spans of the last requests and deliveries are exported.
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telemetryFlushTimeout)
		defer cancel()
		if err := tel.Shutdown(flushCtx); err != nil {
			logger.Warn().Err(err).Msg("telemetry: spans not exported on shutdown")
		}
	}()
	logger.Info().Str("traces", tel.Traces()).Str("sampler", tel.Sampler()).Str("metrics", "/metrics").Msg("telemetry")

	pool, err := postgres.Open(ctx, cfg.DatabaseURL, 10*time.Second,
		postgres.WithTracerProvider(tel.TracerProvider()), postgres.WithMeterProvider(tel.MeterProvider()))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool, postgres.Migrations); err != nil {
		return err
	}
	if err := outbox.ObserveBacklog(pool, tel.MeterProvider()); err != nil {
		return err
	}

	// The relay outlives ctx: it stops only once the server has, so that it can still deliver
	// the events of the last requests. Deferred after pool.Close, it stops before the pool closes.
	stopRelay, err := startRelay(ctx, pool, cfg, logger, tel)
	if err != nil {
		return err
	}
	defer stopRelay()

	// Expired idempotency keys are ignored already; sweeping them keeps the table small. Deferred
	// after pool.Close, the sweep stops before the pool closes.
	sweepCtx, stopSweep := context.WithCancel(ctx)
	var sweeping sync.WaitGroup
	sweeping.Go(func() { idempotency.SweepEvery(sweepCtx, pool, sweepInterval, logger) })
	defer func() {
		stopSweep()
		sweeping.Wait()
	}()

	var shuttingDown atomic.Bool
	ready := func(ctx context.Context, database bool) error {
		if shuttingDown.Load() {
			return errors.New("shutting down")
		}
		if !database {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := pool.Ping(ctx); err != nil {
			return errors.New("database unreachable")
		}
		return nil
	}

	handler := api.NewServer(api.Deps{
		Logger: logger, Store: cast.NewStore(pool), Auth: newAuthenticator(ctx, cfg, logger), DocsAudience: cfg.AuthAudience, Ready: ready, RequestTimeout: cfg.RequestTimeout,
		TracerProvider: tel.TracerProvider(), MeterProvider: tel.MeterProvider(), Propagator: tel.Propagator(), Metrics: tel.MetricsHandler(),
	})
	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	if cfg.DebugAddr != "" {
		stopDebug, addr, err := startDebug(cfg.DebugAddr)
		if err != nil {
			return err
		}
		defer stopDebug()
		logger.Info().Str("addr", addr).Msg("serving profiles (net/http/pprof)")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (CASTS_ADDR): %w", cfg.Addr, err)
	}
	logger.Info().Str("addr", ln.Addr().String()).Msg("listening")

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	// Fail /readyz first and give the load balancer time to notice before refusing connections.
	logger.Info().Dur("delay", cfg.ShutdownDelay).Msg("shutting down")
	shuttingDown.Store(true)
	time.Sleep(cfg.ShutdownDelay)

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	stopRelay()
	logger.Info().Msg("stopped")
	return nil
}

// The log buffer: 64 KiB holds a few hundred access-log lines; 100 ms keeps `tail -f` live and
// bounds what a crash can lose.
const (
	logBufferSize    = 64 << 10
	logFlushInterval = 100 * time.Millisecond
)

// sweepInterval is how often expired idempotency keys are deleted.
const sweepInterval = time.Hour

// telemetryFlushTimeout bounds the export of the last spans on shutdown.
const telemetryFlushTimeout = 5 * time.Second

// moviesEventsPath is where the movie service takes events, on the mesh entrypoint only, from
// clients whose token grants moviesEventsScope.
const (
	moviesEventsPath  = "/internal/v1/movies/events"
	moviesEventsScope = "movies:events"
)

// startRelay starts the outbox relay in the background. The returned function stops it, letting a
// delivery in progress finish, and waits for it; calling it again does nothing.
func startRelay(ctx context.Context, pool *pgxpool.Pool, cfg Config, logger zerolog.Logger, tel *telemetry.Telemetry) (stop func(), err error) {
	base, err := url.Parse(cfg.MoviesURL)
	if err != nil {
		return nil, errors.New("CASTS_MOVIES_URL is not a URL")
	}
	rc := outbox.RelayConfig{
		Endpoint:   base.JoinPath(moviesEventsPath).String(),
		Timeout:    cfg.MoviesTimeout,
		MaxBackoff: cfg.OutboxMaxBackoff,
		Logger:     logger,

		TracerProvider: tel.TracerProvider(),
		MeterProvider:  tel.MeterProvider(),
		Propagator:     tel.Propagator(),
	}
	if cfg.AuthTokenURL != "" {
		rc.Credentials = &clientcredentials.Config{
			ClientID:     cfg.RelayClientID,
			ClientSecret: cfg.RelayClientSecret,
			TokenURL:     cfg.AuthTokenURL,
			Scopes:       []string{moviesEventsScope},
			// Hydra's default for a client (client_secret_basic); auto-detection would switch to the
			// form after any failure of the token endpoint, even an outage.
			AuthStyle: oauth2.AuthStyleInHeader,
		}
		if cfg.AuthAudience != "" {
			// Hydra grants an audience only when asked for it.
			rc.Credentials.EndpointParams = url.Values{"audience": {cfg.AuthAudience}}
		}
	} else {
		logger.Warn().Msg("outbox: CASTS_AUTH_TOKEN_URL is unset: events are sent without an access token, which a movie service that verifies tokens refuses")
	}
	relay, err := outbox.NewRelay(pool, rc)
	if err != nil {
		return nil, err
	}
	relayCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		relay.Run(relayCtx)
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

// healthcheck asks the service running on CASTS_ADDR whether it takes traffic (/readyz with the
// database left out, as Traefik's probe asks: see web.HandleReady); it lets a container image without
// a shell or curl have a health check. Traefik's Docker provider also drops containers Docker
// calls unhealthy, so the two must agree, or a database outage would take every container out.
func healthcheck(ctx context.Context, getenv func(string) string) error {
	addr := getenv("CASTS_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("CASTS_ADDR: %w", err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz?exclude=database", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /readyz answered %s", resp.Status)
	}
	return nil
}
