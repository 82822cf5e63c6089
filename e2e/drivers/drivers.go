// Package drivers hands the e2e suite its stack under test (a target.Target) without the suite
// naming a driver: the stack that `go run ./e2e/cmd/stack <driver>` started and named in the
// environment, or else a throwaway stack of local processes that the suite starts itself.
//
// A new driver is one entry in attached (the variable its cmd/stack case exports, and how to
// attach to what it started).
package drivers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/movies-microservices/e2e/compose"
	"github.com/movies-microservices/e2e/stack"
	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/swarm"
	"github.com/movies-microservices/e2e/target"
)

// attached are the stacks that cmd/stack starts for the suite, each named by the variable its
// command exports, with how to drive it from the suite's process.
var attached = []struct {
	env    string
	attach func(ctx context.Context, root string, getenv func(string) string) (target.Target, error)
}{
	{swarm.EnvState, func(ctx context.Context, _ string, getenv func(string) string) (target.Target, error) {
		d, err := swarm.Attach(getenv(swarm.EnvState))
		if err != nil {
			return nil, err
		}
		return nilIfErr(swarm.NewStack(ctx, d))
	}},
	{compose.EnvProject, func(ctx context.Context, root string, getenv func(string) string) (target.Target, error) {
		return nilIfErr(compose.Attach(ctx, root, getenv))
	}},
}

// nilIfErr keeps a nil pointer out of a non-nil Target.
func nilIfErr[T target.Target](t T, err error) (target.Target, error) {
	if err != nil {
		return nil, err
	}
	return t, nil
}

// ErrNotBuilt is returned when the process stack's programs are not in bin/.
var ErrNotBuilt = errors.New("not built")

// Open returns the stack under test and the function that stops it when the suite is done:
//   - the stack a cmd/stack command started (its variable in attached is set), which that
//     command takes down (stop does nothing);
//   - none (nil) when E2E_BASE_URL names a stack started elsewhere, which the suite drives
//     through its URLs only;
//   - otherwise a throwaway stack of local processes from bin/, which stop takes down. Missing
//     programs are an error wrapping ErrNotBuilt, saying which command builds them.
func Open(ctx context.Context, getenv func(string) string, progress io.Writer) (_ target.Target, stop func() error, _ error) {
	root, err := stackkit.FindRepoRoot(".")
	if err != nil {
		return nil, nil, err
	}
	none := func() error { return nil }
	for _, d := range attached {
		if getenv(d.env) != "" {
			t, err := d.attach(ctx, root, getenv)
			return t, none, err
		}
	}
	if getenv("E2E_BASE_URL") != "" {
		return nil, none, nil
	}
	for _, bin := range []string{"casts", "movies", "traefik"} {
		if _, err := os.Stat(filepath.Join(root, "bin", bin)); err != nil {
			return nil, none, fmt.Errorf("bin/%s is missing: run `make e2e` (it builds the services and Traefik first), or set E2E_BASE_URL to drive a running stack: %w", bin, ErrNotBuilt)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, stack.Options{RepoRoot: root, Progress: progress, LogLevel: "warn", AccessLogAll: true})
	if err != nil {
		return nil, none, fmt.Errorf("start the stack: %w", err)
	}
	fmt.Fprintf(progress, "e2e: stack up, gateway %s, logs in %s\n", s.URLs().Gateway, s.LogDir())
	return s, s.Stop, nil
}
