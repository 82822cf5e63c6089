package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/movies-microservices/e2e/compose"
	"github.com/movies-microservices/e2e/stack"
	"github.com/movies-microservices/e2e/swarm"
)

// target is the stack under test, which the fault tests act on: local processes (package stack)
// or a Compose project driven through the Docker engine (package compose). Each test is written
// once against it.
type target interface {
	// URLs of the gateway's entrypoints and of each replica directly; a replica's URL may change
	// when it restarts (a container's published port does), so read them after each step.
	URLs() stack.URLs
	// Secrets are the database passwords, which no log line or error body may contain.
	Secrets() stack.Secrets

	// StopService stops every replica of a service; StartService starts them again and returns
	// once Traefik routes to each.
	StopService(name string) error
	StartService(ctx context.Context, name string) error
	// StopDatabases makes every database refuse connections (the cluster, or both database
	// containers, stopped); StartDatabases ends that. WaitReady tells when the services serve again.
	StopDatabases() error
	StartDatabases(ctx context.Context) error
	WaitReady(ctx context.Context) error

	// KillReplica ends replica i of a service with SIGKILL; StartReplica starts it again and
	// returns once Traefik routes to it; RestartReplica stops it the way an orchestrator does
	// (SIGTERM, the drain, the shutdown) and starts it again.
	KillReplica(name string, i int) error
	StartReplica(ctx context.Context, name string, i int) error
	RestartReplica(ctx context.Context, name string, i int) error

	// ReachDatabase tries to reach service to's database from where service from runs: nil if
	// it can. Processes open a session with from's own credentials (the roles keep the databases
	// apart); Compose asks the server's port from inside from's container (pg_isready: the
	// networks keep them apart).
	ReachDatabase(ctx context.Context, from, to string) error
	// DatabaseSessions lists the services' sessions on the databases as role@database.
	DatabaseSessions(ctx context.Context) ([]string, error)

	// Token gets an access token of the demo client with the given scope (space-separated)
	// from the stack's OpenID provider, through the gateway's token endpoint.
	Token(ctx context.Context, scope string) (string, error)
	// StopProvider stops the OpenID provider (Hydra) and nothing else; StartProvider starts it
	// again and returns once Traefik routes to it again.
	StopProvider() error
	StartProvider(ctx context.Context) error
	// RotateSigningKey makes the provider sign access tokens with a new key, and returns its kid.
	RotateSigningKey(ctx context.Context) (kid string, err error)

	// StopTraceBackend stops the trace backend (Jaeger) and nothing else: Traefik and the
	// services go on exporting to it; StartTraceBackend starts it again, empty, and returns once
	// it is healthy.
	StopTraceBackend() error
	StartTraceBackend(ctx context.Context) error

	// Logs are every part's output so far, by part.
	Logs(ctx context.Context) (map[string]string, error)
	// AccessLog is Traefik's access log (JSON lines, possibly among other lines).
	AccessLog(ctx context.Context) ([]byte, error)

	// Kind names the implementation, for messages: "processes", "compose" or "swarm".
	Kind() string
	// Stop takes the stack down, its data with it.
	Stop() error
}

// processTarget is the stack of local processes.
type processTarget struct{ *stack.Stack }

func (p processTarget) Kind() string                             { return "processes" }
func (p processTarget) StopDatabases() error                     { return p.StopPostgres() }
func (p processTarget) StartDatabases(ctx context.Context) error { return p.StartPostgres(ctx) }

