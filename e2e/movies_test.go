package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/movies-microservices/e2e/target"
)

// movie is the wire form of a movie.
type movie struct {
	ID        int64    `json:"id"`
	Name      string   `json:"name"`
	Plot      string   `json:"plot"`
	Genres    []string `json:"genres"`
	CastIDs   []int64  `json:"cast_ids"`
	CreatedAt string   `json:"created_at"`
	UpdatedAt string   `json:"updated_at"`
}

var ignoreMovieTimes = cmpopts.IgnoreFields(movie{}, "ID", "CreatedAt", "UpdatedAt")

// writable is the request body that sets m's client-settable fields.
func (m movie) writable(t testing.TB) string {
	return jsonBody(t, map[string]any{"name": m.Name, "plot": m.Plot, "genres": m.Genres, "cast_ids": m.CastIDs})
}

func createMovie(t *testing.T, m movie) movie {
	t.Helper()
	r := call(t, "POST", "/api/v1/movies", m.writable(t))
	mustStatus(t, "create movie", r, http.StatusCreated)
	return decodeAs[movie](t, r)
}

// moviesNamed lists every movie whose name contains name, walking all pages.
func moviesNamed(t *testing.T, name string) []movie {
	t.Helper()
	var all []movie
	next := "/api/v1/movies?limit=100&name=" + url.QueryEscape(name)
	for next != "" {
		r := call(t, "GET", next, "")
		mustStatus(t, "list movies", r, http.StatusOK)
		all = append(all, decodeAs[[]movie](t, r)...)
		next = linkNext(t, r)
	}
	return all
}

func TestMovieCRUD(t *testing.T) {
	t.Parallel()
	a, b := createCast(t, unique("Tilda Swinton")), createCast(t, unique("Bill Murray"))
	name := unique("The Grand Budapest Hotel")
	want := movie{Name: name, Plot: "A concierge and his lobby boy.", Genres: []string{"comedy", "drama"}, CastIDs: []int64{a.ID, b.ID}}

	r := call(t, "POST", "/api/v1/movies/", want.writable(t), "X-Request-Id", "e2e-movie-create")
	mustStatus(t, "POST", r, http.StatusCreated)
	created := decodeAs[movie](t, r)
	if diff := cmp.Diff(want, created, ignoreMovieTimes); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	item := r.Header.Get("Location")
	if item != "/api/v1/movies/"+itoa(created.ID) {
		t.Fatalf("Location = %q", item)
	}
	etag := r.Header.Get("ETag")
	for _, path := range []string{item, item + "/"} {
		r := call(t, "GET", path, "")
		mustStatus(t, "GET "+path, r, http.StatusOK)
		if diff := cmp.Diff(created, decodeAs[movie](t, r)); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", path, diff)
		}
	}

	want.CastIDs = []int64{b.ID}
	want.Genres = []string{"comedy"}
	r = call(t, "PUT", item+"/", want.writable(t), "If-Match", etag)
	mustStatus(t, "PUT", r, http.StatusOK)
	if diff := cmp.Diff(want, decodeAs[movie](t, r), ignoreMovieTimes); diff != "" {
		t.Errorf("after PUT (-want +got):\n%s", diff)
	}
	mustStatus(t, "PUT with a stale ETag", call(t, "PUT", item, want.writable(t), "If-Match", etag), http.StatusPreconditionFailed)

	r = call(t, "PATCH", item, `{"plot":"Murder at the hotel."}`, "Content-Type", "application/merge-patch+json")
	mustStatus(t, "PATCH", r, http.StatusOK)
	want.Plot = "Murder at the hotel."
	if diff := cmp.Diff(want, decodeAs[movie](t, r), ignoreMovieTimes); diff != "" {
		t.Errorf("after PATCH (-want +got):\n%s", diff)
	}

	mustStatus(t, "DELETE", call(t, "DELETE", item+"/", ""), http.StatusNoContent)
	mustStatus(t, "GET after DELETE", call(t, "GET", item, ""), http.StatusNotFound)
}

func TestMovieUnknownCastIsRejected(t *testing.T) {
	t.Parallel()
	known := createCast(t, unique("Known Cast"))
	name := unique("Nobody Starred")
	const missingA, missingB = 9_000_000_001, 9_000_000_002

	r := call(t, "POST", "/api/v1/movies", jsonBody(t, map[string]any{"name": name, "cast_ids": []int64{known.ID, missingA, missingB}}))
	mustStatus(t, "create with unknown casts", r, http.StatusUnprocessableEntity)
	for _, id := range []int64{missingA, missingB} {
		if !strings.Contains(string(r.Body), itoa(id)) {
			t.Errorf("422 does not name missing cast %d: %s", id, r.Body)
		}
	}
	if p := asProblem(t, r); len(p.Errors) != 2 {
		t.Errorf("422 errors = %+v, want one per missing cast", p.Errors)
	}
	if got := moviesNamed(t, name); len(got) != 0 {
		t.Errorf("a rejected movie was written: %+v", got)
	}

	m := createMovie(t, movie{Name: name, CastIDs: []int64{known.ID}})
	r = call(t, "PATCH", "/api/v1/movies/"+itoa(m.ID), jsonBody(t, map[string]any{"cast_ids": []int64{missingA}}), "Content-Type", "application/merge-patch+json")
	mustStatus(t, "patch with an unknown cast", r, http.StatusUnprocessableEntity)
	r = call(t, "GET", "/api/v1/movies/"+itoa(m.ID), "")
	if diff := cmp.Diff(m, decodeAs[movie](t, r)); diff != "" {
		t.Errorf("movie changed by a rejected patch (-want +got):\n%s", diff)
	}
}

