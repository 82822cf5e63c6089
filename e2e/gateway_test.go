package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/movies-microservices/e2e/target"
)

// traefikRouter is the part of Traefik's /api/http/routers answer the tests read.
type traefikRouter struct {
	Name        string   `json:"name"`
	Rule        string   `json:"rule"`
	EntryPoints []string `json:"entryPoints"`
	Status      string   `json:"status"`
	Service     string   `json:"service"`
}

type traefikService struct {
	Name         string            `json:"name"`
	ServerStatus map[string]string `json:"serverStatus"`
}

func getAdmin(t *testing.T, path string, v any) {
	t.Helper()
	if err := json.Unmarshal(getAdminBody(t, path), v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// getAdminBody GETs path on Traefik's API entrypoint and returns the body of its 200.
func getAdminBody(t *testing.T, path string) []byte {
	t.Helper()
	if suite.admin == "" {
		skip(t, "E2E_ADMIN_URL is not set: Traefik's API is not reachable")
	}
	resp, err := plainClient.Get(suite.admin + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return body
}

func TestGatewayRoutersHealthy(t *testing.T) {
	t.Parallel()
	var routers []traefikRouter
	getAdmin(t, "/api/http/routers", &routers)
	want := map[string]string{
		"movies":      "web|PathPrefix(`/api/v1/movies`)",
		"casts":       "web|PathPrefix(`/api/v1/casts`)",
		"movies-read": "web|PathPrefix(`/api/v1/movies`) && (Method(`GET`) || Method(`HEAD`))",
		"casts-read":  "web|PathPrefix(`/api/v1/casts`) && (Method(`GET`) || Method(`HEAD`))",
		"movies-mesh": "mesh|PathPrefix(`/api/v1/movies`)",
		"casts-mesh":  "mesh|PathPrefix(`/api/v1/casts`)",
	}
	got := map[string]string{}
	for _, r := range routers {
		name, _, _ := strings.Cut(r.Name, "@")
		if _, ok := want[name]; ok {
			got[name] = strings.Join(r.EntryPoints, ",") + "|" + r.Rule
			if r.Status != "enabled" {
				t.Errorf("router %s is %s", r.Name, r.Status)
			}
		}
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("router %s = %q, want %q", name, got[name], w)
		}
	}

	var services []traefikService
	getAdmin(t, "/api/http/services", &services)
	for _, name := range []string{"movies", "casts"} {
		i := slices.IndexFunc(services, func(s traefikService) bool { return strings.HasPrefix(s.Name, name+"@") })
		if i < 0 {
			t.Errorf("service %s is not in Traefik's API", name)
			continue
		}
		if len(services[i].ServerStatus) == 0 {
			t.Errorf("service %s has no servers", name)
		}
		for server, status := range services[i].ServerStatus {
			if status != "UP" {
				t.Errorf("service %s server %s is %s", name, server, status)
			}
		}
	}
}

// The movie service must reach casts only through Traefik's mesh entrypoint: its cast check
// shows up in Traefik's access log on that entrypoint.
func TestMovieCastCheckGoesThroughMesh(t *testing.T) {
	t.Parallel()
	needTarget(t)
	c := createCast(t, unique("Mesh Cast"))
	createMovie(t, movie{Name: unique("Mesh Movie"), CastIDs: []int64{c.ID}})

	waitFor(t, "the cast check in Traefik's access log", 10*time.Second, func() error {
		entries, err := readAccessLog()
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.EntryPointName == "mesh" && strings.HasPrefix(e.RequestPath, "/api/v1/casts?") &&
				strings.Contains(e.RequestPath, "id="+itoa(c.ID)) {
				return nil
			}
		}
		return fmt.Errorf("no mesh entry for cast %d in Traefik's access log", c.ID)
	})
}

// accessEntry is the part of a line of Traefik's JSON access log that the tests read.
type accessEntry struct {
	EntryPointName string `json:"entryPointName"`
	RouterName     string `json:"RouterName"`
	RequestPath    string `json:"RequestPath"`
	Status         int    `json:"DownstreamStatus"`
	ServiceName    string `json:"ServiceName"`
	ServiceURL     string `json:"ServiceURL"` // the replica that served it
	// What the node-loss tests log of a failure (logGatewayFailures).
	Start         time.Time `json:"StartUTC"`
	Method        string    `json:"RequestMethod"`
	OriginStatus  int       `json:"OriginStatus"`  // the instance's answer; 0 if the gateway answered itself
	Duration      int64     `json:"Duration"`      // nanoseconds
	RetryAttempts int       `json:"RetryAttempts"` // by public-retry or mesh-retry
}

// readAccessLog reads the access log of the suite's Traefik.
func readAccessLog() ([]accessEntry, error) { return parseAccessLog(suite.target) }

// parseAccessLog reads the access log of a stack's Traefik: its JSON lines, whatever else is
// among them (a container's output mixes both logs).
func parseAccessLog(s target.Target) ([]accessEntry, error) {
	b, err := s.AccessLog(context.Background())
	if err != nil {
		return nil, err
	}
	var entries []accessEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		var e accessEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			entries = append(entries, e)
		}
	}
	return entries, sc.Err()
}

// TestGatewayMetrics: Traefik's Prometheus metrics count every request on the public entry
// point, those Traefik answers itself included, and nothing per service (TraefikMetrics in
// e2e/stack says why). Not parallel: the parallel tests wait while it runs, so no other request
// moves the counters it reads.
func TestGatewayMetrics(t *testing.T) {
	// webGET404 sums the counters of GET requests answered 404 on "web", and returns the text.
	webGET404 := func() (float64, string) {
		t.Helper()
		body := string(getAdminBody(t, "/metrics"))
		var sum float64
		for _, line := range strings.Split(body, "\n") {
			rest, ok := strings.CutPrefix(line, "traefik_entrypoint_requests_total{")
			if !ok {
				continue
			}
			labels, value, ok := strings.Cut(rest, "} ")
			if !ok || !strings.Contains(labels, `code="404"`) || !strings.Contains(labels, `entrypoint="web"`) ||
				!strings.Contains(labels, `method="GET"`) {
				continue
			}
			var v float64
			if _, err := fmt.Sscan(value, &v); err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			sum += v
		}
		return sum, body
	}

	// Traefik counts a request once its answer is written, so the client may read the answer
	// before the counter moves.
	const n = 3
	var text string
	for _, kind := range []struct{ what, path string }{
		{"the movie service's 404", "/api/v1/movies/999999999"},
		{"the catch-all router's 404", "/no-such-path"},
	} {
		before, _ := webGET404()
		for i := 0; i < n; i++ {
			mustStatus(t, kind.what, call(t, http.MethodGet, kind.path, ""), http.StatusNotFound)
		}
		waitFor(t, kind.what+" in Traefik's metrics", 10*time.Second, func() error {
			var after float64
			after, text = webGET404()
			if after < before+n {
				return fmt.Errorf("GET 404 on web: counter %v -> %v after %d of %s, want it up by %d", before, after, n, kind.what, n)
			}
			return nil
		})
	}
	if strings.Contains(text, "traefik_service_requests_total") {
		t.Errorf("metrics per service are on, against TraefikMetrics in e2e/stack")
	}
}
