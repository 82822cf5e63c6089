package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Each service's own metrics, in Prometheus's text format, at /metrics on the service's own port
// (URLs.Movies, URLs.Casts): never routed by Traefik. Names as OpenTelemetry's HTTP semantic
// conventions give them, through the Prometheus exporter.
const (
	requestCount      = "http_server_request_duration_seconds_count"
	castCheckCount    = "movies_casts_check_duration_seconds_count"
	outboxBacklog     = "casts_outbox_backlog"
	outboxOldestAge   = "casts_outbox_oldest_age_seconds"
	poolConnections   = "db_client_connection_count"
	droppedSpansTotal = "telemetry_spans_dropped_total"
)

// sample is one line of the text format: a series and its value.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads base's /metrics.
func scrape(t *testing.T, base string) []sample {
	t.Helper()
	resp, err := plainClient.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %s", base, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET %s/metrics: Content-Type %q, want Prometheus's text/plain", base, ct)
	}
	var out []sample
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			t.Fatalf("%s/metrics: %v", base, err)
		}
		out = append(out, s)
	}
	return out
}

// parseSample reads `name{k="v",...} value`; label values here hold no escaped quotes.
func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	series, value, ok := strings.Cut(line, " ")
	// A label value may hold braces ({id}); the value follows the last one.
	if i := strings.LastIndexByte(line, '}'); i >= 0 {
		series, value, ok = line[:i+1], strings.TrimSpace(line[i+1:]), true
	}
	if !ok {
		return s, fmt.Errorf("line %q: no value", line)
	}
	v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
	if err != nil {
		return s, fmt.Errorf("line %q: %v", line, err)
	}
	s.value = v
	name, labels, hasLabels := strings.Cut(series, "{")
	s.name = name
	if hasLabels {
		for _, kv := range splitLabels(strings.TrimSuffix(labels, "}")) {
			k, v, _ := strings.Cut(kv, "=")
			s.labels[k] = strings.Trim(v, `"`)
		}
	}
	return s, nil
}

// splitLabels splits k="v",k2="v2" at the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// total sums the samples of name whose labels include want, over every replica's scrape.
func total(scrapes [][]sample, name string, want map[string]string) float64 {
	sum := 0.0
	for _, samples := range scrapes {
	next:
		for _, s := range samples {
			if s.name != name {
				continue
			}
			for k, v := range want {
				if s.labels[k] != v {
					continue next
				}
			}
			sum += s.value
		}
	}
	return sum
}

// series counts the distinct series of name over every replica's scrape.
func series(scrapes [][]sample, name string) int {
	n := 0
	for _, samples := range scrapes {
		for _, s := range samples {
			if s.name == name {
				n++
			}
		}
	}
	return n
}

func scrapeAll(t *testing.T, bases []string) [][]sample {
	t.Helper()
	var out [][]sample
	for _, b := range bases {
		out = append(out, scrape(t, b))
	}
	return out
}

// route is the label set of a route's requests with one status.
func route(method, path string, status int) map[string]string {
	return map[string]string{"http_request_method": method, "http_route": path, "http_response_status_code": strconv.Itoa(status)}
}

