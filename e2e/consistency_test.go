package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/e2e/target"
)

// How the two databases stay consistent: deleting a cast writes a cast.deleted event in the cast
// service's outbox, its relay delivers it through Traefik's mesh entrypoint to the movie
// service's internal route, which removes the id from every movie and refuses it from then on.

// eventsPath is the movie service's internal route, routed on the mesh entrypoint only.
const eventsPath = "/internal/v1/movies/events"

// event is the wire form of an event of the cast service's outbox.
type event struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	OccurredAt string `json:"occurred_at"`
	CastID     int64  `json:"cast_id"`
}

// eventResult is the movie service's acknowledgement.
type eventResult struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	MoviesChanged int64  `json:"movies_changed"`
}

// expandedMovie is a movie read with ?expand=casts; Casts is nil when the member is absent.
type expandedMovie struct {
	ID        int64    `json:"id"`
	Name      string   `json:"name"`
	Plot      string   `json:"plot"`
	Genres    []string `json:"genres"`
	CastIDs   []int64  `json:"cast_ids"`
	CreatedAt string   `json:"created_at"`
	UpdatedAt string   `json:"updated_at"`
	Casts     *[]cast  `json:"casts"`
}

func expanded(m movie, casts *[]cast) expandedMovie {
	return expandedMovie{ID: m.ID, Name: m.Name, Plot: m.Plot, Genres: m.Genres, CastIDs: m.CastIDs,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, Casts: casts}
}

func newEventID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	// A version 4 UUID of the RFC 4122 variant.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func castDeletedEvent(t *testing.T, castID int64) event {
	return event{ID: newEventID(t), Type: "cast.deleted", OccurredAt: time.Now().UTC().Format(time.RFC3339Nano), CastID: castID}
}

// meshURL is Traefik's mesh entrypoint: E2E_MESH_URL if set, else where the stack under test
// publishes it (the Compose project on 127.0.0.1 only, through the suite's test override).
func meshURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("E2E_MESH_URL"); u != "" {
		return u
	}
	if suite.target != nil {
		return suite.target.URLs().Mesh
	}
	skip(t, "the mesh entrypoint is not published for the public: set E2E_MESH_URL to where it is reachable")
	return ""
}

// postEvent delivers an event through the mesh entrypoint, as the cast service's relay does, and
// checks the answer against the movie service's OpenAPI document.
func postEvent(t *testing.T, e event) response {
	t.Helper()
	body := jsonBody(t, e)
	req, err := http.NewRequest("POST", meshURL(t)+eventsPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	authorize(req, suiteRelayTokens())
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s through the mesh: %v", eventsPath, err)
	}
	defer resp.Body.Close()
	got := response{Status: resp.StatusCode, Header: resp.Header}
	if got.Body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	checkReq, _ := http.NewRequest("POST", "http://service"+eventsPath, strings.NewReader(body))
	checkReq.Header = req.Header.Clone()
	for _, e := range suite.contracts["/api/v1/movies"].check(checkReq, got.Status, got.Header, got.Body) {
		t.Errorf("POST %s -> %d does not match /api/v1/movies/openapi.json: %s", eventsPath, got.Status, e)
	}
	return got
}

func getMovie(t *testing.T, id int64) (movie, string) {
	t.Helper()
	r := call(t, "GET", "/api/v1/movies/"+itoa(id), "")
	mustStatus(t, "get movie", r, http.StatusOK)
	return decodeAs[movie](t, r), r.Header.Get("ETag")
}

// waitGatewayOK waits until GET path answers 200 through the public entrypoint: a restarted
// service is back in rotation once Traefik's health check has seen it. Until then Traefik itself
// answers (503, plain text), so this does not go through call(), which would count that against
// the services' contract.
func waitGatewayOK(t *testing.T, path string) {
	t.Helper()
	waitFor(t, path+" reachable through the gateway again", 30*time.Second, func() error {
		resp, err := plainClient.Get(suite.gateway + path)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return &statusErr{resp.StatusCode}
		}
		return nil
	})
}

