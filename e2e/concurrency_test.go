package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// racers is how many writers race with the same ETag.
const racers = 20

// raceWrites sends one request per body at the same moment, each with If-Match etag, and returns
// the answers in the order of bodies. Every answer gets call's checks, without failing the
// test from a goroutine.
func raceWrites(t *testing.T, method, path, contentType, etag string, bodies []string) []response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	answers := make([]response, len(bodies))
	failures := make([]error, len(bodies))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, body := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, method, suite.gateway+path, strings.NewReader(body))
			if err != nil {
				failures[i] = err
				return
			}
			req.Header.Set("Content-Type", contentType)
			req.Header.Set("If-Match", etag)
			authorize(req, suiteTokens)
			<-start
			answers[i], failures[i] = doRequest(req)
			if failures[i] == nil {
				if issues := answerIssues(method, path, req.Header, []byte(body), answers[i]); len(issues) > 0 {
					failures[i] = fmt.Errorf("%s", strings.Join(issues, "; "))
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range failures {
		if err != nil {
			t.Errorf("%s %s with body %s: %v", method, path, bodies[i], err)
		}
	}
	return answers
}

// winner checks that exactly one answer is 200 and every other one 412, and returns the 200.
func winner(t *testing.T, answers []response) (int, response) {
	t.Helper()
	won := -1
	counts := map[int]int{}
	for i, r := range answers {
		counts[r.Status]++
		if r.Status == http.StatusOK {
			won = i
		}
	}
	if counts[http.StatusOK] != 1 || counts[http.StatusPreconditionFailed] != len(answers)-1 {
		t.Fatalf("answers by status %v, want exactly one 200 and %d × 412", counts, len(answers)-1)
	}
	return won, answers[won]
}

func TestConcurrentPatchesWithOneETag(t *testing.T) {
	t.Parallel()

	t.Run("cast", func(t *testing.T) {
		t.Parallel()
		r := call(t, "POST", "/api/v1/casts", jsonBody(t, map[string]any{"name": unique("Contended Cast")}))
		mustStatus(t, "create", r, http.StatusCreated)
		created := decodeAs[cast](t, r)
		item, etag := "/api/v1/casts/"+itoa(created.ID), r.Header.Get("ETag")

		bodies := make([]string, racers)
		for i := range bodies {
			bodies[i] = jsonBody(t, map[string]any{"nationality": fmt.Sprintf("Writer %d", i)})
		}
		won, answer := winner(t, raceWrites(t, http.MethodPatch, item, "application/merge-patch+json", etag, bodies))

		// The winner's write is the one stored, under a new ETag, and no loser's leaked in.
		r = call(t, "GET", item, "")
		got := decodeAs[cast](t, r)
		if want := fmt.Sprintf("Writer %d", won); got.Nationality == nil || *got.Nationality != want {
			t.Errorf("stored nationality %v, want the winner's %q", got.Nationality, want)
		}
		if r.Header.Get("ETag") != answer.Header.Get("ETag") || r.Header.Get("ETag") == etag {
			t.Errorf("ETag after the race %q; the winner got %q, the racers sent %q", r.Header.Get("ETag"), answer.Header.Get("ETag"), etag)
		}
	})

	t.Run("movie", func(t *testing.T) {
		t.Parallel()
		a, b := createCast(t, unique("Contended Lead")), createCast(t, unique("Contended Support"))
		r := call(t, "POST", "/api/v1/movies", movie{Name: unique("Contended Movie"), CastIDs: []int64{a.ID}}.writable(t))
		mustStatus(t, "create", r, http.StatusCreated)
		created := decodeAs[movie](t, r)
		item, etag := "/api/v1/movies/"+itoa(created.ID), r.Header.Get("ETag")

		// Half the writers change the cast list, so that some race through the cast check.
		bodies := make([]string, racers)
		for i := range bodies {
			patch := map[string]any{"plot": fmt.Sprintf("Writer %d", i)}
			if i%2 == 1 {
				patch["cast_ids"] = []int64{a.ID, b.ID}
			}
			bodies[i] = jsonBody(t, patch)
		}
		won, answer := winner(t, raceWrites(t, http.MethodPatch, item, "application/merge-patch+json", etag, bodies))

		r = call(t, "GET", item, "")
		got := decodeAs[movie](t, r)
		wantCasts := []int64{a.ID}
		if won%2 == 1 {
			wantCasts = []int64{a.ID, b.ID}
		}
		if want := fmt.Sprintf("Writer %d", won); got.Plot != want || fmt.Sprint(got.CastIDs) != fmt.Sprint(wantCasts) {
			t.Errorf("stored plot %q and casts %v, want the winner's %q and %v", got.Plot, got.CastIDs, want, wantCasts)
		}
		if r.Header.Get("ETag") != answer.Header.Get("ETag") || r.Header.Get("ETag") == etag {
			t.Errorf("ETag after the race %q; the winner got %q, the racers sent %q", r.Header.Get("ETag"), answer.Header.Get("ETag"), etag)
		}
	})

	t.Run("cast replaced", func(t *testing.T) {
		t.Parallel()
		r := call(t, "POST", "/api/v1/casts", jsonBody(t, map[string]any{"name": unique("Contended Replace")}))
		mustStatus(t, "create", r, http.StatusCreated)
		item, etag := r.Header.Get("Location"), r.Header.Get("ETag")
		name := unique("Replaced By")
		bodies := make([]string, racers)
		for i := range bodies {
			bodies[i] = jsonBody(t, map[string]any{"name": fmt.Sprintf("%s %d", name, i)})
		}
		won, _ := winner(t, raceWrites(t, http.MethodPut, item, "application/json", etag, bodies))
		if got := decodeAs[cast](t, call(t, "GET", item, "")); got.Name != fmt.Sprintf("%s %d", name, won) {
			t.Errorf("stored name %q, want the winner's", got.Name)
		}
	})
}
