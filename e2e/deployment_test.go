package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
	"go.yaml.in/yaml/v3"
)

// How each kind of stack is deployed: where Traefik's routers come from, how replicas share
// the load, two stacks side by side, what survives a restart.

// fileRouter is a router of traefik/dynamic/routers.yml, as Traefik's API also reports it.
type fileRouter struct {
	EntryPoints []string `yaml:"entryPoints"`
	Rule        string   `yaml:"rule"`
	Middlewares []string `yaml:"middlewares"`
	Service     string   `yaml:"service"`
}

// routersFile reads the routers of traefik/dynamic/routers.yml. The file is a Go template as a
// whole; its routers section is plain YAML.
func routersFile(t *testing.T) map[string]fileRouter {
	t.Helper()
	root, err := stackkit.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "traefik", "dynamic", "routers.yml"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n  routers:\n")
	if !ok {
		t.Fatal("routers.yml has no http.routers section")
	}
	section, _, _ = strings.Cut(section, "\n  services:")
	var routers map[string]fileRouter
	if err := yaml.Unmarshal([]byte(section), &routers); err != nil {
		t.Fatalf("routers.yml: %v", err)
	}
	return routers
}

// TestRoutersFromTheStacksProvider: Traefik's routers are exactly those of routers.yml, from the
// provider of the stack (its Provider): the file provider for processes; on the container
// stacks the docker or swarm provider, from the labels, where no routers.yml is loaded at all.
func TestRoutersFromTheStacksProvider(t *testing.T) {
	t.Parallel()
	s := needTarget(t)
	provider := s.Provider()
	want := routersFile(t)
	var routers []struct {
		Name        string   `json:"name"`
		Provider    string   `json:"provider"`
		EntryPoints []string `json:"entryPoints"`
		Rule        string   `json:"rule"`
		Middlewares []string `json:"middlewares"`
		Service     string   `json:"service"`
		Status      string   `json:"status"`
	}
	getAdmin(t, "/api/http/routers", &routers)
	got := map[string]fileRouter{}
	for _, r := range routers {
		name, _, _ := strings.Cut(r.Name, "@")
		if _, ok := want[name]; !ok {
			continue // Traefik's own routers, and the catch-all of middlewares.yml
		}
		if r.Provider != provider || r.Status != "enabled" {
			t.Errorf("router %s: provider %s, status %s; want %s, enabled", r.Name, r.Provider, r.Status, provider)
		}
		service, _, _ := strings.Cut(r.Service, "@")
		got[name] = fileRouter{EntryPoints: r.EntryPoints, Rule: r.Rule, Middlewares: r.Middlewares, Service: service}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routers in Traefik's API (@%s) against routers.yml (-want +got):\n%s", provider, diff)
	}
}

// TestBalancedAcrossReplicas: with two replicas of each service (on Compose, the same files with
// --scale 2 and nothing else), Traefik spreads requests over both: each serves at least a quarter
// of 200 requests, as its access log shows.
func TestBalancedAcrossReplicas(t *testing.T) {
	s := replicatedStack(t)
	gateway := s.URLs().Gateway
	tag := url.QueryEscape(unique("Balanced"))
	const requests = 200
	for _, path := range []string{"/api/v1/casts", "/api/v1/movies"} {
		for range requests / 2 {
			resp, err := plainClient.Get(gateway + path + "?limit=1&name=" + tag)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d", path, resp.StatusCode)
			}
		}
	}
	var byServer map[string]map[string]int
	waitFor(t, "every request in the access log", 10*time.Second, func() error {
		entries, err := parseAccessLog(s)
		if err != nil {
			return err
		}
		byServer = map[string]map[string]int{}
		n := 0
		for _, e := range entries {
			if e.EntryPointName != "web" || !strings.Contains(e.RequestPath, "name="+tag) {
				continue
			}
			service, _, _ := strings.Cut(e.ServiceName, "@")
			if byServer[service] == nil {
				byServer[service] = map[string]int{}
			}
			byServer[service][e.ServiceURL]++
			n++
		}
		if n < requests {
			return &statusErr{n}
		}
		return nil
	})
	t.Logf("requests by service and replica: %v", byServer)
	for _, service := range []string{target.ServiceCasts, target.ServiceMovies} {
		servers := byServer[service]
		if len(servers) != 2 {
			t.Errorf("%s: requests went to %d replicas, want 2: %v", service, len(servers), servers)
		}
		for server, n := range servers {
			if n < requests/2/4 {
				t.Errorf("%s replica %s served %d of %d requests, want at least a quarter", service, server, n, requests/2)
			}
		}
	}
}

