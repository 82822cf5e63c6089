package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/movies-microservices/casts/internal/postgres"
	"github.com/movies-microservices/casts/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// Several instances starting at once must apply each migration exactly once.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.EmptyURL(t)

	const instances = 4
	errs := make(chan error, instances)
	for range instances {
		go func() {
			pool, err := postgres.Open(ctx, url, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			errs <- postgres.Migrate(ctx, pool, postgres.Migrations)
		}()
	}
	for range instances {
		if err := <-errs; err != nil {
			t.Errorf("Migrate: %v", err)
		}
	}

	pool, err := postgres.Open(ctx, url, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rows, _ := pool.Query(ctx, "SELECT name FROM schema_migrations ORDER BY name")
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0001_create_casts.sql", "0002_create_outbox.sql", "0003_create_idempotency_keys.sql", "0004_add_outbox_traceparent.sql"}
	if diff := cmp.Diff(want, applied); diff != "" {
		t.Errorf("applied migrations (-want +got):\n%s", diff)
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback refuses connections: Open must fail, not hang.
	_, err := postgres.Open(context.Background(), "postgres://u:secret-password@127.0.0.1:1/db", 2*time.Second)
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	if got := err.Error(); strings.Contains(got, "secret-password") {
		t.Errorf("error leaks the password: %s", got)
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Real errors of pgx where they can be had.
	_, refused := pgx.Connect(ctx, "postgres://u:secret@127.0.0.1:1/db?connect_timeout=5")
	expired, cancel := context.WithTimeout(ctx, 0)
	defer cancel()
	pool := pgtest.Pool(t)
	_, deadline := pool.Exec(expired, "SELECT 1")
	_, tooLong := pool.Exec(ctx, "SELECT 1::int2 + 32767::int2")

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"deadline passed", deadline, true},
		{"context deadline, wrapped", fmt.Errorf("list casts: %w", context.DeadlineExceeded), true},
		{"context cancelled", context.Canceled, true},
		{"connection closed", fmt.Errorf("get cast: %w", pgconn.ErrConnClosed), true},
		{"connection broke mid-answer", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true},
		{"network error", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{"server shutting down", &pgconn.PgError{Code: "57P01"}, true},
		{"server starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"query error of the database", tooLong, false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"invalid byte sequence", &pgconn.PgError{Code: "22021"}, false},
		{"no rows", pgx.ErrNoRows, false},
		{"other error", errors.New("boom"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := postgres.Unavailable(tt.err); got != tt.want {
				t.Errorf("Unavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
