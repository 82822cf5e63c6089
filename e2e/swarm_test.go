//go:build swarm

// The tests of the stack on Docker Swarm (make e2e-swarm builds them with -tags swarm): they
// need the swarm that `go run ./e2e/cmd/stack swarm` makes, and run on it only.

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// multiNode is a stack on several nodes whose orchestrator scales and rolls out services.
type multiNode interface {
	target.Target
	target.Nodes
	target.Rollouts
}

// needSwarm is the suite's stack on several nodes; any other stack fails the test: these tests
// are built only for `make e2e-swarm`.
func needSwarm(t *testing.T) multiNode {
	t.Helper()
	s, ok := suite.target.(multiNode)
	if !ok {
		t.Fatalf("built with -tags swarm, but the suite drives %s, which has no nodes: run it with `make e2e-swarm`", describeTarget(suite.target))
	}
	return s
}

// underLoad runs act while two workers send the load of runLoad (writes and reads on both
// services, the cast check across the mesh) through the gateway, and returns what the load saw.
// The load is bounded in requests and stops when act returns.
func underLoad(t *testing.T, s multiNode, act func() error) *loadResult {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan *loadResult)
	go func() { done <- runLoad(s.URLs().Gateway, suiteTokens, 2, 100_000, stop) }()
	time.Sleep(time.Second) // the load is going before the change starts
	err := act()
	close(stop)
	res := <-done
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load: %d requests, %d failed; %d casts and %d movies acknowledged", res.requests, len(res.failures), len(res.casts), len(res.movies))
	if len(res.casts) == 0 || len(res.movies) == 0 {
		t.Fatal("the load acknowledged no writes: it tested nothing")
	}
	return res
}

// noFailures fails t for each failed request of res, and checks every acknowledged write.
func noFailures(t *testing.T, s multiNode, what string, res *loadResult) {
	t.Helper()
	if len(res.failures) > 0 {
		t.Errorf("%d requests failed during %s:\n%s", len(res.failures), what, strings.Join(res.failures, "\n"))
	}
	checkAcknowledged(t, s.URLs().Gateway, res)
}

// settle waits, at the end of a test, until the stack is whole again for the next one.
func settle(t *testing.T, s multiNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatalf("the stack is not whole again: %v", err)
	}
}

