package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/movies-microservices/movies/internal/api"
	"github.com/movies-microservices/movies/internal/auth"
	"github.com/movies-microservices/movies/internal/auth/authtest"
	"github.com/movies-microservices/movies/internal/castsclient"
	"github.com/movies-microservices/movies/internal/movie"
	"github.com/movies-microservices/movies/internal/postgres/pgtest"
	"github.com/movies-microservices/movies/internal/web"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// movieJSON and problemJSON are the wire forms the tests expect.
type movieJSON struct {
	ID        int64    `json:"id"`
	Name      string   `json:"name"`
	Plot      string   `json:"plot"`
	Genres    []string `json:"genres"`
	CastIDs   []int64  `json:"cast_ids"`
	CreatedAt string   `json:"created_at"`
	UpdatedAt string   `json:"updated_at"`
}

type problemJSON struct {
	Type     string           `json:"type"`
	Title    string           `json:"title"`
	Status   int              `json:"status"`
	Detail   string           `json:"detail"`
	Instance string           `json:"instance"`
	Errors   []web.FieldError `json:"errors"`
}

// fakeCasts stands in for the cast service: it knows some cast ids, or fails with err.
type fakeCasts struct {
	existing map[int64]bool

	mu    sync.Mutex
	err   error
	calls []castCall
}

// castCall is one check (or, with Lookup, one lookup) the handlers made.
type castCall struct {
	IDs       []int64
	RequestID string
	Lookup    bool
}

func (f *fakeCasts) Missing(ctx context.Context, ids []int64) ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, castCall{IDs: slices.Clone(ids), RequestID: web.RequestID(ctx)})
	if f.err != nil {
		return nil, f.err
	}
	var missing []int64
	for _, id := range ids {
		if !f.existing[id] {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	return missing, nil
}

func (f *fakeCasts) Lookup(ctx context.Context, ids []int64) ([]castsclient.Cast, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, castCall{IDs: slices.Clone(ids), RequestID: web.RequestID(ctx), Lookup: true})
	if f.err != nil {
		return nil, f.err
	}
	var found []castsclient.Cast
	for _, id := range ids {
		if f.existing[id] && !slices.ContainsFunc(found, func(c castsclient.Cast) bool { return c.ID == id }) {
			found = append(found, fakeCast(id))
		}
	}
	slices.SortFunc(found, func(a, b castsclient.Cast) int { return int(a.ID - b.ID) })
	return found, nil
}

// fakeCast is the cast the fake cast service knows by id.
func fakeCast(id int64) castsclient.Cast {
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	c := castsclient.Cast{ID: id, Name: "Cast " + itoa(id), CreatedAt: at, UpdatedAt: at}
	if id%2 == 0 {
		c.Nationality = ptr("Even")
	}
	return c
}

func ptr[T any](v T) *T { return &v }

func (f *fakeCasts) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// takeCalls returns the checks made since the last call and forgets them.
func (f *fakeCasts) takeCalls() []castCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls := f.calls
	f.calls = nil
	return calls
}

func newFakeCasts(ids ...int64) *fakeCasts {
	f := &fakeCasts{existing: map[int64]bool{}}
	for _, id := range ids {
		f.existing[id] = true
	}
	return f
}

func newServer(t *testing.T, casts api.Casts, logger zerolog.Logger) http.Handler {
	t.Helper()
	return newServerWithToken(t, api.Deps{
		Logger: logger,
		Store:  movie.NewStore(pgtest.Pool(t)),
		Casts:  casts,
		Ready:  func(context.Context, bool) error { return nil },
	})
}

// newServerWithToken returns the server of d that trusts a stand-in identity provider, and that
// sends the requests without an Authorization header with a token granting movies:write and
// movies:events.
func newServerWithToken(t *testing.T, d api.Deps) http.Handler {
	t.Helper()
	iss := authtest.New(t)
	d.Auth = auth.NewVerifier(iss.Config())
	return authtest.WithToken(iss.Token(t, "movies:write", "movies:events"), api.NewServer(d))
}

type request struct {
	method, path, body string
	header             map[string]string
}

func do(t *testing.T, h http.Handler, req request) *http.Response {
	t.Helper()
	r := httptest.NewRequest(req.method, req.path, strings.NewReader(req.body))
	if req.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, body, err)
	}
	return v
}

func createMovie(t *testing.T, h http.Handler, body string) movieJSON {
	t.Helper()
	resp := do(t, h, request{method: "POST", path: "/api/v1/movies", body: body})
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("create movie: status %d: %s", resp.StatusCode, body)
	}
	return decode[movieJSON](t, resp)
}

