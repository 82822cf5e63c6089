package e2e

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/movies-microservices/e2e/compose"
	"github.com/movies-microservices/e2e/stack"
	"github.com/movies-microservices/e2e/swarm"
)

// suite is the stack under test, shared by every test of the package.
var suite struct {
	gateway string // Traefik's public entrypoint
	admin   string // Traefik's API
	// target is the stack the suite acts on in fault tests: the processes it started itself, or
	// the Compose project named by E2E_COMPOSE_PROJECT. Nil when driving a stack started
	// elsewhere through its URLs only (E2E_BASE_URL without E2E_COMPOSE_PROJECT).
	target target
	// contracts are the OpenAPI documents the services serve, by path prefix.
	contracts map[string]*contract
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctx := context.Background()
	suite.gateway = os.Getenv("E2E_BASE_URL")
	suite.admin = os.Getenv("E2E_ADMIN_URL")
	switch {
	case os.Getenv(swarm.EnvState) != "":
		d, err := swarm.Attach(os.Getenv(swarm.EnvState))
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		if suite.target, err = newSwarmTarget(ctx, d); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		suite.gateway, suite.admin = d.URLs.Gateway, d.URLs.Admin
	case os.Getenv(compose.EnvProject) != "":
		root, err := stack.FindRepoRoot(".")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		p, err := compose.Attach(ctx, root, os.Getenv)
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		suite.target = composeTarget{p}
		if suite.gateway == "" {
			suite.gateway, suite.admin = p.URLs().Gateway, p.URLs().Admin
		}
	case suite.gateway == "":
		s, code, err := startStack(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return code
		}
		defer s.Stop()
		suite.target = processTarget{s}
		suite.gateway = s.URLs().Gateway
		suite.admin = s.URLs().Admin
	}
	fmt.Fprintf(os.Stderr, "e2e: testing %s, gateway %s\n", describeTarget(suite.target), suite.gateway)
	suiteTokens = newSuiteTokens()

	var err error
	suite.contracts, err = loadContracts(ctx, suite.gateway)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	code := m.Run()
	if err := stopReplicatedStack(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: stop the replicated stack: %v\n", err)
		code = max(code, 1)
	}
	return code
}

// startStack starts a throwaway stack from bin/. Missing binaries fail the run in CI and skip it
// elsewhere, with the command that builds them.
func startStack(ctx context.Context) (*stack.Stack, int, error) {
	root, err := stack.FindRepoRoot(".")
	if err != nil {
		return nil, 1, err
	}
	for _, bin := range []string{"casts", "movies", "traefik"} {
		if _, err := os.Stat(filepath.Join(root, "bin", bin)); err != nil {
			msg := fmt.Sprintf("e2e: bin/%s is missing: run `make e2e` (it builds the services and Traefik first), or set E2E_BASE_URL to drive a running stack", bin)
			if os.Getenv("CI") == "true" {
				return nil, 1, fmt.Errorf("%s", msg)
			}
			return nil, 0, fmt.Errorf("%s (skipping the e2e suite)", msg)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, stack.Options{RepoRoot: root, Progress: os.Stderr, LogLevel: "warn", AccessLogAll: true})
	if err != nil {
		return nil, 1, fmt.Errorf("e2e: start the stack: %w", err)
	}
	fmt.Fprintf(os.Stderr, "e2e: stack up, gateway %s, logs in %s\n", s.URLs().Gateway, s.LogDir())
	return s, 0, nil
}

// needTarget skips tests that act on the stack (stop services, read its logs) when the suite
// drives one it cannot act on: only with E2E_BASE_URL and no E2E_COMPOSE_PROJECT. On the stacks
// the suite starts, processes or Compose, nothing is skipped.
func needTarget(t *testing.T) target {
	t.Helper()
	if suite.target == nil {
		skip(t, "this test acts on the stack (stops parts of it, reads its logs): it runs on the stack the suite starts, "+
			"or on a Compose project named by E2E_COMPOSE_PROJECT, not through E2E_BASE_URL alone")
	}
	return suite.target
}

// skip skips t, except where no test may skip (E2E_NO_SKIP=1, as make e2e-compose sets it):
// there it fails t, saying why.
func skip(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("E2E_NO_SKIP") == "1" {
		t.Fatal(why + " (E2E_NO_SKIP=1: no test may skip here)")
	}
	t.Skip(why)
}

// waitFor polls check until it returns nil or the deadline passes; it reports the last error.
func waitFor(t *testing.T, what string, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var plainClient = &http.Client{Timeout: 30 * time.Second}
