package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/movies/internal/web"
	"github.com/rs/zerolog"
)

type eventJSON struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	MoviesChanged int64  `json:"movies_changed"`
}

const eventsPath = "/internal/v1/movies/events"

func castDeleted(eventID string, castID int64) string {
	return `{"id":"` + eventID + `","type":"cast.deleted","occurred_at":"2024-05-01T10:00:00Z","cast_id":` + itoa(castID) + `}`
}

func postEvent(t *testing.T, h http.Handler, body string) eventJSON {
	t.Helper()
	resp := do(t, h, request{method: "POST", path: eventsPath, body: body})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s %s: status %d", eventsPath, body, resp.StatusCode)
	}
	return decode[eventJSON](t, resp)
}

// A cast.deleted event removes the cast from every movie, once: a redelivery answers 200 and
// changes nothing. From then on writes naming the cast are refused, even while the cast service
// still says it exists (the event overtook the cast check).
func TestEventCastDeleted(t *testing.T) {
	t.Parallel()
	casts := newFakeCasts(1, 2, 3)
	h := newServer(t, casts, zerolog.Nop())
	both := createMovie(t, h, `{"name":"Both","cast_ids":[1,2]}`)
	other := createMovie(t, h, `{"name":"Other","cast_ids":[3]}`)
	casts.takeCalls()

	const eventID = "6f1c3a52-8d0e-4b8a-9a57-0d6f3e2b7c11"
	if got := postEvent(t, h, castDeleted(eventID, 1)); got != (eventJSON{ID: eventID, Status: "applied", MoviesChanged: 1}) {
		t.Errorf("first delivery = %+v, want applied to 1 movie", got)
	}
	// A redelivery (the relay did not get the first answer), even with the id in capitals.
	if got := postEvent(t, h, castDeleted(strings.ToUpper(eventID), 1)); got != (eventJSON{ID: eventID, Status: "duplicate"}) {
		t.Errorf("second delivery = %+v, want a duplicate that changed nothing", got)
	}
	// Another event for the same cast (say, a second relay's copy) changes nothing either.
	if got := postEvent(t, h, castDeleted("0c9e5a39-2f43-4b3e-8f0b-6e3d9f1a2b44", 1)); got.Status != "applied" || got.MoviesChanged != 0 {
		t.Errorf("another event for the same cast = %+v, want applied to no movie", got)
	}

	resp := do(t, h, request{method: "GET", path: "/api/v1/movies/" + itoa(both.ID)})
	if got := resp.Header.Get("ETag"); got != `"2"` {
		t.Errorf("ETag after the removal = %s, want \"2\" (one new version, not one per delivery)", got)
	}
	if got := decode[movieJSON](t, resp).CastIDs; !slices.Equal(got, []int64{2}) {
		t.Errorf("cast_ids after the removal = %v, want [2]", got)
	}
	resp = do(t, h, request{method: "GET", path: "/api/v1/movies/" + itoa(other.ID)})
	if got := resp.Header.Get("ETag"); got != `"1"` {
		t.Errorf("a movie without the cast changed: ETag %s", got)
	}

	deleted := problemJSON{Status: 422, Detail: "cast_ids names casts that do not exist: 1", Errors: []web.FieldError{{Field: "cast_ids", Message: "cast 1 does not exist"}}}
	for _, req := range []request{
		{method: "POST", path: "/api/v1/movies", body: `{"name":"Late","cast_ids":[3,1]}`},
		{method: "PUT", path: "/api/v1/movies/" + itoa(other.ID), body: `{"name":"Other","cast_ids":[1]}`},
		{method: "PATCH", path: "/api/v1/movies/" + itoa(other.ID), body: `{"cast_ids":[3,1]}`},
	} {
		checkProblem(t, do(t, h, req), req.path, deleted)
	}
	if diff := cmp.Diff([]string{"Both", "Other"}, movieNames(listAll(t, h))); diff != "" {
		t.Errorf("movies after refused writes (-want +got):\n%s", diff)
	}
	// The cast service was asked, and said the cast exists: the refusal came from the event.
	if calls := casts.takeCalls(); len(calls) != 3 {
		t.Errorf("cast checks = %v, want one per write", calls)
	}
}