// TestServiceMetrics: each service counts its requests per route pattern, method and status,
// never per id: 100 reads of 100 different ids add 100 to one series and no series. Its pool
// and the cast service's outbox are measured too. Not parallel: it counts requests exactly.
func TestServiceMetrics(t *testing.T) {
	tg := needTarget(t)
	casts := tg.URLs().Casts
	c := createCast(t, unique("Metrics Cast"))
	// Warm up the series this test counts on every replica, directly: a 200 and a 404 of the
	// item route (the gateway would spread them over the replicas).
	for _, base := range casts {
		for path, want := range map[string]int{"/api/v1/casts/" + itoa(c.ID): http.StatusOK, "/api/v1/casts/" + itoa(c.ID+1_000_000_000): http.StatusNotFound} {
			resp, err := plainClient.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("GET %s%s: %s, want %d", base, path, resp.Status, want)
			}
		}
	}

	before := scrapeAll(t, casts)
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = strconv.FormatInt(8_000_000_000+rand.Int64N(1_000_000_000), 10)
		mustStatus(t, "read a missing cast", call(t, "GET", "/api/v1/casts/"+ids[i], ""), http.StatusNotFound)
	}
	mustStatus(t, "read the cast", call(t, "GET", "/api/v1/casts/"+itoa(c.ID), ""), http.StatusOK)
	after := scrapeAll(t, casts)

	notFound, found := route("GET", "/api/v1/casts/{id}", 404), route("GET", "/api/v1/casts/{id}", 200)
	if got := total(after, requestCount, notFound) - total(before, requestCount, notFound); got != 100 {
		t.Errorf("%s%v went up by %v over 100 reads of missing casts, want 100", requestCount, notFound, got)
	}
	if got := total(after, requestCount, found) - total(before, requestCount, found); got != 1 {
		t.Errorf("%s%v went up by %v over one read, want 1", requestCount, found, got)
	}
	if b, a := series(before, requestCount), series(after, requestCount); a != b {
		t.Errorf("%s: %d series before 100 reads of different ids, %d after: want the same (no per-id label)", requestCount, b, a)
	}
	for _, samples := range after {
		for _, s := range samples {
			for k, v := range s.labels {
				for _, id := range ids {
					if strings.Contains(v, id) {
						t.Fatalf("series %s has label %s=%q, which holds a requested id", s.name, k, v)
					}
				}
			}
		}
	}
	for _, name := range []string{outboxBacklog, outboxOldestAge, poolConnections} {
		if series(after, name) == 0 {
			t.Errorf("casts exports no %s", name)
		}
	}
	if got := total(after, poolConnections, map[string]string{"db_client_connection_state": "used"}) +
		total(after, poolConnections, map[string]string{"db_client_connection_state": "idle"}); got < 1 {
		t.Errorf("%s: %v connections in all, want at least the one the reads used", poolConnections, got)
	}

	movies := scrapeAll(t, tg.URLs().Movies)
	for _, name := range []string{requestCount, poolConnections} {
		if series(movies, name) == 0 {
			t.Errorf("movies exports no %s", name)
		}
	}
	// Nothing routes /metrics: the gateway's catch-all answers it.
	for _, entry := range []string{tg.URLs().Gateway, tg.URLs().Mesh} {
		resp, err := plainClient.Get(entry + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), requestCount) {
			t.Errorf("GET %s/metrics: %s, want the gateway's 404 (the services' metrics are never routed)", entry, resp.Status)
		}
	}
}

