package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// Options configure Start.
type Options struct {
	// RepoRoot is the repository root (see FindRepoRoot): it holds bin/ and
	// traefik/dynamic. Required.
	RepoRoot string
	// Dir keeps state between runs: the cluster in Dir/postgres, its
	// passwords in Dir/secrets.env, logs in Dir/logs. Empty means a
	// throwaway stack: everything in temp directories removed by Stop.
	Dir string
	// Ports to listen on; zero ports are picked free. DefaultPorts gives
	// those of `make run`.
	Ports Ports
	// Replicas of each service; zero means 1.
	Replicas int
	// ShutdownDelay is how long a service replica, on SIGTERM, keeps failing
	// /readyz before it stops taking requests (CASTS_SHUTDOWN_DELAY and
	// MOVIES_SHUTDOWN_DELAY). To drain a replica without failed requests it
	// must exceed Traefik's health check interval plus timeout (2s + 1s in
	// traefik/dynamic/routers.yml). Zero leaves the services' default (none).
	ShutdownDelay time.Duration
	// LogLevel of both services; empty means "info".
	LogLevel string
	// LogDir receives one log file per process (casts.log, casts-2.log,
	// movies.log, postgres.log, traefik.log, traefik-access.log). Empty
	// means Dir/logs, or a temp directory for a throwaway stack.
	LogDir string
	// LogOutput, if set, also receives every process's output, each line
	// prefixed with the process name: handy in tests, whose temp logs vanish.
	LogOutput io.Writer
	// Progress receives a line as each part comes up; nil discards them.
	Progress io.Writer
	// ReadyTimeout bounds the wait for each part to become healthy; zero
	// means one minute.
	ReadyTimeout time.Duration
	// Binaries override the programs started; empty fields mean RepoRoot/bin/...
	Binaries Binaries
	// Profiling serves Go's profiles (net/http/pprof) from every Go process:
	// each service replica on a debug address of its own (*_DEBUG_ADDR),
	// Traefik on its API (--api.debug). URLs.Profiles lists them. For
	// measuring only (make bench BENCH_PROFILE=1): it exposes internals.
	Profiling bool
	// AccessLogAll makes Traefik's access log (LogDir/traefik-access.log)
	// record every request; by default it records only failed, retried and
	// slow ones (TraefikAccessLogFilters), as with Docker. Tests that read it
	// to see which entrypoint a request took set it.
	AccessLogAll bool
	// NoTracing runs the stack without its trace backend: no Jaeger, and
	// neither Traefik nor the services export spans (the benchmark's
	// "tracing off"). By default Jaeger runs and everything exports to it.
	NoTracing bool
}

// Binaries are the programs a stack starts.
type Binaries struct {
	Casts, Movies, Traefik, Hydra, Jaeger string
}

// Stack is a running set of local processes: PostgreSQL, the OpenID provider
// (Hydra), both services and Traefik.
type Stack struct {
	opts    Options
	tempDir string // removed by Stop; empty for a persistent stack
	logDir  string
	pgLog   *os.File
	pg      *Postgres
	traefik *process
	hydra   *process // nil while stopped (StopProvider)
	jaeger  *process // nil while stopped (StopTraceBackend) or with Options.NoTracing
	urls    target.URLs
	secrets target.Secrets
	// debugPorts are the profile ports of each service's replicas, with Options.Profiling.
	debugPorts map[string][]int
	crashed    chan error

	mu       sync.Mutex // guards the services' replicas, Hydra's process and PostgreSQL's state
	services []*service // in start order: casts before movies, which needs it
	stopped  bool       // set by Stop: nothing starts again

	stopOnce sync.Once
	stopErr  error
}

