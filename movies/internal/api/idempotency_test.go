package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/movies/internal/api"
	"github.com/movies-microservices/movies/internal/movie"
	"github.com/movies-microservices/movies/internal/postgres/pgtest"
	"github.com/movies-microservices/movies/internal/web"
	"github.com/rs/zerolog"
)

// newServerOn returns a server on pool, as a new instance of the service would be.
func newServerOn(t *testing.T, pool *pgxpool.Pool, casts api.Casts, requestTimeout time.Duration) http.Handler {
	t.Helper()
	return newServerWithToken(t, api.Deps{
		Logger: zerolog.Nop(),
		Store:  movie.NewStore(pool),
		Casts:  casts,
		Ready: func(ctx context.Context, database bool) error {
			if !database {
				return nil
			}
			return pool.Ping(ctx)
		},
		RequestTimeout: requestTimeout,
	})
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

func TestMovieCreateIdempotent(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	casts := newFakeCasts(1, 2)
	h := newServerOn(t, pool, casts, 0)
	movies := func(name string) int { return count(t, pool, "SELECT count(*) FROM movies WHERE name = $1", name) }
	const body = `{"name":"Persona","plot":"Two women.","genres":["Drama"],"cast_ids":[1,2]}`

	first := replyOf(t, do(t, h, post("key-1", "/api/v1/movies", body)))
	if first.Status != http.StatusCreated || first.Replayed != "" || first.Location == "" || first.ETag != `"1"` || first.ContentType != "application/json" {
		t.Fatalf("first POST = %+v, want 201 with Location, ETag and no replay mark", first)
	}
	if calls := casts.takeCalls(); len(calls) != 1 {
		t.Errorf("first POST made %d cast checks, want 1", len(calls))
	}

	// Retries of the same request, also through the other path form, with another spelling of the
	// same body, through another instance of the service (as after a crash), and while the cast
	// service is down, replay the first response byte for byte, without a cast check.
	want := first
	want.Replayed = "true"
	down := newFakeCasts(1, 2)
	down.fail(errors.New("connection refused"))
	for _, tt := range []struct {
		name string
		h    http.Handler
		req  request
	}{
		{"same request", h, post("key-1", "/api/v1/movies", body)},
		{"trailing slash, other spacing and key order", h, post("key-1", "/api/v1/movies/",
			`{"cast_ids": [1, 2], "genres": [" Drama "], "name": "Persona ", "plot": "Two women."}`)},
		{"another instance", newServerOn(t, pool, casts, 0), post("key-1", "/api/v1/movies", body)},
		{"cast service down", newServerOn(t, pool, down, 0), post("key-1", "/api/v1/movies", body)},
	} {
		if diff := cmp.Diff(want, replyOf(t, do(t, tt.h, tt.req))); diff != "" {
			t.Errorf("%s: replay (-want +got):\n%s", tt.name, diff)
		}
	}
	if calls := casts.takeCalls(); len(calls) != 0 {
		t.Errorf("replays made cast checks: %v", calls)
	}
	if n := movies("Persona"); n != 1 {
		t.Errorf("%d movies after retries, want 1", n)
	}

	// Absent lists and empty ones are the same request.
	noLists := replyOf(t, do(t, h, post("key-2", "/api/v1/movies", `{"name":"Cries and Whispers"}`)))
	if again := replyOf(t, do(t, h, post("key-2", "/api/v1/movies", `{"name":"Cries and Whispers","plot":"","genres":[],"cast_ids":[]}`))); again.Replayed != "true" || again.Body != noLists.Body {
		t.Errorf("retry with empty lists = %+v, want the replay of %+v", again, noLists)
	}

	// The same key with another request is refused, creates nothing and asks no one.
	for _, other := range []string{
		`{"name":"Persona","plot":"Two women.","genres":["Drama"],"cast_ids":[2,1]}`,
		`{"name":"Wild Strawberries"}`,
	} {
		resp := do(t, h, post("key-1", "/api/v1/movies", other))
		checkProblem(t, resp, "/api/v1/movies", problemJSON{
			Status: 422,
			Detail: "the Idempotency-Key was already used with another request (another path or body) in the last 24 hours; use a new key for a new request",
			Errors: []web.FieldError{{Field: "Idempotency-Key", Message: "was already used with another request"}},
		})
	}
	if n := movies("Wild Strawberries"); n != 0 {
		t.Errorf("the refused request created %d movies", n)
	}
	if calls := casts.takeCalls(); len(calls) != 0 {
		t.Errorf("refused requests made cast checks: %v", calls)
	}
}

// A request that fails leaves its key unused: the corrected request with the same key creates.
func TestMovieCreateIdempotentFailureKeepsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	casts := newFakeCasts(1, 2)
	h := newServerOn(t, pool, casts, 0)

	// Refused before the transaction: bad body, a missing cast, the cast service down.
	for _, req := range []request{
		post("retry-me", "/api/v1/movies", `{"name":""}`),
		post("retry-me", "/api/v1/movies", `{"name":"Fanny and Alexander","cast_ids":[1,99]}`),
	} {
		if resp := do(t, h, req); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("POST %s: status %d, want 422", req.body, resp.StatusCode)
		}
	}
	casts.fail(errors.New("connection refused"))
	if resp := do(t, h, post("retry-me", "/api/v1/movies", `{"name":"Fanny and Alexander","cast_ids":[1]}`)); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("POST with the cast service down: status %d, want 503", resp.StatusCode)
	}
	casts.fail(nil)
	// Refused inside the transaction, after the key was claimed: a cast the event said is deleted.
	if _, err := pool.Exec(ctx, "INSERT INTO deleted_casts (cast_id, deleted_at) VALUES (2, now())"); err != nil {
		t.Fatal(err)
	}
	if resp := do(t, h, post("retry-me", "/api/v1/movies", `{"name":"Fanny and Alexander","cast_ids":[1,2]}`)); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("POST naming a deleted cast: status %d, want 422", resp.StatusCode)
	}
	if n := count(t, pool, "SELECT count(*) FROM idempotency_keys"); n != 0 {
		t.Errorf("%d keys stored by failed requests, want none", n)
	}
	if r := replyOf(t, do(t, h, post("retry-me", "/api/v1/movies", `{"name":"Fanny and Alexander","cast_ids":[1]}`))); r.Status != http.StatusCreated || r.Replayed != "" {
		t.Errorf("POST after the failures = %+v, want 201, not a replay", r)
	}
}

