package api_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/movies/internal/api"
	"github.com/movies-microservices/movies/internal/web"
	"github.com/rs/zerolog"
)

// castJSON is a cast embedded by ?expand=casts.
type castJSON struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	Nationality *string `json:"nationality"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

// expandedMovieJSON tells an absent casts member (nil) from an empty one.
type expandedMovieJSON struct {
	ID      int64       `json:"id"`
	CastIDs []int64     `json:"cast_ids"`
	Casts   *[]castJSON `json:"casts"`
}

func wantCasts(ids ...int64) *[]castJSON {
	casts := []castJSON{}
	for _, id := range ids {
		c := castJSON{ID: id, Name: "Cast " + itoa(id), CreatedAt: "2024-01-01T00:00:00Z", UpdatedAt: "2024-01-01T00:00:00Z"}
		if id%2 == 0 {
			c.Nationality = ptr("Even")
		}
		casts = append(casts, c)
	}
	return &casts
}

func TestMovieExpandCasts(t *testing.T) {
	t.Parallel()
	casts := newFakeCasts(1, 2, 3)
	h := newServer(t, casts, zerolog.Nop())
	a := createMovie(t, h, `{"name":"A","cast_ids":[3,1]}`)
	b := createMovie(t, h, `{"name":"B","cast_ids":[2,3]}`)
	none := createMovie(t, h, `{"name":"None"}`)
	// Cast 2 is deleted in the cast service; the event has not arrived yet.
	delete(casts.existing, 2)
	casts.takeCalls()

	// One movie: its casts in cast_ids order, from one lookup.
	resp := do(t, h, request{method: "GET", path: "/api/v1/movies/" + itoa(a.ID) + "?expand=casts", header: map[string]string{"X-Request-Id": "expand-1"}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `"1"` || resp.Header.Get(api.ExpansionUnavailableHeader) != "" {
		t.Errorf("GET ?expand=casts: status %d, ETag %s, %s %q", resp.StatusCode, resp.Header.Get("ETag"), api.ExpansionUnavailableHeader, resp.Header.Get(api.ExpansionUnavailableHeader))
	}
	if diff := cmp.Diff(expandedMovieJSON{ID: a.ID, CastIDs: []int64{3, 1}, Casts: wantCasts(3, 1)}, decode[expandedMovieJSON](t, resp)); diff != "" {
		t.Errorf("expanded movie (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]castCall{{IDs: []int64{3, 1}, RequestID: "expand-1", Lookup: true}}, casts.takeCalls()); diff != "" {
		t.Errorf("cast service calls (-want +got):\n%s", diff)
	}

	// A page: one lookup for all its movies; an unknown id is left out; no cast ids, no casts.
	resp = do(t, h, request{method: "GET", path: "/api/v1/movies/?expand=casts&limit=10"})
	want := []expandedMovieJSON{
		{ID: a.ID, CastIDs: []int64{3, 1}, Casts: wantCasts(3, 1)},
		{ID: b.ID, CastIDs: []int64{2, 3}, Casts: wantCasts(3)},
		{ID: none.ID, CastIDs: []int64{}, Casts: wantCasts()},
	}
	if diff := cmp.Diff(want, decode[[]expandedMovieJSON](t, resp)); diff != "" {
		t.Errorf("expanded page (-want +got):\n%s", diff)
	}
	if calls := casts.takeCalls(); len(calls) != 1 || !calls[0].Lookup {
		t.Errorf("cast service calls for a page = %v, want one lookup", calls)
	}

	// Without expand, no casts member and no call.
	resp = do(t, h, request{method: "GET", path: "/api/v1/movies/" + itoa(a.ID)})
	if got := decode[expandedMovieJSON](t, resp); got.Casts != nil {
		t.Errorf("casts without expand: %v", got.Casts)
	}
	if calls := casts.takeCalls(); len(calls) != 0 {
		t.Errorf("a read without expand called the cast service: %v", calls)
	}

	// The cast service down: the movies all the same, without casts, and the header says so.
	casts.fail(errors.New("dial tcp: connection refused"))
	unexpanded := func(path string) *http.Response {
		t.Helper()
		resp := do(t, h, request{method: "GET", path: path})
		if resp.StatusCode != http.StatusOK || resp.Header.Get(api.ExpansionUnavailableHeader) != "casts" {
			t.Errorf("GET %s with the cast service down: status %d, %s %q; want 200 and casts", path, resp.StatusCode,
				api.ExpansionUnavailableHeader, resp.Header.Get(api.ExpansionUnavailableHeader))
		}
		return resp
	}
	got := decode[expandedMovieJSON](t, unexpanded("/api/v1/movies/"+itoa(b.ID)+"/?expand=casts"))
	if diff := cmp.Diff(expandedMovieJSON{ID: b.ID, CastIDs: []int64{2, 3}}, got); diff != "" {
		t.Errorf("movie with the cast service down (-want +got):\n%s", diff)
	}
	page := decode[[]expandedMovieJSON](t, unexpanded("/api/v1/movies?expand=casts"))
	if len(page) != 3 || page[0].Casts != nil || page[1].Casts != nil || page[2].Casts != nil {
		t.Errorf("page with the cast service down = %+v, want 3 movies without casts", page)
	}
}

func TestMovieExpandErrors(t *testing.T) {
	t.Parallel()
	casts := newFakeCasts(1)
	h := newServer(t, casts, zerolog.Nop())
	m := createMovie(t, h, `{"name":"A","cast_ids":[1]}`)
	casts.takeCalls()
	for _, tt := range []struct {
		path string
		errs []web.FieldError
	}{
		{"/api/v1/movies/" + itoa(m.ID) + "?expand=cast", []web.FieldError{{Field: "expand", Message: `"cast" cannot be expanded (known: casts)`}}},
		{"/api/v1/movies/" + itoa(m.ID) + "?expand=casts,genres", []web.FieldError{{Field: "expand", Message: `"genres" cannot be expanded (known: casts)`}}},
		{"/api/v1/movies?expand=", []web.FieldError{{Field: "expand", Message: `"" cannot be expanded (known: casts)`}}},
		{"/api/v1/movies?expand=casts&expand=directors&limit=0", []web.FieldError{
			{Field: "expand", Message: `"directors" cannot be expanded (known: casts)`},
			{Field: "limit", Message: "must be a whole number from 1 to 1000"},
		}},
	} {
		checkProblem(t, do(t, h, request{method: "GET", path: tt.path}), tt.path,
			problemJSON{Status: 400, Detail: "the query string has invalid parameters", Errors: tt.errs})
	}
	if calls := casts.takeCalls(); len(calls) != 0 {
		t.Errorf("bad expansions called the cast service: %v", calls)
	}
}
