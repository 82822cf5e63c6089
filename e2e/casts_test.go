package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cast is the wire form of a cast.
type cast struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	Nationality *string `json:"nationality"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

// unique returns a name no other test run uses, so tests never depend on an empty database.
func unique(prefix string) string {
	var b [6]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	return prefix + " " + hex.EncodeToString(b[:])
}

func ptr[T any](v T) *T { return &v }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func createCast(t *testing.T, name string) cast {
	t.Helper()
	r := call(t, "POST", "/api/v1/casts", jsonBody(t, map[string]any{"name": name}))
	mustStatus(t, "create cast", r, http.StatusCreated)
	return decodeAs[cast](t, r)
}

func TestCastCRUD(t *testing.T) {
	t.Parallel()
	name := unique("Juliette Binoche")
	r := call(t, "POST", "/api/v1/casts/", jsonBody(t, map[string]any{"name": name, "nationality": "French"}), "X-Request-Id", "e2e-cast-create")
	mustStatus(t, "POST", r, http.StatusCreated)
	created := decodeAs[cast](t, r)
	if diff := cmp.Diff(cast{ID: created.ID, Name: name, Nationality: ptr("French")}, created, cmpopts.IgnoreFields(cast{}, "CreatedAt", "UpdatedAt")); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if got := r.Header.Get("X-Request-Id"); got != "e2e-cast-create" {
		t.Errorf("X-Request-Id = %q, want the one sent", got)
	}
	item := r.Header.Get("Location")
	if item != "/api/v1/casts/"+itoa(created.ID) {
		t.Fatalf("Location = %q", item)
	}
	etag := r.Header.Get("ETag")

	for _, path := range []string{item, item + "/"} {
		r := call(t, "GET", path, "")
		mustStatus(t, "GET "+path, r, http.StatusOK)
		if diff := cmp.Diff(created, decodeAs[cast](t, r)); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", path, diff)
		}
		if r.Header.Get("ETag") != etag {
			t.Errorf("GET %s: ETag %q, want %q", path, r.Header.Get("ETag"), etag)
		}
	}

	r = call(t, "PUT", item, jsonBody(t, map[string]any{"name": name + " II"}), "If-Match", etag)
	mustStatus(t, "PUT", r, http.StatusOK)
	if got := decodeAs[cast](t, r); got.Name != name+" II" || got.Nationality != nil {
		t.Errorf("after PUT: %+v, want the new name and no nationality", got)
	}
	r = call(t, "PATCH", item+"/", `{"nationality":"French"}`, "Content-Type", "application/merge-patch+json", "If-Match", etag)
	mustStatus(t, "PATCH with the first ETag", r, http.StatusPreconditionFailed)
	r = call(t, "PATCH", item+"/", `{"nationality":"French"}`, "Content-Type", "application/merge-patch+json")
	mustStatus(t, "PATCH", r, http.StatusOK)
	if got := decodeAs[cast](t, r); got.Name != name+" II" || got.Nationality == nil || *got.Nationality != "French" {
		t.Errorf("after PATCH: %+v", got)
	}

	mustStatus(t, "DELETE", call(t, "DELETE", item, ""), http.StatusNoContent)
	mustStatus(t, "GET after DELETE", call(t, "GET", item, ""), http.StatusNotFound)
	mustStatus(t, "DELETE again", call(t, "DELETE", item+"/", ""), http.StatusNotFound)
}

func TestCastErrorsThroughGateway(t *testing.T) {
	t.Parallel()
	c := createCast(t, unique("Error Target"))
	item := "/api/v1/casts/" + itoa(c.ID)
	tests := []struct {
		method, path, body string
		headers            []string
		want               int
	}{
		{"POST", "/api/v1/casts", `{"name":`, nil, 400},
		// Wrong JSON types are 422, as the original system's own tests expect.
		{"POST", "/api/v1/casts", `{"name":2}`, nil, 422},
		{"POST", "/api/v1/casts", `{"name":"A","nationality":2}`, nil, 422},
		{"PATCH", item, `{"nationality":[]}`, nil, 422},
		{"POST", "/api/v1/casts", `{"name":"x","born":1}`, nil, 400},
		{"POST", "/api/v1/casts", `{"name":"x"}`, []string{"Content-Type", "text/plain"}, 415},
		{"POST", "/api/v1/casts", `{"name":""}`, nil, 422},
		// Over the gateway's 1 MiB limit: Traefik refuses it, still as problem+json.
		{"POST", "/api/v1/casts", `{"name":"` + strings.Repeat("a", 1<<20) + `"}`, nil, 413},
		{"PUT", item, `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, nil, 413},
		{"POST", "/api/v1/casts", `{"name":"` + strings.Repeat("n", 101) + `"}`, nil, 422},
		{"PUT", item, `{"name":"x"}`, []string{"If-Match", `"999999"`}, 412},
		{"PATCH", item, `{"name":null}`, nil, 422},
		{"GET", "/api/v1/casts/0", "", nil, 404},
		{"GET", "/api/v1/casts/-1", "", nil, 404},
		{"GET", "/api/v1/casts/1e3", "", nil, 404},
		{"GET", "/api/v1/casts/99999999999999999999", "", nil, 404},
		{"GET", "/api/v1/casts/nope/deeper", "", nil, 404},
		{"DELETE", "/api/v1/casts", "", nil, 405},
		{"GET", "/api/v1/casts?limit=0", "", nil, 400},
		{"GET", "/api/v1/casts?id=x", "", nil, 400},
	}
	for _, tt := range tests {
		name := tt.method + " " + tt.path + " " + tt.body
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := call(t, tt.method, tt.path, tt.body, tt.headers...)
			mustStatus(t, tt.method+" "+tt.path, r, tt.want)
			if tt.want == 405 && r.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
	r := call(t, "GET", item, "")
	if diff := cmp.Diff(c, decodeAs[cast](t, r)); diff != "" {
		t.Errorf("cast changed by rejected requests (-want +got):\n%s", diff)
	}
}

// linkNext returns the target of a Link rel="next" header, or "".
func linkNext(t testing.TB, r response) string {
	t.Helper()
	link := r.Header.Get("Link")
	if link == "" {
		return ""
	}
	target, params, _ := strings.Cut(link, ";")
	if strings.TrimSpace(params) != `rel="next"` {
		t.Fatalf("Link %q is not rel=\"next\"", link)
	}
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(target), "<"), ">")
}

func TestCastPaginationAndFilters(t *testing.T) {
	t.Parallel()
	tag := unique("Pager")
	var want []cast
	for i := range 7 {
		want = append(want, createCast(t, tag+" "+strconv.Itoa(i)))
	}

	// Walk every page of the name filter through Link to the end.
	var got []cast
	next := "/api/v1/casts?limit=3&name=" + strings.ReplaceAll(strings.ToUpper(tag), " ", "+")
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := call(t, "GET", next, "")
		mustStatus(t, "GET "+next, r, http.StatusOK)
		got = append(got, decodeAs[[]cast](t, r)...)
		next = linkNext(t, r)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("all pages (-want +got):\n%s", diff)
	}

	r := call(t, "GET", "/api/v1/casts/?id="+itoa(want[6].ID)+"&id="+itoa(want[2].ID)+"&id=999999999", "")
	mustStatus(t, "batch lookup", r, http.StatusOK)
	if diff := cmp.Diff([]cast{want[2], want[6]}, decodeAs[[]cast](t, r)); diff != "" {
		t.Errorf("batch lookup (-want +got):\n%s", diff)
	}
}
