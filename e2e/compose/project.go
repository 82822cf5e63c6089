package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// Services of compose.yaml, besides target.ServiceCasts and target.ServiceMovies.
const (
	ServiceTraefik  = "traefik"
	ServiceCastsDB  = "casts-db"
	ServiceMoviesDB = "movies-db"
	// The OpenID provider, its database, and its one-shot migration and client setup.
	ServiceHydra        = target.ServiceHydra
	ServiceHydraDB      = "hydra-db"
	ServiceHydraMigrate = "hydra-migrate"
	ServiceHydraClients = "hydra-clients"
	ServiceJaeger       = target.ServiceJaeger
)

// jaegerQueryPort is where Jaeger's container serves its UI and query API (compose.yaml).
const jaegerQueryPort = "16686"

// hydraAdmin is Hydra's admin API inside its container, on the container's loopback only.
const hydraAdmin = "http://127.0.0.1:4445"

// pollEvery is how often the project's waits ask the engine or Traefik again.
const pollEvery = 200 * time.Millisecond

// defaultIssuer is HYDRA_ISSUER's default in compose.yaml.
const defaultIssuer = "http://localhost:8080/"

// Environment of a project started by Up, for a process that drives it with Attach; Exports
// returns them.
const (
	EnvProject  = "E2E_COMPOSE_PROJECT"  // the project's name
	EnvFiles    = "E2E_COMPOSE_FILES"    // its Compose files, in order, separated by os.PathListSeparator
	EnvEnvFile  = "E2E_COMPOSE_ENV_FILE" // its --env-file (database names, users and passwords)
	EnvReplicas = "E2E_COMPOSE_REPLICAS" // replicas of each service
)

// Options configure Up.
type Options struct {
	// RepoRoot holds compose.yaml (see stackkit.FindRepoRoot). Required.
	RepoRoot string
	// Name is the Compose project's name; it prefixes every container, network and volume.
	// Required.
	Name string
	// Overrides are Compose files applied after compose.yaml, such as StandinsFile.
	Overrides []string
	// Replicas of each service (--scale); zero means 1.
	Replicas int
	// Build builds the services' images first (up --build). Without it, an image missing
	// locally is built anyway.
	Build bool
	// Images, if set, names the services' images Images+"-casts" and Images+"-movies": those a
	// project called Images built, so that a second project reuses them without building.
	Images string
	// LogLevel of both services; empty means "info".
	LogLevel string
	// Progress receives Compose's own output and a line as each step ends; nil discards it.
	Progress io.Writer
	// ReadyTimeout bounds each wait for containers to become healthy and Traefik to route to
	// them; zero means three minutes.
	ReadyTimeout time.Duration
}

// StandinsFile is the override that swaps the official images for the stand-ins made by
// standins.sh, relative to the repository root.
const StandinsFile = "e2e/compose/standins.yaml"

// Project is a running Compose project of the system.
type Project struct {
	opts    Options
	files   []string // every -f, in order
	envFile string
	dir     string // temp dir of Up (env file, test override), removed by Down; "" after Attach
	secrets target.Secrets
	issuer  string // HYDRA_ISSUER: the tokens' iss

	mu   sync.Mutex // guards urls
	urls target.URLs
}

