package e2e

import (
	"context"
	"fmt"

	"github.com/movies-microservices/e2e/target"
)

// The stack under test is a target.Target (package target), which the fault tests act on; the
// suite gets it from package drivers and never names a driver. What only some stacks have is an
// optional interface of package target, asked for here.

// startTarget is a stack of its own, of the suite's kind, for a test that must not disturb the
// suite's: processes beside the suite's processes, a second Compose project beside the suite's
// project, a second stack on the swarm of the suite. Each runs replicas of each service and drains a
// stopping one before it stops.
func startTarget(ctx context.Context, name string, replicas int) (target.Target, error) {
	s, ok := suite.target.(target.Siblings)
	if !ok {
		return nil, fmt.Errorf("%s cannot start a second stack beside itself (no target.Siblings)", describeTarget(suite.target))
	}
	return s.Sibling(ctx, name, replicas)
}

// startPersistentTarget starts a stack of the suite's kind that keeps its data between runs: a
// Compose project (named volumes), processes with a data directory of their own, a stack on the
// swarm (its volumes).
func startPersistentTarget(ctx context.Context, name string) (target.Persistent, error) {
	p, ok := suite.target.(target.Persistence)
	if !ok {
		return nil, fmt.Errorf("%s cannot start a stack whose data outlives it (no target.Persistence)", describeTarget(suite.target))
	}
	return p.Persistent(ctx, name)
}

// describeTarget is how the suite names the stack it drives, for its first line.
func describeTarget(t target.Target) string {
	if t == nil {
		return "a stack started elsewhere (E2E_BASE_URL), without control over it"
	}
	return fmt.Sprintf("the %s stack", t.Kind())
}
