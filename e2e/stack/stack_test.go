package stack

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/e2e/target"
)

// fakeRepo is a repository root with the bits Start checks for, whose
// binaries are this test binary acting as fakes (see TestMain).
func fakeRepo(t *testing.T) (string, Binaries) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "traefik", "dynamic"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root, Binaries{Casts: exe, Movies: exe, Traefik: exe, Hydra: exe, Jaeger: exe}
}

func TestStartOrchestratesFakeBinaries(t *testing.T) {
	requirePostgres(t)
	t.Setenv(envFake, "1")
	t.Setenv("TRAEFIK_LOG_LEVEL", "DEBUG") // must not reach Traefik
	ctx := testContext(t)
	root, bins := fakeRepo(t)
	dir := filepath.Join(traversableTempDir(t), ".run")
	var logs, progress syncBuffer
	opts := Options{RepoRoot: root, Dir: dir, Replicas: 2, Binaries: bins, LogOutput: &logs, Progress: &progress}

	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Stop() })
	u := s.URLs()
	if len(u.Casts) != 2 || len(u.Movies) != 2 {
		t.Fatalf("target.URLs: got casts %v, movies %v; want two replicas each", u.Casts, u.Movies)
	}
	for _, url := range append(u.Casts, u.Movies...) {
		if got := getStatus(t, url+"/readyz"); got != http.StatusOK {
			t.Errorf("GET %s/readyz: got %d, want 200", url, got)
		}
	}

	if err := s.StopService(target.ServiceCasts); err != nil {
		t.Fatalf("StopService: %v", err)
	}
	if got := getStatus(t, u.Casts[0]+"/readyz"); got != 0 {
		t.Errorf("casts answered %d after StopService, want no answer", got)
	}
	// Traefik's health check takes the stopped servers out of rotation: poll its API (bounded, and
	// patient, since a loaded machine can make one API call slow) until it reports them DOWN.
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := waitTraefikReady(ctx, u.Admin, u.Casts, nil, 2*time.Second)
		if err != nil && strings.Contains(err.Error(), "DOWN") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("Traefik with casts stopped: got %v, want casts servers DOWN", err)
			break
		}
	}
	if err := s.StartService(ctx, target.ServiceCasts); err != nil {
		t.Fatalf("StartService: %v", err)
	}
	if got := getStatus(t, u.Casts[1]+"/readyz"); got != http.StatusOK {
		t.Errorf("GET casts replica 2 /readyz after StartService: got %d, want 200", got)
	}

	waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := s.Wait(waitCtx); err != nil {
		t.Errorf("Wait with everything healthy: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, url := range []string{u.Gateway, u.Admin, u.Casts[0], u.Movies[1]} {
		if got := getStatus(t, url+"/"); got != 0 {
			t.Errorf("%s still answers after Stop", url)
		}
	}

	secrets, err := LoadOrCreateSecrets(filepath.Join(dir, "secrets.env"))
	if err != nil {
		t.Fatal(err)
	}
	passwords := []string{secrets.Superuser, secrets.Casts, secrets.Movies, secrets.Hydra, secrets.HydraSystem, secrets.DemoClient, secrets.RelayClient}
	assertNoSecrets(t, "LogOutput", logs.String(), passwords...)
	assertNoSecrets(t, "progress", progress.String(), passwords...)
	files, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		assertNoSecrets(t, f, string(data), passwords...)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	want := []string{"casts-2.log", "casts.log", "hydra.log", "jaeger.log", "movies-2.log", "movies.log", "postgres.log", "traefik.log"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("log files (-want +got):\n%s", diff)
	}
	if !strings.Contains(logs.String(), "[casts-2] fake casts: listening") {
		t.Errorf("LogOutput lacks prefixed service lines; got:\n%s", logs.String())
	}
}

func TestStartReportsAServiceThatDies(t *testing.T) {
	requirePostgres(t)
	t.Setenv(envFake, "1")
	t.Setenv(envFakeFail, target.ServiceMovies)
	root, bins := fakeRepo(t)
	_, err := Start(testContext(t), Options{RepoRoot: root, Binaries: bins})
	if err == nil || !strings.Contains(err.Error(), "fake movies: failing on purpose") {
		t.Errorf("Start with movies failing: got %v, want its last log line", err)
	}
}

func TestStartNamesMissingFiles(t *testing.T) {
	t.Parallel()
	_, err := Start(context.Background(), Options{RepoRoot: t.TempDir()})
	if err == nil {
		t.Fatal("Start without binaries succeeded")
	}
	for _, want := range []string{"bin/casts", "bin/movies", "make build", "bin/traefik", "make traefik", "bin/hydra", "make hydra", "traefik/dynamic"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestStartRefusesAClusterWithoutItsSecrets(t *testing.T) {
	t.Parallel()
	root, bins := fakeRepo(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "postgres", "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "postgres", "data", "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{RepoRoot: root, Dir: dir, Binaries: bins})
	if err == nil || !strings.Contains(err.Error(), "secrets.env") {
		t.Errorf("got %v, want an error about the missing secrets.env", err)
	}
}

// getStatus is the status of GET url, or 0 when nothing answers.
func getStatus(t *testing.T, url string) int {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	status, err := httpStatus(context.Background(), client, url)
	if err != nil {
		return 0 // refused or timed out: what a stopped process looks like
	}
	return status
}
