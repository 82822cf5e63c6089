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
	"github.com/movies-microservices/movies/internal/movie"
	"github.com/movies-microservices/movies/internal/web"
	"github.com/movies-microservices/movies/internal/web/webtest"
)

// The fuzz targets below check the request decoding and query parsing of the movie service: on
// any input they must not panic, and they must either accept it, producing what the store can
// take, or refuse it with an error that web.RespondError turns into a 4xx problem. Their seeds run
// with every `go test`; `go test -fuzz` explores beyond them.

// bodySeeds are bodies for the decoding targets: valid, malformed and hostile.
var bodySeeds = []string{
	`{"name":"x","genres":["a",2]}`, `{"name":"x","cast_ids":[1,"2",3.0]}`, `{"name":"x","cast_ids":[1E2]}`, `{"Cast_IDs":[true]}`,
	`{"name":"Heat","plot":"A heist.","genres":["crime","drama"],"cast_ids":[1,2]}`, `{"name":"x"}`,
	`{"name":"  padded  ","plot":"  ","genres":["  noir  "]}`, `{"name":null}`, `{"genres":null,"cast_ids":null}`, `{}`,
	`null`, `[]`, `"x"`, `1`, ``, `{`, `{"name":`, `{"name":"x"}{}`, `{"name":1}`, `{"name":"x","plot":[]}`,
	`{"name":"x","genres":"drama"}`, `{"name":"x","genres":[1]}`, `{"name":"x","genres":[null]}`, `{"name":"x","genres":["a","A"]}`,
	`{"name":"x","genres":[""]}`, `{"name":"x","cast_ids":"1"}`, `{"name":"x","cast_ids":["1"]}`, `{"name":"x","cast_ids":[1.5]}`,
	`{"name":"x","cast_ids":[1e3]}`, `{"name":"x","cast_ids":[0]}`, `{"name":"x","cast_ids":[-1]}`, `{"name":"x","cast_ids":[null]}`,
	`{"name":"x","cast_ids":[1,1]}`, `{"name":"x","cast_ids":[9223372036854775807]}`, `{"name":"x","cast_ids":[9223372036854775808]}`,
	`{"name":"x","cast_ids":[99999999999999999999]}`, `{"name":"x","cast_ids":[1e400]}`, `{"name":"x","id":1}`,
	`{"name":"\u0000"}`, `{"name":"x","plot":"\u0000"}`, `{"name":"x","genres":["a\u0000"]}`, "{\"name\":\"\xff\"}",
	`{"name":"` + strings.Repeat("n", 201) + `"}`, `{"name":"x","plot":"` + strings.Repeat("p", 5001) + `"}`,
	`{"name":"x","genres":["` + strings.Repeat("g", 51) + `"]}`,
	`{"name":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	`{"name":"'; DROP TABLE movies; --","genres":["' OR '1'='1"]}`,
}

// requireClientError fails unless err becomes a 4xx problem response.
func requireClientError(t *testing.T, err error) {
	t.Helper()
	w := httptest.NewRecorder()
	web.RespondError(w, httptest.NewRequest(http.MethodPost, "/api/v1/movies", nil), err)
	if w.Code < 400 || w.Code > 499 || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("error %q (%T) answered %d %q, want a 4xx problem", err, err, w.Code, w.Header().Get("Content-Type"))
	}
}

// storableText reports whether s is trimmed UTF-8 without NUL of at most max characters.
func storableText(s string, max int) bool {
	return s == strings.TrimSpace(s) && utf8.ValidString(s) && !strings.ContainsRune(s, 0) && utf8.RuneCountInString(s) <= max
}

// checkDecoded finishes a fuzzed body as the handler does: a request decoded without err is
// normalized and validated; any error must be the client's, and a request that passes must be
// storable.
func checkDecoded(t *testing.T, v *validator.Validate, req movieRequest, err error) {
	t.Helper()
	if err == nil {
		req.normalize()
		err = validateRequest(v, req)
	}
	if err != nil {
		requireClientError(t, err)
		webtest.RequireKnownFields[movieRequest](t, err)
		return
	}
	checkStorable(t, req)
}

// checkStorable fails unless req, once decoded, normalized and validated, is what the store takes:
// the cast ids still need the cast service's check, but they are positive and distinct.
func checkStorable(t *testing.T, req movieRequest) {
	t.Helper()
	if req.Name == nil || *req.Name == "" || !storableText(*req.Name, 200) {
		t.Errorf("valid request with name %v: want 1 to 200 characters of trimmed UTF-8 without NUL", req.Name)
	}
	if req.Plot != nil && !storableText(*req.Plot, 5000) {
		t.Errorf("valid request with plot %q", *req.Plot)
	}
	if len(req.Genres) > 20 {
		t.Errorf("valid request with %d genres", len(req.Genres))
	}
	seen := map[string]bool{}
	for _, g := range req.Genres {
		if g == "" || !storableText(g, 50) || seen[strings.ToLower(g)] {
			t.Errorf("valid request with genres %q", req.Genres)
		}
		seen[strings.ToLower(g)] = true
	}
	if len(req.CastIDs) > 100 {
		t.Errorf("valid request with %d cast ids", len(req.CastIDs))
	}
	ids := map[int64]bool{}
	for _, id := range req.CastIDs {
		if id < 1 || ids[id] {
			t.Errorf("valid request with cast ids %v", req.CastIDs)
		}
		ids[id] = true
	}
}

// FuzzDecodeMovieRequest is the body of POST and PUT: web.DecodeJSON into movieRequest, then validation.
func FuzzDecodeMovieRequest(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s), "application/json")
	}
	for _, ct := range []string{"", "text/plain", "application/json; charset=utf-8", "APPLICATION/JSON", "application/json;;", "application/merge-patch+json"} {
		f.Add([]byte(`{"name":"x"}`), ct)
	}
	v := newValidator()
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/movies", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		var req movieRequest
		err := web.DecodeJSON(httptest.NewRecorder(), r, &req, "application/json")
		checkDecoded(t, v, req, err)
	})
}

// FuzzDecodeMoviePatch is the body of PATCH: web.DecodeJSON into a merge patch, which must be an
// object, applied to a movie, then validation.
func FuzzDecodeMoviePatch(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"plot":null,"genres":null}`))
	f.Add([]byte(`{"cast_ids":[3]}`))
	v := newValidator()
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPatch, "/api/v1/movies/1", bytes.NewReader(body))
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
		current := movie.Movie{Name: "Current", Plot: "Current plot.", Genres: []string{"drama"}, CastIDs: []int64{1, 9007199254740993}}
		req, err := applyMergePatch(patchBase(current), patch)
		checkDecoded(t, v, req, err)
	})
}

