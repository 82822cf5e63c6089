package postgres_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/movies-microservices/movies/internal/postgres"
	"github.com/movies-microservices/movies/internal/postgres/pgtest"
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
	want := []string{"0001_create_movies.sql", "0002_consume_cast_events.sql"}
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
