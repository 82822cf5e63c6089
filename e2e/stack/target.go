package stack

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// The process stack is a driver of the stack under test.
var (
	_ target.Target      = (*Stack)(nil)
	_ target.Siblings    = (*Stack)(nil)
	_ target.Persistence = (*Stack)(nil)
	_ target.Persistent  = (*persistent)(nil)
)

// SiblingShutdownDelay is how long a stopping replica of a sibling stack fails /readyz before
// it stops accepting: longer than Traefik's health-check interval (2s) plus its timeout (1s),
// so Traefik has taken it out of rotation by then (traefik/dynamic/routers.yml). The fault tests that stop replicas
// under load run on siblings; the container stacks drain as compose.yaml and stack.yaml say.
const SiblingShutdownDelay = 4 * time.Second

// Kind names the driver.
func (s *Stack) Kind() string { return "processes" }

// Provider is Traefik's file provider: routers.yml, filled in with the processes' URLs.
func (s *Stack) Provider() string { return "file" }

// StopDatabases stops the one PostgreSQL cluster both services (and Hydra) use.
func (s *Stack) StopDatabases() error { return s.StopPostgres() }

// StartDatabases starts it again.
func (s *Stack) StartDatabases(ctx context.Context) error { return s.StartPostgres(ctx) }

// ReachDatabase connects as role from to database to, on the one cluster both services share:
// the roles keep them apart (each database is open to its own role only).
func (s *Stack) ReachDatabase(ctx context.Context, from, to string) error {
	conn, err := pgx.Connect(ctx, s.DatabaseURL(from, to))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// DatabaseSessions asks the cluster as its superuser, whose own sessions are left out.
func (s *Stack) DatabaseSessions(ctx context.Context) ([]string, error) {
	admin, err := pgx.Connect(ctx, s.DatabaseURL(Superuser, "postgres"))
	if err != nil {
		return nil, err
	}
	defer admin.Close(ctx)
	rows, err := admin.Query(ctx, stackkit.SessionsQuery)
	if err != nil {
		return nil, err
	}
	sessions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return stackkit.Sessions(sessions, Superuser), err
}

// Logs are the log files, by name without ".log": casts, casts-2, movies, postgres, traefik,
// traefik-access, hydra, jaeger.
func (s *Stack) Logs(context.Context) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(s.LogDir(), "*.log"))
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

// AccessLog is Traefik's access log file.
func (s *Stack) AccessLog(context.Context) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.LogDir(), "traefik-access.log"))
}

// Sibling starts processes beside these, on free ports, draining a stopping replica for
// SiblingShutdownDelay.
func (s *Stack) Sibling(ctx context.Context, _ string, replicas int) (target.Target, error) {
	sib, err := Start(ctx, Options{RepoRoot: s.opts.RepoRoot, Replicas: replicas, ShutdownDelay: SiblingShutdownDelay,
		LogLevel: "warn", AccessLogAll: true})
	if err != nil {
		return nil, err // not a nil *Stack in a non-nil Target
	}
	return sib, nil
}

// Persistent starts processes with a data directory of their own (as make run's .run/),
// which Recreate keeps or removes and Stop removes.
func (s *Stack) Persistent(ctx context.Context, name string) (target.Persistent, error) {
	dir, err := os.MkdirTemp("", "e2e-"+name+"-")
	if err != nil {
		return nil, err
	}
	// Searchable by others: PostgreSQL, run as another user when we are root, goes through it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	p := &persistent{dir: dir, opts: Options{RepoRoot: s.opts.RepoRoot, Dir: filepath.Join(dir, "stack"), LogLevel: "warn"}}
	if p.s, err = Start(ctx, p.opts); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

// persistent is a process stack with its data in a directory.
type persistent struct {
	dir  string // removed by Stop
	opts Options
	s    *Stack
}

func (p *persistent) URLs() target.URLs { return p.s.URLs() }

func (p *persistent) Token(ctx context.Context, scope string) (string, error) {
	return p.s.Token(ctx, scope)
}

func (p *persistent) Recreate(ctx context.Context, removeData bool) error {
	if err := p.s.Stop(); err != nil {
		return err
	}
	if removeData {
		if err := os.RemoveAll(p.opts.Dir); err != nil {
			return err
		}
	}
	s, err := Start(ctx, p.opts)
	p.s = s
	return err
}

func (p *persistent) Stop() error {
	var err error
	if p.s != nil { // nil after a failed Recreate
		err = p.s.Stop()
	}
	return errors.Join(err, os.RemoveAll(p.dir))
}