// listAll returns every movie, for checking that failed writes left nothing behind.
func listAll(t *testing.T, h http.Handler) []movieJSON {
	t.Helper()
	resp := do(t, h, request{method: "GET", path: "/api/v1/movies?limit=1000"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list: status %d", resp.StatusCode)
	}
	return decode[[]movieJSON](t, resp)
}

// checkProblem compares a problem+json response with want, filling in what every problem has.
func checkProblem(t *testing.T, resp *http.Response, path string, want problemJSON) {
	t.Helper()
	if got := resp.Header.Get("Content-Type"); got != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", got)
	}
	want.Type = "about:blank"
	want.Title = http.StatusText(want.Status)
	want.Instance = strings.SplitN(path, "?", 2)[0]
	got := decode[problemJSON](t, resp)
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b web.FieldError) bool {
		return a.Field+a.Message < b.Field+b.Message
	})); diff != "" {
		t.Errorf("problem (-want +got):\n%s", diff)
	}
	if resp.StatusCode != want.Status {
		t.Errorf("status = %d, want %d", resp.StatusCode, want.Status)
	}
}

func invalid(errs ...web.FieldError) problemJSON {
	return problemJSON{Status: 422, Detail: "the request has invalid fields", Errors: errs}
}

func TestMovieErrors(t *testing.T) {
	t.Parallel()
	casts := newFakeCasts(1, 2)
	h := newServer(t, casts, zerolog.Nop())
	m := createMovie(t, h, `{"name":"Existing","genres":["Drama"],"cast_ids":[1]}`)
	casts.takeCalls()
	item := "/api/v1/movies/" + itoa(m.ID)
	var genres21, ids101 []string
	for i := range 101 {
		if i < 21 {
			genres21 = append(genres21, `"g`+strconv.Itoa(i)+`"`)
		}
		ids101 = append(ids101, strconv.Itoa(i+1))
	}

	tests := []struct {
		name string
		req  request
		want problemJSON
		// allow is the Allow header expected on a 405.
		allow string
	}{
		{
			name: "malformed JSON",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":}`},
			want: problemJSON{Status: 400, Detail: "body is not valid JSON (at byte 9): invalid character '}' looking for beginning of value"},
		},
		{
			name: "truncated JSON",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x"`},
			want: problemJSON{Status: 400, Detail: "body is truncated JSON"},
		},
		{
			name: "empty body",
			req:  request{method: "POST", path: "/api/v1/movies", header: map[string]string{"Content-Type": "application/json"}},
			want: problemJSON{Status: 400, Detail: "body must not be empty"},
		},
		{
			name: "two JSON values",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"a"}{"name":"b"}`},
			want: problemJSON{Status: 400, Detail: "body must contain a single JSON value"},
		},
		{
			// 422 as in the original system (FastAPI): well-formed JSON whose content is invalid.
			name: "wrong type",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":2}`},
			want: problemJSON{Status: 422, Detail: `field "name" must be a JSON string, not a JSON number`, Errors: []web.FieldError{{Field: "name", Message: "must be a JSON string, not a JSON number"}}},
		},
		{
			name: "genres not a list",
			req:  request{method: "PUT", path: item, body: `{"name":"x","genres":"Drama"}`},
			want: problemJSON{Status: 422, Detail: `field "genres" must be a JSON array of strings, not a JSON string`, Errors: []web.FieldError{{Field: "genres", Message: "must be a JSON array of strings, not a JSON string"}}},
		},
		{
			name: "a genre not a string, named by its index",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x","genres":["Drama","Noir",3]}`},
			want: problemJSON{Status: 422, Detail: `field "genres[2]" must be a JSON string, not a JSON number`, Errors: []web.FieldError{{Field: "genres[2]", Message: "must be a JSON string, not a JSON number"}}},
		},
		{
			name: "cast id not an integer",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x","cast_ids":[1,1.5]}`},
			want: problemJSON{Status: 422, Detail: `field "cast_ids[1]" must be a JSON integer, written without a fraction or an exponent, not 1.5`, Errors: []web.FieldError{{Field: "cast_ids[1]", Message: "must be a JSON integer, written without a fraction or an exponent, not 1.5"}}},
		},
		{
			name: "cast id with an exponent",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x","cast_ids":[1e3]}`},
			want: problemJSON{Status: 422, Detail: `field "cast_ids[0]" must be a JSON integer, written without a fraction or an exponent, not 1e3`, Errors: []web.FieldError{{Field: "cast_ids[0]", Message: "must be a JSON integer, written without a fraction or an exponent, not 1e3"}}},
		},
		{
			name: "cast id out of range",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x","cast_ids":[99999999999999999999]}`},
			want: problemJSON{Status: 422, Detail: `field "cast_ids[0]" must be a JSON integer of at most 9223372036854775807: 99999999999999999999 does not fit in 64 bits`, Errors: []web.FieldError{{Field: "cast_ids[0]", Message: "must be a JSON integer of at most 9223372036854775807: 99999999999999999999 does not fit in 64 bits"}}},
		},
		{
			name: "every wrong type at once",
			req:  request{method: "PUT", path: item, body: `{"name":true,"plot":[],"genres":[null,{}],"cast_ids":["1",2,-0.0]}`},
			want: problemJSON{Status: 422, Detail: "the request has 5 values of the wrong type", Errors: []web.FieldError{
				{Field: "name", Message: "must be a JSON string, not a JSON boolean"},
				{Field: "plot", Message: "must be a JSON string, not a JSON array"},
				{Field: "genres[1]", Message: "must be a JSON string, not a JSON object"},
				{Field: "cast_ids[0]", Message: "must be a JSON integer, not a JSON string"},
				{Field: "cast_ids[2]", Message: "must be a JSON integer, written without a fraction or an exponent, not -0.0"},
			}},
		},
		{
			name: "not an object",
			req:  request{method: "POST", path: "/api/v1/movies", body: `["x"]`},
			want: problemJSON{Status: 400, Detail: "body must be a JSON object, not a JSON array"},
		},
		{
			name: "unknown field",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x","year":1999}`},
			want: problemJSON{Status: 400, Detail: `body has an unknown field "year"`, Errors: []web.FieldError{{Field: "year", Message: "unknown field"}}},
		},
		{
			name: "wrong content type",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x"}`, header: map[string]string{"Content-Type": "text/plain"}},
			want: problemJSON{Status: 415, Detail: "Content-Type must be application/json"},
		},
		{
			name: "merge patch content type on PUT",
			req:  request{method: "PUT", path: item, body: `{"name":"x"}`, header: map[string]string{"Content-Type": "application/merge-patch+json"}},
			want: problemJSON{Status: 415, Detail: "Content-Type must be application/json"},
		},
		{
			name: "wrong content type on PATCH",
			req:  request{method: "PATCH", path: item, body: `{"name":"x"}`, header: map[string]string{"Content-Type": "text/plain"}},
			want: problemJSON{Status: 415, Detail: "Content-Type must be application/merge-patch+json or application/json"},
		},
		{
			name: "body over 1 MiB",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x","plot":"` + strings.Repeat("a", 1<<20) + `"}`},
			want: problemJSON{Status: 413, Detail: "body must not be larger than 1048576 bytes"},
		},
		{
			name: "missing name",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"plot":"Nobody named it."}`},
			want: invalid(web.FieldError{Field: "name", Message: "is required"}),
		},
		{
			name: "blank name and long plot",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"   ","plot":"` + strings.Repeat("é", 5001) + `"}`},
			want: invalid(
				web.FieldError{Field: "name", Message: "must not be blank"},
				web.FieldError{Field: "plot", Message: "must have at most 5000 characters"},
			),
		},
		{
			name: "name of 201 characters",
			req:  request{method: "PUT", path: item, body: `{"name":"` + strings.Repeat("x", 201) + `"}`},
			want: invalid(web.FieldError{Field: "name", Message: "must have at most 200 characters"}),
		},
		{
			name: "NUL in name and plot",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"a\u0000b","plot":"\u0000"}`},
			want: invalid(
				web.FieldError{Field: "name", Message: "must not contain NUL characters"},
				web.FieldError{Field: "plot", Message: "must not contain NUL characters"},
			),
		},
		{
			name: "bad genres",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x","genres":["Drama"," ","` + strings.Repeat("g", 51) + `","a\u0000"]}`},
			want: invalid(
				web.FieldError{Field: "genres[1]", Message: "must not be blank"},
				web.FieldError{Field: "genres[2]", Message: "must have at most 50 characters"},
				web.FieldError{Field: "genres[3]", Message: "must not contain NUL characters"},
			),
		},
		{
			name: "genres repeated up to case",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x","genres":["Drama","drama "]}`},
			want: invalid(web.FieldError{Field: "genres", Message: "must not contain duplicates (compared without regard to case)"}),
		},
		{
			name: "21 genres",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x","genres":[` + strings.Join(genres21, ",") + `]}`},
			want: invalid(web.FieldError{Field: "genres", Message: "must have at most 20 items"}),
		},
		{
			name: "bad cast ids",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x","cast_ids":[1,0,-3]}`},
			want: invalid(
				web.FieldError{Field: "cast_ids[1]", Message: "must be greater than 0"},
				web.FieldError{Field: "cast_ids[2]", Message: "must be greater than 0"},
			),
		},
		{
			name: "repeated cast id",
			req:  request{method: "POST", path: "/api/v1/movies", body: `{"name":"x","cast_ids":[1,2,1]}`},
			want: invalid(web.FieldError{Field: "cast_ids", Message: "must not contain duplicates"}),
		},
		{
			name: "101 cast ids",
			req:  request{method: "PUT", path: item, body: `{"name":"x","cast_ids":[` + strings.Join(ids101, ",") + `]}`},
			want: invalid(web.FieldError{Field: "cast_ids", Message: "must have at most 100 items"}),
		},
		{
			name: "patch removes the name",
			req:  request{method: "PATCH", path: item, body: `{"name":null}`},
			want: invalid(web.FieldError{Field: "name", Message: "is required"}),
		},
		{
			name: "patch with unknown field",
			req:  request{method: "PATCH", path: item, body: `{"year":1950}`},
			want: problemJSON{Status: 400, Detail: `body has an unknown field "year"`, Errors: []web.FieldError{{Field: "year", Message: "unknown field"}}},
		},
		{
			name: "patch with a wrong type",
			req:  request{method: "PATCH", path: item, body: `{"cast_ids":"1"}`},
			want: problemJSON{Status: 422, Detail: `field "cast_ids" must be a JSON array of integers, not a JSON string`, Errors: []web.FieldError{{Field: "cast_ids", Message: "must be a JSON array of integers, not a JSON string"}}},
		},
		{
			name: "patch with a wrong array item",
			req:  request{method: "PATCH", path: item, body: `{"genres":["Drama",["Noir"]]}`},
			want: problemJSON{Status: 422, Detail: `field "genres[1]" must be a JSON string, not a JSON array`, Errors: []web.FieldError{{Field: "genres[1]", Message: "must be a JSON string, not a JSON array"}}},
		},
		{
			name: "patch that is not an object",
			req:  request{method: "PATCH", path: item, body: `"x"`},
			want: problemJSON{Status: 400, Detail: "a merge patch must be a JSON object"},
		},
		{
			name: "stale If-Match",
			req:  request{method: "PUT", path: item, body: `{"name":"x","cast_ids":[2]}`, header: map[string]string{"If-Match": `"999"`}},
			want: problemJSON{Status: 412, Detail: "If-Match does not match the current ETag: the resource changed since you read it"},
		},
		{
			name: "stale If-Match on PATCH",
			req:  request{method: "PATCH", path: item, body: `{"cast_ids":[2]}`, header: map[string]string{"If-Match": `"999"`}},
			want: problemJSON{Status: 412, Detail: "If-Match does not match the current ETag: the resource changed since you read it"},
		},
		{
			name: "weak If-Match never matches",
			req:  request{method: "DELETE", path: item, header: map[string]string{"If-Match": `W/"1"`}},
			want: problemJSON{Status: 412, Detail: "If-Match does not match the current ETag: the resource changed since you read it"},
		},
		{
			name: "malformed If-Match",
			req:  request{method: "DELETE", path: item, header: map[string]string{"If-Match": `1`}},
			want: problemJSON{Status: 400, Detail: `If-Match must be "*" or a list of quoted entity tags such as "3"`},
		},
		{
			name: "missing movie",
			req:  request{method: "GET", path: "/api/v1/movies/999999"},
			want: problemJSON{Status: 404, Detail: "no movie has this id"},
		},
		{
			name: "replace missing movie",
			req:  request{method: "PUT", path: "/api/v1/movies/999999", body: `{"name":"x","cast_ids":[1]}`},
			want: problemJSON{Status: 404, Detail: "no movie has this id"},
		},
		{
			name: "delete missing movie",
			req:  request{method: "DELETE", path: "/api/v1/movies/999999"},
			want: problemJSON{Status: 404, Detail: "no movie has this id"},
		},
		{
			name: "non-numeric id",
			req:  request{method: "GET", path: "/api/v1/movies/abc"},
			want: problemJSON{Status: 404, Detail: "no resource at /api/v1/movies/abc"},
		},
		{
			name: "negative id",
			req:  request{method: "PUT", path: "/api/v1/movies/-1", body: `{"name":"x"}`},
			want: problemJSON{Status: 404, Detail: "no resource at /api/v1/movies/-1"},
		},
		{
			name: "out-of-range id",
			req:  request{method: "GET", path: "/api/v1/movies/99999999999999999999"},
			want: problemJSON{Status: 404, Detail: "no resource at /api/v1/movies/99999999999999999999"},
		},
		{
			name: "zero id",
			req:  request{method: "DELETE", path: "/api/v1/movies/0"},
			want: problemJSON{Status: 404, Detail: "no resource at /api/v1/movies/0"},
		},
		{
			name: "unknown route",
			req:  request{method: "GET", path: "/api/v1/films"},
			want: problemJSON{Status: 404, Detail: "no resource at /api/v1/films"},
		},
		{
			name: "path below an item",
			req:  request{method: "GET", path: item + "/casts"},
			want: problemJSON{Status: 404, Detail: "no resource at " + item + "/casts"},
		},
		{
			name:  "wrong method on the collection",
			req:   request{method: "DELETE", path: "/api/v1/movies"},
			want:  problemJSON{Status: 405, Detail: "method DELETE is not allowed here; allowed: GET, HEAD, POST"},
			allow: "GET, HEAD, POST",
		},
		{
			name:  "wrong method on an item",
			req:   request{method: "POST", path: item + "/"},
			want:  problemJSON{Status: 405, Detail: "method POST is not allowed here; allowed: DELETE, GET, HEAD, PATCH, PUT"},
			allow: "DELETE, GET, HEAD, PATCH, PUT",
		},
		{
			name: "bad list parameters",
			req:  request{method: "GET", path: "/api/v1/movies?limit=0&after=-1&cast_id=x&genre=%00&name=%00&sort=name"},
			want: problemJSON{Status: 400, Detail: "the query string has invalid parameters", Errors: []web.FieldError{
				{Field: "after", Message: "must be a movie id (a whole number of 0 or more)"},
				{Field: "cast_id", Message: "must be a cast id (a whole number of 1 or more)"},
				{Field: "genre", Message: "must not contain NUL characters"},
				{Field: "limit", Message: "must be a whole number from 1 to 1000"},
				{Field: "name", Message: "must not contain NUL characters"},
				{Field: "sort", Message: "is not a known query parameter (known: limit, after, genre, cast_id, name, expand)"},
			}},
		},
		{
			name: "limit over the maximum and cast_id zero",
			req:  request{method: "GET", path: "/api/v1/movies/?limit=1001&cast_id=0"},
			want: problemJSON{Status: 400, Detail: "the query string has invalid parameters", Errors: []web.FieldError{
				{Field: "cast_id", Message: "must be a cast id (a whole number of 1 or more)"},
				{Field: "limit", Message: "must be a whole number from 1 to 1000"},
			}},
		},
		{
			name: "invalid UTF-8 in the text filters",
			req:  request{method: "GET", path: "/api/v1/movies?genre=%FF&name=caf%C3"},
			want: problemJSON{Status: 400, Detail: "the query string has invalid parameters", Errors: []web.FieldError{
				{Field: "genre", Message: "must be valid UTF-8"},
				{Field: "name", Message: "must be valid UTF-8"},
			}},
		},
	}
	// The group returns only when all its parallel subtests are done.
	t.Run("group", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				resp := do(t, h, tt.req)
				if got := resp.Header.Get("Allow"); got != tt.allow {
					t.Errorf("Allow = %q, want %q", got, tt.allow)
				}
				checkProblem(t, resp, tt.req.path, tt.want)
			})
		}
	})

	// None of the bad writes above may have changed anything, or asked the cast service.
	if diff := cmp.Diff([]movieJSON{m}, listAll(t, h)); diff != "" {
		t.Errorf("movies after bad requests (-want +got):\n%s", diff)
	}
	if calls := casts.takeCalls(); len(calls) != 0 {
		t.Errorf("bad requests asked the cast service: %v", calls)
	}
}