// Up starts a project and returns once every container is healthy and Traefik routes to every
// replica of both services. On error, whatever had started is taken down again.
func Up(ctx context.Context, opts Options) (_ *Project, err error) {
	if opts.RepoRoot == "" || opts.Name == "" {
		return nil, errors.New("compose: Options.RepoRoot and Options.Name are required")
	}
	opts = opts.withDefaults()
	dir, err := os.MkdirTemp("", "compose-"+opts.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	p := &Project{opts: opts, dir: dir, secrets: target.NewSecrets(), issuer: defaultIssuer}
	p.secrets.Superuser = "" // each service's role owns its own server; there is no other
	defer func() {
		if err != nil {
			p.Down(context.WithoutCancel(ctx)) //nolint:errcheck // the first error says more
		}
	}()
	p.envFile = filepath.Join(dir, "env")
	if err := os.WriteFile(p.envFile, []byte(p.envFileText()), 0o600); err != nil {
		return nil, fmt.Errorf("compose: write env file: %w", err)
	}
	p.files = []string{filepath.Join(opts.RepoRoot, "compose.yaml")}
	for _, f := range opts.Overrides {
		if !filepath.IsAbs(f) {
			f = filepath.Join(opts.RepoRoot, f)
		}
		p.files = append(p.files, f)
	}
	override, err := p.testOverride(ctx)
	if err != nil {
		return nil, err
	}
	overrideFile := filepath.Join(dir, "e2e.yaml")
	if err := os.WriteFile(overrideFile, []byte(override), 0o644); err != nil {
		return nil, fmt.Errorf("compose: write test override: %w", err)
	}
	p.files = append(p.files, overrideFile)

	// A project of this name left behind by a run that was killed outright goes first.
	if _, err := p.output(ctx, "down", "--volumes", "--remove-orphans"); err != nil {
		return nil, err
	}
	args := p.upArgs(opts.Build)
	if err := p.stream(ctx, args...); err != nil {
		return nil, fmt.Errorf("compose: %s: %w\n%s", strings.Join(args, " "), err, p.describe(ctx))
	}
	if err := p.waitRouted(ctx, target.ServiceCasts, target.ServiceMovies, ServiceHydra); err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.Progress, "compose: project %s up, gateway %s\n", opts.Name, p.URLs().Gateway)
	return p, nil
}

// upArgs are `up` in the background until every container is healthy, with each service
// scaled to Replicas: the same compose files, only --scale differs from one replica.
func (p *Project) upArgs(build bool) []string {
	args := []string{"up", "--detach", "--wait", "--wait-timeout", strconv.Itoa(int(p.opts.ReadyTimeout / time.Second))}
	if build {
		args = append(args, "--build")
	}
	for _, svc := range []string{target.ServiceCasts, target.ServiceMovies} {
		args = append(args, "--scale", svc+"="+strconv.Itoa(p.opts.Replicas))
	}
	return args
}

// Attach drives a project that Up started in another process, from the variables Exports
// gave it.
func Attach(ctx context.Context, repoRoot string, getenv func(string) string) (*Project, error) {
	opts := Options{RepoRoot: repoRoot, Name: getenv(EnvProject)}
	if n, err := strconv.Atoi(getenv(EnvReplicas)); err == nil {
		opts.Replicas = n
	}
	p := &Project{opts: opts.withDefaults(), envFile: getenv(EnvEnvFile)}
	p.files = filepath.SplitList(getenv(EnvFiles))
	if p.opts.Name == "" || len(p.files) == 0 || p.envFile == "" {
		return nil, fmt.Errorf("compose: attach needs %s, %s and %s", EnvProject, EnvFiles, EnvEnvFile)
	}
	env, err := readEnvFile(p.envFile)
	if err != nil {
		return nil, err
	}
	p.secrets = target.Secrets{Casts: env["CASTS_DB_PASSWORD"], Movies: env["MOVIES_DB_PASSWORD"],
		Hydra: env["HYDRA_DB_PASSWORD"], HydraSystem: env["HYDRA_SECRETS_SYSTEM"],
		DemoClient: env["HYDRA_DEMO_CLIENT_SECRET"], RelayClient: env["HYDRA_RELAY_CLIENT_SECRET"]}
	p.issuer = env["HYDRA_ISSUER"]
	if p.issuer == "" {
		p.issuer = defaultIssuer // compose.yaml's default
	}
	if err := p.refreshURLs(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Exports are the variables under which Attach finds this project, and the suite its URLs.
func (p *Project) Exports() []string {
	u := p.URLs()
	return []string{
		EnvProject + "=" + p.opts.Name,
		EnvFiles + "=" + strings.Join(p.files, string(os.PathListSeparator)),
		EnvEnvFile + "=" + p.envFile,
		EnvReplicas + "=" + strconv.Itoa(p.opts.Replicas),
		"E2E_BASE_URL=" + u.Gateway,
		"E2E_ADMIN_URL=" + u.Admin,
		"E2E_MESH_URL=" + u.Mesh,
	}
}

func (o Options) withDefaults() Options {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 3 * time.Minute
	}
	return o
}

// envFileText is the project's .env: .env.example's settings with generated passwords.
func (p *Project) envFileText() string {
	return strings.Join([]string{
		"CASTS_DB_NAME=casts", "CASTS_DB_USER=casts", "CASTS_DB_PASSWORD=" + p.secrets.Casts,
		"MOVIES_DB_NAME=movies", "MOVIES_DB_USER=movies", "MOVIES_DB_PASSWORD=" + p.secrets.Movies,
		"HYDRA_DB_PASSWORD=" + p.secrets.Hydra, "HYDRA_SECRETS_SYSTEM=" + p.secrets.HydraSystem,
		"HYDRA_DEMO_CLIENT_SECRET=" + p.secrets.DemoClient, "HYDRA_RELAY_CLIENT_SECRET=" + p.secrets.RelayClient,
		// The tokens' iss: a name, compared as such; clients reach the provider on the
		// gateway's published port whatever it is.
		"HYDRA_ISSUER=" + p.issuer,
		"CASTS_LOG_LEVEL=" + p.opts.LogLevel, "MOVIES_LOG_LEVEL=" + p.opts.LogLevel, "GATEWAY_LOG_LEVEL=INFO",
		// compose.yaml's own published ports are replaced by the test override's.
		"WEB_PORT=0", "DASHBOARD_PORT=0",
	}, "\n") + "\n"
}

func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env, nil
}