func movieNames(movies []movieJSON) []string {
	var names []string
	for _, m := range movies {
		names = append(names, m.Name)
	}
	return names
}

func TestEventErrors(t *testing.T) {
	t.Parallel()
	h := newServer(t, newFakeCasts(), zerolog.Nop())
	const id = "6f1c3a52-8d0e-4b8a-9a57-0d6f3e2b7c11"
	tests := []struct {
		name string
		req  request
		want problemJSON
	}{
		{
			name: "not JSON",
			req:  request{method: "POST", path: eventsPath, body: `{"id":`},
			want: problemJSON{Status: 400, Detail: "body is truncated JSON"},
		},
		{
			name: "wrong content type",
			req:  request{method: "POST", path: eventsPath, body: castDeleted(id, 1), header: map[string]string{"Content-Type": "text/plain"}},
			want: problemJSON{Status: 415, Detail: "Content-Type must be application/json"},
		},
		{
			name: "missing envelope",
			req:  request{method: "POST", path: eventsPath, body: `{"cast_id":1}`},
			want: problemJSON{Status: 422, Detail: "the request has invalid fields", Errors: []web.FieldError{
				{Field: "id", Message: "is required"},
				{Field: "occurred_at", Message: "is required"},
				{Field: "type", Message: "is required"},
			}},
		},
		{
			name: "bad id and cast id",
			req:  request{method: "POST", path: eventsPath, body: `{"id":"42","type":"cast.deleted","occurred_at":"2024-05-01T10:00:00Z","cast_id":0}`},
			want: problemJSON{Status: 422, Detail: "the request has invalid fields", Errors: []web.FieldError{
				{Field: "cast_id", Message: "must be greater than 0"},
				{Field: "id", Message: "must be a UUID"},
			}},
		},
		{
			name: "cast.deleted without cast id",
			req:  request{method: "POST", path: eventsPath, body: `{"id":"` + id + `","type":"cast.deleted","occurred_at":"2024-05-01T10:00:00Z"}`},
			want: problemJSON{Status: 422, Detail: "the request has invalid fields", Errors: []web.FieldError{{Field: "cast_id", Message: "is required for a cast.deleted event"}}},
		},
		{
			name: "wrong method",
			req:  request{method: "GET", path: eventsPath},
			want: problemJSON{Status: 405, Detail: "method GET is not allowed here; allowed: POST"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkProblem(t, do(t, h, tt.req), tt.req.path, tt.want)
		})
	}
}

// Producers may add fields and event types: the service acknowledges what it does not know.
func TestEventTolerantReader(t *testing.T) {
	t.Parallel()
	h := newServer(t, newFakeCasts(), zerolog.Nop())
	got := postEvent(t, h, `{"id":"0c9e5a39-2f43-4b3e-8f0b-6e3d9f1a2b44","type":"cast.renamed","occurred_at":"2024-05-01T10:00:00Z","cast_id":4,"name":"New"}`)
	if got.Status != "ignored" {
		t.Errorf("unknown event type: %+v, want ignored", got)
	}
	resp := do(t, h, request{method: "POST", path: eventsPath + "/", body: `{"id":"a1c3a52f-8d0e-4b8a-9a57-0d6f3e2b7c11","type":"cast.deleted","occurred_at":"2024-05-01T10:00:00+02:00","cast_id":4,"reason":"merged"}`})
	if resp.StatusCode != http.StatusOK || decode[eventJSON](t, resp).Status != "applied" {
		t.Errorf("cast.deleted with an extra field, on the trailing-slash path: status %d, want 200 applied", resp.StatusCode)
	}
}
