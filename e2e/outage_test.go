package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/movies-microservices/e2e/target"
)

// TestDatabaseOutage stops the databases under the suite's stack (the PostgreSQL cluster, or both
// database containers): through the gateway,
// for longer than Traefik takes to act on a failed health check, every request that needs the
// database is answered 503 problem+json at once (not by hanging, and not by Traefik's plain-text
// "no available server": its probe leaves the database out, so the instances stay in rotation and
// answer for themselves); /readyz is 503 while /livez stays 200; and once the database is back
// they serve again by themselves, without a restart.
func TestDatabaseOutage(t *testing.T) {
	s := needTarget(t)
	urls := s.URLs()
	c := createCast(t, unique("Outage Cast"))
	// The provider's database may be on the cluster that stops (processes): take the token first.
	token := suiteTokens.get()
	if token == "" {
		t.Fatal("no access token from the provider before the outage")
	}

	if err := s.StopDatabases(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			s.StartDatabases(context.Background()) //nolint:errcheck // best effort after a failure
		}
	})

	client := &http.Client{Timeout: time.Minute} // far past the services' request timeout
	requests := []struct{ path, body string }{
		{"/api/v1/casts/" + itoa(c.ID), ""},
		{"/api/v1/casts", `{"name":"written during the outage"}`},
		{"/api/v1/movies?limit=1", ""},
		{"/api/v1/movies", `{"name":"written during the outage","cast_ids":[` + itoa(c.ID) + `]}`},
	}
	// Traefik probes every 2 s with a 1 s timeout (traefik/dynamic/routers.yml): 5 s of rounds
	// covers two probes, after which an instance failing its probe would be out of rotation.
	rounds := 0
	for start := time.Now(); time.Since(start) < 5*time.Second; rounds++ {
		for _, r := range requests {
			method := "GET"
			if r.body != "" {
				method = "POST"
			}
			req, _ := http.NewRequest(method, suite.gateway+r.path, strings.NewReader(r.body))
			req.Header.Set("Content-Type", "application/json")
			if method == "POST" {
				req.Header.Set("Authorization", bearer(token))
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s during the outage: %v (want a 503 before the request timeout)", method, r.path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := response{Status: resp.StatusCode, Header: resp.Header, Body: b}
			if got.Status != http.StatusServiceUnavailable {
				t.Fatalf("%s %s during the outage (round %d): %d %.200s, want 503", method, r.path, rounds, got.Status, b)
			}
			if ct := got.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("%s %s during the outage (round %d): Content-Type %q, want application/problem+json (body %.200q)",
					method, r.path, rounds, ct, b)
			}
			checkProblem(t, method+" "+r.path, got)
			if strings.Contains(string(b), s.Secrets().Casts) || strings.Contains(string(b), s.Secrets().Movies) {
				t.Errorf("%s %s: the error body contains a database password", method, r.path)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("%d rounds of %d requests through the gateway during the outage, each a 503 problem+json", rounds, len(requests))
	for _, base := range []string{urls.Casts[0], urls.Movies[0]} {
		if got := statusOf(t, base+"/readyz"); got != http.StatusServiceUnavailable {
			t.Errorf("%s/readyz during the outage = %d, want 503", base, got)
		}
		if got := statusOf(t, base+"/readyz?exclude=database"); got != http.StatusOK {
			t.Errorf("%s/readyz?exclude=database (the load balancer's probe) during the outage = %d, want 200", base, got)
		}
		if got := statusOf(t, base+"/livez"); got != http.StatusOK {
			t.Errorf("%s/livez during the outage = %d, want 200", base, got)
		}
	}

	if err := s.StartDatabases(context.Background()); err != nil {
		t.Fatal(err)
	}
	restarted = true
	// Back without a restart: within 10 s of the database, through the gateway.
	waitFor(t, "the cast readable through the gateway after the outage", 10*time.Second, func() error {
		if got := statusOf(t, suite.gateway+"/api/v1/casts/"+itoa(c.ID)); got != http.StatusOK {
			return &statusErr{got}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitMeshSettled(t, "GET", "/api/v1/casts/"+itoa(c.ID), "")
	createMovie(t, movie{Name: unique("After The Outage"), CastIDs: []int64{c.ID}})
}

func statusOf(t *testing.T, url string) int {
	t.Helper()
	resp, err := plainClient.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
	resp.Body.Close()
	return resp.StatusCode
}

// TestCrashDurability kills a casts replica with SIGKILL in the middle of a burst of creates that
// carry Idempotency-Keys; clients retry what failed with the same key. Every 201 must be readable
// afterwards and no key may have produced two rows.
func TestCrashDurability(t *testing.T) {
	s := replicatedStack(t)
	gateway := s.URLs().Gateway
	tag := unique("Crash")
	client := &http.Client{Timeout: 30 * time.Second}
	tokens := tokensOf(s, target.DemoScopes)

	const writers, perWriter = 4, 60
	var acknowledged sync.Map // key -> cast id
	var refusals answerTally
	var wg sync.WaitGroup
	killed := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				if w == 0 && i == perWriter/3 {
					close(killed) // the writers are mid-burst now
				}
				key := fmt.Sprintf("%s-%d-%d", strings.ReplaceAll(tag, " ", "-"), w, i)
				body := `{"name":"` + tag + " " + key + `"}`
				// Retry with the same key until acknowledged (bounded): a retry after the crash must
				// never create a second row.
				for attempt := 0; attempt < 100; attempt++ {
					req, _ := http.NewRequest("POST", gateway+"/api/v1/casts", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Idempotency-Key", key)
					authorize(req, tokens)
					resp, err := client.Do(req)
					if err != nil {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						refusals.add(resp)
					}
					if resp.StatusCode == http.StatusCreated {
						var c cast
						if json.Unmarshal(b, &c) == nil {
							acknowledged.Store(key, c.ID)
						}
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	<-killed
	if err := s.KillReplica(target.ServiceCasts, 0); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// What clients saw around the crash, for the log: mostly 502s from Traefik (a request in flight
	// on, or sent to, the killed replica before the health check drops it), rendered as
	// problem+json by the surviving replica, or as Traefik's plain text when the problem page
	// itself was asked of the dead one.
	t.Logf("answers other than 201 around the crash: %s", refusals.String())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.StartReplica(ctx, target.ServiceCasts, 0); err != nil {
		t.Fatal(err)
	}

	// Every key acknowledged, each by exactly one row, and every acknowledged id readable.
	rows := map[string][]int64{}
	next := "/api/v1/casts?limit=1000&name=" + strings.ReplaceAll(tag, " ", "+")
	for next != "" {
		resp, err := plainClient.Get(gateway + next)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var page []cast
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatalf("list: %v (%s)", err, b)
		}
		for _, c := range page {
			key := strings.TrimPrefix(c.Name, tag+" ")
			rows[key] = append(rows[key], c.ID)
		}
		next = linkNext(t, response{Header: resp.Header})
	}
	count := 0
	acknowledged.Range(func(k, v any) bool {
		count++
		key, id := k.(string), v.(int64)
		if got := rows[key]; len(got) != 1 || got[0] != id {
			t.Errorf("key %s acknowledged as cast %d, rows with its name: %v", key, id, got)
		}
		return true
	})
	if count != writers*perWriter {
		t.Errorf("%d of %d creates acknowledged after retries", count, writers*perWriter)
	}
	for key, ids := range rows {
		if len(ids) != 1 {
			t.Errorf("key %s has %d rows: %v", key, len(ids), ids)
		}
	}
}

// answerTally counts answers by status and Content-Type; safe for concurrent use.
type answerTally struct {
	mu     sync.Mutex
	counts map[string]int
}

func (a *answerTally) add(resp *http.Response) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts = map[string]int{}
	}
	a.counts[fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))]++
}

func (a *answerTally) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.counts) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(a.counts))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%dx %s", a.counts[k], k)
	}
	return strings.Join(parts, ", ")
}