// testOverride is the Compose file applied last: everything the suite reaches is published on
// 127.0.0.1 only, on ports the engine picks (so that two projects, or `make run`, never
// collide), and Traefik's access log records every request (compose.yaml's command without its
// --accessLog.filters.* flags), as the process stack's does for the suite.
func (p *Project) testOverride(ctx context.Context) (string, error) {
	out, err := p.output(ctx, "config", "--format", "json")
	if err != nil {
		return "", err
	}
	var cfg struct {
		Services map[string]struct {
			Command []string `json:"command"`
		} `json:"services"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		return "", fmt.Errorf("compose: read `docker compose config`: %w", err)
	}
	var command []string
	for _, arg := range cfg.Services[ServiceTraefik].Command {
		if !strings.HasPrefix(arg, "--accessLog.filters.") {
			command = append(command, arg)
		}
	}
	if len(command) == 0 {
		return "", errors.New("compose: compose.yaml gives traefik no command")
	}
	var b strings.Builder
	b.WriteString("# Generated by package compose (e2e/compose) for the e2e suite.\nservices:\n")
	b.WriteString("  traefik:\n    command: !override\n")
	for _, arg := range command {
		fmt.Fprintf(&b, "      - %s\n", strconv.Quote(arg))
	}
	b.WriteString("    ports: !override\n")
	for _, port := range []string{"8080", "8081", "8082"} {
		fmt.Fprintf(&b, "      - %q\n", "127.0.0.1::"+port)
	}
	fmt.Fprintf(&b, "  %s:\n    ports: !override\n      - %q\n", ServiceJaeger, "127.0.0.1::"+jaegerQueryPort)
	for _, svc := range []string{target.ServiceCasts, target.ServiceMovies} {
		fmt.Fprintf(&b, "  %s:\n    ports:\n      - %q\n", svc, "127.0.0.1::"+target.ServicePorts[svc])
		if p.opts.Images != "" {
			fmt.Fprintf(&b, "    image: %s\n", p.opts.Images+"-"+svc)
		}
	}
	return b.String(), nil
}

// command is `docker compose` with this project's name, files and env file.
func (p *Project) command(ctx context.Context, args ...string) *exec.Cmd {
	full := []string{"compose", "--progress", "plain", "--project-name", p.opts.Name, "--project-directory", p.opts.RepoRoot, "--env-file", p.envFile}
	for _, f := range p.files {
		full = append(full, "--file", f)
	}
	cmd := exec.CommandContext(ctx, "docker", append(full, args...)...)
	cmd.Dir = p.opts.RepoRoot
	// Compose's own builder (BuildKit through the engine): Bake would need buildx, which Debian's
	// docker.io does not ship.
	cmd.Env = append(os.Environ(), "COMPOSE_BAKE=false")
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// output runs a compose command and returns its standard output; its error output is in the
// error.
func (p *Project) output(ctx context.Context, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := p.command(ctx, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("compose: docker compose %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// stream runs a compose command with its output going to Progress.
func (p *Project) stream(ctx context.Context, args ...string) error {
	cmd := p.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = p.opts.Progress, p.opts.Progress
	return cmd.Run()
}

func docker(ctx context.Context, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("compose: docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// describe is `docker compose ps` and the last log lines of every service, for errors.
func (p *Project) describe(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	ps, _ := p.output(ctx, "ps", "--all")
	logs, _ := p.output(ctx, "logs", "--no-color", "--tail", "15")
	return string(ps) + string(logs)
}

// Name is the project's name.
func (p *Project) Name() string { return p.opts.Name }

// Overrides are the Compose files between compose.yaml and the generated test override, such
// as StandinsFile: what a second project of the same images needs.
func (p *Project) Overrides() []string {
	if len(p.files) < 2 {
		return nil
	}
	return slices.Clone(p.files[1 : len(p.files)-1])
}

// Replicas is how many replicas each service has.
func (p *Project) Replicas() int { return p.opts.Replicas }

// Container is the name of replica i (from 0) of service: Compose numbers them from 1.
func (p *Project) Container(service string, i int) string {
	return p.opts.Name + "-" + service + "-" + strconv.Itoa(i+1)
}

// URLs tell where the published parts listen; the replicas' ports change when their container
// restarts, and are read again then. DatabaseAdmin is empty: the databases are never published.
func (p *Project) URLs() target.URLs {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.urls
	u.Casts = slices.Clone(u.Casts)
	u.Movies = slices.Clone(u.Movies)
	return u
}

// Secrets are the databases' passwords. Superuser is empty: each service's role is the
// superuser of its own server, as the official image makes POSTGRES_USER.
func (p *Project) Secrets() target.Secrets { return p.secrets }

// refreshURLs reads every published port with one `docker compose ps`.
func (p *Project) refreshURLs(ctx context.Context) error {
	out, err := p.output(ctx, "ps", "--format", "json")
	if err != nil {
		return err
	}
	// published maps "container/private port" to the URL where the engine publishes it.
	published := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var c struct {
			Name       string
			Publishers []struct {
				URL           string
				TargetPort    int
				PublishedPort int
			}
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			return fmt.Errorf("compose: docker compose ps: %w", err)
		}
		for _, pub := range c.Publishers {
			if pub.URL != "" && pub.PublishedPort != 0 {
				published[c.Name+"/"+strconv.Itoa(pub.TargetPort)] = "http://" + net.JoinHostPort(pub.URL, strconv.Itoa(pub.PublishedPort))
			}
		}
	}
	port := func(service, private string, index int) (string, error) {
		container := p.Container(service, index-1)
		if u, ok := published[container+"/"+private]; ok {
			return u, nil
		}
		return "", fmt.Errorf("compose: %s publishes no port for %s", container, private)
	}
	u := target.URLs{Issuer: p.issuer}
	if u.Gateway, err = port(ServiceTraefik, "8080", 1); err != nil {
		return err
	}
	if u.Admin, err = port(ServiceTraefik, "8081", 1); err != nil {
		return err
	}
	if u.Mesh, err = port(ServiceTraefik, "8082", 1); err != nil {
		return err
	}
	if u.Jaeger, err = port(ServiceJaeger, jaegerQueryPort, 1); err != nil {
		return err
	}
	for i := range p.opts.Replicas {
		c, err := port(target.ServiceCasts, target.ServicePorts[target.ServiceCasts], i+1)
		if err != nil {
			return err
		}
		m, err := port(target.ServiceMovies, target.ServicePorts[target.ServiceMovies], i+1)
		if err != nil {
			return err
		}
		u.Casts, u.Movies = append(u.Casts, c), append(u.Movies, m)
	}
	p.mu.Lock()
	p.urls = u
	p.mu.Unlock()
	return nil
}

// Down removes the project: containers, networks and volumes (down -v), then the temp files
// of Up. Safe to call more than once.
func (p *Project) Down(ctx context.Context) error {
	err := p.stream(ctx, "down", "--volumes", "--remove-orphans")
	if err != nil {
		err = fmt.Errorf("compose: down %s: %w", p.opts.Name, err)
	}
	if p.dir != "" {
		err = errors.Join(err, os.RemoveAll(p.dir))
	}
	return err
}

// Recreate takes the project down and brings it up again (without building), keeping its
// named volumes, and so the databases' data, unless removeVolumes (down -v).
func (p *Project) Recreate(ctx context.Context, removeVolumes bool) error {
	down := []string{"down", "--remove-orphans"}
	if removeVolumes {
		down = append(down, "--volumes")
	}
	if err := p.stream(ctx, down...); err != nil {
		return fmt.Errorf("compose: %s: %w", strings.Join(down, " "), err)
	}
	up := p.upArgs(false)
	if err := p.stream(ctx, up...); err != nil {
		return fmt.Errorf("compose: %s: %w\n%s", strings.Join(up, " "), err, p.describe(ctx))
	}
	return p.waitRouted(ctx, target.ServiceCasts, target.ServiceMovies, ServiceHydra)
}

// Volumes are the names of the project's volumes.
func (p *Project) Volumes(ctx context.Context) ([]string, error) {
	out, err := docker(ctx, "volume", "ls", "--quiet", "--filter", "label=com.docker.compose.project="+p.opts.Name)
	return strings.Fields(out), err
}

// Networks are the names of the project's networks.
func (p *Project) Networks(ctx context.Context) ([]string, error) {
	out, err := docker(ctx, "network", "ls", "--format", "{{.Name}}", "--filter", "label=com.docker.compose.project="+p.opts.Name)
	return strings.Fields(out), err
}

// StopService stops every replica of service (docker compose stop: SIGTERM, then the drain and
// shutdown compose.yaml configures, SIGKILL after stop_grace_period).
func (p *Project) StopService(service string) error {
	_, err := p.output(context.Background(), "stop", service)
	return err
}

// StartService starts a stopped service's replicas again and returns once each is healthy and
// Traefik routes to it.
func (p *Project) StartService(ctx context.Context, service string) error {
	if _, err := p.output(ctx, "start", service); err != nil {
		return err
	}
	return p.waitRouted(ctx, service)
}

// StopDatabases stops both database containers (SIGINT, PostgreSQL's fast shutdown: sessions
// end, data stays): a database outage for both services.
func (p *Project) StopDatabases() error {
	_, err := p.output(context.Background(), "stop", ServiceCastsDB, ServiceMoviesDB)
	return err
}

// StartDatabases starts them again and returns once both are healthy. The services reconnect
// by themselves; WaitReady tells when they have.
func (p *Project) StartDatabases(ctx context.Context) error {
	if _, err := p.output(ctx, "start", ServiceCastsDB, ServiceMoviesDB); err != nil {
		return err
	}
	return p.waitHealthy(ctx, []string{p.Container(ServiceCastsDB, 0), p.Container(ServiceMoviesDB, 0)})
}

// StopReplica stops replica i of service as `docker stop` does: SIGTERM, then SIGKILL after
// its stop_grace_period.
func (p *Project) StopReplica(service string, i int) error {
	_, err := docker(context.Background(), "stop", p.Container(service, i))
	return err
}

// KillReplica ends replica i of service with SIGKILL, as a crash would.
func (p *Project) KillReplica(service string, i int) error {
	_, err := docker(context.Background(), "kill", "--signal", "KILL", p.Container(service, i))
	return err
}

// StartReplica starts replica i of service again (if its restart policy has not already) and
// returns once it is healthy and Traefik routes to it.
func (p *Project) StartReplica(ctx context.Context, service string, i int) error {
	if _, err := docker(ctx, "start", p.Container(service, i)); err != nil {
		return err
	}
	return p.waitRouted(ctx, service)
}

// RestartReplica is StopReplica then StartReplica: one step of a rolling restart.
func (p *Project) RestartReplica(ctx context.Context, service string, i int) error {
	if err := p.StopReplica(service, i); err != nil {
		return err
	}
	return p.StartReplica(ctx, service, i)
}

// WaitReady returns once every replica is healthy, answers /readyz (database included) and
// Traefik routes to it: after a fault, the point from which the stack serves again.
func (p *Project) WaitReady(ctx context.Context) error {
	if err := p.waitRouted(ctx, target.ServiceCasts, target.ServiceMovies); err != nil {
		return err
	}
	u := p.URLs()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, base := range append(u.Casts, u.Movies...) {
		if err := stackkit.Poll(ctx, p.opts.ReadyTimeout, pollEvery, base+"/readyz answering 200", func() error {
			return stackkit.GetJSON(ctx, client, base+"/readyz", nil)
		}); err != nil {
			return err
		}
	}
	return nil
}

// waitRouted waits until every replica of each service is healthy, then until Traefik's API
// lists that many servers for the service, all UP, then reads the published ports again.
func (p *Project) waitRouted(ctx context.Context, services ...string) error {
	var containers []string
	for _, svc := range services {
		for i := range p.replicas(svc) {
			containers = append(containers, p.Container(svc, i))
		}
	}
	if err := p.waitHealthy(ctx, containers); err != nil {
		return err
	}
	if err := p.refreshURLs(ctx); err != nil {
		return err
	}
	admin := p.URLs().Admin
	client := &http.Client{Timeout: 2 * time.Second}
	for _, svc := range services {
		err := stackkit.Poll(ctx, p.opts.ReadyTimeout, pollEvery, fmt.Sprintf("Traefik routing to %d %s server(s)", p.replicas(svc), svc), func() error {
			return stackkit.ServersUp(ctx, client, admin, svc+"@docker", p.replicas(svc))
		})
		if err != nil {
			return fmt.Errorf("%w\n%s", err, p.describe(ctx))
		}
	}
	return nil
}

// replicas is how many containers service runs: Replicas for casts and movies, one for the rest.
func (p *Project) replicas(service string) int {
	if service == target.ServiceCasts || service == target.ServiceMovies {
		return p.opts.Replicas
	}
	return 1
}

// waitHealthy waits until each container's health check passes, asking the engine about all of
// them at once.
func (p *Project) waitHealthy(ctx context.Context, containers []string) error {
	err := stackkit.Poll(ctx, p.opts.ReadyTimeout, pollEvery, strings.Join(containers, ", ")+" healthy", func() error {
		out, err := docker(ctx, append([]string{"inspect", "--format",
			"{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"}, containers...)...)
		if err != nil {
			return err
		}
		var waiting []string
		for _, line := range strings.Split(out, "\n") {
			name, state, _ := strings.Cut(strings.TrimPrefix(line, "/"), " ")
			if state != "running healthy" {
				waiting = append(waiting, fmt.Sprintf("%s %q", name, state))
			}
		}
		if len(waiting) > 0 {
			return fmt.Errorf("state %s", strings.Join(waiting, ", "))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, p.describe(ctx))
	}
	return nil
}

// Logs are every container's output by service (replicas interleaved, each line prefixed with
// its container's name), stopped containers included.
func (p *Project) Logs(ctx context.Context) (map[string]string, error) {
	logs := map[string]string{}
	for _, svc := range []string{ServiceTraefik, target.ServiceCasts, target.ServiceMovies, ServiceCastsDB, ServiceMoviesDB,
		ServiceHydra, ServiceHydraDB, ServiceHydraMigrate, ServiceHydraClients, ServiceJaeger} {
		out, err := p.output(ctx, "logs", "--no-color", svc)
		if err != nil {
			return nil, err
		}
		logs[svc] = string(out)
	}
	return logs, nil
}

// Token gets an access token of the demo client with scope (space-separated) through the
// gateway's token endpoint, as a client of the stack would.
func (p *Project) Token(ctx context.Context, scope string) (string, error) {
	return stackkit.DemoToken(ctx, p.URLs().Gateway, p.secrets, scope)
}

// StopTraceBackend stops Jaeger's container, and nothing else: Traefik and the services go on
// exporting to a name that no longer answers.
func (p *Project) StopTraceBackend() error {
	_, err := p.output(context.Background(), "stop", ServiceJaeger)
	return err
}

// StartTraceBackend starts Jaeger's container again, with no traces (it keeps them in memory),
// and returns once it is healthy and its published port is read again.
func (p *Project) StartTraceBackend(ctx context.Context) error {
	if _, err := p.output(ctx, "start", ServiceJaeger); err != nil {
		return err
	}
	if err := p.waitHealthy(ctx, []string{p.Container(ServiceJaeger, 0)}); err != nil {
		return err
	}
	return p.refreshURLs(ctx)
}

// StopProvider stops Hydra's container, and nothing else: tokens already issued stay valid
// until they expire, and the services keep the keys they fetched.
func (p *Project) StopProvider() error {
	_, err := p.output(context.Background(), "stop", ServiceHydra)
	return err
}

// StartProvider starts Hydra's container again and returns once it is healthy, Traefik routes
// to it and the gateway hands out tokens.
func (p *Project) StartProvider(ctx context.Context) error {
	if _, err := p.output(ctx, "start", ServiceHydra); err != nil {
		return err
	}
	if err := p.waitRouted(ctx, ServiceHydra); err != nil {
		return err
	}
	return stackkit.WaitToken(ctx, p.opts.ReadyTimeout, p)
}

// RotateSigningKey has Hydra make a new key for its access tokens and sign with it from then
// on, with Hydra's own command inside its container (the admin API is on the container's
// loopback only); it returns the new key's id.
func (p *Project) RotateSigningKey(ctx context.Context) (string, error) {
	return stackkit.RotateSigningKey(ctx, hydraAdmin, func(ctx context.Context, args ...string) ([]byte, error) {
		return p.output(ctx, append([]string{"exec", "-T", ServiceHydra, "hydra"}, args...)...)
	})
}

// AccessLog is Traefik's output: its JSON access log lines among its own log lines.
func (p *Project) AccessLog(ctx context.Context) ([]byte, error) {
	return p.output(ctx, "logs", "--no-color", "--no-log-prefix", ServiceTraefik)
}

// ReachDatabase tries, from inside the network namespace of service from's first container, a
// PostgreSQL connection to service to's database server, by its name and by its address: nil
// if either answers. It runs pg_isready from the database's own image in a throwaway container
// sharing that namespace.
func (p *Project) ReachDatabase(ctx context.Context, from, to string) error {
	return stackkit.ReachPostgres(ctx, to+"-db", p.Container(to+"-db", 0), p.Container(from, 0), docker, docker)
}

// DatabaseSessions lists, on each service's database server, the client sessions other than
// its own as role@database.
func (p *Project) DatabaseSessions(ctx context.Context) ([]string, error) {
	var sessions []string
	env, err := readEnvFile(p.envFile)
	if err != nil {
		return nil, err
	}
	for _, svc := range []string{target.ServiceCasts, target.ServiceMovies} {
		prefix := strings.ToUpper(svc) + "_DB_"
		out, err := p.output(ctx, "exec", "-T", svc+"-db", "psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align",
			"--username", env[prefix+"USER"], "--dbname", env[prefix+"NAME"], "--command", stackkit.SessionsQuery)
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, strings.Fields(string(out))...)
	}
	return stackkit.Sessions(sessions), nil
}

// RemoveProjects removes, through the engine alone (no Compose file needed), every container,
// network and volume of the projects whose name is prefix or starts with prefix+"-": what a run
// killed outright leaves behind. It returns the names of the projects it found.
func RemoveProjects(ctx context.Context, prefix string) ([]string, error) {
	out, err := docker(ctx, "ps", "--all", "--filter", "label=com.docker.compose.project", "--format", `{{.Label "com.docker.compose.project"}}`)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, name := range strings.Fields(out) {
		if (name == prefix || strings.HasPrefix(name, prefix+"-")) && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	var errs []error
	for _, name := range names {
		label := "label=com.docker.compose.project=" + name
		for _, kind := range []string{"container", "network", "volume"} {
			ls := []string{kind, "ls", "--quiet", "--filter", label}
			if kind == "container" {
				ls = append(ls, "--all") // stopped ones too
			}
			ids, err := docker(ctx, ls...)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ids == "" {
				continue
			}
			rm := []string{kind, "rm"}
			if kind == "container" {
				rm = append(rm, "--force", "--volumes")
			}
			if _, err := docker(ctx, append(rm, strings.Fields(ids)...)...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return names, errors.Join(errs...)
}
