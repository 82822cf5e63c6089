package swarm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// Image paths in the registry of the casts and movies images.
func ServiceImage(svc, tag string) string { return "movies-microservices/" + svc + ":" + tag }

// BuiltImage is the host engine's local image of svc that Up built and pushed as tag "1".
func (d *Deployment) BuiltImage(svc string) string { return d.Stack + "-build-" + svc }

// NewImage builds, with the host's engine, an image FROM the local image base plus the given
// Dockerfile instructions, and pushes it to the registry as path. The classic builder: a
// Dockerfile of FROM, LABEL and HEALTHCHECK needs no BuildKit (Debian's docker.io has no buildx).
func (d *Deployment) NewImage(ctx context.Context, base, path string, instructions ...string) error {
	local := d.Stack + "-new/" + strings.ReplaceAll(path, ":", "-")
	dockerfile := "FROM " + base + "\n" + strings.Join(instructions, "\n") + "\n"
	cmd := exec.CommandContext(ctx, "docker", "build", "--quiet", "--tag", local, "-")
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	cmd.Stdin = strings.NewReader(dockerfile)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("swarm: docker build %s: %w: %s", local, err, strings.TrimSpace(string(out)))
	}
	defer hostDocker(context.WithoutCancel(ctx), "rmi", local) //nolint:errcheck // the pushed image stays in the registry
	return d.Push(ctx, local, path)
}

// UpdateImage runs `docker service update --image` on svc with the image at path in the
// registry and waits for its end (--detach=false): nil once the update completed, an error
// when Swarm paused or rolled it back.
func (d *Deployment) UpdateImage(ctx context.Context, svc, path string) error {
	_, err := d.Manager().Docker(ctx, "service", "update", "--detach=false", "--quiet", "--image", d.Image(path), d.Service(svc))
	return err
}

// UpdateState is the state of svc's last update ("completed", "rollback_completed", ...), ""
// for none.
func (d *Deployment) UpdateState(ctx context.Context, svc string) (string, error) {
	return d.Manager().Docker(ctx, "service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", d.Service(svc))
}

// SpecImage is the image svc's spec names, without the digest Swarm pins it to.
func (d *Deployment) SpecImage(ctx context.Context, svc string) (string, error) {
	out, err := d.Manager().Docker(ctx, "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", d.Service(svc))
	image, _, _ := strings.Cut(out, "@")
	return image, err
}

// Scale sets svc's replicas and waits until exactly that many of its tasks run.
//
// It waits itself rather than with the client's --detach=false, which after the tasks converge
// waits the service's update monitor period as well (20 s for casts and movies, 5 s for the
// others): a wait for updates that go wrong late, which a change of the task count does not need.
func (d *Deployment) Scale(ctx context.Context, svc string, n int) error {
	if _, err := d.Manager().Docker(ctx, "service", "scale", "--detach", d.Service(svc)+"="+strconv.Itoa(n)); err != nil {
		return err
	}
	return stackkit.Poll(ctx, swarmTimeout, pollEvery, fmt.Sprintf("%s running %d task(s)", svc, n), func() error {
		out, err := d.Manager().Docker(ctx, "service", "ps", "--format", "{{.DesiredState}} {{.CurrentState}}", d.Service(svc))
		if err != nil {
			return err
		}
		// CurrentState is "Running" once the container runs and, with a health check, is
		// healthy ("Starting" before); a task being stopped stays "Running" until it exited.
		running, coming := 0, 0
		for line := range strings.Lines(out) {
			desired, current, _ := strings.Cut(strings.TrimSpace(line), " ")
			switch {
			case strings.HasPrefix(current, "Running"):
				running++
			case desired == "Running":
				coming++
			}
		}
		if running != n || coming > 0 {
			return fmt.Errorf("%d running, %d starting", running, coming)
		}
		return nil
	})
}

// NodeStates are each node's hostname with its status and availability, e.g. "swarm-2 ready active".
func (d *Deployment) NodeStates(ctx context.Context) (map[string]string, error) {
	out, err := d.Manager().Docker(ctx, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}}")
	if err != nil {
		return nil, err
	}
	states := map[string]string{}
	for line := range strings.Lines(out) {
		name, state, _ := strings.Cut(strings.TrimSpace(line), " ")
		states[name] = strings.ToLower(state)
	}
	return states, nil
}

// WaitNode waits until node's status (as NodeStates gives it, without availability) is want.
func (d *Deployment) WaitNode(ctx context.Context, timeout time.Duration, node, want string) error {
	return stackkit.Poll(ctx, timeout, pollEvery, node+" "+want, func() error {
		states, err := d.NodeStates(ctx)
		if err != nil {
			return err
		}
		if status, _, _ := strings.Cut(states[node], " "); status != want {
			return fmt.Errorf("%s is %q", node, states[node])
		}
		return nil
	})
}

