package swarm

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// The stack on the swarm is a driver of the stack under test.
var (
	_ target.Target      = (*Stack)(nil)
	_ target.Siblings    = (*Stack)(nil)
	_ target.Persistence = (*Stack)(nil)
	_ target.Persistent  = (*Stack)(nil)
	_ target.Nodes       = (*Stack)(nil)
	_ target.Rollouts    = (*Stack)(nil)
)

// Stack is the deployment as the e2e suite drives it: the stack under test. A "replica" is a
// task; Swarm replaces a task that ends, so a killed or stopped replica comes back as a new
// task, on whichever node Swarm picks.
type Stack struct {
	*Deployment
	*stackState
}

type stackState struct {
	refreshing sync.Mutex // one refresh at a time: each closes the forwards of tasks gone
	stateMu    sync.Mutex
	// gone is the output of the tasks this Stack removed (scaled to 0), by service: Swarm
	// removes a task's container with the task, and its log with it.
	gone map[string]string
	// casts and movies are each task's URL (ReplicaURLs), read again after each change.
	casts, movies []string
}

// NewStack drives deployment d (Up's, or Attach's in the suite's process).
func NewStack(ctx context.Context, d *Deployment) (*Stack, error) {
	s := &Stack{d, &stackState{gone: map[string]string{}}}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// refresh reads each task's URL again.
func (s *Stack) refresh(ctx context.Context) error {
	s.refreshing.Lock()
	defer s.refreshing.Unlock()
	casts, err := s.ReplicaURLs(ctx, target.ServiceCasts)
	if err != nil {
		return err
	}
	movies, err := s.ReplicaURLs(ctx, target.ServiceMovies)
	if err != nil {
		return err
	}
	s.stateMu.Lock()
	s.casts, s.movies = casts, movies
	s.stateMu.Unlock()
	return nil
}

// URLs are the stack's, with a forward into each task's container as its replicas' URLs.
func (s *Stack) URLs() target.URLs {
	u := s.State.URLs
	s.stateMu.Lock()
	u.Casts, u.Movies = slices.Clone(s.casts), slices.Clone(s.movies)
	s.stateMu.Unlock()
	return u
}

// Stop removes a sibling stack; the suite's own is removed by the command that made it.
func (s *Stack) Stop() error {
	if !s.IsSibling {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return s.Down(ctx)
}

// Recreate removes the stack and deploys it again, with its volumes unless removeData.
func (s *Stack) Recreate(ctx context.Context, removeData bool) error {
	if err := s.Deployment.Recreate(ctx, removeData); err != nil {
		return err
	}
	return s.refresh(ctx)
}

// siblings numbers the stacks the suite deploys beside its own (their ports).
var siblings atomic.Int32

// Sibling deploys a stack of the suite's images beside the suite's on the same swarm. It runs
// the replicas stack.yaml says, so replicas must be those.
func (s *Stack) Sibling(ctx context.Context, name string, replicas int) (target.Target, error) {
	if replicas != Replicas {
		return nil, fmt.Errorf("a stack on the swarm runs %d replicas of each service (stack.yaml), not %d", Replicas, replicas)
	}
	sib, err := s.sibling(ctx, name)
	if err != nil {
		return nil, err // not a nil *Stack in a non-nil Target
	}
	return sib, nil
}

// Persistent is a sibling stack: its databases live in volumes on their node, which Recreate
// keeps or removes.
func (s *Stack) Persistent(ctx context.Context, name string) (target.Persistent, error) {
	sib, err := s.sibling(ctx, name)
	if err != nil {
		return nil, err
	}
	return sib, nil
}

func (s *Stack) sibling(ctx context.Context, name string) (*Stack, error) {
	d, err := s.Deployment.Sibling(ctx, name, int(siblings.Add(1)))
	if err != nil {
		return nil, err
	}
	t, err := NewStack(ctx, d)
	if err != nil {
		d.Down(context.WithoutCancel(ctx)) //nolint:errcheck // the first error says more
		return nil, err
	}
	return t, nil
}

// Logs are every service's output, the tasks this Stack removed (scaled to 0) included.
func (s *Stack) Logs(ctx context.Context) (map[string]string, error) {
	logs, err := s.Deployment.Logs(ctx)
	if err != nil {
		return nil, err
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	for svc, text := range s.gone {
		logs[svc] = text + logs[svc]
	}
	return logs, nil
}

// Kind names the driver.
func (s *Stack) Kind() string { return "swarm" }

// Provider is Traefik's swarm provider: stack.yaml's labels.
func (s *Stack) Provider() string { return "swarm" }

// Secrets are those Up made (Docker secrets of the stack).
func (s *Stack) Secrets() target.Secrets { return s.State.Secrets }

const swarmTimeout = 3 * time.Minute

// Replicas is how many tasks a service of the stack runs.
func (s *Stack) Replicas(name string) int {
	if name == target.ServiceCasts || name == target.ServiceMovies {
		return Replicas
	}
	return 1
}

// scale sets the replicas of services and waits until Swarm runs them; the output of tasks it
// removes is kept for Logs.
func (s *Stack) scale(ctx context.Context, n int, services ...string) error {
	if n == 0 {
		logs, err := s.Deployment.Logs(ctx)
		if err != nil {
			return err
		}
		s.stateMu.Lock()
		for _, svc := range services {
			s.gone[svc] += logs[svc]
		}
		s.stateMu.Unlock()
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
func (s *Stack) whole(ctx context.Context, routed ...string) error {
	if err := s.WaitConverged(ctx, swarmTimeout); err != nil {
		return err
	}
	want := map[string]int{}
	for _, svc := range routed {
		want[svc] = s.Replicas(svc)
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

func (s *Stack) StopService(name string) error {
	ctx, cancel := stopping()
	defer cancel()
	return s.scale(ctx, 0, name)
}

func (s *Stack) StartService(ctx context.Context, name string) error {
	if err := s.scale(ctx, s.Replicas(name), name); err != nil {
		return err
	}
	return s.whole(ctx, name)
}

func (s *Stack) StopDatabases() error {
	ctx, cancel := stopping()
	defer cancel()
	return s.scale(ctx, 0, target.ServiceCasts+"-db", target.ServiceMovies+"-db")
}

func (s *Stack) StartDatabases(ctx context.Context) error {
	return s.scale(ctx, 1, target.ServiceCasts+"-db", target.ServiceMovies+"-db")
}

// WaitReady returns once every task runs, Traefik routes to each, and reads through the
// gateway succeed on both services (the tasks cannot be reached from the host directly).
func (s *Stack) WaitReady(ctx context.Context) error {
	if err := s.whole(ctx, target.ServiceCasts, target.ServiceMovies); err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for _, path := range []string{"/api/v1/casts?limit=1", "/api/v1/movies?limit=1"} {
		if err := stackkit.Poll(ctx, swarmTimeout, pollEvery, "GET "+path+" through the gateway", func() error {
			return stackkit.GetJSON(ctx, client, s.URLs().Gateway+path, nil)
		}); err != nil {
			return err
		}
	}
	return nil
}

// task is the node and container of task i (in Tasks' order) of a service.
func (s *Stack) task(ctx context.Context, name string, i int) (Node, string, error) {
	return s.Container(ctx, name, i)
}

// KillReplica sends SIGKILL to task i's container, as a crash would; Swarm starts a new task.
func (s *Stack) KillReplica(name string, i int) error {
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
func (s *Stack) StartReplica(ctx context.Context, name string, _ int) error {
	return s.whole(ctx, name)
}

// RestartReplica stops task i's container as Swarm does (SIGTERM, the drain, the shutdown),
// then waits until Swarm has replaced it and Traefik routes to every task.
func (s *Stack) RestartReplica(ctx context.Context, name string, i int) error {
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
func (s *Stack) ReachDatabase(ctx context.Context, from, to string) error {
	n, id, err := s.task(ctx, from, 0)
	if err != nil {
		return err
	}
	dbNode, dbID, err := s.task(ctx, to+"-db", 0)
	if err != nil {
		return err
	}
	return stackkit.ReachPostgres(ctx, to+"-db", dbID, id, dbNode.Docker, n.Docker)
}

// DatabaseSessions lists, on each service's database server, the client sessions other than
// psql's own, as role@database.
func (s *Stack) DatabaseSessions(ctx context.Context) ([]string, error) {
	var sessions []string
	for _, svc := range []string{target.ServiceCasts, target.ServiceMovies} {
		n, id, err := s.task(ctx, svc+"-db", 0)
		if err != nil {
			return nil, err
		}
		out, err := n.Docker(ctx, "exec", id, "psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align",
			"--username", svc, "--dbname", svc, "--command", stackkit.SessionsQuery)
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, strings.Fields(out)...)
	}
	return stackkit.Sessions(sessions), nil
}

func (s *Stack) Token(ctx context.Context, scope string) (string, error) {
	return stackkit.DemoToken(ctx, s.URLs().Gateway, s.State.Secrets, scope)
}

func (s *Stack) StopProvider() error {
	ctx, cancel := stopping()
	defer cancel()
	return s.scale(ctx, 0, ServiceHydra)
}

func (s *Stack) StartProvider(ctx context.Context) error {
	if err := s.scale(ctx, 1, ServiceHydra); err != nil {
		return err
	}
	if err := s.whole(ctx, ServiceHydra); err != nil {
		return err
	}
	return stackkit.WaitToken(ctx, swarmTimeout, s)
}

// RotateSigningKey runs Hydra's own command in its container (the admin API is on the
// container's loopback only).
func (s *Stack) RotateSigningKey(ctx context.Context) (string, error) {
	n, id, err := s.task(ctx, ServiceHydra, 0)
	if err != nil {
		return "", err
	}
	return stackkit.RotateSigningKey(ctx, "http://127.0.0.1:4445", func(ctx context.Context, args ...string) ([]byte, error) {
		out, err := n.Docker(ctx, append([]string{"exec", id, "hydra"}, args...)...)
		return []byte(out), err
	})
}

func (s *Stack) StopTraceBackend() error {
	ctx, cancel := stopping()
	defer cancel()
	return s.scale(ctx, 0, ServiceJaeger)
}

func (s *Stack) StartTraceBackend(ctx context.Context) error {
	return s.scale(ctx, 1, ServiceJaeger)
}

func (s *Stack) AccessLog(ctx context.Context) ([]byte, error) {
	logs, err := s.TaskLogs(ctx, ServiceTraefik)
	var out []byte
	for _, l := range logs {
		out = append(out, l.Text...)
	}
	return out, err
}

// Workers are the nodes after the first, which manages the swarm.
func (s *Stack) Workers() []string {
	var names []string
	for _, n := range s.Nodes()[1:] {
		names = append(names, n.Name)
	}
	return names
}

// StopNode stops node's engine with SIGTERM, as `systemctl stop docker` does.
func (s *Stack) StopNode(_ context.Context, node string) error {
	n, err := s.NodeByName(node)
	if err != nil {
		return err
	}
	return s.StopEngine(n)
}

// StartNode starts node's engine again.
func (s *Stack) StartNode(ctx context.Context, node string) error {
	n, err := s.NodeByName(node)
	if err != nil {
		return err
	}
	return s.StartEngine(ctx, n)
}

// CutOff takes node's link to the bridge down.
func (s *Stack) CutOff(ctx context.Context, node string) error {
	n, err := s.NodeByName(node)
	if err != nil {
		return err
	}
	return s.CutLink(ctx, n)
}

// BringBack puts node's link up again.
func (s *Stack) BringBack(ctx context.Context, node string) error {
	n, err := s.NodeByName(node)
	if err != nil {
		return err
	}
	return s.RestoreLink(ctx, n)
}

// NewImage builds an image FROM the one Up built of svc plus instructions, and pushes it as
// ServiceImage(svc, tag).
func (s *Stack) NewImage(ctx context.Context, svc, tag string, instructions ...string) (string, error) {
	path := ServiceImage(svc, tag)
	return path, s.Deployment.NewImage(ctx, s.BuiltImage(svc), path, instructions...)
}
