package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
	"go.yaml.in/yaml/v3"
)

// Files of the stack, relative to the repository root.
const (
	StackFile    = "e2e/swarm/stack.yaml"
	StandinsFile = "e2e/swarm/standins.yaml"
)

// DBLabel is the node label that pins the databases (stack.yaml's placement).
const DBLabel = "movies-microservices.db"

// Services of stack.yaml besides casts and movies.
const (
	ServiceTraefik = "traefik"
	ServiceHydra   = target.ServiceHydra
	ServiceJaeger  = target.ServiceJaeger
)

// Replicas of casts and movies in stack.yaml.
const Replicas = 2

// pollEvery is how often the deployment's waits ask the engines or Traefik again.
const pollEvery = 300 * time.Millisecond

// EnvState names the file in which Up leaves what Attach needs.
const EnvState = "E2E_SWARM_STATE"

// Options configure Up.
type Options struct {
	RepoRoot string // required
	Layout   Layout // Dir required
	Stack    string // the stack's name; default movies-microservices-e2e
	// Standins deploys with StandinsFile: the stand-in images (e2e/compose/standins.sh) pushed
	// to the cluster's registry, for engines that cannot pull the official ones.
	Standins bool
	LogLevel string    // of both services; default "info"
	Progress io.Writer // a line per step; nil discards
}

// State is what a process other than Up's needs to drive the deployment (Attach), kept in a
// file readable by its owner only: it holds the secrets.
type State struct {
	Layout    Layout
	Stack     string
	Index     int  // 0 for the suite's stack, k for its k-th sibling (their ports)
	IsSibling bool // Down removes only the stack, not the cluster
	LogLevel  string
	Files     []string // -c, in order
	Env       []string // the variables stack.yaml reads
	Tag       string   // of the casts and movies images the stack was deployed with
	URLs      target.URLs
	Secrets   target.Secrets
	Registry  string // where the host's engine pushes (a forward to the registry), 127.0.0.1:port
}

// Deployment is the stack running on the cluster.
type Deployment struct {
	State
	progress io.Writer
	forwards []*forward // only in the process that ran Up
	registry *exec.Cmd

	mu       sync.Mutex          // guards replicas
	replicas map[string]*forward // by task id: see ReplicaURLs
}