func TestMovieLifecycle(t *testing.T) {
	t.Parallel()
	casts := newFakeCasts(1, 2, 3)
	h := newServer(t, casts, zerolog.Nop())

	resp := do(t, h, request{method: "POST", path: "/api/v1/movies/", body: `{"name":"  Chungking Express ","plot":" Two cops. ","genres":[" Drama","Romance "],"cast_ids":[2,1]}`,
		header: map[string]string{"X-Request-Id": "lifecycle-1"}})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST status = %d, want 201", resp.StatusCode)
	}
	created := decode[movieJSON](t, resp)
	item := "/api/v1/movies/" + itoa(created.ID)
	want := movieJSON{ID: created.ID, Name: "Chungking Express", Plot: "Two cops.", Genres: []string{"Drama", "Romance"}, CastIDs: []int64{2, 1}}
	if diff := cmp.Diff(want, created, cmpopts.IgnoreFields(movieJSON{}, "CreatedAt", "UpdatedAt")); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if got := resp.Header.Get("Location"); got != item {
		t.Errorf("Location = %q, want %q", got, item)
	}
	if got := resp.Header.Get("ETag"); got != `"1"` {
		t.Errorf("ETag = %q, want %q", got, `"1"`)
	}
	if diff := cmp.Diff([]castCall{{IDs: []int64{2, 1}, RequestID: "lifecycle-1"}}, casts.takeCalls()); diff != "" {
		t.Errorf("cast checks on create (-want +got):\n%s", diff)
	}

	for _, path := range []string{item, item + "/"} {
		resp := do(t, h, request{method: "GET", path: path})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `"1"` {
			t.Errorf("GET %s: status %d ETag %q, want 200 \"1\"", path, resp.StatusCode, resp.Header.Get("ETag"))
		}
		if diff := cmp.Diff(created, decode[movieJSON](t, resp)); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", path, diff)
		}
	}

	// Merge patch: null removes the plot, the other fields stay, and the cast service is not asked.
	resp = do(t, h, request{method: "PATCH", path: item, body: `{"plot":null,"genres":["Romance"]}`,
		header: map[string]string{"Content-Type": "application/merge-patch+json", "If-Match": `"1"`}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `"2"` {
		t.Fatalf("PATCH: status %d ETag %q, want 200 \"2\"", resp.StatusCode, resp.Header.Get("ETag"))
	}
	patched := decode[movieJSON](t, resp)
	want = movieJSON{ID: created.ID, Name: "Chungking Express", Plot: "", Genres: []string{"Romance"}, CastIDs: []int64{2, 1}, CreatedAt: created.CreatedAt}
	if diff := cmp.Diff(want, patched, cmpopts.IgnoreFields(movieJSON{}, "UpdatedAt")); diff != "" {
		t.Errorf("patched (-want +got):\n%s", diff)
	}
	if calls := casts.takeCalls(); len(calls) != 0 {
		t.Errorf("a patch that leaves cast_ids alone asked the cast service: %v", calls)
	}

	// A patch that changes cast_ids has the whole new list checked.
	resp = do(t, h, request{method: "PATCH", path: item, body: `{"cast_ids":[3,2,1]}`})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH cast_ids: status %d", resp.StatusCode)
	}
	if got := decode[movieJSON](t, resp).CastIDs; !slices.Equal(got, []int64{3, 2, 1}) {
		t.Errorf("cast_ids after PATCH = %v, want [3 2 1]", got)
	}
	if calls := casts.takeCalls(); len(calls) != 1 || !slices.Equal(calls[0].IDs, []int64{3, 2, 1}) {
		t.Errorf("cast checks on PATCH = %v, want one of [3 2 1]", calls)
	}

	// Replace: absent fields become empty; the cast ids are checked; a stale ETag is refused.
	resp = do(t, h, request{method: "PUT", path: item + "/", body: `{"name":"Chungking Express","cast_ids":[3]}`, header: map[string]string{"If-Match": `"3", "7"`}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: status %d, want 200", resp.StatusCode)
	}
	want = movieJSON{ID: created.ID, Name: "Chungking Express", Genres: []string{}, CastIDs: []int64{3}, CreatedAt: created.CreatedAt}
	if diff := cmp.Diff(want, decode[movieJSON](t, resp), cmpopts.IgnoreFields(movieJSON{}, "UpdatedAt")); diff != "" {
		t.Errorf("replaced (-want +got):\n%s", diff)
	}
	if calls := casts.takeCalls(); len(calls) != 1 || !slices.Equal(calls[0].IDs, []int64{3}) {
		t.Errorf("cast checks on PUT = %v, want one of [3]", calls)
	}
	// Emptying the list needs no check.
	resp = do(t, h, request{method: "PATCH", path: item, body: `{"cast_ids":[]}`})
	if resp.StatusCode != http.StatusOK || len(decode[movieJSON](t, resp).CastIDs) != 0 {
		t.Errorf("PATCH cast_ids to []: status %d", resp.StatusCode)
	}
	if calls := casts.takeCalls(); len(calls) != 0 {
		t.Errorf("an empty cast list asked the cast service: %v", calls)
	}

	if resp := do(t, h, request{method: "DELETE", path: item, header: map[string]string{"If-Match": `"2"`}}); resp.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("DELETE with stale ETag: status %d, want 412", resp.StatusCode)
	}
	if resp := do(t, h, request{method: "DELETE", path: item + "/", header: map[string]string{"If-Match": `*`}}); resp.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE: status %d, want 204", resp.StatusCode)
	}
	if resp := do(t, h, request{method: "GET", path: item}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after DELETE: status %d, want 404", resp.StatusCode)
	}
	if calls := casts.takeCalls(); len(calls) != 0 {
		t.Errorf("reads and deletes asked the cast service: %v", calls)
	}
}