// FuzzParseMovieListQuery is the query string of GET /api/v1/movies, parsed as r.URL.Query does.
func FuzzParseMovieListQuery(f *testing.F) {
	for _, s := range []string{
		"", "limit=10", "limit=1000&after=5", "genre=drama", "genre=+Drama+", "cast_id=3", "name=heat&genre=crime&cast_id=1&limit=2",
		"limit=0", "limit=1001", "limit=abc", "limit=", "after=-1", "cast_id=0", "cast_id=-1", "cast_id=x", "cast_id=",
		"cast_id=9223372036854775808", "genre=%00", "name=%00", "genre=%ff", "name=%c3", "id=1", "foo=1", "%zz=1",
		"limit=1;after=2", "cast_id=1&cast_id=x", "genre=" + strings.Repeat("g", 10000),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		q, _ := url.ParseQuery(rawQuery) // r.URL.Query() drops the pairs it cannot parse, too
		p, err := parseMovieListQuery(q)
		if err != nil {
			w := httptest.NewRecorder()
			web.RespondError(w, httptest.NewRequest(http.MethodGet, "/api/v1/movies", nil), err)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("query %q: error %q answered %d, want 400", rawQuery, err, w.Code)
			}
			return
		}
		if p.Limit < 1 || p.Limit > maxPageSize || p.After < 0 || p.CastID < 0 {
			t.Errorf("query %q accepted as limit %d, after %d, cast id %d", rawQuery, p.Limit, p.After, p.CastID)
		}
		if strings.ContainsRune(p.Name, 0) || strings.ContainsRune(p.Genre, 0) {
			t.Errorf("query %q accepted a filter with NUL", rawQuery)
		}
	})
}