// Start brings the whole stack up and returns once every part is healthy:
// PostgreSQL accepts connections, Hydra answers and knows the stack's
// clients, each service replica answers /readyz, and Traefik lists its routers
// with every server UP. On error, whatever had
// started is stopped again.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	opts = opts.withDefaults()
	if err := opts.checkFiles(); err != nil {
		return nil, err
	}
	s := &Stack{opts: opts, crashed: make(chan error, 16)}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if err := s.prepareDirs(); err != nil {
		return nil, err
	}
	secrets, err := s.loadSecrets()
	if err != nil {
		return nil, err
	}
	s.secrets = secrets
	moviesPorts, castsPorts, err := s.resolvePorts()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(s.opts.Progress, "stack: logs in %s\n", s.logDir)
	if err := s.startPostgres(ctx, secrets); err != nil {
		return nil, err
	}
	if err := s.startJaeger(ctx, true); err != nil {
		return nil, err
	}
	if err := s.startHydra(ctx); err != nil {
		return nil, err
	}
	s.services = []*service{
		s.castsService(castsPorts, secrets.Casts),
		s.moviesService(moviesPorts, secrets.Movies),
	}
	for _, svc := range s.services {
		if err := s.startService(ctx, svc, true); err != nil {
			return nil, err
		}
	}
	if err := s.startTraefik(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (o Options) withDefaults() Options {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.LogOutput != nil {
		o.LogOutput = &lockedWriter{w: o.LogOutput}
	}
	bin := func(path *string, name string) {
		if *path == "" {
			*path = filepath.Join(o.RepoRoot, "bin", name)
		}
	}
	bin(&o.Binaries.Casts, "casts")
	bin(&o.Binaries.Movies, "movies")
	bin(&o.Binaries.Traefik, "traefik")
	bin(&o.Binaries.Hydra, "hydra")
	bin(&o.Binaries.Jaeger, "jaeger")
	return o
}

// checkFiles fails early, before anything starts, naming the make target
// that builds whatever is missing.
func (o Options) checkFiles() error {
	if o.RepoRoot == "" {
		return errors.New("stack: Options.RepoRoot is required (see stackkit.FindRepoRoot)")
	}
	var errs []error
	need := func(path, how string) {
		if !isExecutable(path) {
			errs = append(errs, fmt.Errorf("stack: %s not found or not executable: %s", path, how))
		}
	}
	need(o.Binaries.Casts, "build the services with `make build`")
	need(o.Binaries.Movies, "build the services with `make build`")
	need(o.Binaries.Traefik, "build it with `make traefik` (the first build takes about 10 minutes)")
	need(o.Binaries.Hydra, "build it with `make hydra` (the first build takes about 2 minutes)")
	if !o.NoTracing {
		need(o.Binaries.Jaeger, "build it with `make jaeger` (the first build takes about 3 minutes)")
	}
	if info, err := os.Stat(o.dynamicDir()); err != nil || !info.IsDir() {
		errs = append(errs, fmt.Errorf("stack: %s not found: Traefik's file-provider configuration is missing", o.dynamicDir()))
	}
	return errors.Join(errs...)
}

func (o Options) dynamicDir() string { return filepath.Join(o.RepoRoot, "traefik", "dynamic") }

func (s *Stack) prepareDirs() error {
	if s.opts.Dir == "" {
		dir, err := os.MkdirTemp("", "stack-")
		if err != nil {
			return fmt.Errorf("stack: create temp directory: %w", err)
		}
		s.tempDir = dir
	} else {
		dir, err := filepath.Abs(s.opts.Dir)
		if err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		s.opts.Dir = dir
		// Searchable by others: PostgreSQL, run as another user, goes through it.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("stack: create %s: %w", dir, err)
		}
	}
	s.logDir = s.opts.LogDir
	if s.logDir == "" {
		s.logDir = filepath.Join(s.stateDir(), "logs")
	}
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		return fmt.Errorf("stack: create log directory: %w", err)
	}
	return nil
}

// stateDir is Dir, or the temp directory of a throwaway stack.
func (s *Stack) stateDir() string {
	if s.tempDir != "" {
		return s.tempDir
	}
	return s.opts.Dir
}

// loadSecrets generates passwords for each throwaway stack (whose superuser
// needs no password), and makes them once then reuses them for a persistent one.
func (s *Stack) loadSecrets() (target.Secrets, error) {
	if s.opts.Dir == "" {
		sec := target.NewSecrets()
		sec.Superuser = ""
		return sec, nil
	}
	path := filepath.Join(s.opts.Dir, "secrets.env")
	_, errSecrets := os.Stat(path)
	_, errCluster := os.Stat(filepath.Join(s.opts.Dir, "postgres", "data", "PG_VERSION"))
	if errors.Is(errSecrets, fs.ErrNotExist) && errCluster == nil {
		return target.Secrets{}, fmt.Errorf("stack: %s holds a PostgreSQL cluster but %s, with its passwords, is gone: "+
			"delete %s to start afresh (this deletes the local data)", filepath.Join(s.opts.Dir, "postgres"), path, s.opts.Dir)
	}
	return LoadOrCreateSecrets(path)
}