func TestMovieListPagination(t *testing.T) {
	t.Parallel()
	casts := newFakeCasts(1, 2)
	h := newServer(t, casts, zerolog.Nop())
	var all []movieJSON
	for _, body := range []string{
		`{"name":"Heat","genres":["Crime","Drama"],"cast_ids":[1,2]}`,
		`{"name":"Collateral","genres":["crime"],"cast_ids":[2]}`,
		`{"name":"Thief","genres":["Crime"]}`,
		`{"name":"The Insider","genres":["Drama"],"cast_ids":[1]}`,
		`{"name":"Miami Vice","genres":["CRIME","Action"],"cast_ids":[2]}`,
	} {
		all = append(all, createMovie(t, h, body))
	}
	casts.takeCalls()

	tests := []struct {
		name  string
		first string
		want  []movieJSON
		pages int
	}{
		{"everything", "/api/v1/movies/?limit=2", all, 3},
		{"genre, any case, through pages", "/api/v1/movies?genre=Crime&limit=2", []movieJSON{all[0], all[1], all[2], all[4]}, 2},
		{"cast_id", "/api/v1/movies?cast_id=2&limit=1", []movieJSON{all[0], all[1], all[4]}, 3},
		{"name", "/api/v1/movies?name=THE", []movieJSON{all[3]}, 1},
		{"filters combine", "/api/v1/movies?genre=drama&cast_id=1&name=heat", []movieJSON{all[0]}, 1},
		{"nothing matches", "/api/v1/movies?genre=Western", nil, 1},
		{"a page of exactly the rest has no next link", "/api/v1/movies?limit=5", all, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Walk the pages through Link until there is none.
			var got []movieJSON
			next := tt.first
			pages := 0
			for next != "" {
				resp := do(t, h, request{method: "GET", path: next})
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: status %d", next, resp.StatusCode)
				}
				got = append(got, decode[[]movieJSON](t, resp)...)
				next = ""
				if link := resp.Header.Get("Link"); link != "" {
					target, rel, _ := strings.Cut(link, ">; ")
					if rel != `rel="next"` {
						t.Fatalf("Link = %q, want rel=\"next\"", link)
					}
					next = strings.TrimPrefix(target, "<")
				}
				if pages++; pages > 10 {
					t.Fatal("pagination does not end")
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("walked pages (-want +got):\n%s", diff)
			}
			if pages != tt.pages {
				t.Errorf("pages = %d, want %d", pages, tt.pages)
			}
		})
	}

	empty := do(t, h, request{method: "GET", path: "/api/v1/movies?name=nobody-has-this-name"})
	if body, _ := io.ReadAll(empty.Body); string(body) != "[]\n" {
		t.Errorf("empty list body = %q, want []", body)
	}
	if calls := casts.takeCalls(); len(calls) != 0 {
		t.Errorf("lists asked the cast service: %v", calls)
	}
}

