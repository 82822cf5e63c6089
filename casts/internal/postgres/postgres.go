// Package postgres opens the service's connection pool and applies its schema migrations.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/dbconv"
	"go.opentelemetry.io/otel/trace"
)

// Migrations holds the schema, one forward-only file per step, applied in name order.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// connectTimeout bounds one attempt to open a connection when the URL sets no connect_timeout: at
// startup, and whenever the pool replaces a broken connection or grows. While the database is
// unreachable, a request that needs a new connection fails after this long at most (sooner if its
// own deadline comes first) instead of waiting for the operating system to give up.
const connectTimeout = 3 * time.Second

// defaultMaxConns is the pool size when the database URL does not set pool_max_conns.
const defaultMaxConns = 16

// Option is an option of Open.
type Option func(*options)

type options struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
}

// WithTracerProvider makes a span of each statement run for traced work (see queryTracer).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithMeterProvider reports the pool's connections: db.client.connection.count, idle and used,
// and db.client.connection.max.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meterProvider = mp }
}

// Open creates a pool and checks, within timeout, that the database answers.
func Open(ctx context.Context, url string, timeout time.Duration, opts ...Option) (*pgxpool.Pool, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if t := newQueryTracer(o.tracerProvider); t != nil {
		cfg.ConnConfig.Tracer = t
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = min(connectTimeout, timeout)
	}
	// pgx's default, max(4, CPUs), is 4 connections on a small machine: requests then queue for a
	// connection under moderate load, and so does /readyz's ping, which can time out and take a
	// healthy instance out of the load balancer. pool_max_conns in the URL still wins.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if o.meterProvider != nil {
		if err := observePool(pool, o.meterProvider.Meter(scope)); err != nil {
			pool.Close()
			return nil, fmt.Errorf("pool metrics: %w", err)
		}
	}
	return pool, nil
}

// observePool reports pool's connections at each collection of meter's metrics.
func observePool(pool *pgxpool.Pool, meter metric.Meter) error {
	// The instruments of the semantic conventions: up-down counters, gauges in Prometheus.
	count, err := meter.Int64ObservableUpDownCounter(dbconv.ClientConnectionCount{}.Name(),
		metric.WithUnit(dbconv.ClientConnectionCount{}.Unit()), metric.WithDescription(dbconv.ClientConnectionCount{}.Description()))
	if err != nil {
		return err
	}
	maxConns, err := meter.Int64ObservableUpDownCounter(dbconv.ClientConnectionMax{}.Name(),
		metric.WithUnit(dbconv.ClientConnectionMax{}.Unit()), metric.WithDescription(dbconv.ClientConnectionMax{}.Description()))
	if err != nil {
		return err
	}
	name := semconv.DBClientConnectionPoolName(pool.Config().ConnConfig.Database)
	idle := metric.WithAttributeSet(attribute.NewSet(name, semconv.DBClientConnectionStateIdle))
	used := metric.WithAttributeSet(attribute.NewSet(name, semconv.DBClientConnectionStateUsed))
	pooled := metric.WithAttributeSet(attribute.NewSet(name))
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := pool.Stat()
		o.ObserveInt64(count, int64(s.IdleConns()), idle)
		o.ObserveInt64(count, int64(s.AcquiredConns()), used)
		o.ObserveInt64(maxConns, int64(s.MaxConns()), pooled)
		return nil
	}, count, maxConns)
	return err
}

// Migrate applies every migration in fsys that the database has not seen yet, each in its own transaction.
func Migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) error {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	slices.Sort(names)

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()

	// A session-level lock: held across the per-file transactions below.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock) //nolint:errcheck // released with the session anyway

	const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`
	if _, err := conn.Exec(ctx, createTable); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}

	for _, name := range names {
		base := path.Base(name)
		sql, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("read migration %s: %w", base, err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, "INSERT INTO schema_migrations (name) VALUES ($1) ON CONFLICT DO NOTHING", base)
			if err != nil || tag.RowsAffected() == 0 {
				return err // already applied, or failed
			}
			_, err = tx.Exec(ctx, string(sql))
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", base, err)
		}
	}
	return nil
}