// waitMeshSettled waits until path answers through the mesh entrypoint without a 5xx for longer
// than the recovery period of the mesh's circuit breaker (5s, traefik/dynamic/middlewares.yml):
// an outage trips the breaker, and the tests that run next must not meet it open or recovering.
func waitMeshSettled(t *testing.T, method, path, body string) {
	t.Helper()
	const settled = 6 * time.Second
	var since time.Time
	waitFor(t, "the mesh route to "+path+" answering steadily", time.Minute, func() error {
		req, err := http.NewRequest(method, meshURL(t)+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		authorize(req, tokensFor(path))
		resp, err := plainClient.Do(req)
		if err != nil {
			since = time.Time{}
			return err
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			since = time.Time{}
			return &statusErr{resp.StatusCode}
		}
		if since.IsZero() {
			since = time.Now()
		}
		if d := time.Since(since); d < settled {
			return fmt.Errorf("steady for %s only", d.Round(time.Second))
		}
		return nil
	})
}

// waitCastGone waits until no movie names castID.
func waitCastGone(t *testing.T, castID int64, timeout time.Duration) {
	t.Helper()
	waitFor(t, fmt.Sprintf("no movie names deleted cast %d", castID), timeout, func() error {
		r := call(t, "GET", "/api/v1/movies?limit=1000&cast_id="+itoa(castID), "")
		if r.Status != http.StatusOK {
			return &statusErr{r.Status}
		}
		if left := decodeAs[[]movie](t, r); len(left) > 0 {
			return fmt.Errorf("%d movies still name it", len(left))
		}
		return nil
	})
}

func TestCastDeletionReachesMovies(t *testing.T) {
	t.Parallel()
	gone, kept := createCast(t, unique("Deleted Cast")), createCast(t, unique("Kept Cast"))
	both := createMovie(t, movie{Name: unique("Both Casts"), CastIDs: []int64{gone.ID, kept.ID}})
	only := createMovie(t, movie{Name: unique("Only The Deleted Cast"), CastIDs: []int64{gone.ID}})
	other := createMovie(t, movie{Name: unique("Only The Kept Cast"), CastIDs: []int64{kept.ID}})

	mustStatus(t, "delete cast", call(t, "DELETE", "/api/v1/casts/"+itoa(gone.ID), ""), http.StatusNoContent)
	waitCastGone(t, gone.ID, 10*time.Second)

	for _, tt := range []struct {
		before  movie
		castIDs []int64
		etag    string
	}{
		{both, []int64{kept.ID}, `"2"`},
		{only, []int64{}, `"2"`},
		{other, []int64{kept.ID}, `"1"`},
	} {
		got, etag := getMovie(t, tt.before.ID)
		if !slices.Equal(got.CastIDs, tt.castIDs) || etag != tt.etag {
			t.Errorf("%s: cast_ids %v, ETag %s; want %v, %s", tt.before.Name, got.CastIDs, etag, tt.castIDs, tt.etag)
		}
	}
	// Writing the deleted cast again is refused.
	r := call(t, "PATCH", "/api/v1/movies/"+itoa(other.ID), jsonBody(t, map[string]any{"cast_ids": []int64{kept.ID, gone.ID}}), "Content-Type", "application/merge-patch+json")
	mustStatus(t, "patch naming the deleted cast", r, http.StatusUnprocessableEntity)
}

// TestCastDeletionWhileMoviesDown is not parallel: it stops the movie service. The relay keeps the
// events (rows in the cast database) and retries, through the mesh, with backoff, until the movie
// service is back; no event is lost. E2E_MOVIES_OUTAGE sets how long the outage lasts (5s unless
// set; the "a minute" is E2E_MOVIES_OUTAGE=1m).
func TestCastDeletionWhileMoviesDown(t *testing.T) {
	s := needTarget(t)
	outage := 5 * time.Second
	if v := os.Getenv("E2E_MOVIES_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("E2E_MOVIES_OUTAGE: %v", err)
		}
		outage = d
	}
	var deleted []cast
	for i := range 3 {
		deleted = append(deleted, createCast(t, unique(fmt.Sprintf("Deleted During Outage %d", i))))
	}
	kept := createCast(t, unique("Kept Through Outage"))
	all := createMovie(t, movie{Name: unique("Outage All"), CastIDs: []int64{deleted[0].ID, kept.ID, deleted[1].ID, deleted[2].ID}})
	one := createMovie(t, movie{Name: unique("Outage One"), CastIDs: []int64{deleted[1].ID}})
	acked := meshEventsAcknowledged(t)

	if err := s.StopService(target.ServiceMovies); err != nil {
		t.Fatal(err)
	}
	restarted := false
	restart := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.StartService(ctx, target.ServiceMovies); err != nil {
			t.Fatalf("start movies again: %v", err)
		}
		restarted = true
		waitGatewayOK(t, "/api/v1/movies/"+itoa(one.ID))
	}
	t.Cleanup(func() {
		if !restarted {
			restart()
		}
	})

	for _, c := range deleted {
		mustStatus(t, "delete cast while movies is down", call(t, "DELETE", "/api/v1/casts/"+itoa(c.ID), ""), http.StatusNoContent)
	}
	t.Logf("movies down for %s while the relay retries", outage)
	time.Sleep(outage)
	restart()
	back := time.Now()

	// Worst case: Traefik's health check (2s) and circuit breaker (5s open + 5s recovery) on the
	// mesh, then the relay's backoff (at most 10s).
	for _, c := range deleted {
		waitCastGone(t, c.ID, 45*time.Second)
	}
	t.Logf("every event applied %s after movies was back", time.Since(back).Round(100*time.Millisecond))
	// An incomplete event: 422 once the route works again.
	waitMeshSettled(t, "POST", eventsPath, jsonBody(t, event{ID: newEventID(t), Type: "cast.deleted"}))
	if got, _ := getMovie(t, all.ID); !slices.Equal(got.CastIDs, []int64{kept.ID}) {
		t.Errorf("cast_ids after the outage = %v, want [%d]", got.CastIDs, kept.ID)
	}
	if got, _ := getMovie(t, one.ID); len(got.CastIDs) != 0 {
		t.Errorf("cast_ids after the outage = %v, want []", got.CastIDs)
	}
	// The relay went through the mesh entrypoint: no parallel test runs meanwhile, so the new
	// acknowledged deliveries there are this test's events.
	if got := meshEventsAcknowledged(t) - acked; got < len(deleted) {
		t.Errorf("%d events acknowledged on the mesh entrypoint during the test, want at least %d", got, len(deleted))
	}
}

