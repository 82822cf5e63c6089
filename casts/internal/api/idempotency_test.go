package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/casts/internal/api"
	"github.com/movies-microservices/casts/internal/cast"
	"github.com/movies-microservices/casts/internal/postgres/pgtest"
	"github.com/movies-microservices/casts/internal/web"
	"github.com/rs/zerolog"
)

// newServerOn returns a server on pool, as a new instance of the service would be.
func newServerOn(t *testing.T, pool *pgxpool.Pool, requestTimeout time.Duration) http.Handler {
	t.Helper()
	return newServerWithToken(t, api.Deps{
		Logger: zerolog.Nop(),
		Store:  cast.NewStore(pool),
		Ready: func(ctx context.Context, database bool) error {
			if !database {
				return nil
			}
			return pool.Ping(ctx)
		},
		RequestTimeout: requestTimeout,
	})
}

// reply is what a client sees of a response to a create.
type reply struct {
	Status                                int
	ContentType, Location, ETag, Replayed string
	Body                                  string
}

func replyOf(t *testing.T, resp *http.Response) reply {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{
		Status:      resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"),
		Location:    resp.Header.Get("Location"),
		ETag:        resp.Header.Get("ETag"),
		Replayed:    resp.Header.Get(web.IdempotentReplayedHeader),
		Body:        string(body),
	}
}

func post(key, path, body string) request {
	return request{method: "POST", path: path, body: body, header: map[string]string{"Idempotency-Key": key}}
}

// count runs a SELECT count(*) query.
func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCastCreateIdempotent(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	h := newServerOn(t, pool, 0)
	casts := func(name string) int { return count(t, pool, "SELECT count(*) FROM casts WHERE name = $1", name) }

	first := replyOf(t, do(t, h, post("key-1", "/api/v1/casts", `{"name":"Liv Ullmann","nationality":"Norwegian"}`)))
	if first.Status != http.StatusCreated || first.Replayed != "" || first.Location == "" || first.ETag != `"1"` || first.ContentType != "application/json" {
		t.Fatalf("first POST = %+v, want 201 with Location, ETag and no replay mark", first)
	}

	// Retries of the same request, also through the other path form, with another spelling of the
	// same body, and through another instance of the service (as after a crash), replay the first
	// response byte for byte.
	want := first
	want.Replayed = "true"
	for _, tt := range []struct {
		name string
		h    http.Handler
		req  request
	}{
		{"same request", h, post("key-1", "/api/v1/casts", `{"name":"Liv Ullmann","nationality":"Norwegian"}`)},
		{"trailing slash, other spacing and key order", h, post("key-1", "/api/v1/casts/", `{ "nationality": "Norwegian", "name": " Liv Ullmann " }`)},
		{"another instance", newServerOn(t, pool, 0), post("key-1", "/api/v1/casts", `{"name":"Liv Ullmann","nationality":"Norwegian"}`)},
	} {
		if diff := cmp.Diff(want, replyOf(t, do(t, tt.h, tt.req))); diff != "" {
			t.Errorf("%s: replay (-want +got):\n%s", tt.name, diff)
		}
	}
	if n := casts("Liv Ullmann"); n != 1 {
		t.Errorf("%d casts after retries, want 1", n)
	}

	// The replay is the response of the create, even after the cast changed.
	if resp := do(t, h, request{method: "PATCH", path: first.Location, body: `{"nationality":null}`}); resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH: status %d", resp.StatusCode)
	}
	if diff := cmp.Diff(want, replyOf(t, do(t, h, post("key-1", "/api/v1/casts", `{"name":"Liv Ullmann","nationality":"Norwegian"}`)))); diff != "" {
		t.Errorf("replay after a change (-want +got):\n%s", diff)
	}

	// The same key with another request is refused, and creates nothing.
	resp := do(t, h, post("key-1", "/api/v1/casts", `{"name":"Max von Sydow"}`))
	got := decode[problemJSON](t, resp)
	wantProblem := problemJSON{
		Type: "about:blank", Title: "Unprocessable Entity", Status: 422, Instance: "/api/v1/casts",
		Detail: "the Idempotency-Key was already used with another request (another path or body) in the last 24 hours; use a new key for a new request",
		Errors: []web.FieldError{{Field: "Idempotency-Key", Message: "was already used with another request"}},
	}
	if diff := cmp.Diff(wantProblem, got); diff != "" || resp.StatusCode != 422 {
		t.Errorf("key reused: status %d, problem (-want +got):\n%s", resp.StatusCode, diff)
	}
	if n := casts("Max von Sydow"); n != 0 {
		t.Errorf("the refused request created %d casts", n)
	}

	// Another key is another request.
	if r := replyOf(t, do(t, h, post("key-2", "/api/v1/casts", `{"name":"Liv Ullmann","nationality":"Norwegian"}`))); r.Status != http.StatusCreated || r.Replayed != "" || r.Location == first.Location {
		t.Errorf("POST with another key = %+v, want a new cast", r)
	}
	if n := casts("Liv Ullmann"); n != 2 {
		t.Errorf("%d casts after a second key, want 2", n)
	}
}