// Up makes the cluster (network, engines, swarm, registry), builds and pushes the images,
// makes the secrets and deploys the stack, and returns once every service has all its tasks
// running and Traefik routes to each task of casts, movies and Hydra. On error, what it made
// is removed again.
func Up(ctx context.Context, opts Options) (_ *Deployment, err error) {
	if opts.RepoRoot == "" || opts.Layout.Dir == "" {
		return nil, errors.New("swarm: Options.RepoRoot and Options.Layout.Dir are required")
	}
	if opts.Stack == "" {
		opts.Stack = "movies-microservices-e2e"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info" // a line per request: the tests see which task served it
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	l := opts.Layout.withDefaults()
	d := &Deployment{State: State{Layout: l, Stack: opts.Stack, Tag: "1"}, progress: opts.Progress}
	defer func() {
		if err != nil {
			d.Down(context.WithoutCancel(ctx)) //nolint:errcheck // the first error says more
		}
	}()
	// What a killed run left behind goes first.
	if err := l.RemoveCluster(ctx); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("swarm: %w", err)
	}
	step := time.Now()
	if err := l.MakeNetwork(ctx); err != nil {
		return nil, err
	}
	if err := l.StartResolver(ctx); err != nil {
		return nil, err
	}
	nodes := l.AllNodes()
	for _, n := range nodes {
		if err := l.StartEngine(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := d.makeSwarm(ctx); err != nil {
		return nil, err
	}
	d.logf("%d engines in a swarm (1 manager, %d workers) in %s", len(nodes), len(nodes)-1, time.Since(step).Round(time.Second))

	step = time.Now()
	if err := d.startRegistry(ctx, opts.RepoRoot); err != nil {
		return nil, err
	}
	fwd, err := d.forward(l.RegistryAddr())
	if err != nil {
		return nil, err
	}
	d.Registry = fwd
	if err := d.pushImages(ctx, opts.RepoRoot, opts.Standins); err != nil {
		return nil, err
	}
	d.logf("images built and pushed to the registry on %s (%s) in %s", nodes[0].Name, l.RegistryAddr(), time.Since(step).Round(time.Second))

	d.Files = []string{filepath.Join(opts.RepoRoot, StackFile)}
	if opts.Standins {
		d.Files = append(d.Files, filepath.Join(opts.RepoRoot, StandinsFile))
	}
	d.LogLevel = opts.LogLevel
	if err := d.deployStack(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Ports are where a stack's Traefik publishes its entrypoints and Jaeger its UI, on the manager.
type Ports struct{ Web, Dashboard, Mesh, Jaeger int }

// portsOf are the ports of the stack numbered k: 0 is the suite's (stack.yaml's defaults),
// siblings have 8080+100k and so on.
func portsOf(k int) Ports {
	return Ports{Web: 8080 + 100*k, Dashboard: 8081 + 100*k, Mesh: 8082 + 100*k, Jaeger: 16686 + 100*k}
}

// testOverride is the stack file applied last for the suite: Traefik's ports (the mesh's too,
// which the suite's tests of the mesh call; a stack for users never publishes it) and Jaeger's.
// The tests reach every published port through a forward on 127.0.0.1.
//
// Traefik's command is stack.yaml's without its --accessLog.filters.* flags: its access log then
// records every request, as the other stacks' do for the suite.
func testOverride(p Ports, traefikCommand []string) string {
	var command strings.Builder
	for _, arg := range traefikCommand {
		if !strings.HasPrefix(arg, "--accessLog.filters.") {
			fmt.Fprintf(&command, "      - %s\n", strconv.Quote(arg))
		}
	}
	return fmt.Sprintf(`# Generated by package swarm (e2e/swarm) for the e2e suite.
version: "3.9"
services:
  traefik:
    command:
%s    ports:
      - { target: 8080, published: %d, protocol: tcp, mode: host }
      - { target: 8081, published: %d, protocol: tcp, mode: host }
      - { target: 8082, published: %d, protocol: tcp, mode: host }
  jaeger:
    ports:
      - { target: 16686, published: %d, protocol: tcp, mode: host }
`, command.String(), p.Web, p.Dashboard, p.Mesh, p.Jaeger)
}

// traefikCommand is Traefik's command in the stack file.
func traefikCommand(stackFile string) ([]string, error) {
	b, err := os.ReadFile(stackFile)
	if err != nil {
		return nil, fmt.Errorf("swarm: %w", err)
	}
	var f struct {
		Services map[string]struct {
			Command []string `yaml:"command"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("swarm: %s: %w", stackFile, err)
	}
	if len(f.Services[ServiceTraefik].Command) == 0 {
		return nil, fmt.Errorf("swarm: %s gives traefik no command", stackFile)
	}
	return f.Services[ServiceTraefik].Command, nil
}

// deployStack makes the stack's secrets and override, deploys it, forwards its published ports
// to 127.0.0.1 and waits until it is whole and routed.
func (d *Deployment) deployStack(ctx context.Context) error {
	step := time.Now()
	if d.Secrets.Casts == "" {
		d.Secrets = target.NewSecrets()
		d.Secrets.Superuser = "" // each database's role owns its server, as with Compose
	}
	p := portsOf(d.Index)
	override := filepath.Join(d.Layout.Dir, d.Stack+".e2e.yaml")
	command, err := traefikCommand(d.Files[0])
	if err != nil {
		return err
	}
	if err := os.WriteFile(override, []byte(testOverride(p, command)), 0o644); err != nil {
		return fmt.Errorf("swarm: %w", err)
	}
	d.Files = append(slices.DeleteFunc(d.Files, func(f string) bool { return strings.HasSuffix(f, ".e2e.yaml") }), override)
	d.Env = []string{"STACK=" + d.Stack, "REGISTRY=" + d.Layout.RegistryAddr(), "DOCKER_SOCKET=" + d.Manager().Socket,
		"CASTS_LOG_LEVEL=" + d.LogLevel, "MOVIES_LOG_LEVEL=" + d.LogLevel, "GATEWAY_LOG_LEVEL=INFO",
		"WEB_PORT=" + strconv.Itoa(p.Web)}
	if err := d.makeSecrets(ctx); err != nil {
		return err
	}
	if err := d.deploy(ctx, d.Tag); err != nil {
		return err
	}
	if err := d.forwardPorts(p); err != nil {
		return err
	}
	if err := d.WaitConverged(ctx, 5*time.Minute); err != nil {
		return err
	}
	if err := d.waitServing(ctx); err != nil {
		return err
	}
	d.logf("stack %s deployed and routed in %s, gateway %s", d.Stack, time.Since(step).Round(time.Second), d.URLs.Gateway)
	return nil
}

// forwardPorts forwards the published ports of the stack to 127.0.0.1, once per process.
func (d *Deployment) forwardPorts(p Ports) error {
	if d.URLs.Gateway != "" {
		return nil
	}
	manager := d.Manager().Addr
	for _, f := range []struct {
		url  *string
		port int
	}{{&d.URLs.Gateway, p.Web}, {&d.URLs.Admin, p.Dashboard}, {&d.URLs.Mesh, p.Mesh}, {&d.URLs.Jaeger, p.Jaeger}} {
		addr, err := d.forward(manager + ":" + strconv.Itoa(f.port))
		if err != nil {
			return err
		}
		*f.url = "http://" + addr
	}
	d.URLs.Issuer = "http://localhost:8080/" // HYDRA_ISSUER's default in stack.yaml
	return nil
}

// Sibling deploys another stack of the same images on the same swarm, named d.Stack+"-"+name
// and numbered k (from 1: its ports, see portsOf), with secrets, networks and volumes of its
// own. Its Down removes only that stack.
func (d *Deployment) Sibling(ctx context.Context, name string, k int) (*Deployment, error) {
	s := &Deployment{State: State{Layout: d.Layout, Stack: d.Stack + "-" + name, Index: k, IsSibling: true,
		Files: slices.Clone(d.Files), Tag: d.Tag, Registry: d.Registry, LogLevel: d.LogLevel}, progress: d.progress}
	if err := s.deployStack(ctx); err != nil {
		s.Down(context.WithoutCancel(ctx)) //nolint:errcheck // the first error says more
		return nil, err
	}
	return s, nil
}

// removeStack runs `docker stack rm` and waits until the stack's tasks and networks are gone
// (the command returns before), then removes its volumes if removeVolumes.
func (d *Deployment) removeStack(ctx context.Context, removeVolumes bool) error {
	m := d.Manager()
	if _, err := m.Docker(ctx, "stack", "rm", d.Stack); err != nil && !strings.Contains(err.Error(), "failed to remove some resources") {
		return err
	}
	// `docker stack rm` removes the services, then at once their networks, and fails on a network
	// that a task still shutting down is attached to ("is in use by task"; CI saw it once). The
	// wait removes what is left of the networks each time round, until they are gone.
	label := "label=com.docker.stack.namespace=" + d.Stack
	err := stackkit.Poll(ctx, 2*time.Minute, pollEvery, "stack "+d.Stack+" removed", func() error {
		for _, n := range d.Nodes() {
			out, err := n.Docker(ctx, "ps", "--all", "--quiet", "--filter", label)
			if err != nil {
				return err
			}
			if out != "" {
				return fmt.Errorf("%s still has containers of it", n.Name)
			}
		}
		out, err := m.Docker(ctx, "network", "ls", "--quiet", "--filter", label)
		if err != nil {
			return err
		}
		if out != "" {
			// The containers are gone, so nothing holds them any more; a failure is said on the next round.
			m.Docker(ctx, append([]string{"network", "rm"}, strings.Fields(out)...)...) //nolint:errcheck
			return errors.New("its networks remain")
		}
		return nil
	})
	if err != nil || !removeVolumes {
		return err
	}
	// The volumes are on the database node (node 1).
	out, err := m.Docker(ctx, "volume", "ls", "--quiet", "--filter", label)
	if err != nil || out == "" {
		return err
	}
	_, err = m.Docker(ctx, append([]string{"volume", "rm"}, strings.Fields(out)...)...)
	return err
}

// Recreate removes the stack and deploys it again (the same images, secrets and ports), with its
// volumes, and so the databases' data, unless removeData.
func (d *Deployment) Recreate(ctx context.Context, removeData bool) error {
	if err := d.removeStack(ctx, removeData); err != nil {
		return err
	}
	if err := d.deploy(ctx, d.Tag); err != nil {
		return err
	}
	if err := d.WaitConverged(ctx, 5*time.Minute); err != nil {
		return err
	}
	return d.waitServing(ctx)
}

// waitServing waits until Traefik routes to every task of casts, movies and Hydra, and each
// service verifies tokens. Swarm starts them together, unlike Compose, which starts the services
// once Hydra's clients exist; a service that asked for Hydra's keys too early answers 401 ("the
// keys ... are unavailable") until it has them. The probe is a write with a token and an empty
// body: 422 once the token is verified, and nothing is written; every task must answer so.
func (d *Deployment) waitServing(ctx context.Context) error {
	if err := d.WaitRouted(ctx, 3*time.Minute, map[string]int{target.ServiceCasts: Replicas, target.ServiceMovies: Replicas, ServiceHydra: 1}); err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	return stackkit.Poll(ctx, 3*time.Minute, pollEvery, "both services verifying tokens", func() error {
		token, err := stackkit.DemoToken(ctx, d.URLs.Gateway, d.Secrets, target.DemoScopes)
		if err != nil {
			return err
		}
		// Traefik takes turns over the tasks: several answers in a row come from each of them.
		for i := range 4 * Replicas {
			path := []string{"/api/v1/casts", "/api/v1/movies"}[i%2]
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URLs.Gateway+path, strings.NewReader("{}"))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnprocessableEntity {
				return fmt.Errorf("POST %s with a token and {}: %d, want 422", path, resp.StatusCode)
			}
		}
		return nil
	})
}

func (d *Deployment) logf(format string, args ...any) {
	fmt.Fprintf(d.progress, "swarm: "+format+"\n", args...)
}

// Manager is the node that runs the swarm's manager, the registry and Traefik.
func (d *Deployment) Manager() Node { return d.Layout.Node(1) }

// Nodes are every node, the manager first.
func (d *Deployment) Nodes() []Node { return d.Layout.AllNodes() }

func (d *Deployment) makeSwarm(ctx context.Context) error {
	nodes := d.Nodes()
	m := nodes[0]
	if _, err := m.Docker(ctx, "swarm", "init", "--advertise-addr", m.Addr, "--listen-addr", m.Addr+":2377"); err != nil {
		return err
	}
	token, err := m.Docker(ctx, "swarm", "join-token", "--quiet", "worker")
	if err != nil {
		return err
	}
	for _, w := range nodes[1:] {
		if _, err := w.Docker(ctx, "swarm", "join", "--token", token, "--advertise-addr", w.Addr, "--listen-addr", w.Addr+":2377", m.Addr+":2377"); err != nil {
			return err
		}
	}
	_, err = m.Docker(ctx, "node", "update", "--label-add", DBLabel+"=true", m.Name)
	return err
}

// startRegistry runs bin/registry in node 1's network namespace, its storage under Dir.
func (d *Deployment) startRegistry(ctx context.Context, root string) error {
	m := d.Manager()
	bin := filepath.Join(root, "bin", "registry")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("swarm: no registry to start (make registry builds bin/registry): %w", err)
	}
	storage := filepath.Join(d.Layout.Dir, "registry")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return fmt.Errorf("swarm: %w", err)
	}
	logf, err := os.Create(filepath.Join(d.Layout.Dir, "registry.log"))
	if err != nil {
		return fmt.Errorf("swarm: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+m.NetNS, bin, "serve",
		filepath.Join(root, "e2e", "registry", "config.yaml"))
	cmd.Env = append(os.Environ(), "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="+storage,
		"REGISTRY_HTTP_ADDR=:"+strconv.Itoa(d.Layout.Registry))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("swarm: start the registry: %w", err)
	}
	d.registry = cmd
	go cmd.Wait() //nolint:errcheck // RemoveCluster stops it by its pid file
	if err := os.WriteFile(filepath.Join(d.Layout.Dir, "registry.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		cmd.Process.Kill() //nolint:errcheck // without its pid file nothing else would stop it
		return fmt.Errorf("swarm: %w", err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	return stackkit.Poll(ctx, 30*time.Second, pollEvery, "the registry", func() error {
		return stackkit.GetJSON(ctx, client, "http://"+d.Layout.RegistryAddr()+"/v2/", nil)
	})
}

func (d *Deployment) forward(target string) (string, error) {
	f, err := newForward(target)
	if err != nil {
		return "", fmt.Errorf("swarm: forward to %s: %w", target, err)
	}
	d.forwards = append(d.forwards, f)
	return f.Addr(), nil
}

// Image is the name under which the nodes pull image (a path such as
// "movies-microservices/casts:1") from the registry.
func (d *Deployment) Image(path string) string { return d.Layout.RegistryAddr() + "/" + path }

// standins are the stand-in images StandinsFile names, by their local name.
var standins = []string{"traefik:v3.6.12", "jaeger:2.12.0", "hydra:v2.3.0", "postgres:17"}

// pushImages builds casts and movies with the host's engine (Compose's builder, as `make
// e2e-compose` does, so that its build cache serves) and pushes them, and the stand-ins if
// wanted, to the registry through its forward.
func (d *Deployment) pushImages(ctx context.Context, root string, withStandins bool) error {
	project := d.Stack + "-build"
	args := []string{"compose", "--progress", "plain", "--project-name", project, "--project-directory", root,
		"--env-file", filepath.Join(root, ".env.example"), "--file", filepath.Join(root, "compose.yaml")}
	if withStandins {
		args = append(args, "--file", filepath.Join(root, "e2e", "compose", "standins.yaml"))
	}
	cmd := exec.CommandContext(ctx, "docker", append(args, "build", target.ServiceCasts, target.ServiceMovies)...)
	cmd.Env = append(os.Environ(), "COMPOSE_BAKE=false")
	cmd.Stdout, cmd.Stderr = d.progress, d.progress
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("swarm: build the images: %w", err)
	}
	pairs := map[string]string{} // local name -> path in the registry
	for _, svc := range []string{target.ServiceCasts, target.ServiceMovies} {
		pairs[project+"-"+svc] = "movies-microservices/" + svc + ":" + d.Tag
	}
	if withStandins {
		for _, s := range standins {
			pairs["movies-microservices-standin/"+s] = "movies-microservices-standin/" + s
		}
	}
	for local, path := range pairs {
		if err := d.Push(ctx, local, path); err != nil {
			return err
		}
	}
	return nil
}

// Push pushes the host engine's image local to the registry as path.
func (d *Deployment) Push(ctx context.Context, local, path string) error {
	remote := d.Registry + "/" + path
	if _, err := hostDocker(ctx, "tag", local, remote); err != nil {
		return err
	}
	if _, err := hostDocker(ctx, "push", "--quiet", remote); err != nil {
		return err
	}
	_, err := hostDocker(ctx, "rmi", remote) // the tag only; local keeps the image
	return err
}

// hostDocker runs the docker client against the host's own engine.
func hostDocker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("swarm: docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// secretNames maps stack.yaml's secrets to their values.
func (d *Deployment) secretNames() map[string]string {
	s := d.Secrets
	return map[string]string{"casts_db_password": s.Casts, "movies_db_password": s.Movies, "hydra_db_password": s.Hydra,
		"hydra_system_secret": s.HydraSystem, "hydra_demo_client_secret": s.DemoClient, "hydra_relay_client_secret": s.RelayClient}
}

func (d *Deployment) makeSecrets(ctx context.Context) error {
	for name, value := range d.secretNames() {
		if _, err := d.Manager().DockerInput(ctx, strings.NewReader(value), "secret", "create", d.Stack+"_"+name, "-"); err != nil {
			return err
		}
	}
	return nil
}

// deploy runs `docker stack deploy` with the stack's files and variables and TAG=tag.
func (d *Deployment) deploy(ctx context.Context, tag string) error {
	args := []string{"--host", "unix://" + d.Manager().Socket, "stack", "deploy", "--prune"}
	for _, f := range d.Files {
		args = append(args, "--compose-file", f)
	}
	cmd := exec.CommandContext(ctx, "docker", append(args, d.Stack)...)
	cmd.Env = append(append(os.Environ(), d.Env...), "TAG="+tag)
	cmd.Dir = filepath.Dir(d.Files[0])
	cmd.Stdout, cmd.Stderr = d.progress, d.progress
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("swarm: docker stack deploy: %w", err)
	}
	return nil
}

// Service is the swarm's name of a service of the stack.
func (d *Deployment) Service(name string) string { return d.Stack + "_" + name }

// WaitConverged waits until every service of the stack runs as many tasks as it wants.
func (d *Deployment) WaitConverged(ctx context.Context, timeout time.Duration) error {
	err := stackkit.Poll(ctx, timeout, pollEvery, "every service's tasks running", func() error {
		out, err := d.Manager().Docker(ctx, "service", "ls", "--filter", "label=com.docker.stack.namespace="+d.Stack,
			"--format", "{{.Name}} {{.Replicas}}")
		if err != nil {
			return err
		}
		var waiting []string
		for line := range strings.Lines(out) {
			name, replicas, _ := strings.Cut(strings.TrimSpace(line), " ")
			running, want, _ := strings.Cut(replicas, "/")
			if running != want || want == "" {
				waiting = append(waiting, name+" "+replicas)
			}
		}
		if len(waiting) > 0 {
			return fmt.Errorf("%s", strings.Join(waiting, ", "))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, d.Describe(ctx))
	}
	return nil
}

// WaitRouted waits until Traefik lists want[svc] servers for each service, all UP.
func (d *Deployment) WaitRouted(ctx context.Context, timeout time.Duration, want map[string]int) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for svc, n := range want {
		err := stackkit.Poll(ctx, timeout, pollEvery, fmt.Sprintf("Traefik routing to %d %s server(s)", n, svc), func() error {
			return stackkit.ServersUp(ctx, client, d.URLs.Admin, svc+"@swarm", n)
		})
		if err != nil {
			return fmt.Errorf("%w\n%s", err, d.Describe(ctx))
		}
	}
	return nil
}

// Tasks are the tasks of a service whose desired and current state are running.
func (d *Deployment) Tasks(ctx context.Context, svc string) ([]target.Task, error) {
	m := d.Manager()
	ids, err := m.Docker(ctx, "service", "ps", "--quiet", "--filter", "desired-state=running", d.Service(svc))
	if err != nil {
		return nil, err
	}
	if ids == "" {
		return nil, nil
	}
	out, err := m.Docker(ctx, append([]string{"inspect", "--format", "{{json .}}"}, strings.Fields(ids)...)...)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	var tasks []target.Task
	for line := range strings.Lines(out) {
		var t struct {
			ID     string
			NodeID string
			Status struct{ State string }
			Spec   struct {
				ContainerSpec struct{ Image string }
			}
			NetworksAttachments []struct {
				Network   struct{ Spec struct{ Name string } }
				Addresses []string
			}
		}
		if err := json.Unmarshal([]byte(line), &t); err != nil {
			return nil, fmt.Errorf("swarm: read task: %w", err)
		}
		if t.Status.State != "running" {
			continue
		}
		if _, ok := names[t.NodeID]; !ok {
			if names[t.NodeID], err = m.Docker(ctx, "node", "inspect", "--format", "{{.Description.Hostname}}", t.NodeID); err != nil {
				return nil, err
			}
		}
		task := target.Task{ID: t.ID, Node: names[t.NodeID], Image: t.Spec.ContainerSpec.Image}
		for _, a := range t.NetworksAttachments {
			if a.Network.Spec.Name == d.Stack+"_gateway" && len(a.Addresses) > 0 {
				task.Addr, _, _ = strings.Cut(a.Addresses[0], "/")
			}
		}
		tasks = append(tasks, task)
	}
	slices.SortFunc(tasks, func(a, b target.Task) int { return strings.Compare(a.Node+a.ID, b.Node+b.ID) })
	return tasks, nil
}

// Describe is the services' state and their tasks' recent errors, for failures.
func (d *Deployment) Describe(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	m := d.Manager()
	ls, _ := m.Docker(ctx, "service", "ls", "--filter", "label=com.docker.stack.namespace="+d.Stack)
	ps, _ := m.Docker(ctx, "stack", "ps", "--no-trunc", "--format", "{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}", d.Stack)
	nodes, _ := m.Docker(ctx, "node", "ls")
	return ls + "\n" + lastLines(ps, 30) + "\n" + nodes
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// WriteState writes what Attach needs to a file of Dir, readable by its owner only, and
// returns its path.
func (d *Deployment) WriteState() (string, error) {
	b, err := json.Marshal(d.State)
	if err != nil {
		return "", err
	}
	path := filepath.Join(d.Layout.Dir, "state.json")
	return path, os.WriteFile(path, b, 0o600)
}

// Attach drives a deployment that Up made in another process, from its state file.
func Attach(path string) (*Deployment, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("swarm: %w", err)
	}
	d := &Deployment{progress: os.Stderr}
	if err := json.Unmarshal(b, &d.State); err != nil {
		return nil, fmt.Errorf("swarm: %s: %w", path, err)
	}
	return d, nil
}

// Exports are the variables under which the suite finds the deployment.
func (d *Deployment) Exports(statePath string) []string {
	return []string{EnvState + "=" + statePath, "E2E_BASE_URL=" + d.URLs.Gateway, "E2E_ADMIN_URL=" + d.URLs.Admin,
		"E2E_MESH_URL=" + d.URLs.Mesh}
}

func (d *Deployment) closeForwards() {
	for _, f := range d.forwards {
		f.Close()
	}
	d.forwards = nil
	d.mu.Lock()
	for _, f := range d.replicas {
		f.Close()
	}
	d.replicas = nil
	d.mu.Unlock()
}

// Down removes the stack and, unless the deployment is a sibling, the cluster: every engine,
// the registry, the network, Dir. A sibling's secrets and volumes go with it.
func (d *Deployment) Down(ctx context.Context) error {
	var errs []error
	if exists(d.Manager().Socket) {
		// The stack first, so that each engine stops its containers in order.
		if err := d.removeStack(ctx, d.IsSibling); err != nil {
			errs = append(errs, err)
		}
		if d.IsSibling {
			for name := range d.secretNames() {
				if _, err := d.Manager().Docker(ctx, "secret", "rm", d.Stack+"_"+name); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	d.closeForwards()
	if !d.IsSibling {
		errs = append(errs, d.Layout.RemoveCluster(ctx))
	}
	return errors.Join(errs...)
}
