package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/movies-microservices/e2e/target"
)

// replicated is the stack of two replicas of each service, for tests that restart or kill
// instances under load, started by the first test that needs it and stopped after the last
// test. Where the suite's stack runs two or more of each (the swarm's), it is that stack;
// else (processes, Compose) a second stack of the suite's kind, not to disturb the rest of the
// suite (on Compose a second project on the same engine, which the tests of two projects rely
// on too).
var replicated struct {
	sync.Mutex
	target target.Target
	own    bool // the suite's own stack, which is not the suite's to stop
	err    error
}

// replicatedStack is the suite's replicated stack, started if it is not yet. Each test that
// uses it leaves every replica running.
func replicatedStack(t *testing.T) target.Target {
	t.Helper()
	s, _ := replicatedStackIsOwn(t)
	return s
}

// replicatedStackIsOwn is replicatedStack, and whether it is the suite's own stack.
func replicatedStackIsOwn(t *testing.T) (target.Target, bool) {
	t.Helper()
	needTarget(t)
	replicated.Lock()
	defer replicated.Unlock()
	if u := suite.target.URLs(); replicated.target == nil && len(u.Casts) >= 2 && len(u.Movies) >= 2 {
		replicated.target, replicated.own = suite.target, true
	}
	if replicated.target == nil && replicated.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		replicated.target, replicated.err = startTarget(ctx, "replicated", 2)
	}
	if replicated.err != nil {
		t.Fatalf("start a replicated stack: %v", replicated.err)
	}
	s := replicated.target
	t.Cleanup(func() {
		if t.Failed() {
			logTraefikWarnings(t, s)
		}
	})
	return s, replicated.own
}

// stopReplicatedStack stops the replicated stack if a test started it.
func stopReplicatedStack() error {
	replicated.Lock()
	defer replicated.Unlock()
	if replicated.target == nil || replicated.own {
		return nil
	}
	return replicated.target.Stop()
}

// persistent is the stack whose data outlives it (target.Persistence), started by the first
// test that needs it and stopped after the last test.
var persistent struct {
	sync.Mutex
	target target.Persistent
	err    error
}

// persistentStack is the suite's persistent stack, started if it is not yet.
func persistentStack(t *testing.T) target.Persistent {
	t.Helper()
	needTarget(t)
	persistent.Lock()
	defer persistent.Unlock()
	if persistent.target == nil && persistent.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		persistent.target, persistent.err = startPersistentTarget(ctx, "volumes")
	}
	if persistent.err != nil {
		t.Fatalf("start a stack whose data outlives it: %v", persistent.err)
	}
	return persistent.target
}

// stopPersistentStack stops the persistent stack if a test started it.
func stopPersistentStack() error {
	persistent.Lock()
	defer persistent.Unlock()
	if persistent.target == nil {
		return nil
	}
	return persistent.target.Stop()
}

// logTraefikWarnings logs the last warnings and errors of a stack's Traefik (failed health checks,
// mostly), which say when each replica left and rejoined the rotation; Stop removes them.
func logTraefikWarnings(t *testing.T, s target.Target) {
	t.Helper()
	logs, err := s.Logs(context.Background())
	if err != nil {
		t.Logf("traefik's log: %v", err)
		return
	}
	var lines []string
	for line := range strings.Lines(logs["traefik"]) {
		if strings.Contains(line, " WRN ") || strings.Contains(line, " ERR ") {
			lines = append(lines, line)
		}
	}
	lines = lines[max(0, len(lines)-40):]
	t.Logf("traefik's last %d warnings and errors:\n%s", len(lines), strings.Join(lines, ""))
}

// loadResult is what a load run saw.
type loadResult struct {
	mu       sync.Mutex
	requests int
	failures []string          // every non-2xx answer or transport error, described
	casts    map[int64]string  // acknowledged casts: id -> name
	movies   map[int64][]int64 // acknowledged movies: id -> cast ids
}

func (r *loadResult) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failures) < 50 {
		r.failures = append(r.failures, fmt.Sprintf(format, args...))
	} else if len(r.failures) == 50 {
		r.failures = append(r.failures, "(more failures left out)")
	}
}