// TestTwoStacksSideBySide: the suite's stack and another of its kind run at once (on Compose,
// two projects on one engine): each Traefik routes only to its own replicas, and each has its
// own data. On Compose, each project has its own networks, named after it.
func TestTwoStacksSideBySide(t *testing.T) {
	other := otherStack(t)
	for _, tt := range []struct {
		name string
		s    interface{ URLs() target.URLs }
	}{{"the suite's stack", suite.target}, {"the other stack", other}} {
		for _, service := range []string{target.ServiceCasts, target.ServiceMovies} {
			replicas := len(tt.s.URLs().Casts)
			if service == target.ServiceMovies {
				replicas = len(tt.s.URLs().Movies)
			}
			var svc traefikService
			getJSONFrom(t, tt.s.URLs().Admin+"/api/http/services/"+service+"@"+suite.target.Provider(), &svc)
			if len(svc.ServerStatus) != replicas {
				t.Errorf("%s: Traefik's %s service has servers %v, want its own %d", tt.name, service, svc.ServerStatus, replicas)
			}
		}
	}
	name := unique("Only In The Suite's Stack")
	createCast(t, name)
	var there []cast
	getJSONFrom(t, other.URLs().Gateway+"/api/v1/casts?name="+url.QueryEscape(name), &there)
	if len(there) != 0 {
		t.Errorf("a cast created through the suite's gateway is listed through the other stack's: %+v", there)
	}

	// Where each stack has networks of its own (Compose), none is shared.
	a, aok := suite.target.(target.Networks)
	b, bok := other.(target.Networks)
	if !aok || !bok {
		return
	}
	ctx := t.Context()
	na, err := a.Networks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := b.Networks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range na {
		if slices.Contains(nb, n) {
			t.Errorf("network %s belongs to both projects", n)
		}
	}
	for _, p := range []target.Networks{a, b} {
		if nets, _ := p.Networks(ctx); !slices.Contains(nets, p.Name()+"-gateway") {
			t.Errorf("project %s: networks %v, want %s-gateway among them", p.Name(), nets, p.Name())
		}
	}
}

// TestDataSurvivesRestart: a stack taken down and brought up again keeps its data, and one
// brought up after its data is removed starts empty. On Compose the databases live in named
// volumes: `down` + `up` keeps them, `down -v` deletes them. On processes the cluster lives in the
// stack's directory (make run's .run/), which is kept or removed. A stack of its own, of the
// suite's kind (on Compose, from the suite's images).
func TestDataSurvivesRestart(t *testing.T) {
	t.Parallel()
	needTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := persistentStack(t)
	if p, ok := s.(target.Volumes); ok {
		if vols, err := p.Volumes(ctx); err != nil || len(vols) != 3 {
			t.Errorf("volumes %v (%v), want those of casts-db, movies-db and hydra-db", vols, err)
		}
	}
	name := unique("Survives Down")
	c := createCastAt(t, s, name)

	if err := s.Recreate(ctx, false); err != nil {
		t.Fatal(err)
	}
	var got cast
	if status := getJSON(t, s.URLs().Gateway+"/api/v1/casts/"+itoa(c.ID), &got); status != http.StatusOK || got.Name != name {
		t.Errorf("after down and up: cast %d: status %d, name %q; want 200 %q", c.ID, status, got.Name, name)
	}

	if err := s.Recreate(ctx, true); err != nil {
		t.Fatal(err)
	}
	if status := statusOf(t, s.URLs().Gateway+"/api/v1/casts/"+itoa(c.ID)); status != http.StatusNotFound {
		t.Errorf("after removing the data and up: cast %d: status %d, want 404", c.ID, status)
	}
}

// otherStack is a second stack of the suite's kind beside it, for TestTwoStacksSideBySide:
// the replicated stack where that is a second one (processes, Compose), else the persistent
// stack, which TestDataSurvivesRestart takes down and up after this test (it runs in parallel,
// so after every sequential test). A stack on several nodes thus deploys one stack beside its
// own, not two (a minute and a half each on the swarm).
func otherStack(t *testing.T) interface{ URLs() target.URLs } {
	t.Helper()
	if s, own := replicatedStackIsOwn(t); !own {
		return s
	}
	return persistentStack(t)
}

// createCastAt creates a cast through another stack's gateway than the suite's, with a token
// from that stack's provider.
func createCastAt(t *testing.T, s target.Persistent, name string) cast {
	t.Helper()
	req, err := http.NewRequest("POST", s.URLs().Gateway+"/api/v1/casts", strings.NewReader(jsonBody(t, map[string]any{"name": name})))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	authorize(req, tokensOf(s, target.DemoScopes))
	r, err := doRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, "create cast", r, http.StatusCreated)
	return decodeAs[cast](t, r)
}

func getJSONFrom(t *testing.T, url string, v any) {
	t.Helper()
	if status := getJSON(t, url, v); status != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, status)
	}
}