// routedToTasks checks that Traefik's servers of svc are exactly its running tasks' addresses.
func routedToTasks(ctx context.Context, s multiNode, svc string, port string) error {
	tasks, err := s.Tasks(ctx, svc)
	if err != nil {
		return err
	}
	var want []string
	for _, task := range tasks {
		want = append(want, "http://"+task.Addr+":"+port)
	}
	servers, err := stackkit.ServerStatus(ctx, plainClient, s.URLs().Admin, svc+"@"+s.Provider())
	if err != nil {
		return err
	}
	var got []string
	for url, status := range servers {
		if status == "UP" {
			got = append(got, url)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		return fmt.Errorf("%s: Traefik's servers %v, the running tasks' addresses %v", svc, got, want)
	}
	return nil
}

// TestSwarmSpreadAndBalanced: each service's tasks run on at least two nodes, Traefik's
// servers are exactly those tasks, and requests through the gateway reach every task.
func TestSwarmSpreadAndBalanced(t *testing.T) {
	s := needSwarm(t)
	ctx := t.Context()
	for _, svc := range []string{target.ServiceCasts, target.ServiceMovies} {
		tasks, err := s.Tasks(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		nodes := map[string]bool{}
		for _, task := range tasks {
			nodes[task.Node] = true
		}
		t.Logf("%s: %d tasks on nodes %v", svc, len(tasks), nodes)
		if len(tasks) != s.Replicas(svc) || len(nodes) < 2 {
			t.Errorf("%s: %d tasks on %d nodes, want %d on at least 2", svc, len(tasks), len(nodes), s.Replicas(svc))
		}
		if err := routedToTasks(ctx, s, svc, target.ServicePorts[svc]); err != nil {
			t.Error(err)
		}

		// 40 reads with request ids of their own; each task's log must hold some of them.
		// A request id the services take as it is: letters, digits and dashes.
		prefix := strings.ReplaceAll(unique("balance-"+svc), " ", "-")
		for i := range 40 {
			r := call(t, "GET", "/api/v1/"+svc+"?limit=1", "", "X-Request-Id", fmt.Sprintf("%s-%d", prefix, i))
			mustStatus(t, "read "+svc, r, http.StatusOK)
		}
		waitFor(t, "every "+svc+" task's log to show some of the 40 reads", 15*time.Second, func() error {
			logs, err := s.TaskLogs(ctx, svc)
			if err != nil {
				return err
			}
			counts := map[string]int{} // by task: its id, then its node
			for _, task := range tasks {
				for _, l := range logs {
					for line := range strings.Lines(l.Text) {
						if l.ID == task.ID && strings.Contains(line, prefix) {
							counts[task.ID[:12]+"@"+task.Node]++
						}
					}
				}
			}
			total := 0
			for _, n := range counts {
				total += n
			}
			if len(counts) != len(tasks) || total != 40 {
				return fmt.Errorf("reads served by node: %v (want all 40 over %d tasks)", counts, len(tasks))
			}
			t.Logf("%s: the 40 reads by task: %v", svc, counts)
			return nil
		})
	}
}

// TestSwarmRollingUpdate updates both services to a new image tag at once under load (as a
// release does): start-first, one task at a time, not one failed request, and the new
// version's tasks serve at the end.
func TestSwarmRollingUpdate(t *testing.T) {
	s := needSwarm(t)
	defer settle(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	services := []string{target.ServiceCasts, target.ServiceMovies}
	paths := map[string]string{}
	for _, svc := range services {
		path, err := s.NewImage(ctx, svc, "2", "LABEL org.opencontainers.image.version=2")
		if err != nil {
			t.Fatal(err)
		}
		paths[svc] = path
	}
	started := time.Now()
	res := underLoad(t, s, func() error {
		errs := make(chan error, len(services))
		for _, svc := range services {
			go func() {
				err := s.UpdateImage(ctx, svc, paths[svc])
				t.Logf("%s updated to %s after %s", svc, paths[svc], time.Since(started).Round(time.Second))
				errs <- err
			}()
		}
		var err error
		for range services {
			err = errors.Join(err, <-errs)
		}
		return err
	})
	noFailures(t, s, "the rolling update of "+strings.Join(services, " and "), res)

	for _, svc := range services {
		if state, err := s.UpdateState(ctx, svc); err != nil || state != "completed" {
			t.Errorf("%s: update state %q (%v), want completed", svc, state, err)
		}
		tasks, err := s.Tasks(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if !strings.HasPrefix(task.Image, s.Image(paths[svc])) {
				t.Errorf("%s: task %s on %s runs %s, want %s", svc, task.ID, task.Node, task.Image, s.Image(paths[svc]))
			}
		}
		waitFor(t, "Traefik routing to the new tasks of "+svc, 30*time.Second, func() error {
			return routedToTasks(ctx, s, svc, target.ServicePorts[svc])
		})
	}
}

// TestSwarmFailedUpdateRollsBack updates casts to an image whose health check never passes:
// Swarm rolls the update back by itself, the old tasks serve throughout, no request fails.
func TestSwarmFailedUpdateRollsBack(t *testing.T) {
	s := needSwarm(t)
	defer settle(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	svc := target.ServiceCasts
	before, err := s.SpecImage(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	path, err := s.NewImage(ctx, svc, "broken",
		`HEALTHCHECK --interval=2s --timeout=1s --start-period=1s --retries=2 CMD ["/app/no-such-health-check"]`)
	if err != nil {
		t.Fatal(err)
	}
	var updateErr error
	started := time.Now()
	res := underLoad(t, s, func() error {
		updateErr = s.UpdateImage(ctx, svc, path)
		return nil
	})
	t.Logf("the update to %s ended after %s: %v", path, time.Since(started).Round(time.Second), stackkit.FirstLine(fmt.Sprint(updateErr)))
	noFailures(t, s, "the failed update of "+svc, res)
	// `docker service update --detach=false` returns once the service has converged, also when
	// that is the rollback (it may exit 0 then): the update's state says what happened.
	waitFor(t, "the rollback to end", 2*time.Minute, func() error {
		state, err := s.UpdateState(ctx, svc)
		if err != nil {
			return err
		}
		if state != "rollback_completed" {
			return fmt.Errorf("update state %q", state)
		}
		return nil
	})
	if after, err := s.SpecImage(ctx, svc); err != nil || after != before {
		t.Errorf("after the rollback %s's image is %q (%v), want %q", svc, after, err, before)
	}
}

// TestSwarmScale scales movies from 2 to 4 tasks and back under load: no failed request, and
// Traefik routes to exactly the running tasks after each step.
func TestSwarmScale(t *testing.T) {
	s := needSwarm(t)
	defer settle(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	svc := target.ServiceMovies
	res := underLoad(t, s, func() error {
		for _, n := range []int{4, s.Replicas(svc)} {
			started := time.Now()
			if err := s.Scale(ctx, svc, n); err != nil {
				return err
			}
			if err := s.WaitRouted(ctx, 2*time.Minute, map[string]int{svc: n}); err != nil {
				return err
			}
			if err := routedToTasks(ctx, s, svc, target.ServicePorts[svc]); err != nil {
				return err
			}
			t.Logf("%s scaled to %d, Traefik routing to each, in %s", svc, n, time.Since(started).Round(time.Second))
			time.Sleep(3 * time.Second) // some load on each size
		}
		return nil
	})
	noFailures(t, s, "the scaling of "+svc, res)
}

// workerWithTasks is a worker running at least one task of casts or movies.
func workerWithTasks(t *testing.T, s multiNode) string {
	t.Helper()
	for _, n := range s.Workers() {
		for _, svc := range []string{target.ServiceCasts, target.ServiceMovies} {
			tasks, err := s.Tasks(t.Context(), svc)
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(tasks, func(task target.Task) bool { return task.Node == n }) {
				return n
			}
		}
	}
	t.Fatal("no worker runs a task of casts or movies")
	return ""
}

// tasksOn counts the tasks of casts and movies on node.
func tasksOn(t *testing.T, s multiNode, node string) int {
	t.Helper()
	count := 0
	for _, svc := range []string{target.ServiceCasts, target.ServiceMovies} {
		tasks, err := s.Tasks(t.Context(), svc)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if task.Node == node {
				count++
			}
		}
	}
	return count
}

// nodeLoss runs lose (the worker's engine stopped, or its link cut) under load, measures the
// seconds until casts and movies are whole again on the other nodes, then runs recover and
// waits for the node to be back. At most one request per load worker may fail: the bound the
// stack keeps is that a client loses only the request it had in flight towards the lost node
// (directly, or through movies' cast check). The stack keeps it because a client is blocked on
// that request for longer than Traefik's active health check takes to take the node's instances
// out (interval 2 s + timeout 1 s): 15 s for a request hung on a lost instance
// (responseHeaderTimeout), twice 2 s for a cast check (a timed-out check is made once more, see
// castsclient), and a request that could not be sent there goes to another instance
// (public-retry, mesh-retry). e2e/swarm/README.md says where it can still break and what was
// measured. The test reports the count either way.
func nodeLoss(t *testing.T, s multiNode, what string, lose, recover func(ctx context.Context, node string) error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	n := workerWithTasks(t, s)
	t.Logf("%s: %d tasks of casts and movies on it", n, tasksOn(t, s, n))
	var whole time.Duration
	var recovered sync.Once
	recoverNode := func() error {
		var err error
		recovered.Do(func() { err = recover(context.WithoutCancel(ctx), n) })
		return err
	}
	var lossStarted time.Time
	res := underLoad(t, s, func() error {
		started := time.Now()
		lossStarted = started
		if err := lose(ctx, n); err != nil {
			return err
		}
		// Whatever happens next, the node comes back before the next test.
		t.Cleanup(func() {
			if err := recoverNode(); err != nil {
				t.Errorf("bring %s back: %v", n, err)
			}
		})
		if err := s.WaitNode(ctx, 2*time.Minute, n, "down"); err != nil {
			return err
		}
		// Not waitFor: its t.Fatal would leave the load running.
		err := stackkit.Poll(ctx, 3*time.Minute, 300*time.Millisecond, "casts and movies whole on the other nodes", func() error {
			for _, svc := range []string{target.ServiceCasts, target.ServiceMovies} {
				tasks, err := s.Tasks(ctx, svc)
				if err != nil {
					return err
				}
				on := 0
				for _, task := range tasks {
					if task.Node != n {
						on++
					}
				}
				if on != s.Replicas(svc) {
					return fmt.Errorf("%s: %d tasks on the other nodes", svc, on)
				}
				if err := routedToTasks(ctx, s, svc, target.ServicePorts[svc]); err != nil {
					return err
				}
			}
			return nil
		})
		whole = time.Since(started)
		return err
	})
	t.Logf("%s %s: casts and movies whole again on the other nodes after %.1f s; %d of %d requests failed",
		what, n, whole.Seconds(), len(res.failures), res.requests)
	if len(res.failures) > 2 {
		t.Errorf("%d requests failed, want at most 2 (one in flight per load worker):\n%s", len(res.failures), strings.Join(res.failures, "\n"))
	} else if len(res.failures) > 0 {
		t.Logf("the failed requests (in flight towards %s):\n%s", n, strings.Join(res.failures, "\n"))
	}
	logGatewayFailures(t, s, lossStarted)
	checkAcknowledged(t, s.URLs().Gateway, res)

	started := time.Now()
	if err := recoverNode(); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitNode(ctx, 3*time.Minute, n, "ready"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s ready again in the swarm after %.1f s", n, time.Since(started).Seconds())
	settle(t, s)
}

// TestSwarmWorkerEngineStopped stops a worker's engine under load (SIGTERM, as `systemctl stop
// docker`: its containers drain and stop); Swarm runs its tasks on the other nodes.
func TestSwarmWorkerEngineStopped(t *testing.T) {
	s := needSwarm(t)
	nodeLoss(t, s, "engine stopped on", s.StopNode, s.StartNode)
}

// TestSwarmWorkerCutOff takes a worker's link down under load: Traefik's health checks take
// its tasks out of rotation, Swarm runs them on the other nodes, and the node rejoins once its
// link is back.
func TestSwarmWorkerCutOff(t *testing.T) {
	s := needSwarm(t)
	nodeLoss(t, s, "link cut to", s.CutOff, s.BringBack)
}

// logGatewayFailures logs the gateway's own record (its access log) of each request it answered
// 5xx that ended after the loss started, on either entrypoint: which router, the instance's
// status (0: none, the gateway answered itself, as the mesh's circuit breaker does) and how long
// it took, so a failure says where it came from. (ServiceURL is the problems service's when the
// gateway rendered the problem page.)
func logGatewayFailures(t *testing.T, s multiNode, since time.Time) {
	t.Helper()
	entries, err := parseAccessLog(s)
	if err != nil {
		t.Logf("the gateway's access log: %v", err)
		return
	}
	var lines []string
	for _, e := range entries {
		if e.Status < 500 || e.Start.Add(time.Duration(e.Duration)).Before(since) {
			continue
		}
		lines = append(lines, fmt.Sprintf("+%.1fs %s %s %s %.60s -> %s origin %d, %d after %s, %d retries",
			e.Start.Sub(since).Seconds(), e.EntryPointName, e.RouterName, e.Method, e.RequestPath, e.ServiceURL,
			e.OriginStatus, e.Status, time.Duration(e.Duration).Round(time.Millisecond), e.RetryAttempts))
	}
	t.Logf("the gateway answered %d requests 5xx since the loss:\n%s", len(lines), strings.Join(lines, "\n"))
}
