package stack

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/movies-microservices/e2e/target"
)

// TestStartWithBuiltTraefik runs the real bin/traefik and traefik/dynamic of
// this repository in front of fake services: it checks the flags, the
// STACK_*_URLS contract with routers.yml, and the routing of both entrypoints.
func TestStartWithBuiltTraefik(t *testing.T) {
	requirePostgres(t)
	root := requireBuilt(t, "traefik")
	traefik := filepath.Join(root, "bin", "traefik")
	t.Setenv(envFake, "1")
	_, bins := fakeRepo(t)
	bins.Traefik = traefik
	s, _ := startStack(t, testContext(t), Options{RepoRoot: root, Replicas: 2, Binaries: bins})
	u := s.URLs()

	tests := []struct {
		url, want string
	}{
		{u.Gateway + "/api/v1/movies", target.ServiceMovies},
		{u.Gateway + "/api/v1/casts/", target.ServiceCasts},
		{u.Mesh + "/api/v1/casts?id=1", target.ServiceCasts},
		{u.Mesh + "/api/v1/movies/7", target.ServiceMovies},
	}
	for _, tc := range tests {
		resp, err := http.Get(tc.url)
		if err != nil {
			t.Errorf("GET %s: %v", tc.url, err)
			continue
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Fake-Service"); got != tc.want {
			t.Errorf("GET %s answered by %q (status %d), want %q", tc.url, got, resp.StatusCode, tc.want)
		}
	}

	if err := s.StopService(target.ServiceCasts); err != nil {
		t.Fatal(err)
	}
	// Traefik's health check (every 2s in routers.yml) takes the stopped
	// replicas out of the rotation.
	if err := waitTraefikSees(t, u.Admin, u.Casts, "casts@file has it DOWN"); err != nil {
		t.Errorf("casts stopped: %v", err)
	}
	if err := s.StartService(testContext(t), target.ServiceCasts); err != nil {
		t.Fatal(err)
	}
	if err := waitTraefikReady(testContext(t), u.Admin, u.Casts, nil, 20*time.Second); err != nil {
		t.Errorf("casts back in Traefik after StartService: %v", err)
	}
}

// waitTraefikSees polls Traefik's API until checking servers fails with want.
func waitTraefikSees(t *testing.T, adminURL string, servers []string, want string) error {
	t.Helper()
	ctx := testContext(t)
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		last = checkTraefik(ctx, client, adminURL, servers)
		if last != nil && strings.Contains(last.Error(), want) {
			return nil
		}
	}
	return fmt.Errorf("Traefik never reported %q; last check: %v", want, last)
}