// resolvePorts fixes every port before anything starts, so that a port in
// use is reported at once, naming the variable that moves it.
func (s *Stack) resolvePorts() (movies, casts []int, err error) {
	p := &s.opts.Ports
	claims := []portClaim{
		{&p.Web, "Traefik entrypoint web", EnvWebPort},
		{&p.Admin, "Traefik entrypoint traefik (API)", EnvAdminPort},
		{&p.Mesh, "Traefik entrypoint mesh", EnvMeshPort},
		{&p.Postgres, "PostgreSQL", EnvPostgresPort},
		{&p.HydraPublic, "Hydra public API", EnvHydraPublic},
		{&p.HydraAdmin, "Hydra admin API", EnvHydraAdmin},
	}
	if !s.opts.NoTracing {
		claims = append(claims, s.jaegerClaims()...)
	}
	movies = replicaPorts(p.Movies, s.opts.Replicas)
	casts = replicaPorts(p.Casts, s.opts.Replicas)
	claims = append(claims, replicaClaims(movies, target.ServiceMovies, EnvMoviesPort)...)
	claims = append(claims, replicaClaims(casts, target.ServiceCasts, EnvCastsPort)...)
	if s.opts.Profiling {
		// Each replica's profiles on a port of its own, picked with the rest so
		// that none is handed out twice.
		s.debugPorts = map[string][]int{target.ServiceMovies: make([]int, len(movies)), target.ServiceCasts: make([]int, len(casts))}
		for _, name := range []string{target.ServiceMovies, target.ServiceCasts} {
			ports := s.debugPorts[name]
			for i := range ports {
				claims = append(claims, portClaim{port: &ports[i], what: name + " profiles"})
			}
		}
	}
	return movies, casts, resolvePorts(claims)
}

func replicaPorts(first, replicas int) []int {
	ports := make([]int, replicas)
	for i := range ports {
		if first != 0 {
			ports[i] = first + i*replicaPortStep
		}
	}
	return ports
}

func replicaClaims(ports []int, name, env string) []portClaim {
	claims := make([]portClaim, len(ports))
	for i := range ports {
		claims[i] = portClaim{port: &ports[i], what: name, env: env}
		if i > 0 {
			claims[i].what = fmt.Sprintf("%s replica %d", name, i+1)
			claims[i].env = fmt.Sprintf("%s (replica %d uses %s+%d)", env, i+1, env, i*replicaPortStep)
		}
	}
	return claims
}