// meshEventsAcknowledged counts the deliveries to the internal route that Traefik's access log
// shows answered 2xx on the mesh entrypoint.
func meshEventsAcknowledged(t *testing.T) int {
	t.Helper()
	entries, err := readAccessLog()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.EntryPointName == "mesh" && strings.HasPrefix(e.RouterName, "movies-internal@") &&
			e.RequestPath == eventsPath && e.Status/100 == 2 {
			n++
		}
	}
	return n
}

// A redelivered event is acknowledged again and changes nothing.
func TestEventDuplicateDelivery(t *testing.T) {
	t.Parallel()
	meshURL(t)
	c, kept := createCast(t, unique("Twice Deleted")), createCast(t, unique("Stays"))
	m := createMovie(t, movie{Name: unique("Duplicate Delivery"), CastIDs: []int64{c.ID, kept.ID}})
	// The event is made up here; delete the cast for real afterwards, so that the databases agree.
	t.Cleanup(func() { call(t, "DELETE", "/api/v1/casts/"+itoa(c.ID), "") })

	e := castDeletedEvent(t, c.ID)
	r := postEvent(t, e)
	mustStatus(t, "first delivery", r, http.StatusOK)
	if got := decodeAs[eventResult](t, r); got != (eventResult{ID: e.ID, Status: "applied", MoviesChanged: 1}) {
		t.Errorf("first delivery = %+v, want applied to 1 movie", got)
	}
	afterFirst, etag := getMovie(t, m.ID)
	r = postEvent(t, e)
	mustStatus(t, "second delivery", r, http.StatusOK)
	if got := decodeAs[eventResult](t, r); got != (eventResult{ID: e.ID, Status: "duplicate"}) {
		t.Errorf("second delivery = %+v, want a duplicate", got)
	}
	afterSecond, etag2 := getMovie(t, m.ID)
	if diff := cmp.Diff(afterFirst, afterSecond); diff != "" || etag != `"2"` || etag2 != etag {
		t.Errorf("the second delivery changed the movie (ETag %s then %s) (-first +second):\n%s", etag, etag2, diff)
	}
	if !slices.Equal(afterSecond.CastIDs, []int64{kept.ID}) {
		t.Errorf("cast_ids = %v, want [%d]", afterSecond.CastIDs, kept.ID)
	}
}

