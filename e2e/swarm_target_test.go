package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/movies-microservices/e2e/compose"
	"github.com/movies-microservices/e2e/stack"
	"github.com/movies-microservices/e2e/swarm"
)

// swarmTarget is the stack deployed on a swarm of three engines (package swarm, go run
// ./e2e/cmd/stack swarm). A "replica" is a task; Swarm replaces a task that ends, so a killed
// or stopped replica comes back as a new task, on whichever node Swarm picks.
type swarmTarget struct {
	*swarm.Deployment
	*swarmState
}

type swarmState struct {
	refreshing sync.Mutex // one refresh at a time: each closes the forwards of tasks gone
	mu         sync.Mutex
	// gone is the output of the tasks the target removed (scaled to 0), by service: Swarm
	// removes a task's container with the task, and its log with it.
	gone map[string]string
	// casts and movies are each task's URL (swarm.ReplicaURLs), read again after each change.
	casts, movies []string
}

func newSwarmTarget(ctx context.Context, d *swarm.Deployment) (swarmTarget, error) {
	s := swarmTarget{d, &swarmState{gone: map[string]string{}}}
	return s, s.refresh(ctx)
}

// refresh reads each task's URL again.
func (s swarmTarget) refresh(ctx context.Context) error {
	s.refreshing.Lock()
	defer s.refreshing.Unlock()
	casts, err := s.ReplicaURLs(ctx, stack.ServiceCasts)
	if err != nil {
		return err
	}
	movies, err := s.ReplicaURLs(ctx, stack.ServiceMovies)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.casts, s.movies = casts, movies
	s.mu.Unlock()
	return nil
}

// URLs are the stack's, with a forward into each task's container as its replicas' URLs.
func (s swarmTarget) URLs() stack.URLs {
	u := s.State.URLs
	s.mu.Lock()
	u.Casts, u.Movies = slices.Clone(s.casts), slices.Clone(s.movies)
	s.mu.Unlock()
	return u
}

// Stop removes a sibling stack; the suite's own is removed by the command that made it.
func (s swarmTarget) Stop() error {
	if !s.IsSibling {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return s.Down(ctx)
}

// Recreate removes the stack and deploys it again, with its volumes unless removeData.
func (s swarmTarget) Recreate(ctx context.Context, removeData bool) error {
	if err := s.Deployment.Recreate(ctx, removeData); err != nil {
		return err
	}
	return s.refresh(ctx)
}

// siblings numbers the stacks the suite deploys beside its own (their ports).
var siblings atomic.Int32

// startSibling deploys a stack of the suite's images beside the suite's on the same swarm.
func (s swarmTarget) startSibling(ctx context.Context, name string) (swarmTarget, error) {
	d, err := s.Sibling(ctx, name, int(siblings.Add(1)))
	if err != nil {
		return swarmTarget{}, err
	}
	t, err := newSwarmTarget(ctx, d)
	if err != nil {
		d.Down(context.WithoutCancel(ctx)) //nolint:errcheck // the first error says more
	}
	return t, err
}

// Logs are every service's output, the tasks the target removed included.
func (s swarmTarget) Logs(ctx context.Context) (map[string]string, error) {
	logs, err := s.Deployment.Logs(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for svc, text := range s.gone {
		logs[svc] = text + logs[svc]
	}
	return logs, nil
}

func (s swarmTarget) Kind() string           { return "swarm" }
func (s swarmTarget) Secrets() stack.Secrets { return s.State.Secrets }

const swarmTimeout = 3 * time.Minute

// replicas is how many tasks a service of the stack runs.
func (s swarmTarget) replicas(name string) int {
	if name == stack.ServiceCasts || name == stack.ServiceMovies {
		return swarm.Replicas
	}
	return 1
}

// scale sets the replicas of services and waits until Swarm runs them; the output of tasks it
// removes is kept for Logs.
func (s swarmTarget) scale(ctx context.Context, n int, services ...string) error {
	if n == 0 {
		logs, err := s.Deployment.Logs(ctx)
		if err != nil {
			return err
		}
		s.mu.Lock()
		for _, svc := range services {
			s.gone[svc] += logs[svc]
		}
		s.mu.Unlock()
	}
	for _, svc := range services {
		if err := s.Scale(ctx, svc, n); err != nil {
			return err
		}
	}
	return nil
}

// whole waits until every service runs all its tasks and Traefik routes to each task of those
// named.
func (s swarmTarget) whole(ctx context.Context, routed ...string) error {
	if err := s.WaitConverged(ctx, swarmTimeout); err != nil {
		return err
	}
	want := map[string]int{}
	for _, svc := range routed {
		want[svc] = s.replicas(svc)
	}
	if err := s.WaitRouted(ctx, swarmTimeout, want); err != nil {
		return err
	}
	return s.refresh(ctx)
}

// stopping is the context of the Stop methods, which the interface gives none.
func stopping() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), swarmTimeout)
}

func (s swarmTarget) StopService(name string) error {
	ctx, cancel := stopping()
	defer cancel()
	return s.scale(ctx, 0, name)
}

func (s swarmTarget) StartService(ctx context.Context, name string) error {
	if err := s.scale(ctx, s.replicas(name), name); err != nil {
		return err
	}
	return s.whole(ctx, name)
}

func (s swarmTarget) StopDatabases() error {
	ctx, cancel := stopping()
	defer cancel()
	return s.scale(ctx, 0, stack.ServiceCasts+"-db", stack.ServiceMovies+"-db")
}

func (s swarmTarget) StartDatabases(ctx context.Context) error {
	return s.scale(ctx, 1, stack.ServiceCasts+"-db", stack.ServiceMovies+"-db")
}