func (s *Stack) startPostgres(ctx context.Context, secrets target.Secrets) error {
	f, err := os.OpenFile(filepath.Join(s.logDir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("stack: open PostgreSQL log: %w", err)
	}
	s.pgLog = f
	opts := PostgresOptions{
		Port:              s.opts.Ports.Postgres,
		SuperuserPassword: secrets.Superuser,
		Log:               s.logWriter("postgres", f),
		Progress:          s.opts.Progress,
		StartTimeout:      s.opts.ReadyTimeout,
	}
	if s.opts.Dir != "" {
		opts.Dir = filepath.Join(s.opts.Dir, "postgres")
	}
	if s.pg, err = StartPostgres(ctx, opts); err != nil {
		return err
	}
	s.watch(s.pg.process())
	s.urls.DatabaseAdmin = s.pg.SuperuserURL("postgres")

	dbs := []Database{{Name: target.ServiceCasts, Password: secrets.Casts}, {Name: target.ServiceMovies, Password: secrets.Movies},
		{Name: target.ServiceHydra, Password: secrets.Hydra}}
	if err := Provision(ctx, s.pg.SuperuserURL("postgres"), dbs...); err != nil {
		return err
	}
	fmt.Fprintf(s.opts.Progress, "postgres: databases casts, movies and hydra ready, each open only to its own role\n")
	return nil
}

// castsService delivers its outbox's events to movies through Traefik's mesh
// entrypoint too.
func (s *Stack) castsService(ports []int, password string) *service {
	dbURL := s.pg.URL(target.ServiceCasts, password, target.ServiceCasts)
	moviesURL := "http://" + hostPort(s.opts.Ports.Mesh)
	return s.newService(target.ServiceCasts, s.opts.Binaries.Casts, ports, EnvCastsPort, func(addr string) []string {
		return append([]string{"CASTS_ADDR=" + addr, "CASTS_DATABASE_URL=" + dbURL, "CASTS_MOVIES_URL=" + moviesURL, "CASTS_LOG_LEVEL=" + s.opts.LogLevel,
			// The outbox relay's own client, whose tokens carry movies:events.
			"CASTS_AUTH_TOKEN_URL=" + stackkit.TokenURL(s.hydraPublicURL()),
			"CASTS_RELAY_CLIENT_ID=" + target.RelayClientID, "CASTS_RELAY_CLIENT_SECRET=" + s.secrets.RelayClient},
			s.authEnv("CASTS_")...)
	})
}

// moviesService reaches casts only through Traefik's mesh entrypoint, as in
// production: retries and the circuit breaker live there.
func (s *Stack) moviesService(ports []int, password string) *service {
	dbURL := s.pg.URL(target.ServiceMovies, password, target.ServiceMovies)
	castsURL := "http://" + hostPort(s.opts.Ports.Mesh)
	return s.newService(target.ServiceMovies, s.opts.Binaries.Movies, ports, EnvMoviesPort, func(addr string) []string {
		return append([]string{"MOVIES_ADDR=" + addr, "MOVIES_DATABASE_URL=" + dbURL, "MOVIES_CASTS_URL=" + castsURL, "MOVIES_LOG_LEVEL=" + s.opts.LogLevel},
			s.authEnv("MOVIES_")...)
	})
}

// authEnv is how a service verifies tokens: the keys straight from Hydra's
// public API, the issuer as the gateway names it.
func (s *Stack) authEnv(prefix string) []string {
	return []string{
		prefix + "AUTH_ISSUER=" + s.issuer(),
		prefix + "AUTH_JWKS_URL=" + s.hydraPublicURL() + "/.well-known/jwks.json",
		prefix + "AUTH_AUDIENCE=" + target.Audience,
	}
}

// newService adds what both services share: the shutdown delay (each reads
// its own NAME_SHUTDOWN_DELAY) and a stop grace period that covers it.
// With Options.Profiling, each replica also gets its debug address (from
// resolvePorts), kept for its restarts.
func (s *Stack) newService(name, binary string, ports []int, portEnv string, env func(addr string) []string) *service {
	prefix := strings.ToUpper(name) + "_"
	debugAddrs := map[string]string{} // replica's address -> its debug address
	svc := &service{
		name: name, binary: binary, ports: ports, portEnv: portEnv,
		// The services' own shutdown timeout is 15s, after the delay.
		grace:    s.opts.ShutdownDelay + 20*time.Second,
		replicas: make([]*process, len(ports)),
	}
	for i, debugPort := range s.debugPorts[name] {
		debugAddrs[hostPort(ports[i])] = hostPort(debugPort)
		if s.urls.Profiles == nil {
			s.urls.Profiles = map[string]string{}
		}
		s.urls.Profiles[svc.replicaName(i)] = "http://" + hostPort(debugPort)
	}
	svc.env = func(addr string) []string {
		vars := append(env(addr), s.telemetryEnv()...)
		if d := s.opts.ShutdownDelay; d > 0 {
			vars = append(vars, prefix+"SHUTDOWN_DELAY="+d.String())
		}
		if debug, ok := debugAddrs[addr]; ok {
			vars = append(vars, prefix+"DEBUG_ADDR="+debug)
		}
		return vars
	}
	return svc
}

// startService starts every replica of svc that is not running; fresh
// empties their log files first.
func (s *Stack) startService(ctx context.Context, svc *service, fresh bool) error {
	for _, i := range svc.stopped() {
		if err := s.startReplica(ctx, svc, i, fresh); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stack) startReplica(ctx context.Context, svc *service, i int, fresh bool) error {
	return svc.startReplica(ctx, i, s.logFiles(fresh), s.opts.ReadyTimeout, s.opts.Progress, s.watch)
}

func (s *Stack) startTraefik(ctx context.Context) error {
	cfg := traefikConfig{
		profiling:  s.opts.Profiling,
		accessAll:  s.opts.AccessLogAll,
		dynamicDir: s.opts.dynamicDir(),
		accessLog:  filepath.Join(s.logDir, "traefik-access.log"),
		ports:      s.opts.Ports,
		hydra:      s.hydraPublicURL(),
		otlp:       s.otlpEndpoint(),
	}
	for _, svc := range s.services {
		switch svc.name {
		case target.ServiceCasts:
			cfg.casts = svc.URLs()
		case target.ServiceMovies:
			cfg.movies = svc.URLs()
		}
	}
	log, closeLog, err := s.logFiles(true)("traefik")
	if err != nil {
		return err
	}
	cmd := exec.Command(s.opts.Binaries.Traefik, cfg.args()...)
	cmd.Dir = s.opts.RepoRoot
	cmd.Env = cfg.env()
	cmd.SysProcAttr = childAttr(syscall.SIGTERM)
	if s.traefik, err = startProcess("traefik", cmd, log); err != nil {
		closeLog()
		return err
	}
	go func() { <-s.traefik.done; closeLog() }()
	s.watch(s.traefik)

	s.urls.Gateway = "http://" + hostPort(s.opts.Ports.Web)
	s.urls.Admin = "http://" + hostPort(s.opts.Ports.Admin)
	s.urls.Mesh = "http://" + hostPort(s.opts.Ports.Mesh)
	s.urls.Casts, s.urls.Movies = cfg.casts, cfg.movies
	if s.opts.Profiling {
		s.urls.Profiles["traefik"] = s.urls.Admin
	}
	s.urls.Issuer = s.issuer()
	s.urls.HydraPublic, s.urls.HydraAdmin = s.hydraPublicURL(), s.hydraAdminURL()
	servers := append(append([]string(nil), cfg.casts...), cfg.movies...)
	servers = append(servers, cfg.hydra)
	if err := waitTraefikReady(ctx, s.urls.Admin, servers, s.traefik, s.opts.ReadyTimeout); err != nil {
		return err
	}
	fmt.Fprintf(s.opts.Progress, "traefik: ready on %s (routers %v, every server UP)\n", s.urls.Gateway, wantRouters)
	return nil
}

// logFiles opens NAME.log in the log directory, emptied on a fresh start and
// appended to on a restart, plus LogOutput if set.
func (s *Stack) logFiles(fresh bool) processLogs {
	return func(name string) (io.Writer, func() error, error) {
		flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
		if fresh {
			flags |= os.O_TRUNC
		}
		f, err := os.OpenFile(filepath.Join(s.logDir, name+".log"), flags, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("stack: open log of %s: %w", name, err)
		}
		return s.logWriter(name, f), f.Close, nil
	}
}

func (s *Stack) logWriter(name string, f *os.File) io.Writer {
	if s.opts.LogOutput == nil {
		return f
	}
	return io.MultiWriter(f, &prefixWriter{prefix: "[" + name + "] ", w: s.opts.LogOutput})
}

// watch reports p on the crashed channel if it exits without being asked to.
func (s *Stack) watch(p *process) {
	go func() {
		<-p.done
		if p.stopping.Load() {
			return
		}
		select {
		case s.crashed <- p.exitError():
		default:
		}
	}()
}

// URLs tells where the parts listen.
func (s *Stack) URLs() target.URLs {
	u := s.urls
	u.Movies = append([]string(nil), u.Movies...)
	u.Casts = append([]string(nil), u.Casts...)
	u.Profiles = maps.Clone(u.Profiles)
	return u
}

// LogDir is the directory holding the processes' log files.
func (s *Stack) LogDir() string { return s.logDir }

// Secrets are the stack's database passwords and the provider's secrets
// (its system secret, its clients'), for tests that must check where they do
// not appear and for getting tokens. Secrets prints itself redacted.
func (s *Stack) Secrets() target.Secrets { return s.secrets }

// DatabaseURL is a connection URL to database as role, with that role's
// password: role is ServiceCasts, ServiceMovies or Superuser. It holds a
// password: keep it out of logs (url.URL.Redacted).
func (s *Stack) DatabaseURL(role, database string) string {
	password := ""
	switch role {
	case target.ServiceCasts:
		password = s.secrets.Casts
	case target.ServiceMovies:
		password = s.secrets.Movies
	case Superuser:
		password = s.secrets.Superuser
	}
	return s.pg.URL(role, password, database)
}

// Wait blocks until ctx is done, returning nil, or until a process of the
// stack exits without being asked to, returning an error with its last log lines.
func (s *Stack) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.crashed:
		return err
	}
}

