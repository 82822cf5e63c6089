package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/movies/internal/postgres/pgtest"
)

const unavailableDetail = "the database is unavailable or did not answer in time; retry later"

// unavailableRequests touch the database, each in its own way.
var unavailableRequests = []request{
	{method: "GET", path: "/api/v1/movies"},
	{method: "GET", path: "/api/v1/movies?genre=drama&cast_id=1&expand=casts"},
	{method: "POST", path: "/api/v1/movies", body: `{"name":"Through a Glass Darkly","cast_ids":[1]}`},
	{method: "POST", path: "/api/v1/movies/", body: `{"name":"Winter Light"}`, header: map[string]string{"Idempotency-Key": "outage"}},
	{method: "GET", path: "/api/v1/movies/1"},
	{method: "PUT", path: "/api/v1/movies/1", body: `{"name":"x"}`},
	{method: "PATCH", path: "/api/v1/movies/1", body: `{"name":"x"}`},
	{method: "DELETE", path: "/api/v1/movies/1"},
	{method: "POST", path: "/internal/v1/movies/events", body: castDeleted("6f1c3a52-8d0e-4b8a-9a57-0d6f3e2b7c11", 1)},
}

// checkUnavailable checks that resp is the 503 of a database outage.
func checkUnavailable(t *testing.T, req request, resp *http.Response) {
	t.Helper()
	if got := resp.Header.Get("Retry-After"); got != "2" {
		t.Errorf("%s %s: Retry-After %q, want 2", req.method, req.path, got)
	}
	checkProblem(t, resp, req.path, problemJSON{Status: 503, Detail: unavailableDetail})
}

// With the database unreachable, every request that needs it is a 503 that invites a retry, and
// the service says it is alive but not ready.
func TestDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: every connection attempt is refused.
	pool, err := pgxpool.New(context.Background(), "postgres://movies:secret@127.0.0.1:1/movies?connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h := newServerOn(t, pool, newFakeCasts(1), 10*time.Second)

	for _, req := range unavailableRequests {
		t.Run(req.method+" "+req.path, func(t *testing.T) {
			t.Parallel()
			checkUnavailable(t, req, do(t, h, req))
		})
	}
	t.Run("probes", func(t *testing.T) {
		t.Parallel()
		if resp := do(t, h, request{method: "GET", path: "/readyz"}); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("/readyz: status %d, want 503", resp.StatusCode)
		}
		// The load balancer's probe leaves the database out: the instance stays in rotation and
		// answers 503 problem+json itself.
		if resp := do(t, h, request{method: "GET", path: "/readyz?exclude=database"}); resp.StatusCode != http.StatusOK {
			t.Errorf("/readyz?exclude=database: status %d, want 200", resp.StatusCode)
		}
		if resp := do(t, h, request{method: "GET", path: "/readyz?exclude=cache"}); resp.StatusCode != http.StatusBadRequest ||
			resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("/readyz?exclude=cache: status %d, Content-Type %q; want 400 problem+json", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if resp := do(t, h, request{method: "GET", path: "/livez"}); resp.StatusCode != http.StatusOK {
			t.Errorf("/livez: status %d, want 200", resp.StatusCode)
		}
		if resp := do(t, h, request{method: "GET", path: "/api/v1/movies/openapi.json"}); resp.StatusCode != http.StatusOK {
			t.Errorf("openapi.json: status %d, want 200", resp.StatusCode)
		}
	})
}

// A request still waiting for the database at its deadline is given up and answered 503; once the
// database answers again, so do requests, on the same pool.
func TestDatabaseTooSlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	pool, admin := openPool(t, url), openPool(t, url)
	h := newServerOn(t, pool, newFakeCasts(1), 200*time.Millisecond)

	// Every statement on the movie service's tables waits for these locks: the database hangs, as
	// far as requests can tell.
	blocker, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx) //nolint:errcheck
	if _, err := blocker.Exec(ctx, "LOCK TABLE movies, processed_events, idempotency_keys IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	for _, req := range unavailableRequests {
		checkUnavailable(t, req, do(t, h, req))
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, admin, "SELECT count(*) FROM idempotency_keys"); n != 0 {
		t.Errorf("%d keys stored by requests that failed, want none", n)
	}

	// Another instance on the same pool, without the short deadline that could fail a request on a
	// loaded machine: the pool recovers by itself.
	h = newServerOn(t, pool, newFakeCasts(1), 0)
	for _, req := range []request{
		{method: "POST", path: "/api/v1/movies", body: `{"name":"Winter Light"}`, header: map[string]string{"Idempotency-Key": "outage"}},
		{method: "GET", path: "/api/v1/movies"},
	} {
		if resp := do(t, h, req); resp.StatusCode >= 300 {
			t.Errorf("%s %s after the database came back: status %d", req.method, req.path, resp.StatusCode)
		}
	}
	var names []string
	for _, m := range listAll(t, h) {
		names = append(names, m.Name)
	}
	if diff := cmp.Diff([]string{"Winter Light"}, names); diff != "" {
		t.Errorf("movies (-want +got):\n%s", diff)
	}
}