// A request that fails leaves its key unused: the corrected request with the same key creates.
func TestCastCreateIdempotentFailureKeepsKey(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	h := newServerOn(t, pool, 0)

	for _, req := range []request{
		post("retry-me", "/api/v1/casts", `{"name":""}`),
		post("retry-me", "/api/v1/casts", `{"name":`),
		{method: "POST", path: "/api/v1/casts", body: `{"name":"x"}`, header: map[string]string{"Idempotency-Key": "retry-me", "Content-Type": "text/plain"}},
	} {
		if resp := do(t, h, req); resp.StatusCode < 400 || resp.StatusCode > 499 {
			t.Errorf("POST %s: status %d, want a 4xx", req.body, resp.StatusCode)
		}
	}
	// A failure in the database, after the key was claimed, rolls the claim back too.
	if _, err := pool.Exec(context.Background(), "ALTER TABLE casts ADD CONSTRAINT no_casts CHECK (false) NOT VALID"); err != nil {
		t.Fatal(err)
	}
	if resp := do(t, h, post("retry-me", "/api/v1/casts", `{"name":"Bibi Andersson"}`)); resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("POST that the database refuses: status %d, want 500", resp.StatusCode)
	}
	if n := count(t, pool, "SELECT count(*) FROM idempotency_keys"); n != 0 {
		t.Errorf("%d keys stored by failed requests, want none", n)
	}
	if _, err := pool.Exec(context.Background(), "ALTER TABLE casts DROP CONSTRAINT no_casts"); err != nil {
		t.Fatal(err)
	}
	if r := replyOf(t, do(t, h, post("retry-me", "/api/v1/casts", `{"name":"Bibi Andersson"}`))); r.Status != http.StatusCreated || r.Replayed != "" {
		t.Errorf("POST after the failures = %+v, want 201, not a replay", r)
	}
}

// A duplicate that arrives while the first request is in flight waits for it and replays its
// response: never two casts.
func TestCastCreateIdempotentConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	// The test's own statements use a pool of their own: the server's may be all taken by waiting requests.
	pool, admin := openPool(t, url), openPool(t, url)
	h := newServerOn(t, pool, 0)

	// Hold the first request inside its transaction, after it has claimed the key, by locking the
	// table it inserts into.
	blocker, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx) //nolint:errcheck
	if _, err := blocker.Exec(ctx, "LOCK TABLE casts IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	const requests = 3
	replies := make([]reply, requests)
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			replies[i] = replyOf(t, do(t, h, post("concurrent", "/api/v1/casts", `{"name":"Harriet Andersson"}`)))
		})
	}
	// Every request is in flight: one waits for the table, the others for its key.
	waitForWaiting(t, admin, requests)
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	created, replayed := 0, 0
	for _, r := range replies {
		if r.Status != http.StatusCreated {
			t.Fatalf("concurrent POST = %+v, want 201", r)
		}
		if r.Replayed == "true" {
			replayed++
		} else {
			created++
		}
		r.Replayed = replies[0].Replayed
		if diff := cmp.Diff(replies[0], r); diff != "" {
			t.Errorf("responses differ (-first +other):\n%s", diff)
		}
	}
	if created != 1 || replayed != requests-1 {
		t.Errorf("%d created and %d replayed, want 1 and %d", created, replayed, requests-1)
	}
	if n := count(t, pool, "SELECT count(*) FROM casts"); n != 1 {
		t.Errorf("%d casts, want 1", n)
	}
}

func openPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// waitForWaiting waits until n sessions of the test's database wait for a lock.
func waitForWaiting(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	for range 1000 {
		if count(t, pool, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fewer than %d sessions ever waited for a lock", n)
}

// A key older than 24 hours is forgotten: a request with it is new, whatever it asks.
func TestCastCreateIdempotentExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	h := newServerOn(t, pool, 0)

	first := replyOf(t, do(t, h, post("old-key", "/api/v1/casts", `{"name":"Ingrid Thulin"}`)))
	if _, err := pool.Exec(ctx, "UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second'"); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"name":"Ingrid Thulin"}`, `{"name":"Gunnar Björnstrand"}`} {
		r := replyOf(t, do(t, h, post("old-key", "/api/v1/casts", body)))
		if r.Status != http.StatusCreated || r.Replayed != "" || r.Location == first.Location {
			t.Errorf("POST %s with an expired key = %+v, want a new cast", body, r)
		}
		// The key now belongs to this request.
		if again := replyOf(t, do(t, h, post("old-key", "/api/v1/casts", body))); again.Replayed != "true" || again.Body != r.Body {
			t.Errorf("retry of POST %s = %+v, want the replay of %+v", body, again, r)
		}
		if _, err := pool.Exec(ctx, "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"); err != nil {
			t.Fatal(err)
		}
	}
	rows, _ := pool.Query(ctx, "SELECT name FROM casts ORDER BY id")
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Ingrid Thulin", "Ingrid Thulin", "Gunnar Björnstrand"}, names); diff != "" {
		t.Errorf("casts (-want +got):\n%s", diff)
	}
}

func TestCastCreateIdempotencyKeyErrors(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	h := newServerOn(t, pool, 0)
	want := problemJSON{
		Type: "about:blank", Title: "Bad Request", Status: 400, Instance: "/api/v1/casts",
		Detail: "the Idempotency-Key header must be sent once, with 1 to 255 printable ASCII characters",
		Errors: []web.FieldError{{Field: "Idempotency-Key", Message: "must be sent once, with 1 to 255 printable ASCII characters"}},
	}
	tests := []struct {
		name string
		keys []string
	}{
		{"empty", []string{""}},
		{"256 characters", []string{strings.Repeat("k", 256)}},
		{"not ASCII", []string{"clé"}},
		{"invalid UTF-8", []string{"key\xff"}},
		{"control character", []string{"key\x01"}},
		{"sent twice", []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := http.NewRequest("POST", "/api/v1/casts", bytes.NewReader([]byte(`{"name":"Erland Josephson"}`)))
			r.Header.Set("Content-Type", "application/json")
			r.Header["Idempotency-Key"] = tt.keys
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			resp := w.Result()
			if diff := cmp.Diff(want, decode[problemJSON](t, resp)); diff != "" || resp.StatusCode != 400 {
				t.Errorf("status %d, problem (-want +got):\n%s", resp.StatusCode, diff)
			}
		})
	}
	t.Run("longest key", func(t *testing.T) {
		t.Parallel()
		if resp := do(t, h, post(strings.Repeat("k", 255), "/api/v1/casts", `{"name":"Erland Josephson"}`)); resp.StatusCode != http.StatusCreated {
			t.Errorf("255-character key: status %d, want 201", resp.StatusCode)
		}
	})
	t.Run("spaces and punctuation", func(t *testing.T) {
		t.Parallel()
		if resp := do(t, h, post(`a key, "quoted"; ~!`, "/api/v1/casts", `{"name":"Erland Josephson"}`)); resp.StatusCode != http.StatusCreated {
			t.Errorf("key with spaces and punctuation: status %d, want 201", resp.StatusCode)
		}
	})
}
