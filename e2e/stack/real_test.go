package stack

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// requireBuilt returns the repository root when bin/ holds the named
// binaries (default: the real casts, movies and traefik), and skips the test
// otherwise (fails it in CI).
func requireBuilt(t *testing.T, names ...string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := stackkit.FindRepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		names = []string{"casts", "movies", "traefik"}
	}
	for _, name := range names {
		if path := filepath.Join(root, "bin", name); !isExecutable(path) {
			msg := path + " is not built (make build, make traefik)"
			if os.Getenv("CI") == "true" {
				t.Fatal("CI=true and " + msg)
			}
			t.Skip("skipping: " + msg)
		}
	}
	return root
}

// TestRealServicesUnderFaults runs the real binaries with two replicas each
// and exercises the controls that fault tests use: one replica drained and
// restarted, one killed and restarted, PostgreSQL stopped and started, then
// paused and resumed.
func TestRealServicesUnderFaults(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	root := requireBuilt(t)
	ctx := testContext(t)
	s, logs := startStack(t, ctx, Options{RepoRoot: root, Replicas: 2, ShutdownDelay: 1500 * time.Millisecond})
	u := s.URLs()
	if len(u.Casts) != 2 || len(u.Movies) != 2 {
		t.Fatalf("target.URLs: casts %v, movies %v; want two replicas each", u.Casts, u.Movies)
	}
	for _, path := range []string{"/api/v1/casts", "/api/v1/movies"} {
		if got := getStatus(t, u.Gateway+path); got != http.StatusOK {
			t.Errorf("GET %s through the gateway: %d, want 200", path, got)
		}
	}

	t.Run("gateway access log keeps failures only", func(t *testing.T) {
		if got := getStatus(t, u.Gateway+"/not-the-api"); got != http.StatusNotFound {
			t.Fatalf("GET /not-the-api through the gateway: %d, want 404", got)
		}
		if got := getStatus(t, u.Gateway+"/api/v1/casts/424242"); got != http.StatusNotFound {
			t.Fatalf("GET a cast that does not exist through the gateway: %d, want 404", got)
		}
		// Traefik writes the line after the answer: wait for both.
		path := filepath.Join(s.LogDir(), "traefik-access.log")
		want := map[string]bool{"/not-the-api": false, "/api/v1/casts/424242": false}
		var lines []accessLine
		for deadline := time.Now().Add(10 * time.Second); ; {
			lines = readAccessLines(t, path)
			for _, l := range lines {
				if _, ok := want[l.Path]; ok && l.Status == http.StatusNotFound {
					want[l.Path] = true
				}
			}
			if (want["/not-the-api"] && want["/api/v1/casts/424242"]) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for path, seen := range want {
			if !seen {
				t.Errorf("access log lacks the 404 for %s; it has %+v", path, lines)
			}
		}
		// The successful GETs above were fast and not retried: no line for them.
		for _, l := range lines {
			if (l.Path == "/api/v1/casts" || l.Path == "/api/v1/movies") && l.Status == http.StatusOK {
				t.Errorf("access log has the 200 for %s: want only failed, retried or slow requests", l.Path)
			}
		}
	})

	t.Run("drained replica fails readyz before it stops", func(t *testing.T) {
		stopped := make(chan error, 1)
		go func() { stopped <- s.StopReplica(target.ServiceCasts, 1) }()
		// While it drains, the replica still answers, but not ready: the
		// shutdown delay reached it.
		sawDraining := false
		for !sawDraining {
			select {
			case err := <-stopped:
				t.Fatalf("StopReplica returned (%v) before /readyz was seen failing", err)
			default:
			}
			sawDraining = getStatus(t, u.Casts[1]+"/readyz") == http.StatusServiceUnavailable
			time.Sleep(20 * time.Millisecond)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("StopReplica: %v", err)
		}
		if got := getStatus(t, u.Casts[1]+"/livez"); got != 0 {
			t.Errorf("casts-2 answers %d after StopReplica, want no answer", got)
		}
		if got := getStatus(t, u.Casts[0]+"/readyz"); got != http.StatusOK {
			t.Errorf("casts-1 /readyz %d while casts-2 is stopped, want 200", got)
		}
		if err := s.StopReplica(target.ServiceCasts, 1); err == nil {
			t.Error("StopReplica of a stopped replica succeeded")
		}
		if err := s.StartReplica(ctx, target.ServiceCasts, 1); err != nil {
			t.Fatalf("StartReplica: %v", err)
		}
		if got := getStatus(t, u.Casts[1]+"/readyz"); got != http.StatusOK {
			t.Errorf("casts-2 /readyz %d after StartReplica, want 200", got)
		}
	})

	t.Run("killed replica comes back", func(t *testing.T) {
		if err := s.KillReplica(target.ServiceMovies, 0); err != nil {
			t.Fatalf("KillReplica: %v", err)
		}
		if got := getStatus(t, u.Movies[0]+"/livez"); got != 0 {
			t.Errorf("movies answers %d after KillReplica, want no answer", got)
		}
		if err := s.RestartReplica(ctx, target.ServiceMovies, 1); err != nil {
			t.Fatalf("RestartReplica of the other replica: %v", err)
		}
		if err := s.StartReplica(ctx, target.ServiceMovies, 0); err != nil {
			t.Fatalf("StartReplica: %v", err)
		}
		if err := s.StartReplica(ctx, target.ServiceMovies, 0); err == nil {
			t.Error("StartReplica of a running replica succeeded")
		}
		if err := s.StartReplica(ctx, target.ServiceMovies, 2); err == nil {
			t.Error("StartReplica of a replica that does not exist succeeded")
		}
	})

	// waitStatus polls url until it answers want.
	waitStatus := func(t *testing.T, url string, want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		got := getStatus(t, url)
		for got != want && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			got = getStatus(t, url)
		}
		if got != want {
			t.Errorf("GET %s: %d, want %d", url, got, want)
		}
	}
	outage := func(t *testing.T, begin, end func() error) {
		t.Helper()
		if err := begin(); err != nil {
			t.Fatal(err)
		}
		for _, url := range append(u.Casts, u.Movies...) {
			waitStatus(t, url+"/readyz", http.StatusServiceUnavailable)
			waitStatus(t, url+"/livez", http.StatusOK)
		}
		if err := end(); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitReady(ctx); err != nil {
			t.Fatalf("WaitReady after the outage: %v", err)
		}
	}
	t.Run("postgres stopped and started", func(t *testing.T) {
		outage(t, s.StopPostgres, func() error { return s.StartPostgres(ctx) })
	})
	t.Run("postgres paused and resumed", func(t *testing.T) {
		outage(t, s.PausePostgres, s.ResumePostgres)
	})

	waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := s.Wait(waitCtx); err != nil {
		t.Errorf("Wait reports a crash, but every stop was asked for: %v", err)
	}
	sec := s.Secrets()
	if sec.Casts == "" || sec.Movies == "" {
		t.Fatal("Secrets() has empty passwords")
	}
	files, _ := filepath.Glob(filepath.Join(s.LogDir(), "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		assertNoSecrets(t, f, string(data), sec.Casts, sec.Movies)
	}
	assertNoSecrets(t, "LogOutput", logs.String(), sec.Casts, sec.Movies)
}

// accessLine is what the tests read of a line of Traefik's JSON access log.
type accessLine struct {
	Path   string `json:"RequestPath"`
	Status int    `json:"DownstreamStatus"`
}

func readAccessLines(t *testing.T, path string) []accessLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []accessLine
	for _, raw := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if raw == "" {
			continue
		}
		var l accessLine
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("%s: %v in line %q", path, err, raw)
		}
		lines = append(lines, l)
	}
	return lines
}