// runLoad sends a steady mix of writes and reads through gateway from workers goroutines until
// stop is closed or maxRequests have been sent, whichever comes first.
func runLoad(gateway string, tokens *tokenCache, workers, maxRequests int, stop <-chan struct{}) *loadResult {
	res := &loadResult{casts: map[int64]string{}, movies: map[int64][]int64{}}
	client := &http.Client{Timeout: 30 * time.Second}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if sent.Add(1) > int64(maxRequests) {
					return
				}
				loadStep(client, gateway, tokens, fmt.Sprintf("w%d-%d", w, i), res)
			}
		}()
	}
	wg.Wait()
	return res
}

// loadStep creates a cast, reads it, creates a movie with it (the cast check crosses the mesh) and
// reads that: each step is four requests, writes and reads on both services.
func loadStep(client *http.Client, gateway string, tokens *tokenCache, tag string, res *loadResult) {
	do := func(method, path, body string) (int, []byte, bool) {
		req, _ := http.NewRequest(method, gateway+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		authorize(req, tokens)
		resp, err := client.Do(req)
		res.mu.Lock()
		res.requests++
		res.mu.Unlock()
		if err != nil {
			res.fail("%s %s: %v", method, path, err)
			return 0, nil, false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			res.fail("%s %s: %d %.200s", method, path, resp.StatusCode, b)
			return resp.StatusCode, b, false
		}
		return resp.StatusCode, b, true
	}

	name := unique("Load " + tag)
	_, b, ok := do("POST", "/api/v1/casts", `{"name":"`+name+`"}`)
	if !ok {
		return
	}
	var c cast
	if err := json.Unmarshal(b, &c); err != nil {
		res.fail("decode cast: %v", err)
		return
	}
	res.mu.Lock()
	res.casts[c.ID] = name
	res.mu.Unlock()
	do("GET", "/api/v1/casts/"+itoa(c.ID), "")

	_, b, ok = do("POST", "/api/v1/movies", `{"name":"`+name+`","cast_ids":[`+itoa(c.ID)+`]}`)
	if !ok {
		return
	}
	var m movie
	if err := json.Unmarshal(b, &m); err != nil {
		res.fail("decode movie: %v", err)
		return
	}
	res.mu.Lock()
	res.movies[m.ID] = m.CastIDs
	res.mu.Unlock()
	do("GET", "/api/v1/movies/"+itoa(m.ID), "")
}

// checkAcknowledged reads back every acknowledged write through gateway.
func checkAcknowledged(t *testing.T, gateway string, res *loadResult) {
	t.Helper()
	for id, name := range res.casts {
		var c cast
		if status := getJSON(t, gateway+"/api/v1/casts/"+itoa(id), &c); status != http.StatusOK || c.Name != name {
			t.Errorf("acknowledged cast %d: status %d, name %q, want 200 %q", id, status, c.Name, name)
		}
	}
	for id, castIDs := range res.movies {
		var m movie
		if status := getJSON(t, gateway+"/api/v1/movies/"+itoa(id), &m); status != http.StatusOK || len(m.CastIDs) != len(castIDs) {
			t.Errorf("acknowledged movie %d: status %d, cast_ids %v, want 200 %v", id, status, m.CastIDs, castIDs)
		}
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := plainClient.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Errorf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// TestRollingRestart restarts every instance of both services, one after the other, under a
// steady load through the gateway: not one request may fail, and every acknowledged write must be
// readable afterwards. It fails if a replica stops without first draining (a shutdown delay of 0).
func TestRollingRestart(t *testing.T) {
	s := replicatedStack(t)
	gateway := s.URLs().Gateway

	stop := make(chan struct{})
	done := make(chan *loadResult)
	go func() { done <- runLoad(gateway, tokensOf(s, target.DemoScopes), 2, 40_000, stop) }()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, name := range []string{target.ServiceCasts, target.ServiceMovies} {
		for i := range 2 {
			if err := s.RestartReplica(ctx, name, i); err != nil {
				close(stop)
				<-done
				t.Fatalf("restart %s replica %d: %v", name, i, err)
			}
			t.Logf("restarted %s replica %d", name, i)
		}
	}
	close(stop)
	res := <-done

	t.Logf("%d requests during the rolling restart, %d casts and %d movies acknowledged", res.requests, len(res.casts), len(res.movies))
	if len(res.failures) > 0 {
		t.Errorf("%d requests failed during the rolling restart:\n%s", len(res.failures), strings.Join(res.failures, "\n"))
	}
	if len(res.casts) == 0 || len(res.movies) == 0 {
		t.Fatal("the load acknowledged no writes: it tested nothing")
	}
	checkAcknowledged(t, gateway, res)
}
