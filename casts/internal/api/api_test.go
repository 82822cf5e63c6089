package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/movies-microservices/casts/internal/api"
	"github.com/movies-microservices/casts/internal/auth"
	"github.com/movies-microservices/casts/internal/auth/authtest"
	"github.com/movies-microservices/casts/internal/cast"
	"github.com/movies-microservices/casts/internal/postgres/pgtest"
	"github.com/movies-microservices/casts/internal/web"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// castJSON and problemJSON are the wire forms the tests expect.
type castJSON struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	Nationality *string `json:"nationality"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

type problemJSON struct {
	Type     string           `json:"type"`
	Title    string           `json:"title"`
	Status   int              `json:"status"`
	Detail   string           `json:"detail"`
	Instance string           `json:"instance"`
	Errors   []web.FieldError `json:"errors"`
}

func newServer(t *testing.T) http.Handler {
	t.Helper()
	return newServerWithToken(t, api.Deps{
		Logger: zerolog.Nop(),
		Store:  cast.NewStore(pgtest.Pool(t)),
		Ready:  func(context.Context, bool) error { return nil },
	})
}

// newServerWithToken returns the server of d that trusts a stand-in identity provider, and that
// sends the requests without an Authorization header with a token granting casts:write.
func newServerWithToken(t *testing.T, d api.Deps) http.Handler {
	t.Helper()
	iss := authtest.New(t)
	d.Auth = auth.NewVerifier(iss.Config())
	return authtest.WithToken(iss.Token(t, "casts:write"), api.NewServer(d))
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

func createCast(t *testing.T, h http.Handler, body string) castJSON {
	t.Helper()
	resp := do(t, h, request{method: "POST", path: "/api/v1/casts", body: body})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create cast %s: status %d", body, resp.StatusCode)
	}
	return decode[castJSON](t, resp)
}

func ptr[T any](v T) *T { return &v }

func TestCastErrors(t *testing.T) {
	t.Parallel()
	h := newServer(t)
	c := createCast(t, h, `{"name":"Existing"}`)
	item := "/api/v1/casts/" + itoa(c.ID)

	tests := []struct {
		name string
		req  request
		want problemJSON
		// allow is the Allow header expected on a 405.
		allow string
	}{
		{
			name: "malformed JSON",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"name":}`},
			want: problemJSON{Status: 400, Detail: "body is not valid JSON (at byte 9): invalid character '}' looking for beginning of value"},
		},
		{
			name: "truncated JSON",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"name":"x"`},
			want: problemJSON{Status: 400, Detail: "body is truncated JSON"},
		},
		{
			name: "empty body",
			req:  request{method: "POST", path: "/api/v1/casts", header: map[string]string{"Content-Type": "application/json"}},
			want: problemJSON{Status: 400, Detail: "body must not be empty"},
		},
		{
			name: "two JSON values",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"name":"a"}{"name":"b"}`},
			want: problemJSON{Status: 400, Detail: "body must contain a single JSON value"},
		},
		{
			// 422 as in the original system (FastAPI): well-formed JSON whose content is invalid.
			name: "wrong type",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"name":2}`},
			want: problemJSON{Status: 422, Detail: `field "name" must be a JSON string, not a JSON number`, Errors: []web.FieldError{{Field: "name", Message: "must be a JSON string, not a JSON number"}}},
		},
		{
			name: "wrong types in both fields",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"name":["A"],"nationality":2}`},
			want: problemJSON{Status: 422, Detail: "the request has 2 values of the wrong type", Errors: []web.FieldError{
				{Field: "name", Message: "must be a JSON string, not a JSON array"},
				{Field: "nationality", Message: "must be a JSON string, not a JSON number"},
			}},
		},
		{
			name: "wrong type in a replace",
			req:  request{method: "PUT", path: item, body: `{"name":"A","nationality":true}`},
			want: problemJSON{Status: 422, Detail: `field "nationality" must be a JSON string, not a JSON boolean`, Errors: []web.FieldError{{Field: "nationality", Message: "must be a JSON string, not a JSON boolean"}}},
		},
		{
			name: "an unknown field is a 400 even beside a wrong type",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"name":2,"age":3}`},
			want: problemJSON{Status: 400, Detail: `body has an unknown field "age"`, Errors: []web.FieldError{{Field: "age", Message: "unknown field"}}},
		},
		{
			name: "not an object",
			req:  request{method: "POST", path: "/api/v1/casts", body: `["x"]`},
			want: problemJSON{Status: 400, Detail: "body must be a JSON object, not a JSON array"},
		},
		{
			name: "unknown field",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"name":"x","age":3}`},
			want: problemJSON{Status: 400, Detail: `body has an unknown field "age"`, Errors: []web.FieldError{{Field: "age", Message: "unknown field"}}},
		},
		{
			name: "wrong content type",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"name":"x"}`, header: map[string]string{"Content-Type": "text/plain"}},
			want: problemJSON{Status: 415, Detail: "Content-Type must be application/json"},
		},
		{
			name: "body over 1 MiB",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"name":"` + strings.Repeat("a", 1<<20) + `"}`},
			want: problemJSON{Status: 413, Detail: "body must not be larger than 1048576 bytes"},
		},
		{
			name: "missing name",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"nationality":"French"}`},
			want: problemJSON{Status: 422, Detail: "the request has invalid fields", Errors: []web.FieldError{{Field: "name", Message: "is required"}}},
		},
		{
			name: "blank name and long nationality",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"name":"   ","nationality":"` + strings.Repeat("é", 101) + `"}`},
			want: problemJSON{Status: 422, Detail: "the request has invalid fields", Errors: []web.FieldError{
				{Field: "name", Message: "must not be blank"},
				{Field: "nationality", Message: "must have at most 100 characters"},
			}},
		},
		{
			name: "name of 101 characters",
			req:  request{method: "PUT", path: item, body: `{"name":"` + strings.Repeat("x", 101) + `"}`},
			want: problemJSON{Status: 422, Detail: "the request has invalid fields", Errors: []web.FieldError{{Field: "name", Message: "must have at most 100 characters"}}},
		},
		{
			name: "NUL in name",
			req:  request{method: "POST", path: "/api/v1/casts", body: `{"name":"a\u0000b"}`},
			want: problemJSON{Status: 422, Detail: "the request has invalid fields", Errors: []web.FieldError{{Field: "name", Message: "must not contain NUL characters"}}},
		},
		{
			name: "patch removes the name",
			req:  request{method: "PATCH", path: item, body: `{"name":null}`},
			want: problemJSON{Status: 422, Detail: "the request has invalid fields", Errors: []web.FieldError{{Field: "name", Message: "is required"}}},
		},
		{
			name: "patch with unknown field",
			req:  request{method: "PATCH", path: item, body: `{"born":1950}`},
			want: problemJSON{Status: 400, Detail: `body has an unknown field "born"`, Errors: []web.FieldError{{Field: "born", Message: "unknown field"}}},
		},
		{
			name: "patch with a wrong type",
			req:  request{method: "PATCH", path: item, body: `{"nationality":{"a":1}}`},
			want: problemJSON{Status: 422, Detail: `field "nationality" must be a JSON string, not a JSON object`, Errors: []web.FieldError{{Field: "nationality", Message: "must be a JSON string, not a JSON object"}}},
		},
		{
			name: "patch that is not an object",
			req:  request{method: "PATCH", path: item, body: `"x"`},
			want: problemJSON{Status: 400, Detail: "a merge patch must be a JSON object"},
		},
		{
			name: "stale If-Match",
			req:  request{method: "PUT", path: item, body: `{"name":"x"}`, header: map[string]string{"If-Match": `"999"`}},
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
			name: "missing cast",
			req:  request{method: "GET", path: "/api/v1/casts/999999"},
			want: problemJSON{Status: 404, Detail: "no cast has this id"},
		},
		{
			name: "delete missing cast",
			req:  request{method: "DELETE", path: "/api/v1/casts/999999"},
			want: problemJSON{Status: 404, Detail: "no cast has this id"},
		},
		{
			name: "non-numeric id",
			req:  request{method: "GET", path: "/api/v1/casts/abc"},
			want: problemJSON{Status: 404, Detail: "no resource at /api/v1/casts/abc"},
		},
		{
			name: "negative id",
			req:  request{method: "PUT", path: "/api/v1/casts/-1", body: `{"name":"x"}`},
			want: problemJSON{Status: 404, Detail: "no resource at /api/v1/casts/-1"},
		},
		{
			name: "out-of-range id",
			req:  request{method: "GET", path: "/api/v1/casts/99999999999999999999"},
			want: problemJSON{Status: 404, Detail: "no resource at /api/v1/casts/99999999999999999999"},
		},
		{
			name: "zero id",
			req:  request{method: "DELETE", path: "/api/v1/casts/0"},
			want: problemJSON{Status: 404, Detail: "no resource at /api/v1/casts/0"},
		},
		{
			name: "unknown route",
			req:  request{method: "GET", path: "/api/v1/actors"},
			want: problemJSON{Status: 404, Detail: "no resource at /api/v1/actors"},
		},
		{
			name:  "wrong method on the collection",
			req:   request{method: "DELETE", path: "/api/v1/casts"},
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
			req:  request{method: "GET", path: "/api/v1/casts?limit=1001&after=x&id=0&sort=name"},
			want: problemJSON{Status: 400, Detail: "the query string has invalid parameters", Errors: []web.FieldError{
				{Field: "after", Message: "must be a cast id (a whole number of 0 or more)"},
				{Field: "id", Message: `"0" is not a cast id (a whole number of 1 or more)`},
				{Field: "limit", Message: "must be a whole number from 1 to 1000"},
				{Field: "sort", Message: "is not a known query parameter (known: limit, after, id, name)"},
			}},
		},
		{
			name: "invalid UTF-8 in the name filter",
			req:  request{method: "GET", path: "/api/v1/casts?name=%FF"},
			want: problemJSON{Status: 400, Detail: "the query string has invalid parameters", Errors: []web.FieldError{{Field: "name", Message: "must be valid UTF-8"}}},
		},
		{
			name: "NUL in the name filter",
			req:  request{method: "GET", path: "/api/v1/casts/?name=a%00b"},
			want: problemJSON{Status: 400, Detail: "the query string has invalid parameters", Errors: []web.FieldError{{Field: "name", Message: "must not contain NUL characters"}}},
		},
	}
	// The group ends only when every parallel subtest has, so the check after it sees their effect.
	t.Run("group", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				resp := do(t, h, tt.req)
				if got := resp.Header.Get("Content-Type"); got != "application/problem+json" {
					t.Errorf("Content-Type = %q, want application/problem+json", got)
				}
				if got := resp.Header.Get("Allow"); got != tt.allow {
					t.Errorf("Allow = %q, want %q", got, tt.allow)
				}
				want := tt.want
				want.Type = "about:blank"
				want.Title = http.StatusText(want.Status)
				want.Instance = strings.SplitN(tt.req.path, "?", 2)[0]
				got := decode[problemJSON](t, resp)
				if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b web.FieldError) bool { return a.Field < b.Field })); diff != "" {
					t.Errorf("%s %s: problem (-want +got):\n%s", tt.req.method, tt.req.path, diff)
				}
				if resp.StatusCode != want.Status {
					t.Errorf("status = %d, want %d", resp.StatusCode, want.Status)
				}
			})
		}
	})

	// None of the bad writes above may have changed the cast.
	got := decode[castJSON](t, do(t, h, request{method: "GET", path: item}))
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("cast after bad requests (-want +got):\n%s", diff)
	}
}

