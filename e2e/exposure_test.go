package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/movies-microservices/e2e/stack"
)

// TestDatabaseRolesIsolated: in the stack the suite runs, each service's role reaches only its
// own database, holds no administrative power, and is the role the service connects with.
func TestDatabaseRolesIsolated(t *testing.T) {
	t.Parallel()
	needOwnStack(t)
	const (
		allowed          = ""
		permissionDenied = "42501" // no CONNECT privilege on the database
	)
	tests := []struct {
		role, database, want string
	}{
		{stack.ServiceCasts, "casts", allowed},
		{stack.ServiceMovies, "movies", allowed},
		{stack.ServiceCasts, "movies", permissionDenied},
		{stack.ServiceMovies, "casts", permissionDenied},
		{stack.ServiceCasts, "postgres", permissionDenied},
		{stack.ServiceMovies, "postgres", permissionDenied},
		{stack.ServiceCasts, "template1", permissionDenied},
		{stack.ServiceMovies, "template1", permissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.role+" to "+tt.database, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			conn, err := pgx.Connect(ctx, suite.stack.DatabaseURL(tt.role, tt.database))
			if diff := cmp.Diff(tt.want, sqlState(err)); diff != "" {
				t.Fatalf("connect: SQLSTATE (-want +got):\n%s", diff)
			}
			if err != nil {
				return
			}
			defer conn.Close(ctx)
			var super, createRole, createDB bool
			err = conn.QueryRow(ctx, `SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user`).
				Scan(&super, &createRole, &createDB)
			if err != nil {
				t.Fatal(err)
			}
			if super || createRole || createDB {
				t.Errorf("role %s: superuser %t, createrole %t, createdb %t; want none", tt.role, super, createRole, createDB)
			}
		})
	}

	t.Run("services connect as their own role", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		// Requests through both services, so that each holds pooled connections.
		mustStatus(t, "list casts", call(t, "GET", "/api/v1/casts?limit=1", ""), http.StatusOK)
		mustStatus(t, "list movies", call(t, "GET", "/api/v1/movies?limit=1", ""), http.StatusOK)
		admin, err := pgx.Connect(ctx, suite.stack.DatabaseURL(stack.Superuser, "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		rows, err := admin.Query(ctx, `SELECT DISTINCT usename::text || '@' || datname::text FROM pg_stat_activity
			WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND usename <> 'postgres' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		// Only the services hold connections other than the superuser's, each to its own database.
		if diff := cmp.Diff([]string{"casts@casts", "movies@movies"}, got); diff != "" {
			t.Errorf("connections by role@database (-want +got):\n%s", diff)
		}
	})
}

// sqlState is the SQLSTATE of err, "" for none.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &pgErr):
		return pgErr.Code
	default:
		return "not a PostgreSQL error: " + err.Error()
	}
}

// TestNoSecretInLogsOrErrors runs a database outage, when connection errors are most likely to
// spell out connection details, then looks for the database passwords in every log file of the
// stack and in every error body it got. Not parallel: the outage would fail the other tests,
// which Go resumes only once this one is done.
func TestNoSecretInLogsOrErrors(t *testing.T) {
	needOwnStack(t)
	secrets := suite.stack.Secrets()
	passwords := []string{secrets.Casts, secrets.Movies, secrets.Superuser}
	if secrets.Casts == "" || secrets.Movies == "" {
		t.Fatal("the stack reports no service passwords")
	}
	u := suite.stack.URLs()
	var bodies []string
	get := func(url string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := doRequest(req)
		if err != nil {
			t.Errorf("GET %s: %v", url, err)
			return
		}
		bodies = append(bodies, url+" -> "+string(r.Body))
	}

	if err := suite.stack.StopPostgres(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := suite.stack.StartPostgres(ctx); err != nil {
			t.Fatalf("start PostgreSQL again: %v", err)
		}
		if err := suite.stack.WaitReady(ctx); err != nil {
			t.Fatalf("services after the outage: %v", err)
		}
		// Until each pool has replaced its broken connections a request can still fail, and
		// calls between the services during the outage may have tripped the mesh's breaker.
		waitGatewayOK(t, "/api/v1/casts?limit=1")
		waitGatewayOK(t, "/api/v1/movies?limit=1")
		waitMeshSettled(t, "GET", "/api/v1/casts?limit=1", "")
		waitMeshSettled(t, "GET", "/api/v1/movies?limit=1", "")
	})

	for _, base := range append(u.Casts, u.Movies...) {
		get(base + "/readyz")
	}
	for _, base := range u.Casts {
		get(base + "/api/v1/casts?limit=1")
		get(base + "/api/v1/casts/1")
	}
	for _, base := range u.Movies {
		get(base + "/api/v1/movies?limit=1")
		get(base + "/api/v1/movies/1")
	}
	get(u.Gateway + "/api/v1/casts?limit=1")
	get(u.Gateway + "/api/v1/movies?limit=1")
	for _, b := range bodies {
		assertNoSecret(t, "response "+b, b, passwords)
	}

	// Logs are written as the processes go, the services' batched every 100 ms: look once each
	// service's warning about the outage has arrived.
	for _, name := range []string{"casts.log", "movies.log"} {
		waitFor(t, "the outage in "+name, 10*time.Second, func() error {
			data, err := os.ReadFile(filepath.Join(suite.stack.LogDir(), name))
			if err != nil {
				return err
			}
			if !strings.Contains(string(data), "database unavailable") {
				return fmt.Errorf("no %q line yet", "database unavailable")
			}
			return nil
		})
	}
	files, err := filepath.Glob(filepath.Join(suite.stack.LogDir(), "*.log"))
	if err != nil || len(files) < 5 {
		t.Fatalf("log files %v (%v): want one per process", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		assertNoSecret(t, f, string(data), passwords)
	}
}

// assertNoSecret fails if any non-empty secret appears in text, without printing either.
func assertNoSecret(t *testing.T, where, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%.200s: contains a database password", where)
		}
	}
}
