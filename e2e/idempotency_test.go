package e2e

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestIdempotencyKey: a retried create with the same key replays the first answer and makes one
// row; the same key with another body is refused; concurrent duplicates never make two rows.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	for _, svc := range []struct{ path, body, other string }{
		{"/api/v1/casts", `{"name":"` + unique("Idem Cast") + `"}`, `{"name":"` + unique("Other Cast") + `"}`},
		{"/api/v1/movies", `{"name":"` + unique("Idem Movie") + `"}`, `{"name":"` + unique("Other Movie") + `"}`},
	} {
		t.Run(svc.path, func(t *testing.T) {
			t.Parallel()
			key := strings.ReplaceAll(unique("key"), " ", "-")
			first := call(t, "POST", svc.path, svc.body, "Idempotency-Key", key)
			mustStatus(t, "first create", first, http.StatusCreated)
			// The trailing-slash form is the same resource, so the same request.
			replay := call(t, "POST", svc.path+"/", svc.body, "Idempotency-Key", key)
			mustStatus(t, "replay", replay, http.StatusCreated)
			if string(replay.Body) != string(first.Body) || replay.Header.Get("Location") != first.Header.Get("Location") ||
				replay.Header.Get("ETag") != first.Header.Get("ETag") {
				t.Errorf("replay differs:\nfirst  %s %s\nreplay %s %s", first.Header.Get("Location"), first.Body, replay.Header.Get("Location"), replay.Body)
			}
			if replay.Header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("replay without Idempotent-Replayed: true")
			}
			mustStatus(t, "same key, another body", call(t, "POST", svc.path, svc.other, "Idempotency-Key", key), http.StatusUnprocessableEntity)

			// Concurrent duplicates of a fresh key: all answered with the one created resource.
			key = strings.ReplaceAll(unique("key"), " ", "-")
			const n = 10
			locations := make([]string, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := call(t, "POST", svc.path, svc.other, "Idempotency-Key", key)
					if r.Status != http.StatusCreated {
						t.Errorf("concurrent duplicate %d: status %d %s", i, r.Status, r.Body)
					}
					locations[i] = r.Header.Get("Location")
				}()
			}
			wg.Wait()
			for _, loc := range locations {
				if loc != locations[0] || loc == "" {
					t.Errorf("concurrent duplicates created different resources: %q", locations)
					break
				}
			}
		})
	}
}