// StopService stops every replica of service name ("casts" or "movies"),
// leaving the rest of the stack running: Traefik then finds them down.
func (s *Stack) StopService(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, err := s.service(name)
	if err != nil {
		return err
	}
	return svc.stop()
}

// StartService starts again the replicas of a service stopped by StopService
// (or StopReplica), on the same ports, and waits until each answers /readyz
// and Traefik has it back in rotation.
func (s *Stack) StartService(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, err := s.service(name)
	if err != nil {
		return err
	}
	stopped := svc.stopped()
	if len(stopped) == 0 {
		return fmt.Errorf("stack: %s is already running", name)
	}
	if err := s.startService(ctx, svc, false); err != nil {
		return err
	}
	var urls []string
	for _, i := range stopped {
		urls = append(urls, svc.replicaURL(i))
	}
	return s.waitInRotation(ctx, urls)
}

// StopReplica stops replica i (counted from 0; see URLs) of service name the
// way an orchestrator does: SIGTERM, then it waits for the process to exit.
// With a ShutdownDelay the replica first fails /readyz for that long, then
// finishes its in-flight requests.
func (s *Stack) StopReplica(name string, i int) error {
	return s.signalReplica(name, i, syscall.SIGTERM)
}

// KillReplica ends replica i of service name with SIGKILL, as a crash
// would: no drain, no shutdown, in-flight requests are cut off.
func (s *Stack) KillReplica(name string, i int) error {
	return s.signalReplica(name, i, syscall.SIGKILL)
}