// Writes whose cast ids do not all exist, or that cannot be checked, change nothing.
func TestMovieCastCheck(t *testing.T) {
	t.Parallel()
	const unavailable = "the cast service is unavailable, so the cast ids could not be checked; nothing was written, retry later"
	var logs syncBuffer
	casts := newFakeCasts(1, 2, 3)
	h := newServer(t, casts, zerolog.New(&logs))
	m := createMovie(t, h, `{"name":"Existing","genres":["Drama"],"cast_ids":[1,2]}`)
	item := "/api/v1/movies/" + itoa(m.ID)
	casts.takeCalls()

	missing := problemJSON{Status: 422, Detail: "cast_ids names casts that do not exist: 40, 42", Errors: []web.FieldError{
		{Field: "cast_ids", Message: "cast 40 does not exist"},
		{Field: "cast_ids", Message: "cast 42 does not exist"},
	}}
	tests := []struct {
		name string
		// down makes the cast service fail.
		down bool
		req  request
		want problemJSON
		// checked is the list the one cast check must have been given.
		checked []int64
	}{
		{
			name:    "create with missing casts",
			req:     request{method: "POST", path: "/api/v1/movies", body: `{"name":"New","cast_ids":[42,1,40]}`},
			want:    missing,
			checked: []int64{42, 1, 40},
		},
		{
			name:    "replace with missing casts",
			req:     request{method: "PUT", path: item, body: `{"name":"Existing","cast_ids":[42,40,3]}`},
			want:    missing,
			checked: []int64{42, 40, 3},
		},
		{
			name:    "patch with missing casts",
			req:     request{method: "PATCH", path: item, body: `{"name":"Renamed","cast_ids":[1,2,40,42]}`},
			want:    missing,
			checked: []int64{1, 2, 40, 42},
		},
		{
			name:    "create while the cast service is down",
			down:    true,
			req:     request{method: "POST", path: "/api/v1/movies/", body: `{"name":"New","cast_ids":[1]}`},
			want:    problemJSON{Status: 503, Detail: unavailable},
			checked: []int64{1},
		},
		{
			name:    "replace while the cast service is down",
			down:    true,
			req:     request{method: "PUT", path: item + "/", body: `{"name":"Existing","cast_ids":[1,2]}`},
			want:    problemJSON{Status: 503, Detail: unavailable},
			checked: []int64{1, 2},
		},
		{
			name:    "patch of cast_ids while the cast service is down",
			down:    true,
			req:     request{method: "PATCH", path: item, body: `{"cast_ids":[3]}`, header: map[string]string{"Content-Type": "application/merge-patch+json"}},
			want:    problemJSON{Status: 503, Detail: unavailable},
			checked: []int64{3},
		},
	}
	for i, tt := range tests {
		// Sequential: the fake's failure mode and its call log are shared.
		t.Run(tt.name, func(t *testing.T) {
			casts.fail(nil)
			if tt.down {
				casts.fail(errors.New("dial tcp 127.0.0.1:8082: connection refused"))
			}
			requestID := "check-" + strconv.Itoa(i)
			header := map[string]string{"X-Request-Id": requestID}
			maps.Copy(header, tt.req.header)
			tt.req.header = header
			resp := do(t, h, tt.req)
			checkProblem(t, resp, tt.req.path, tt.want)
			want := []castCall{{IDs: tt.checked, RequestID: requestID}}
			if diff := cmp.Diff(want, casts.takeCalls()); diff != "" {
				t.Errorf("cast checks (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]movieJSON{m}, listAll(t, h)); diff != "" {
				t.Errorf("movies after the failed write (-want +got):\n%s", diff)
			}
		})
	}

	// The cause of a 503 is logged once, with the request id; the client never sees it.
	var causes int
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"cast check failed"`) && strings.Contains(line, "connection refused") && strings.Contains(line, `"request_id":"check-`) {
			causes++
		}
	}
	if causes != 3 {
		t.Errorf("%d logged causes of a failed cast check, want one per 503 (3):\n%s", causes, logs.String())
	}

	// Without the cast service, reads and writes that need no check still work.
	casts.fail(errors.New("down"))
	for _, req := range []request{
		{method: "GET", path: item},
		{method: "GET", path: "/api/v1/movies?cast_id=1"},
		{method: "PATCH", path: item, body: `{"plot":"Still editable.","genres":null}`},
		{method: "PATCH", path: item, body: `{"cast_ids":[2,1]}`}, // the same casts in another order
		{method: "POST", path: "/api/v1/movies", body: `{"name":"No cast yet"}`},
		{method: "DELETE", path: item},
	} {
		if resp := do(t, h, req); resp.StatusCode >= 300 {
			body, _ := io.ReadAll(resp.Body)
			t.Errorf("%s %s %s with the cast service down: status %d: %s", req.method, req.path, req.body, resp.StatusCode, body)
		}
	}
	if calls := casts.takeCalls(); len(calls) != 0 {
		t.Errorf("requests that need no check asked the cast service: %v", calls)
	}
}