// The race between a write's cast check and the cast's deletion: the event reaches the movie
// service after the check found the cast (simulated by delivering it while the cast service still
// has the cast), and the write is refused all the same.
func TestDeletedCastRefusedOnWrite(t *testing.T) {
	t.Parallel()
	t.Run("event overtakes the check", func(t *testing.T) {
		t.Parallel()
		meshURL(t)
		c := createCast(t, unique("Deleted Under Our Feet"))
		t.Cleanup(func() { call(t, "DELETE", "/api/v1/casts/"+itoa(c.ID), "") })
		name := unique("Race")
		m := createMovie(t, movie{Name: name, CastIDs: []int64{}})
		mustStatus(t, "deliver the event", postEvent(t, castDeletedEvent(t, c.ID)), http.StatusOK)

		item := "/api/v1/movies/" + itoa(m.ID)
		body := jsonBody(t, map[string]any{"name": name, "cast_ids": []int64{c.ID}})
		for _, tt := range []struct{ method, path, body, contentType string }{
			{"POST", "/api/v1/movies", body, "application/json"},
			{"PUT", item, body, "application/json"},
			{"PATCH", item, jsonBody(t, map[string]any{"cast_ids": []int64{c.ID}}), "application/merge-patch+json"},
		} {
			r := call(t, tt.method, tt.path, tt.body, "Content-Type", tt.contentType)
			mustStatus(t, tt.method+" naming the deleted cast", r, http.StatusUnprocessableEntity)
			want := []fieldError{{Field: "cast_ids", Message: "cast " + itoa(c.ID) + " does not exist"}}
			if diff := cmp.Diff(want, asProblem(t, r).Errors); diff != "" {
				t.Errorf("%s: 422 errors (-want +got):\n%s", tt.method, diff)
			}
		}
		if got := moviesNamed(t, name); len(got) != 1 || len(got[0].CastIDs) != 0 {
			t.Errorf("movies after refused writes: %+v, want the one, unchanged", got)
		}
	})
	t.Run("write after the deletion", func(t *testing.T) {
		t.Parallel()
		c := createCast(t, unique("Just Deleted"))
		mustStatus(t, "delete cast", call(t, "DELETE", "/api/v1/casts/"+itoa(c.ID), ""), http.StatusNoContent)
		r := call(t, "POST", "/api/v1/movies", jsonBody(t, map[string]any{"name": unique("Too Late"), "cast_ids": []int64{c.ID}}))
		mustStatus(t, "create naming a deleted cast", r, http.StatusUnprocessableEntity)
	})
}