// TestFailuresInTracesAndMetrics: a refused write (422) and a write that cannot be checked
// because casts is down (503) show as such in their traces and in movies' metrics, the 503 with
// the cast check's outcome. Not parallel: it stops the cast service.
func TestFailuresInTracesAndMetrics(t *testing.T) {
	tg := needTarget(t)
	c := createCast(t, unique("Failure Cast"))
	moviesURLs := tg.URLs().Movies
	before := scrapeAll(t, moviesURLs)

	rid422 := "trace-" + newEventID(t)
	r := call(t, "POST", "/api/v1/movies", jsonBody(t, map[string]any{"name": "", "plot": "p", "genres": []string{}, "cast_ids": []int64{}}),
		"X-Request-Id", rid422)
	mustStatus(t, "create an invalid movie", r, http.StatusUnprocessableEntity)

	if err := tg.StopService("casts"); err != nil {
		t.Fatal(err)
	}
	started := false
	t.Cleanup(func() {
		if !started {
			// Not t.Context(): it is cancelled before cleanups run.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := tg.StartService(ctx, "casts"); err != nil {
				t.Errorf("start casts again: %v", err)
			}
		}
	})
	rid503 := "trace-" + newEventID(t)
	r = call(t, "POST", "/api/v1/movies", movie{Name: unique("Casts Down"), Plot: "p", Genres: []string{}, CastIDs: []int64{c.ID}}.writable(t),
		"X-Request-Id", rid503)
	mustStatus(t, "create a movie with casts down", r, http.StatusServiceUnavailable)
	if err := tg.StartService(t.Context(), "casts"); err != nil {
		t.Fatal(err)
	}
	started = true
	after := scrapeAll(t, tg.URLs().Movies)
	// The failed check may have opened the mesh's circuit breaker: the next tests need it closed.
	defer waitMeshSettled(t, "GET", "/api/v1/casts?limit=1", "")

	for _, status := range []int{422, 503} {
		labels := route("POST", "/api/v1/movies", status)
		if got := total(after, requestCount, labels) - total(before, requestCount, labels); got != 1 {
			t.Errorf("%s%v went up by %v, want 1", requestCount, labels, got)
		}
	}
	unavailable := map[string]string{"outcome": "unavailable"}
	if got := total(after, castCheckCount, unavailable) - total(before, castCheckCount, unavailable); got != 1 {
		t.Errorf("%s%v went up by %v, want 1 (the check made with casts down)", castCheckCount, unavailable, got)
	}

	const moviesRoute = "POST /api/v1/movies"
	for _, tt := range []struct {
		rid    string
		status string
		error  bool
	}{{rid422, "422", false}, {rid503, "503", true}} {
		tr := waitTrace(t, "movies", tt.rid, func(tr jaegerTrace) error {
			return need(tr, moviesRoute, "movies", named(moviesRoute))
		})
		s := tr.find("movies", named(moviesRoute))[0]
		if got := s.tag("http.response.status_code"); got != tt.status {
			t.Errorf("trace of the %s: http.response.status_code %q", tt.status, got)
		}
		// A server span's status is an error for a 5xx only (the semantic conventions).
		if got := s.tag("error") == "true"; got != tt.error {
			t.Errorf("trace of the %s: error %v, want %v\n%s", tt.status, got, tt.error, tr.describe())
		}
	}
}

// TestTraceBackendDown: with Jaeger stopped every request still succeeds, and the services count
// the spans they could not export; once it is back, requests are traced again. Not parallel: it
// stops the trace backend. Latency is logged, not asserted (a shared machine is noisy).
func TestTraceBackendDown(t *testing.T) {
	tg := needTarget(t)
	services := append(append([]string{}, tg.URLs().Movies...), tg.URLs().Casts...)
	c := createCast(t, unique("Backend Down Cast"))
	timed := func(n int) time.Duration {
		start := time.Now()
		for i := range n {
			mustStatus(t, "read the cast", call(t, "GET", "/api/v1/casts/"+itoa(c.ID), ""), http.StatusOK)
			mustStatus(t, "create a movie", call(t, "POST", "/api/v1/movies",
				movie{Name: fmt.Sprintf("Backend Down %d %s", i, unique("")), Plot: "p", Genres: []string{}, CastIDs: []int64{c.ID}}.writable(t)), http.StatusCreated)
		}
		return time.Since(start) / time.Duration(2*n)
	}
	up := timed(20)
	dropped := total(scrapeAll(t, services), droppedSpansTotal, nil)

	if err := tg.StopTraceBackend(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := tg.StartTraceBackend(ctx); err != nil {
				t.Errorf("start the trace backend again: %v", err)
			}
		}
	})
	down := timed(20)
	t.Logf("mean request time: %s with Jaeger up, %s with it stopped (40 requests each)", up, down)
	waitFor(t, "spans counted as dropped", traceWait, func() error {
		if now := total(scrapeAll(t, services), droppedSpansTotal, nil); now <= dropped {
			return fmt.Errorf("%s still %v", droppedSpansTotal, now)
		}
		return nil
	})
	t.Logf("%s: %v before, %v after", droppedSpansTotal, dropped, total(scrapeAll(t, services), droppedSpansTotal, nil))

	if err := tg.StartTraceBackend(t.Context()); err != nil {
		t.Fatal(err)
	}
	restarted = true
	rid := "trace-" + newEventID(t)
	mustStatus(t, "read the cast", call(t, "GET", "/api/v1/casts/"+itoa(c.ID), "", "X-Request-Id", rid), http.StatusOK)
	waitTrace(t, "casts", rid, func(tr jaegerTrace) error {
		return need(tr, "GET /api/v1/casts/{id}", "casts", named("GET /api/v1/casts/{id}"))
	})
}