func TestCastLifecycle(t *testing.T) {
	t.Parallel()
	h := newServer(t)

	resp := do(t, h, request{method: "POST", path: "/api/v1/casts/", body: `{"name":"  Isabelle Huppert ","nationality":" French "}`})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST status = %d, want 201", resp.StatusCode)
	}
	created := decode[castJSON](t, resp)
	item := "/api/v1/casts/" + itoa(created.ID)
	if diff := cmp.Diff(castJSON{ID: created.ID, Name: "Isabelle Huppert", Nationality: ptr("French")}, created,
		cmpopts.IgnoreFields(castJSON{}, "CreatedAt", "UpdatedAt")); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if got := resp.Header.Get("Location"); got != item {
		t.Errorf("Location = %q, want %q", got, item)
	}
	if got := resp.Header.Get("ETag"); got != `"1"` {
		t.Errorf("ETag = %q, want %q", got, `"1"`)
	}

	for _, path := range []string{item, item + "/"} {
		resp := do(t, h, request{method: "GET", path: path})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `"1"` {
			t.Errorf("GET %s: status %d ETag %q, want 200 \"1\"", path, resp.StatusCode, resp.Header.Get("ETag"))
		}
		if diff := cmp.Diff(created, decode[castJSON](t, resp)); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", path, diff)
		}
	}

	// Merge patch: null removes the nationality, the name stays.
	resp = do(t, h, request{method: "PATCH", path: item, body: `{"nationality":null}`,
		header: map[string]string{"Content-Type": "application/merge-patch+json", "If-Match": `"1"`}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `"2"` {
		t.Fatalf("PATCH: status %d ETag %q, want 200 \"2\"", resp.StatusCode, resp.Header.Get("ETag"))
	}
	patched := decode[castJSON](t, resp)
	if patched.Name != "Isabelle Huppert" || patched.Nationality != nil || patched.CreatedAt != created.CreatedAt {
		t.Errorf("patched = %+v, want the name kept, no nationality and the same created_at", patched)
	}

	// Replace: an absent nationality is none; a stale ETag is refused.
	resp = do(t, h, request{method: "PUT", path: item + "/", body: `{"name":"I. Huppert","nationality":"French"}`, header: map[string]string{"If-Match": `"2", "7"`}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: status %d, want 200", resp.StatusCode)
	}
	if got := decode[castJSON](t, resp); got.Name != "I. Huppert" || got.Nationality == nil || *got.Nationality != "French" {
		t.Errorf("replaced = %+v", got)
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
}

func TestCastListPagination(t *testing.T) {
	t.Parallel()
	h := newServer(t)
	var want []castJSON
	for _, name := range []string{"Zhang Ziyi", "Gong Li", "Tony Leung", "Maggie Cheung", "Zhang Yimou"} {
		want = append(want, createCast(t, h, `{"name":"`+name+`"}`))
	}

	// Walk the pages through Link until there is none.
	var got []castJSON
	next := "/api/v1/casts/?limit=2"
	pages := 0
	for next != "" {
		resp := do(t, h, request{method: "GET", path: next})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", next, resp.StatusCode)
		}
		got = append(got, decode[[]castJSON](t, resp)...)
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
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("walked pages (-want +got):\n%s", diff)
	}
	if pages != 3 {
		t.Errorf("pages = %d, want 3", pages)
	}

	filtered := decode[[]castJSON](t, do(t, h, request{method: "GET",
		path: "/api/v1/casts?name=ZHANG&id=" + itoa(want[0].ID) + "&id=" + itoa(want[1].ID) + "&id=" + itoa(want[4].ID)}))
	if diff := cmp.Diff([]castJSON{want[0], want[4]}, filtered); diff != "" {
		t.Errorf("filtered (-want +got):\n%s", diff)
	}
	empty := do(t, h, request{method: "GET", path: "/api/v1/casts?name=nobody-has-this-name"})
	if body, _ := io.ReadAll(empty.Body); string(body) != "[]\n" {
		t.Errorf("empty list body = %q, want []", body)
	}
}

func TestDocs(t *testing.T) {
	t.Parallel()
	h := api.NewServer(api.Deps{Logger: zerolog.Nop(), Ready: func(context.Context, bool) error { return nil }})

	resp := do(t, h, request{method: "GET", path: "/api/v1/casts/openapi.json"})
	doc := decode[struct {
		OpenAPI string                     `json:"openapi"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}](t, resp)
	if doc.OpenAPI != "3.1.0" || len(doc.Paths) == 0 {
		t.Errorf("openapi.json: openapi %q with %d paths, want 3.1.0 with paths", doc.OpenAPI, len(doc.Paths))
	}

	for _, path := range []string{"/api/v1/casts/docs", "/api/v1/casts/docs/"} {
		resp := do(t, h, request{method: "GET", path: path})
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `src="/api/v1/casts/docs/swagger-ui-bundle.js"`) || strings.Contains(string(body), `src="http`) {
			t.Errorf("GET %s: status %d; want 200 and a page that loads its assets from the service", path, resp.StatusCode)
		}
	}
	resp = do(t, h, request{method: "GET", path: "/api/v1/casts/docs/swagger-ui-bundle.js"})
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || len(body) < 100_000 {
		t.Errorf("swagger-ui-bundle.js: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
