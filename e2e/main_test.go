package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/movies-microservices/e2e/drivers"
	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// suite is the stack under test, shared by every test of the package.
var suite struct {
	gateway string // Traefik's public entrypoint
	admin   string // Traefik's API
	// target is the stack the suite acts on in fault tests: the processes it started itself, or
	// the stack a cmd/stack command started (package drivers). Nil when driving a stack started
	// elsewhere through its URLs only (E2E_BASE_URL alone).
	target target.Target
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
	var stop func() error
	var err error
	suite.target, stop, err = drivers.Open(ctx, os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		// Missing binaries fail the run in CI and skip it elsewhere, with the command that builds them.
		if errors.Is(err, drivers.ErrNotBuilt) && os.Getenv("CI") != "true" {
			fmt.Fprintln(os.Stderr, "e2e: skipping the e2e suite")
			return 0
		}
		return 1
	}
	defer stop()
	if suite.target != nil && suite.gateway == "" {
		suite.gateway, suite.admin = suite.target.URLs().Gateway, suite.target.URLs().Admin
	}
	fmt.Fprintf(os.Stderr, "e2e: testing %s, gateway %s\n", describeTarget(suite.target), suite.gateway)
	if err := selectTests(suite.target, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	suiteTokens = newSuiteTokens()

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
	if err := stopPersistentStack(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: stop the persistent stack: %v\n", err)
		code = max(code, 1)
	}
	return code
}

// needTarget skips tests that act on the stack (stop services, read its logs) when the suite
// drives one it cannot act on: only with E2E_BASE_URL and no driver's variable (package
// drivers). On the stacks the suite or cmd/stack starts, nothing is skipped.
func needTarget(t *testing.T) target.Target {
	t.Helper()
	if suite.target == nil {
		skip(t, "this test acts on the stack (stops parts of it, reads its logs): it runs on the stack the suite starts, "+
			"or on one a `go run ./e2e/cmd/stack` command started, not through E2E_BASE_URL alone")
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
	if err := stackkit.Poll(context.Background(), timeout, 100*time.Millisecond, what, check); err != nil {
		t.Fatal(err)
	}
}

var plainClient = &http.Client{Timeout: 30 * time.Second}
