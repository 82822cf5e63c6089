package e2e

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/movies-microservices/e2e/target"
)

// Which stacks each test must hold on, and why. A stack's run is exactly its tests: TestMain
// narrows -run to them, so no test skips for not applying. A test missing here fails
// TestEveryTestHasAScope; one that is hard to classify runs on every stack.

// scope is the set of stacks a test runs on.
type scope int

const (
	// everyStack: the deployment (routing and its middlewares, identity and trace wiring,
	// isolation of the databases, secrets, faults and restarts, scaling), which each stack
	// builds in its own way.
	everyStack scope = iota
	// singleHost: the services' contract through the gateway (validation, pagination,
	// conditional requests, idempotency, error bodies). It runs on the processes and on
	// Compose, not again on each stack with several nodes: their images, routing and
	// middlewares are proven equal to Compose's by e2e/parity.
	singleHost
	// onNodes: what only a stack on several nodes has (target.Nodes): nodes lost and
	// brought back, tasks spread, rolling updates.
	onNodes
)

// tests is the manifest: every Test function of the package, its scope and why.
var tests = map[string]struct {
	scope scope
	why   string
}{
	// Identity wiring: the provider behind the gateway, the services' key fetch, scopes.
	"TestWritesNeedToken":      {everyStack, "identity wiring: tokens from the stack's provider, verified by each service"},
	"TestEventsNeedRelayToken": {everyStack, "identity wiring: the relay's scope on the internal route"},
	"TestProviderDown":         {everyStack, "fault: the provider stopped and started"},
	"TestSigningKeyRotation":   {everyStack, "identity wiring: the services follow the provider's key set"},
	"TestTokenClaims":          {everyStack, "identity wiring: issuer, audience and lifetime as the stack configures them"},
	"TestDocsWriteWithToken":   {everyStack, "identity wiring: the docs page's token flow through the gateway"},

	// Routing, middlewares, the mesh, the dashboard, replicas, stacks side by side.
	"TestGatewayRoutersHealthy":         {everyStack, "routing: every router and server of the stack's provider"},
	"TestMovieCastCheckGoesThroughMesh": {everyStack, "routing: the cast check takes the mesh entrypoint"},
	"TestGatewayMetrics":                {everyStack, "the gateway's metrics as the stack configures them"},
	"TestInternalRouteOnlyOnMesh":       {everyStack, "routing: the internal route is on the mesh only"},
	"TestDashboardInBrowser":            {everyStack, "the gateway's dashboard as the stack serves it"},
	"TestRoutersFromTheStacksProvider":  {everyStack, "routing: the stack's provider defines routers.yml's routers"},
	"TestBalancedAcrossReplicas":        {everyStack, "scaling: Traefik spreads the load over replicas"},
	"TestTwoStacksSideBySide":           {everyStack, "isolation: two stacks of a kind side by side"},
	"TestDataSurvivesRestart":           {everyStack, "persistence: data outlives the stack's restart"},

	// Databases, secrets, logs.
	"TestDatabasesIsolated":      {everyStack, "isolation of the databases"},
	"TestNoSecretInLogsOrErrors": {everyStack, "secrets: none in any part's logs or error bodies"},

	// Faults and restarts.
	"TestRollingRestart":              {everyStack, "fault: replicas restarted under load"},
	"TestCastServiceDown":             {everyStack, "fault: the cast service stopped"},
	"TestMovieExpandCastsDown":        {everyStack, "fault: the cast service stopped during an expansion"},
	"TestCastDeletionWhileMoviesDown": {everyStack, "fault: the movie service stopped while events wait"},
	"TestDatabaseOutage":              {everyStack, "fault: the databases stopped and started"},
	"TestCrashDurability":             {everyStack, "fault: a replica killed mid-burst"},
	"TestTraceBackendDown":            {everyStack, "fault: the trace backend stopped"},

	// Traces, metrics and events wiring.
	"TestServiceMetrics":             {everyStack, "metrics wiring: each service's port, never routed"},
	"TestFailuresInTracesAndMetrics": {everyStack, "trace and metrics wiring of failures"},
	"TestTraceAcrossTheMesh":         {everyStack, "trace wiring: gateway, services and mesh in one trace"},
	"TestTraceFollowsTheOutbox":      {everyStack, "trace wiring: the outbox's events carry the trace"},
	"TestCastDeletionReachesMovies":  {everyStack, "the outbox's events across the mesh, with the relay's token"},

	// The services' contract through the gateway.
	"TestCastCRUD":                       {singleHost, "contract: the casts API"},
	"TestCastErrorsThroughGateway":       {singleHost, "contract: error bodies"},
	"TestCastPaginationAndFilters":       {singleHost, "contract: pagination and filters"},
	"TestMovieCRUD":                      {singleHost, "contract: the movies API"},
	"TestMovieUnknownCastIsRejected":     {singleHost, "contract: validation of cast ids"},
	"TestMovieListFiltersAndPages":       {singleHost, "contract: pagination and filters"},
	"TestMovieExpandCasts":               {singleHost, "contract: expansion of casts"},
	"TestDeletedCastRefusedOnWrite":      {singleHost, "contract: validation against deleted casts"},
	"TestEventDuplicateDelivery":         {singleHost, "contract: idempotent event delivery"},
	"TestConcurrentPatchesWithOneETag":   {singleHost, "contract: conditional requests"},
	"TestIdempotencyKey":                 {singleHost, "contract: idempotency"},
	"TestContractChecksBothPathForms":    {singleHost, "contract: the OpenAPI check itself"},
	"TestDocsRenderInBrowser":            {singleHost, "contract: the services' docs pages"},
	"TestHostileQueryInvalidUTF8":        {singleHost, "contract: validation of queries"},
	"TestHostileInputBarrage":            {singleHost, "contract: validation"},
	"TestHostileInvalidUTF8Body":         {singleHost, "contract: validation of bodies"},
	"TestHostileInjectionStoredVerbatim": {singleHost, "contract: input stored verbatim"},

	// Nodes (swarm_test.go, built with -tags swarm).
	"TestSwarmSpreadAndBalanced":     {onNodes, "nodes: tasks spread, every task serving"},
	"TestSwarmRollingUpdate":         {onNodes, "a rolling update under load"},
	"TestSwarmFailedUpdateRollsBack": {onNodes, "a failed update rolled back under load"},
	"TestSwarmScale":                 {onNodes, "scaling tasks under load"},
	"TestSwarmWorkerEngineStopped":   {onNodes, "nodes: a worker's engine stopped under load"},
	"TestSwarmWorkerCutOff":          {onNodes, "nodes: a worker cut off under load"},

	"TestEveryTestHasAScope": {everyStack, "checks this manifest"},
	"TestSplitRun":           {everyStack, "checks how TestMain reads -run"},
}