func TestMovieListFiltersAndPages(t *testing.T) {
	t.Parallel()
	c := createCast(t, unique("Filter Cast"))
	tag := unique("Filtered")
	genre := strings.ReplaceAll(unique("genre"), " ", "-")
	var withCast, all []movie
	for i := range 5 {
		m := movie{Name: tag + " " + itoa(int64(i)), Genres: []string{"drama"}}
		if i%2 == 0 {
			m.CastIDs = []int64{c.ID}
			m.Genres = []string{genre}
		}
		created := createMovie(t, m)
		all = append(all, created)
		if i%2 == 0 {
			withCast = append(withCast, created)
		}
	}

	var paged []movie
	next := "/api/v1/movies/?limit=2&name=" + url.QueryEscape(strings.ToLower(tag))
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := call(t, "GET", next, "")
		mustStatus(t, "GET "+next, r, http.StatusOK)
		paged = append(paged, decodeAs[[]movie](t, r)...)
		next = linkNext(t, r)
	}
	if diff := cmp.Diff(all, paged); diff != "" {
		t.Errorf("walked pages (-want +got):\n%s", diff)
	}
	for _, q := range []string{"cast_id=" + itoa(c.ID), "genre=" + url.QueryEscape(genre)} {
		r := call(t, "GET", "/api/v1/movies?"+q, "")
		mustStatus(t, q, r, http.StatusOK)
		if diff := cmp.Diff(withCast, decodeAs[[]movie](t, r)); diff != "" {
			t.Errorf("filter %s (-want +got):\n%s", q, diff)
		}
	}
	mustStatus(t, "bad filter", call(t, "GET", "/api/v1/movies?cast_id=abc", ""), http.StatusBadRequest)
}

// TestCastServiceDown is not parallel: it stops the cast service, which the parallel tests need.
// Go runs it before any of them resumes.
func TestCastServiceDown(t *testing.T) {
	needTarget(t)
	c := createCast(t, unique("Before The Outage"))
	existing := createMovie(t, movie{Name: unique("Readable During Outage"), CastIDs: []int64{c.ID}})
	name := unique("Written During Outage")

	stopCastsUntilCleanup(t, c.ID)

	r := call(t, "POST", "/api/v1/movies", jsonBody(t, map[string]any{"name": name, "cast_ids": []int64{c.ID}}))
	mustStatus(t, "create while casts is down", r, http.StatusServiceUnavailable)
	if p := asProblem(t, r); !strings.Contains(strings.ToLower(p.Detail), "cast service") {
		t.Errorf("503 detail %q does not say the cast service is unavailable", p.Detail)
	}
	r = call(t, "PATCH", "/api/v1/movies/"+itoa(existing.ID), `{"cast_ids":[]}`, "Content-Type", "application/merge-patch+json")
	if r.Status != http.StatusOK {
		t.Errorf("a patch that needs no cast check failed while casts is down: %d %s", r.Status, r.Body)
	}
	// Reads never call the cast service.
	r = call(t, "GET", "/api/v1/movies/"+itoa(existing.ID), "")
	mustStatus(t, "read while casts is down", r, http.StatusOK)
	if got := moviesNamed(t, name); len(got) != 0 {
		t.Errorf("a movie was written while the cast check could not run: %+v", got)
	}
}

// stopCastsUntilCleanup stops the cast service of the suite's stack and, when the test ends, starts
// it again and waits until it is back in Traefik's rotation (probed with cast probeID) and the
// mesh's circuit breaker, which the outage tripped, has closed: later tests must meet neither.
func stopCastsUntilCleanup(t *testing.T, probeID int64) {
	t.Helper()
	if err := suite.target.StopService(target.ServiceCasts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := suite.target.StartService(ctx, target.ServiceCasts); err != nil {
			t.Fatalf("start casts again: %v", err)
		}
		waitGatewayOK(t, "/api/v1/casts/"+itoa(probeID))
		waitMeshSettled(t, "GET", "/api/v1/casts/"+itoa(probeID), "")
	})
}

type statusErr struct{ status int }

func (e *statusErr) Error() string { return "status " + itoa(int64(e.status)) }