func (s *Stack) signalReplica(name string, i int, sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, err := s.serviceWithReplica(name, i)
	if err != nil {
		return err
	}
	if svc.replicas[i] == nil {
		return fmt.Errorf("stack: %s is not running", svc.replicaName(i))
	}
	return svc.stopReplica(i, sig)
}

// serviceWithReplica is service name, if it has a replica i.
func (s *Stack) serviceWithReplica(name string, i int) (*service, error) {
	svc, err := s.service(name)
	if err != nil {
		return nil, err
	}
	if err := svc.checkReplica(i); err != nil {
		return nil, err
	}
	return svc, nil
}

// StartReplica starts replica i of service name again, on its port, after
// StopReplica or KillReplica, and returns once it answers /readyz and
// Traefik's health check has put it back in rotation. Its log file is
// appended to.
func (s *Stack) StartReplica(ctx context.Context, name string, i int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, err := s.serviceWithReplica(name, i)
	if err != nil {
		return err
	}
	if err := s.startReplica(ctx, svc, i, false); err != nil {
		return err
	}
	return s.waitInRotation(ctx, []string{svc.replicaURL(i)})
}

// RestartReplica is StopReplica then StartReplica: one step of a rolling
// restart.
func (s *Stack) RestartReplica(ctx context.Context, name string, i int) error {
	if err := s.StopReplica(name, i); err != nil {
		return err
	}
	return s.StartReplica(ctx, name, i)
}

// waitInRotation waits until Traefik reports every server in urls UP. Before
// Traefik has started (during Start) there is nothing to wait for.
func (s *Stack) waitInRotation(ctx context.Context, urls []string) error {
	if s.traefik == nil {
		return nil
	}
	return waitTraefikReady(ctx, s.urls.Admin, urls, s.traefik, s.opts.ReadyTimeout)
}