func TestDocs(t *testing.T) {
	t.Parallel()
	h := api.NewServer(api.Deps{Logger: zerolog.Nop(), Ready: func(context.Context, bool) error { return nil }})

	resp := do(t, h, request{method: "GET", path: "/api/v1/movies/openapi.json"})
	doc := decode[struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}](t, resp)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi.json: openapi %q, want 3.1.0", doc.OpenAPI)
	}
	// Every route of the API is documented, once: by its path without the trailing slash (the
	// form with it is served too, and the document says so).
	want := map[string][]string{
		"/api/v1/movies":             {"get", "post"},
		"/api/v1/movies/{id}":        {"delete", "get", "parameters", "patch", "put"},
		"/internal/v1/movies/events": {"post", "servers"},
	}
	got := map[string][]string{}
	for path, item := range doc.Paths {
		for method := range item {
			got[path] = append(got[path], method)
		}
		slices.Sort(got[path])
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("documented operations (-want +got):\n%s", diff)
	}

	for _, path := range []string{"/api/v1/movies/docs", "/api/v1/movies/docs/"} {
		resp := do(t, h, request{method: "GET", path: path})
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `src="/api/v1/movies/docs/swagger-ui-bundle.js"`) || strings.Contains(string(body), `src="http`) {
			t.Errorf("GET %s: status %d; want 200 and a page that loads its assets from the service", path, resp.StatusCode)
		}
	}
	resp = do(t, h, request{method: "GET", path: "/api/v1/movies/docs/swagger-ui-bundle.js"})
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || len(body) < 100_000 {
		t.Errorf("swagger-ui-bundle.js: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