// runsOn tells whether a test of scope s is part of the run on t (nil: a stack reached
// through E2E_BASE_URL alone, single-host as far as the suite can tell).
func (s scope) runsOn(t target.Target) bool {
	_, nodes := t.(target.Nodes)
	switch s {
	case singleHost:
		return !nodes
	case onNodes:
		return nodes
	}
	return true
}

// selectTests narrows -run to the tests of the stack under test, intersected with the
// pattern given on the command line, and prints which tests run and which do not.
func selectTests(t target.Target, w io.Writer) error {
	f := flag.Lookup("test.run")
	if f == nil {
		return fmt.Errorf("no -test.run flag: is this a test binary?")
	}
	// go test matches -run level by level, split at slashes: the first level names the Test
	// functions; the rest (subtests) is kept as the user gave it.
	top, sub := splitRun(f.Value.String())
	re, err := regexp.Compile(top)
	if err != nil {
		return fmt.Errorf("-run %q: %w", f.Value.String(), err)
	}
	var run, contract, nodes []string
	for _, name := range slices.Sorted(maps.Keys(tests)) {
		switch sc := tests[name].scope; {
		case !sc.runsOn(t) && sc == singleHost:
			contract = append(contract, name)
		case !sc.runsOn(t):
			nodes = append(nodes, name)
		case re.MatchString(name):
			run = append(run, name)
		}
	}
	kind := "a stack started elsewhere"
	if t != nil {
		kind = t.Kind()
	}
	fmt.Fprintf(w, "e2e on %s: %d tests: %s\n", kind, len(run), strings.Join(run, " "))
	if len(contract) > 0 {
		fmt.Fprintf(w, "e2e on %s: left out, %d contract tests (they run on processes and Compose; e2e/parity proves this stack's images, routing and middlewares equal to Compose's): %s\n",
			kind, len(contract), strings.Join(contract, " "))
	}
	if len(nodes) > 0 {
		fmt.Fprintf(w, "e2e on %s: left out, %d tests of nodes (they run on stacks with several): %s\n", kind, len(nodes), strings.Join(nodes, " "))
	}
	pattern := "^$" // none: the command line's -run matches none of this stack's tests
	if len(run) > 0 {
		pattern = "^(" + strings.Join(run, "|") + ")$"
	}
	return flag.Set("test.run", pattern+sub)
}

// splitRun splits a -run pattern at its first slash outside brackets and parentheses, as go
// test does (testing's splitRegexp): the pattern of the Test functions, and the rest with its
// slash ("" if none).
func splitRun(pattern string) (top, sub string) {
	brackets, parens := 0, 0
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '[':
			brackets++
		case ']':
			brackets = max(brackets-1, 0)
		case '(':
			if brackets == 0 {
				parens++
			}
		case ')':
			if brackets == 0 {
				parens--
			}
		case '\\':
			i++ // an escaped character is never a separator
		case '/':
			if brackets == 0 && parens == 0 {
				return pattern[:i], pattern[i:]
			}
		}
	}
	return pattern, ""
}

// TestEveryTestHasAScope: every Test function of the package (swarm_test.go's included, whatever
// the build tags) is in the manifest, and the manifest names no test that is gone.
func TestEveryTestHasAScope(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") && fn.Name.Name != "TestMain" {
				found[fn.Name.Name] = true
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(found)) {
		if _, ok := tests[name]; !ok {
			t.Errorf("%s is in no scope: add it to tests in scope_test.go, with the stacks it must hold on and why", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(tests)) {
		if !found[name] {
			t.Errorf("scope_test.go lists %s, which no file of the package defines", name)
		}
	}
}

// TestSplitRun: a -run pattern splits where go test splits it, so that TestMain keeps the
// subtest part of the command line's pattern.
func TestSplitRun(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ pattern, top, sub string }{
		{"", "", ""},
		{"TestCastCRUD", "TestCastCRUD", ""},
		{"TestConcurrentPatchesWithOneETag/cast", "TestConcurrentPatchesWithOneETag", "/cast"},
		{"Test(A|B/C)/x", "Test(A|B/C)", "/x"},
		{"Test[/]x/y", "Test[/]x", "/y"},
		{`Test\/x/y`, `Test\/x`, "/y"},
	} {
		top, sub := splitRun(tt.pattern)
		if top != tt.top || sub != tt.sub {
			t.Errorf("splitRun(%q) = %q, %q; want %q, %q", tt.pattern, top, sub, tt.top, tt.sub)
		}
	}
}