// NodeByName is the node whose hostname is name.
func (d *Deployment) NodeByName(name string) (Node, error) {
	for _, n := range d.Nodes() {
		if n.Name == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("swarm: no node %s", name)
}

// StopEngine and StartEngine stop and start node n's dockerd (see Layout).
func (d *Deployment) StopEngine(n Node) error { return d.Layout.StopEngine(n) }
func (d *Deployment) StartEngine(ctx context.Context, n Node) error {
	return d.Layout.StartEngine(ctx, n)
}
func (d *Deployment) CutLink(ctx context.Context, n Node) error { return d.Layout.CutLink(ctx, n) }
func (d *Deployment) RestoreLink(ctx context.Context, n Node) error {
	return d.Layout.RestoreLink(ctx, n)
}

// Container is the node and container id of running task i (in Tasks' order) of svc.
func (d *Deployment) Container(ctx context.Context, svc string, i int) (Node, string, error) {
	tasks, err := d.Tasks(ctx, svc)
	if err != nil {
		return Node{}, "", err
	}
	if i >= len(tasks) {
		return Node{}, "", fmt.Errorf("swarm: %s has %d running tasks, no task %d", svc, len(tasks), i)
	}
	n, err := d.NodeByName(tasks[i].Node)
	if err != nil {
		return Node{}, "", err
	}
	id, err := d.Manager().Docker(ctx, "inspect", "--format", "{{.Status.ContainerStatus.ContainerID}}", tasks[i].ID)
	return n, id, err
}

// Logs are every service's output (every task's that still has its container, stopped ones
// included), by service name without the stack's prefix.
func (d *Deployment) Logs(ctx context.Context) (map[string]string, error) {
	out, err := d.Manager().Docker(ctx, "stack", "services", "--format", "{{.Name}}", d.Stack)
	if err != nil {
		return nil, err
	}
	logs := map[string]string{}
	for _, name := range strings.Fields(out) {
		svc := strings.TrimPrefix(name, d.Stack+"_")
		tasks, err := d.TaskLogs(ctx, svc)
		if err != nil {
			return nil, err
		}
		var text strings.Builder
		for _, t := range tasks {
			text.WriteString(t.Text)
		}
		logs[svc] = text.String()
	}
	return logs, nil
}

// TaskLogs are the outputs of svc's tasks that still have a container (stopped ones included),
// oldest task first, each read with `docker logs` from the engine of the node that ran it.
// Not `docker service logs`: now and then it never ends its stream (moby/moby#38640,
// docker/cli#4678), and so once held this suite until go test's timeout.
func (d *Deployment) TaskLogs(ctx context.Context, svc string) ([]target.TaskLog, error) {
	m := d.Manager()
	ids, err := m.Docker(ctx, "service", "ps", "--quiet", "--no-trunc", d.Service(svc))
	if err != nil || ids == "" {
		return nil, err
	}
	out, err := m.Docker(ctx, append([]string{"inspect", "--format", "{{json .}}"}, strings.Fields(ids)...)...)
	if err != nil {
		return nil, err
	}
	type task struct {
		ID, NodeID string
		CreatedAt  time.Time
		Status     struct{ ContainerStatus struct{ ContainerID string } }
	}
	var tasks []task
	for line := range strings.Lines(out) {
		var t task
		if err := json.Unmarshal([]byte(line), &t); err != nil {
			return nil, fmt.Errorf("swarm: read task: %w", err)
		}
		if t.Status.ContainerStatus.ContainerID != "" {
			tasks = append(tasks, t)
		}
	}
	slices.SortFunc(tasks, func(a, b task) int { return a.CreatedAt.Compare(b.CreatedAt) })
	hostnames := map[string]string{}
	var logs []target.TaskLog
	for _, t := range tasks {
		if _, ok := hostnames[t.NodeID]; !ok {
			if hostnames[t.NodeID], err = m.Docker(ctx, "node", "inspect", "--format", "{{.Description.Hostname}}", t.NodeID); err != nil {
				return nil, err
			}
		}
		n, err := d.NodeByName(hostnames[t.NodeID])
		if err != nil {
			return nil, err
		}
		text, err := n.DockerOutput(ctx, "logs", t.Status.ContainerStatus.ContainerID)
		if err != nil {
			if strings.Contains(text, "No such container") {
				continue // Swarm removed it (task history limit, scale down)
			}
			return nil, err
		}
		logs = append(logs, target.TaskLog{ID: t.ID, Node: n.Name, Text: text})
	}
	return logs, nil
}

// ReplicaURLs are a URL on 127.0.0.1 for each running task of svc, in Tasks' order: a forward
// into the task's container, as Compose publishes each replica's port. A task's URL stays while
// it runs; those of tasks gone are closed.
func (d *Deployment) ReplicaURLs(ctx context.Context, svc string) ([]string, error) {
	tasks, err := d.Tasks(ctx, svc)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.replicas == nil {
		d.replicas = map[string]*forward{}
	}
	var urls []string
	live := map[string]bool{}
	for _, task := range tasks {
		live[task.ID] = true
		f, ok := d.replicas[task.ID]
		if !ok {
			n, err := d.NodeByName(task.Node)
			if err != nil {
				return nil, err
			}
			id, err := d.Manager().Docker(ctx, "inspect", "--format", "{{.Status.ContainerStatus.ContainerID}}", task.ID)
			if err != nil {
				return nil, err
			}
			out, err := n.Docker(ctx, "inspect", "--format", "{{.State.Pid}}", id)
			if err != nil {
				return nil, err
			}
			pid, err := strconv.Atoi(out)
			if err != nil || pid == 0 {
				return nil, fmt.Errorf("swarm: task %s of %s: no process (%q)", task.ID, svc, out)
			}
			if f, err = newNetNSForward(pid, "127.0.0.1:"+target.ServicePorts[svc]); err != nil {
				return nil, err
			}
			f.svc = svc
			d.replicas[task.ID] = f
		}
		urls = append(urls, "http://"+f.Addr())
	}
	for id, f := range d.replicas {
		if f.svc == svc && !live[id] {
			f.Close()
			delete(d.replicas, id)
		}
	}
	return urls, nil
}