// WaitReady returns once every running replica answers /readyz with 200,
// Hydra (if running) is ready, and Traefik reports each UP: after a fault (see StopPostgres), the point from
// which the stack serves again.
func (s *Stack) WaitReady(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var urls []string
	for _, svc := range s.services {
		for _, i := range svc.running() {
			if err := waitHTTPReady(ctx, svc.replicaURL(i)+"/readyz", svc.replicas[i], s.opts.ReadyTimeout); err != nil {
				return err
			}
			urls = append(urls, svc.replicaURL(i))
		}
	}
	// Hydra's database is on the same cluster: after an outage it, too, must be back.
	if s.hydra != nil {
		if err := s.waitHydraReady(ctx); err != nil {
			return err
		}
		urls = append(urls, s.hydraPublicURL())
	}
	return s.waitInRotation(ctx, urls)
}

// StopPostgres shuts the PostgreSQL server down (fast shutdown: sessions end,
// data stays), leaving everything else running: a database outage, in which
// connections are refused. StartPostgres ends it.
func (s *Stack) StopPostgres() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pg.StopServer()
}

// StartPostgres starts the server stopped by StopPostgres, on the same port
// with the same data, and returns once it accepts connections. The services
// reconnect by themselves; WaitReady tells when they have.
func (s *Stack) StartPostgres(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.pg.StartServer(ctx); err != nil {
		return err
	}
	s.watch(s.pg.process())
	return nil
}

// PausePostgres freezes the PostgreSQL server and its sessions (SIGSTOP): a
// database that hangs instead of refusing, so that only the services' own
// timeouts end their requests. ResumePostgres ends it; Stop resumes it first.
func (s *Stack) PausePostgres() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pg.Pause()
}

// ResumePostgres undoes PausePostgres.
func (s *Stack) ResumePostgres() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pg.Resume()
}

func (s *Stack) service(name string) (*service, error) {
	for _, svc := range s.services {
		if svc.name == name {
			return svc, nil
		}
	}
	return nil, fmt.Errorf("stack: no service %q (want %q or %q)", name, target.ServiceCasts, target.ServiceMovies)
}

// Stop stops everything in dependency order: the services (movies first, as
// it calls casts), then Traefik, then Hydra, then Jaeger, then PostgreSQL; then removes a throwaway
// stack's files. It is safe to call more than once.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		s.mu.Lock()
		s.stopped = true
		for i := len(s.services) - 1; i >= 0; i-- {
			errs = append(errs, s.services[i].stop())
		}
		s.mu.Unlock()
		if s.traefik != nil {
			errs = append(errs, s.traefik.stop(syscall.SIGTERM, 15*time.Second))
		}
		s.mu.Lock()
		if s.hydra != nil {
			errs = append(errs, s.hydra.stop(syscall.SIGTERM, 15*time.Second))
			s.hydra = nil
		}
		// Last of the programs: it takes the spans of the others' shutdown.
		if s.jaeger != nil {
			errs = append(errs, s.jaeger.stop(syscall.SIGTERM, 15*time.Second))
			s.jaeger = nil
		}
		s.mu.Unlock()
		if s.pg != nil {
			s.mu.Lock()
			errs = append(errs, s.pg.Stop())
			s.mu.Unlock()
		}
		if s.pgLog != nil {
			s.pgLog.Close()
		}
		if s.tempDir != "" {
			if err := os.RemoveAll(s.tempDir); err != nil {
				errs = append(errs, fmt.Errorf("stack: remove %s: %w", s.tempDir, err))
			}
		}
		s.stopErr = errors.Join(errs...)
		if s.pg != nil {
			fmt.Fprintln(s.opts.Progress, "stack: stopped")
		}
	})
	return s.stopErr
}

// PIDs are the process ids of the stack's programs by name: "casts" and
// "movies" (each one's first replica), "traefik", "postgres", "hydra" and
// "jaeger"; a part that is not running is left out. The benchmark measures
// the processes of each by them.
func (s *Stack) PIDs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pids := map[string]int{}
	add := func(name string, p *process) {
		if p != nil && p.cmd != nil && p.cmd.Process != nil && !p.exited() {
			pids[name] = p.cmd.Process.Pid
		}
	}
	for _, svc := range s.services {
		if len(svc.replicas) > 0 {
			add(svc.name, svc.replicas[0])
		}
	}
	add("traefik", s.traefik)
	add(target.ServiceHydra, s.hydra)
	add(target.ServiceJaeger, s.jaeger)
	if s.pg != nil {
		add("postgres", s.pg.process())
	}
	return pids
}
