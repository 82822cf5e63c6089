package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
	"github.com/movies-microservices/casts/internal/web"
	"github.com/movies-microservices/casts/internal/web/webtest"
)

// The fuzz targets below check the request decoding and query parsing of the cast service: on any
// input they must not panic, and they must either accept it, producing what the store can take,
// or refuse it with an error that web.RespondError turns into a 4xx problem. Their seeds run with
// every `go test`; `go test -fuzz` explores beyond them.

// bodySeeds are bodies for the decoding targets: valid, malformed and hostile.
var bodySeeds = []string{
	`{"name":"A","nationality":2}`, `{"name":2,"nationality":[1]}`, `{"NAME":2}`,
	`{"name":"Juliette Binoche","nationality":"French"}`, `{"name":"x"}`, `{"name":"  padded  ","nationality":"  "}`,
	`{"name":null}`, `{"nationality":null}`, `{}`, `null`, `[]`, `"x"`, `1`, ``, ` `, `{`, `{"name":`, `{"name":"x"`,
	`{"name":"x"}{"name":"y"}`, `{"name":"x"} x`, `{"name":1}`, `{"name":true}`, `{"name":["x"]}`, `{"name":{"a":1}}`,
	`{"name":"x","born":1}`, `{"NAME":"case"}`, `{"name":"\u0000"}`, "{\"name\":\"a\x00b\"}", "{\"name\":\"\xff\xfe\"}",
	`{"name":"\ud800"}`, `{"name":99999999999999999999}`, `{"name":1e400}`, `{"name":"x","nationality":1e-400}`,
	`{"name":"` + strings.Repeat("n", 101) + `"}`, `{"name":"` + strings.Repeat("é", 100) + `"}`,
	`{"name":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	`{"x":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200) + `}`,
	"\xef\xbb\xbf{\"name\":\"bom\"}", `{"name":"x",}`, `{'name':'x'}`, `{"name":"Robert'); DROP TABLE casts;--"}`,
}

// requireClientError fails unless err becomes a 4xx problem response.
func requireClientError(t *testing.T, err error) {
	t.Helper()
	w := httptest.NewRecorder()
	web.RespondError(w, httptest.NewRequest(http.MethodPost, "/api/v1/casts", nil), err)
	if w.Code < 400 || w.Code > 499 || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("error %q (%T) answered %d %q, want a 4xx problem", err, err, w.Code, w.Header().Get("Content-Type"))
	}
}

// checkDecoded finishes a fuzzed body as the handler does: a request decoded without err is
// normalized and validated; any error must be the client's, and a request that passes must be
// storable.
func checkDecoded(t *testing.T, v *validator.Validate, req castRequest, err error) {
	t.Helper()
	if err == nil {
		req.normalize()
		err = validateRequest(v, req)
	}
	if err != nil {
		requireClientError(t, err)
		webtest.RequireKnownFields[castRequest](t, err)
		return
	}
	checkStorable(t, req)
}

// checkStorable fails unless req, once decoded, normalized and validated, is what the store takes.
func checkStorable(t *testing.T, req castRequest) {
	t.Helper()
	if req.Name == nil {
		t.Fatal("valid request without a name")
	}
	if n := *req.Name; n == "" || n != strings.TrimSpace(n) || utf8.RuneCountInString(n) > 100 || !utf8.ValidString(n) || strings.ContainsRune(n, 0) {
		t.Errorf("valid request with name %q: want 1 to 100 characters of trimmed UTF-8 without NUL", n)
	}
	if req.Nationality != nil {
		if n := *req.Nationality; n == "" || n != strings.TrimSpace(n) || utf8.RuneCountInString(n) > 100 || !utf8.ValidString(n) || strings.ContainsRune(n, 0) {
			t.Errorf("valid request with nationality %q: want nothing, or 1 to 100 characters of trimmed UTF-8 without NUL", n)
		}
	}
}

// FuzzDecodeCastRequest is the body of POST and PUT: web.DecodeJSON into castRequest, then validation.
func FuzzDecodeCastRequest(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s), "application/json")
	}
	for _, ct := range []string{"", "text/plain", "application/json; charset=utf-8", "APPLICATION/JSON", "application/json;;", "application/merge-patch+json"} {
		f.Add([]byte(`{"name":"x"}`), ct)
	}
	v := newValidator()
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/casts", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		var req castRequest
		err := web.DecodeJSON(httptest.NewRecorder(), r, &req, "application/json")
		checkDecoded(t, v, req, err)
	})
}

// FuzzDecodeCastPatch is the body of PATCH: web.DecodeJSON into a merge patch, which must be an object,
// applied to a cast, then validation.
func FuzzDecodeCastPatch(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"nationality":null}`))
	f.Add([]byte(`{"name":"x","nationality":{"a":null}}`))
	v := newValidator()
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPatch, "/api/v1/casts/1", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/merge-patch+json")
		var patch any
		err := web.DecodeJSON(httptest.NewRecorder(), r, &patch, "application/merge-patch+json", "application/json")
		if err != nil {
			requireClientError(t, err)
			return
		}
		if _, ok := patch.(map[string]any); !ok {
			return // the handler answers 400 itself
		}
		name, nationality := "Current Name", "Current Nationality"
		req, err := applyMergePatch(castRequest{Name: &name, Nationality: &nationality}, patch)
		checkDecoded(t, v, req, err)
	})
}

// FuzzParseCastListQuery is the query string of GET /api/v1/casts, parsed as r.URL.Query does.
func FuzzParseCastListQuery(f *testing.F) {
	for _, s := range []string{
		"", "limit=10", "limit=1000&after=5", "id=1&id=2&id=3", "name=bin", "name=Bin+oche&limit=2&after=0",
		"limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=", "limit=1e3", "limit=99999999999999999999",
		"after=-1", "after=x", "id=0", "id=-1", "id=x", "id=", strings.Repeat("id=1&", 1001), "name=%00", "name=a%00b",
		"name=%ff", "foo=1", "LIMIT=1", "%zz=1", "limit=1;after=2", "limit=5&limit=x", "id=9223372036854775807",
		"id=9223372036854775808", "name=" + strings.Repeat("a", 10000),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		q, _ := url.ParseQuery(rawQuery) // r.URL.Query() drops the pairs it cannot parse, too
		p, err := parseCastListQuery(q)
		if err != nil {
			w := httptest.NewRecorder()
			web.RespondError(w, httptest.NewRequest(http.MethodGet, "/api/v1/casts", nil), err)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("query %q: error %q answered %d, want 400", rawQuery, err, w.Code)
			}
			return
		}
		if p.Limit < 1 || p.Limit > maxPageSize || p.After < 0 || len(p.IDs) > maxPageSize {
			t.Errorf("query %q accepted as limit %d, after %d, %d ids", rawQuery, p.Limit, p.After, len(p.IDs))
		}
		for _, id := range p.IDs {
			if id < 1 {
				t.Errorf("query %q accepted id %d", rawQuery, id)
			}
		}
		if strings.ContainsRune(p.Name, 0) {
			t.Errorf("query %q accepted a name with NUL", rawQuery)
		}
	})
}
