package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/casts/internal/postgres/pgtest"
)

const unavailableDetail = "the database is unavailable or did not answer in time; retry later"

// unavailableRequests touch the database, each in its own way.
var unavailableRequests = []request{
	{method: "GET", path: "/api/v1/casts"},
	{method: "GET", path: "/api/v1/casts?name=x&id=1"},
	{method: "POST", path: "/api/v1/casts", body: `{"name":"Pernilla August"}`},
	{method: "POST", path: "/api/v1/casts/", body: `{"name":"Pernilla August"}`, header: map[string]string{"Idempotency-Key": "outage"}},
	{method: "GET", path: "/api/v1/casts/1"},
	{method: "PUT", path: "/api/v1/casts/1", body: `{"name":"x"}`},
	{method: "PATCH", path: "/api/v1/casts/1", body: `{"name":"x"}`},
	{method: "DELETE", path: "/api/v1/casts/1"},
	{method: "DELETE", path: "/api/v1/casts/1", header: map[string]string{"If-Match": `"1"`}},
}

// checkUnavailable checks that resp is the 503 of a database outage.
func checkUnavailable(t *testing.T, req request, resp *http.Response) {
	t.Helper()
	want := problemJSON{Type: "about:blank", Title: "Service Unavailable", Status: 503, Detail: unavailableDetail,
		Instance: strings.SplitN(req.path, "?", 2)[0]}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("%s %s: status %d, Content-Type %q, Retry-After %q; want 503 problem+json with Retry-After 2",
			req.method, req.path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"))
	}
	if diff := cmp.Diff(want, decode[problemJSON](t, resp)); diff != "" {
		t.Errorf("%s %s: problem (-want +got):\n%s", req.method, req.path, diff)
	}
}

// With the database unreachable, every request that needs it is a 503 that invites a retry, and
// the service says it is alive but not ready.
func TestDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: every connection attempt is refused.
	pool, err := pgxpool.New(context.Background(), "postgres://casts:secret@127.0.0.1:1/casts?connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h := newServerOn(t, pool, 10*time.Second)

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
		// Requests that need no database still work.
		if resp := do(t, h, request{method: "GET", path: "/api/v1/casts/openapi.json"}); resp.StatusCode != http.StatusOK {
			t.Errorf("openapi.json: status %d, want 200", resp.StatusCode)
		}
		if resp := do(t, h, request{method: "GET", path: "/api/v1/casts?name=%FF"}); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("bad query: status %d, want 400", resp.StatusCode)
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
	h := newServerOn(t, pool, 200*time.Millisecond)

	// Every statement on casts waits for this lock: the database hangs, as far as requests can tell.
	blocker, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx) //nolint:errcheck
	if _, err := blocker.Exec(ctx, "LOCK TABLE casts IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	for _, req := range unavailableRequests {
		checkUnavailable(t, req, do(t, h, req))
	}
	if n := count(t, admin, "SELECT count(*) FROM idempotency_keys"); n != 0 {
		t.Errorf("%d keys stored by requests that failed, want none", n)
	}

	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Another instance on the same pool, without the short deadline that could fail a request on a
	// loaded machine: the pool recovers by itself.
	h = newServerOn(t, pool, 0)
	for _, req := range []request{
		{method: "POST", path: "/api/v1/casts", body: `{"name":"Pernilla August"}`, header: map[string]string{"Idempotency-Key": "outage"}},
		{method: "GET", path: "/api/v1/casts"},
	} {
		if resp := do(t, h, req); resp.StatusCode >= 300 {
			t.Errorf("%s %s after the database came back: status %d", req.method, req.path, resp.StatusCode)
		}
	}
}