func TestMovieExpandCasts(t *testing.T) {
	t.Parallel()
	r := call(t, "POST", "/api/v1/casts", jsonBody(t, map[string]any{"name": unique("Expanded A"), "nationality": "Danish"}))
	mustStatus(t, "create cast", r, http.StatusCreated)
	a, b := decodeAs[cast](t, r), createCast(t, unique("Expanded B"))
	name := unique("Expanded Movie")
	m := createMovie(t, movie{Name: name, CastIDs: []int64{b.ID, a.ID}})
	bare := createMovie(t, movie{Name: name + " bare", CastIDs: []int64{}})

	for _, path := range []string{"/api/v1/movies/" + itoa(m.ID) + "?expand=casts", "/api/v1/movies/" + itoa(m.ID) + "/?expand=casts"} {
		r := call(t, "GET", path, "")
		mustStatus(t, path, r, http.StatusOK)
		if diff := cmp.Diff(expanded(m, &[]cast{b, a}), decodeAs[expandedMovie](t, r)); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", path, diff)
		}
		if h := r.Header.Get("Expansion-Unavailable"); h != "" {
			t.Errorf("GET %s: Expansion-Unavailable %q with the cast service up", path, h)
		}
	}
	r = call(t, "GET", "/api/v1/movies?expand=casts&name="+url.QueryEscape(name), "")
	mustStatus(t, "list ?expand=casts", r, http.StatusOK)
	want := []expandedMovie{expanded(m, &[]cast{b, a}), expanded(bare, &[]cast{})}
	if diff := cmp.Diff(want, decodeAs[[]expandedMovie](t, r)); diff != "" {
		t.Errorf("list ?expand=casts (-want +got):\n%s", diff)
	}
	// Without expand there is no casts member.
	if got := decodeAs[expandedMovie](t, call(t, "GET", "/api/v1/movies/"+itoa(m.ID), "")); got.Casts != nil {
		t.Errorf("casts without ?expand: %v", *got.Casts)
	}
	for _, path := range []string{"/api/v1/movies/" + itoa(m.ID) + "?expand=directors", "/api/v1/movies?expand=casts,plot"} {
		mustStatus(t, path, call(t, "GET", path, ""), http.StatusBadRequest)
	}
}

// TestMovieExpandCastsDown is not parallel: it stops the cast service.
func TestMovieExpandCastsDown(t *testing.T) {
	needTarget(t)
	c := createCast(t, unique("Unreachable Cast"))
	name := unique("Expanded While Down")
	m := createMovie(t, movie{Name: name, CastIDs: []int64{c.ID}})

	stopCastsUntilCleanup(t, c.ID)

	unexpanded := func(path string) response {
		t.Helper()
		r := call(t, "GET", path, "")
		mustStatus(t, path+" with the cast service down", r, http.StatusOK)
		if h := r.Header.Get("Expansion-Unavailable"); h != "casts" {
			t.Errorf("GET %s with the cast service down: Expansion-Unavailable %q, want casts", path, h)
		}
		return r
	}
	// The movies are complete, only without casts.
	got := decodeAs[expandedMovie](t, unexpanded("/api/v1/movies/"+itoa(m.ID)+"?expand=casts"))
	if diff := cmp.Diff(expanded(m, nil), got); diff != "" {
		t.Errorf("movie with the cast service down (-want +got):\n%s", diff)
	}
	page := decodeAs[[]expandedMovie](t, unexpanded("/api/v1/movies?expand=casts&name="+url.QueryEscape(name)))
	if diff := cmp.Diff([]expandedMovie{expanded(m, nil)}, page); diff != "" {
		t.Errorf("page with the cast service down (-want +got):\n%s", diff)
	}
}

// The internal route exists on the mesh entrypoint only.
func TestInternalRouteOnlyOnMesh(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"POST", "GET"} {
		for _, path := range []string{eventsPath, eventsPath + "/", "/internal/"} {
			req, _ := http.NewRequest(method, suite.gateway+path, strings.NewReader(jsonBody(t, castDeletedEvent(t, 1))))
			req.Header.Set("Content-Type", "application/json")
			resp, err := plainClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s through the public entrypoint: status %d, want 404", method, path, resp.StatusCode)
			}
		}
	}

	var routers []traefikRouter
	getAdmin(t, "/api/http/routers", &routers)
	i := slices.IndexFunc(routers, func(r traefikRouter) bool { return strings.HasPrefix(r.Name, "movies-internal@") })
	if i < 0 {
		t.Fatal("router movies-internal is not in Traefik's API")
	}
	if r := routers[i]; !slices.Equal(r.EntryPoints, []string{"mesh"}) || r.Status != "enabled" || r.Rule != "PathPrefix(`/internal/v1/movies`)" {
		t.Errorf("router movies-internal = %+v, want enabled on mesh only", r)
	}

	// On the mesh the route answers (here, that the event is incomplete).
	meshURL(t)
	r := postEvent(t, event{ID: newEventID(t), Type: "cast.deleted", OccurredAt: time.Now().UTC().Format(time.RFC3339)})
	mustStatus(t, "incomplete event through the mesh", r, http.StatusUnprocessableEntity)
	checkProblem(t, "POST "+eventsPath, r)
}