// WaitReady returns once every task runs, Traefik routes to each, and reads through the
// gateway succeed on both services (the tasks cannot be reached from the host directly).
func (s swarmTarget) WaitReady(ctx context.Context) error {
	if err := s.whole(ctx, stack.ServiceCasts, stack.ServiceMovies); err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for _, path := range []string{"/api/v1/casts?limit=1", "/api/v1/movies?limit=1"} {
		deadline := time.Now().Add(swarmTimeout)
		for {
			err := stack.GetJSON(ctx, client, s.URLs().Gateway+path, nil)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return err
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	return nil
}

// task is the node and container of task i (in Tasks' order) of a service.
func (s swarmTarget) task(ctx context.Context, name string, i int) (swarm.Node, string, error) {
	return s.Container(ctx, name, i)
}

// KillReplica sends SIGKILL to task i's container, as a crash would; Swarm starts a new task.
func (s swarmTarget) KillReplica(name string, i int) error {
	ctx, cancel := stopping()
	defer cancel()
	n, id, err := s.task(ctx, name, i)
	if err != nil {
		return err
	}
	_, err = n.Docker(ctx, "kill", "--signal", "KILL", id)
	return err
}

// StartReplica waits until Swarm has replaced the task and Traefik routes to every task.
func (s swarmTarget) StartReplica(ctx context.Context, name string, _ int) error {
	return s.whole(ctx, name)
}

// RestartReplica stops task i's container as Swarm does (SIGTERM, the drain, the shutdown),
// then waits until Swarm has replaced it and Traefik routes to every task.
func (s swarmTarget) RestartReplica(ctx context.Context, name string, i int) error {
	n, id, err := s.task(ctx, name, i)
	if err != nil {
		return err
	}
	if _, err := n.Docker(ctx, "stop", "--time", "25", id); err != nil {
		return err
	}
	return s.StartReplica(ctx, name, i)
}

// ReachDatabase runs pg_isready, from the database's image, in the network namespace of a
// container of service from, against service to's database by its name and by its task's
// address: nil if either answers (the overlay networks keep them apart).
func (s swarmTarget) ReachDatabase(ctx context.Context, from, to string) error {
	n, id, err := s.task(ctx, from, 0)
	if err != nil {
		return err
	}
	dbNode, dbID, err := s.task(ctx, to+"-db", 0)
	if err != nil {
		return err
	}
	image, err := dbNode.Docker(ctx, "inspect", "--format", "{{.Config.Image}}", dbID)
	if err != nil {
		return err
	}
	addrs, err := dbNode.Docker(ctx, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", dbID)
	if err != nil {
		return err
	}
	var errs []error
	for _, host := range append([]string{to + "-db"}, strings.Fields(addrs)...) {
		out, err := n.Docker(ctx, "run", "--rm", "--network", "container:"+id, "--entrypoint", "pg_isready",
			image, "--host", host, "--port", "5432", "--timeout", "3")
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %s", host, compose.FirstLine(out+" "+err.Error())))
	}
	return errors.Join(errs...)
}

// DatabaseSessions lists, on each service's database server, the client sessions other than
// psql's own, as role@database.
func (s swarmTarget) DatabaseSessions(ctx context.Context) ([]string, error) {
	var sessions []string
	for _, svc := range []string{stack.ServiceCasts, stack.ServiceMovies} {
		n, id, err := s.task(ctx, svc+"-db", 0)
		if err != nil {
			return nil, err
		}
		out, err := n.Docker(ctx, "exec", id, "psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align",
			"--username", svc, "--dbname", svc, "--command",
			`SELECT DISTINCT usename::text || '@' || datname::text FROM pg_stat_activity
			 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`)
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, strings.Fields(out)...)
	}
	slices.Sort(sessions)
	return slices.Compact(sessions), nil
}

func (s swarmTarget) Token(ctx context.Context, scope string) (string, error) {
	return stack.FetchToken(ctx, stack.TokenURL(s.URLs().Gateway), stack.DemoClientID, s.State.Secrets.DemoClient, scope)
}

func (s swarmTarget) StopProvider() error {
	ctx, cancel := stopping()
	defer cancel()
	return s.scale(ctx, 0, swarm.ServiceHydra)
}

func (s swarmTarget) StartProvider(ctx context.Context) error {
	if err := s.scale(ctx, 1, swarm.ServiceHydra); err != nil {
		return err
	}
	if err := s.whole(ctx, swarm.ServiceHydra); err != nil {
		return err
	}
	deadline := time.Now().Add(swarmTimeout)
	for {
		_, err := s.Token(ctx, stack.DemoScopes)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// RotateSigningKey runs Hydra's own command in its container (the admin API is on the
// container's loopback only).
func (s swarmTarget) RotateSigningKey(ctx context.Context) (string, error) {
	n, id, err := s.task(ctx, swarm.ServiceHydra, 0)
	if err != nil {
		return "", err
	}
	out, err := n.Docker(ctx, "exec", id, "hydra", "create", "jwks", "hydra.jwt.access-token",
		"--alg", "RS256", "--use", "sig", "--endpoint", "http://127.0.0.1:4445", "--format", "json", "--public")
	if err != nil {
		return "", err
	}
	return stack.FirstKeyID([]byte(out))
}

func (s swarmTarget) StopTraceBackend() error {
	ctx, cancel := stopping()
	defer cancel()
	return s.scale(ctx, 0, swarm.ServiceJaeger)
}

func (s swarmTarget) StartTraceBackend(ctx context.Context) error {
	return s.scale(ctx, 1, swarm.ServiceJaeger)
}

func (s swarmTarget) AccessLog(ctx context.Context) ([]byte, error) {
	logs, err := s.TaskLogs(ctx, swarm.ServiceTraefik)
	var out []byte
	for _, l := range logs {
		out = append(out, l.Text...)
	}
	return out, err
}
