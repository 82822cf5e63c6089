package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/movies-microservices/e2e/target"
)

// TestDatabasesIsolated: each service reaches its own database and not the other's, from where
// it runs (on the process stack with its own credentials; on Compose, the server's port from the
// service's own networks), and holds sessions only on its own. On the process stack
// both databases share one cluster and the roles keep them apart (each database is open to its
// own role only; e2e/stack's tests check the roles' privileges); in the Compose project each has
// a server of its own on a network shared only with its service, so the other service's
// container cannot even reach it.
func TestDatabasesIsolated(t *testing.T) {
	t.Parallel()
	s := needTarget(t)
	services := []string{target.ServiceCasts, target.ServiceMovies}
	for _, from := range services {
		for _, to := range services {
			t.Run(from+" to "+to, func(t *testing.T) {
				t.Parallel()
				err := s.ReachDatabase(t.Context(), from, to)
				switch {
				case from == to && err != nil:
					t.Errorf("%s cannot reach its own database: %v", from, err)
				case from != to && err == nil:
					t.Errorf("%s reaches the database of %s", from, to)
				case from != to:
					t.Logf("refused, as it should be: %v (SQLSTATE %s)", err, sqlState(err))
				}
			})
		}
	}

	t.Run("services connect as their own role", func(t *testing.T) {
		t.Parallel()
		// Requests through both services, so that each holds pooled connections.
		mustStatus(t, "list casts", call(t, "GET", "/api/v1/casts?limit=1", ""), http.StatusOK)
		mustStatus(t, "list movies", call(t, "GET", "/api/v1/movies?limit=1", ""), http.StatusOK)
		got, err := s.DatabaseSessions(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// Only the services and the OpenID provider hold sessions, each to its own database.
		// The provider's may be there or not (it holds none while idle).
		got = slices.DeleteFunc(got, func(s string) bool { return s == "hydra@hydra" })
		if diff := cmp.Diff([]string{"casts@casts", "movies@movies"}, got); diff != "" {
			t.Errorf("sessions by role@database (-want +got):\n%s", diff)
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
// spell out connection details, then looks for the database passwords in every log of the stack
// (every process's log file, or every container's output) and in every error body it got. Not
// parallel: the outage would fail the other tests, which Go resumes only once this one is done.
func TestNoSecretInLogsOrErrors(t *testing.T) {
	s := needTarget(t)
	secrets := s.Secrets()
	// The database passwords, the provider's own secrets and every access token the suite got.
	passwords := []string{secrets.Casts, secrets.Movies, secrets.Superuser, secrets.Hydra, secrets.HydraSystem,
		secrets.DemoClient, secrets.RelayClient}
	if secrets.Casts == "" || secrets.Movies == "" || secrets.Hydra == "" || secrets.DemoClient == "" || secrets.RelayClient == "" {
		t.Fatal("the stack reports no service passwords or client secrets")
	}
	// At least one token, and a write with it, so that a service could have logged it.
	mustStatus(t, "create a cast", call(t, "POST", "/api/v1/casts", jsonBody(t, map[string]any{"name": unique("Secret Check")})), http.StatusCreated)
	passwords = append(passwords, suiteTokens.all()...)
	// A relay token too (the relay's own are never known to the suite, which gets one the same way).
	if suiteRelayTokens().get() == "" {
		t.Fatal("no token of the relay client from the provider")
	}
	passwords = append(passwords, suiteRelayTokens().all()...)
	u := s.URLs()
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

	if err := s.StopDatabases(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := s.StartDatabases(ctx); err != nil {
			t.Fatalf("start the databases again: %v", err)
		}
		if err := s.WaitReady(ctx); err != nil {
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
	// The traces too: every span the trace backend holds of each part (its attributes, events
	// and errors), the writes above with their bearer tokens among them.
	for _, service := range []string{"traefik", target.ServiceCasts, target.ServiceMovies} {
		get(u.Jaeger + "/api/traces?limit=1000&lookback=1h&service=" + service)
	}
	for _, base := range append(u.Casts, u.Movies...) {
		get(base + "/metrics")
	}
	for _, b := range bodies {
		assertNoSecret(t, "response "+b, b, passwords)
	}

	// Logs are written as the processes go, the services' batched every 100 ms: look once each
	// service's warning about the outage has arrived.
	var logs map[string]string
	waitFor(t, "the outage in the services' logs", 10*time.Second, func() error {
		var err error
		if logs, err = s.Logs(context.Background()); err != nil {
			return err
		}
		for _, name := range []string{target.ServiceCasts, target.ServiceMovies} {
			if !strings.Contains(logs[name], "database unavailable") {
				return fmt.Errorf("no %q line in the log of %s yet", "database unavailable", name)
			}
		}
		return nil
	})
	if len(logs) < 5 {
		t.Fatalf("logs of %d parts, want one per part (both services, both databases or the cluster, Traefik)", len(logs))
	}
	for name, text := range logs {
		if strings.TrimSpace(text) == "" {
			t.Errorf("the log of %s is empty: the search below would find nothing there", name)
		}
	}
	for name, text := range logs {
		assertNoSecret(t, "the log of "+name, text, passwords)
	}
}

// assertNoSecret fails if any non-empty secret appears in text, without printing either.
func assertNoSecret(t *testing.T, where, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%.200s: contains a secret (a database password, a client secret or an access token)", where)
		}
	}
}