// ReachDatabase connects as role from to database to, on the one cluster both services share:
// the roles keep them apart (each database is open to its own role only).
func (p processTarget) ReachDatabase(ctx context.Context, from, to string) error {
	conn, err := pgx.Connect(ctx, p.DatabaseURL(from, to))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func (p processTarget) DatabaseSessions(ctx context.Context) ([]string, error) {
	admin, err := pgx.Connect(ctx, p.DatabaseURL(stack.Superuser, "postgres"))
	if err != nil {
		return nil, err
	}
	defer admin.Close(ctx)
	rows, err := admin.Query(ctx, `SELECT DISTINCT usename::text || '@' || datname::text FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND usename <> 'postgres' ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Logs are the log files, by name without ".log": casts, casts-2, movies, postgres, traefik,
// traefik-access.
func (p processTarget) Logs(context.Context) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(p.LogDir(), "*.log"))
	if err != nil {
		return nil, err
	}
	logs := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		logs[strings.TrimSuffix(filepath.Base(f), ".log")] = string(b)
	}
	return logs, nil
}

func (p processTarget) AccessLog(context.Context) ([]byte, error) {
	return os.ReadFile(filepath.Join(p.LogDir(), "traefik-access.log"))
}

// composeTarget is a Compose project. Its logs are by Compose service: traefik, casts, movies,
// casts-db, movies-db.
type composeTarget struct{ *compose.Project }

func (c composeTarget) Kind() string { return "compose" }
func (c composeTarget) Stop() error  { return c.Down(context.Background()) }

// startTarget is a stack of its own, for a test that must not disturb the suite's: processes
// beside the suite's processes, a second Compose project beside the suite's project. Both run
// replicas of each service and drain a stopping one for drainDelay.
func startTarget(ctx context.Context, name string, replicas int) (target, error) {
	root, err := stack.FindRepoRoot(".")
	if err != nil {
		return nil, err
	}
	if s, ok := suite.target.(swarmTarget); ok {
		if replicas != swarm.Replicas {
			return nil, fmt.Errorf("a stack on the swarm runs %d replicas of each service (stack.yaml), not %d", swarm.Replicas, replicas)
		}
		return s.startSibling(ctx, name)
	}
	if p, ok := suite.target.(composeTarget); ok {
		proj, err := p.upSibling(ctx, root, name, replicas, os.Stderr)
		if err != nil {
			return nil, err
		}
		return composeTarget{proj}, nil
	}
	s, err := stack.Start(ctx, stack.Options{RepoRoot: root, Replicas: replicas, ShutdownDelay: drainDelay, LogLevel: "warn", AccessLogAll: true})
	if err != nil {
		return nil, err
	}
	return processTarget{s}, nil
}

// upSibling brings up another Compose project beside the suite's, named after it plus name, from
// the images the suite's project built and with its overrides (replicas 0 and a nil progress
// writer take compose.Options' defaults).
func (p composeTarget) upSibling(ctx context.Context, root, name string, replicas int, progress io.Writer) (*compose.Project, error) {
	return compose.Up(ctx, compose.Options{
		RepoRoot: root, Name: p.Name() + "-" + name, Overrides: p.Overrides(), Replicas: replicas,
		Images: p.Name(), LogLevel: "warn", Progress: progress,
	})
}

// persistentTarget is a stack whose data outlives it.
type persistentTarget interface {
	URLs() stack.URLs
	tokenSource
	// Recreate takes the stack down and brings it up again, with its data unless removeData.
	Recreate(ctx context.Context, removeData bool) error
	Stop() error
}

// startPersistentTarget starts a stack of the suite's kind that keeps its data between runs: a
// Compose project (named volumes), or processes with a data directory of their own.
func startPersistentTarget(ctx context.Context, name string) (persistentTarget, error) {
	root, err := stack.FindRepoRoot(".")
	if err != nil {
		return nil, err
	}
	if s, ok := suite.target.(swarmTarget); ok {
		return s.startSibling(ctx, name)
	}
	if p, ok := suite.target.(composeTarget); ok {
		proj, err := p.upSibling(ctx, root, name, 0, nil)
		if err != nil {
			return nil, err
		}
		return composeTarget{proj}, nil
	}
	dir, err := os.MkdirTemp("", "e2e-"+name+"-")
	if err != nil {
		return nil, err
	}
	// Searchable by others: PostgreSQL, run as another user when we are root, goes through it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	p := &persistentProcesses{dir: dir, opts: stack.Options{RepoRoot: root, Dir: filepath.Join(dir, "stack"), LogLevel: "warn"}}
	if p.s, err = stack.Start(ctx, p.opts); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

// persistentProcesses is a process stack with its data in a directory (as make run's .run/).
type persistentProcesses struct {
	dir  string // removed by Stop
	opts stack.Options
	s    *stack.Stack
}

func (p *persistentProcesses) URLs() stack.URLs { return p.s.URLs() }

func (p *persistentProcesses) Token(ctx context.Context, scope string) (string, error) {
	return p.s.Token(ctx, scope)
}

func (p *persistentProcesses) Recreate(ctx context.Context, removeData bool) error {
	if err := p.s.Stop(); err != nil {
		return err
	}
	if removeData {
		if err := os.RemoveAll(p.opts.Dir); err != nil {
			return err
		}
	}
	s, err := stack.Start(ctx, p.opts)
	p.s = s
	return err
}

func (p *persistentProcesses) Stop() error {
	var err error
	if p.s != nil { // nil after a failed Recreate
		err = p.s.Stop()
	}
	return errors.Join(err, os.RemoveAll(p.dir))
}

// describeTarget is how the suite names the stack it drives, for its first line.
func describeTarget(t target) string {
	if t == nil {
		return "a stack started elsewhere (E2E_BASE_URL), without control over it"
	}
	return fmt.Sprintf("the %s stack", t.Kind())
}