// A duplicate that arrives while the first request is in flight waits for it and replays its
// response: never two movies.
func TestMovieCreateIdempotentConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	// The test's own statements use a pool of their own: the server's may be all taken by waiting requests.
	pool, admin := openPool(t, url), openPool(t, url)
	h := newServerOn(t, pool, newFakeCasts(1), 0)

	// Hold the first request inside its transaction, after it has claimed the key, by locking the
	// table it inserts into.
	blocker, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx) //nolint:errcheck
	if _, err := blocker.Exec(ctx, "LOCK TABLE movies IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	const requests = 3
	replies := make([]reply, requests)
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			replies[i] = replyOf(t, do(t, h, post("concurrent", "/api/v1/movies", `{"name":"The Seventh Seal","cast_ids":[1]}`)))
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
	if n := count(t, pool, "SELECT count(*) FROM movies"); n != 1 {
		t.Errorf("%d movies, want 1", n)
	}
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

// A key older than 24 hours is forgotten: a request with it is new.
func TestMovieCreateIdempotentExpiry(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	h := newServerOn(t, pool, newFakeCasts(), 0)

	first := replyOf(t, do(t, h, post("old-key", "/api/v1/movies", `{"name":"Autumn Sonata"}`)))
	if _, err := pool.Exec(context.Background(), "UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second'"); err != nil {
		t.Fatal(err)
	}
	r := replyOf(t, do(t, h, post("old-key", "/api/v1/movies", `{"name":"Autumn Sonata"}`)))
	if r.Status != http.StatusCreated || r.Replayed != "" || r.Location == first.Location {
		t.Errorf("POST with an expired key = %+v, want a new movie", r)
	}
	if n := count(t, pool, "SELECT count(*) FROM movies"); n != 2 {
		t.Errorf("%d movies, want 2", n)
	}
}

func TestMovieCreateIdempotencyKeyErrors(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	h := newServerOn(t, pool, newFakeCasts(), 0)
	want := problemJSON{
		Status: 400,
		Detail: "the Idempotency-Key header must be sent once, with 1 to 255 printable ASCII characters",
		Errors: []web.FieldError{{Field: "Idempotency-Key", Message: "must be sent once, with 1 to 255 printable ASCII characters"}},
	}
	for _, tt := range []struct {
		name string
		keys []string
	}{
		{"empty", []string{""}},
		{"256 characters", []string{strings.Repeat("k", 256)}},
		{"invalid UTF-8", []string{"key\xff"}},
		{"NUL", []string{"key\x00"}},
		{"sent twice", []string{"a", "a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/api/v1/movies", strings.NewReader(`{"name":"Smiles of a Summer Night"}`))
			r.Header.Set("Content-Type", "application/json")
			r.Header["Idempotency-Key"] = tt.keys
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			checkProblem(t, w.Result(), "/api/v1/movies", want)
		})
	}
}
