package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/movies-microservices/e2e/stackkit"
)

// Superuser is the name of the cluster's superuser role.
const Superuser = "postgres"

// PostgresOptions configure StartPostgres.
type PostgresOptions struct {
	// Dir holds the cluster: its data in Dir/data and its sockets in
	// Dir/sock. A cluster already there is reused, data and all. Empty means
	// a throwaway cluster in a new temp directory, removed by Stop, with
	// durability turned off for speed.
	Dir string
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// SuperuserPassword protects the superuser. Required with Dir. Without
	// it (throwaway clusters only) the superuser needs no password on the
	// loopback and the local socket.
	SuperuserPassword string
	// Log receives initdb's and the server's output; nil discards it (the
	// last lines still appear in start-up errors).
	Log io.Writer
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// StartTimeout bounds the wait for the server to accept connections;
	// zero means one minute.
	StartTimeout time.Duration
}

// Postgres is a running PostgreSQL cluster started by StartPostgres.
type Postgres struct {
	dir          string
	throwaway    bool
	port         int
	password     string
	bin          PostgresBinaries
	su           serverUser
	log          io.Writer
	startTimeout time.Duration

	mu     sync.Mutex // guards proc and paused
	proc   *process   // the server; nil while stopped by StopServer
	paused bool

	stopOnce sync.Once
	stopErr  error
}

// StartPostgres initialises a cluster if needed, starts its server on
// 127.0.0.1 and returns once it accepts connections. On error nothing is left
// running and a throwaway directory is removed.
func StartPostgres(ctx context.Context, opts PostgresOptions) (_ *Postgres, err error) {
	if opts.Dir != "" && opts.SuperuserPassword == "" {
		return nil, errors.New("stack: a persistent PostgreSQL cluster needs a superuser password")
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = time.Minute
	}
	bin, err := FindPostgres()
	if err != nil {
		return nil, err
	}
	su, err := lookupServerUser()
	if err != nil {
		return nil, err
	}
	if opts.Port == 0 {
		if opts.Port, err = freePort("PostgreSQL"); err != nil {
			return nil, err
		}
	} else if err := checkPortFree(portClaim{port: &opts.Port, what: "PostgreSQL", env: EnvPostgresPort}); err != nil {
		return nil, err
	}

	pg := &Postgres{
		dir: opts.Dir, throwaway: opts.Dir == "", port: opts.Port, password: opts.SuperuserPassword,
		bin: bin, su: su, log: opts.Log, startTimeout: opts.StartTimeout,
	}
	defer func() {
		if err != nil {
			pg.Stop()
		}
	}()
	if err := pg.prepareDir(su); err != nil {
		return nil, err
	}
	if !pg.initialised() {
		fmt.Fprintf(progressOrDiscard(opts.Progress), "postgres: initialising a new cluster in %s\n", pg.dataDir())
		if err := pg.initdb(ctx, bin, su, opts.Log); err != nil {
			return nil, err
		}
	}
	if err := pg.writeHBA(su); err != nil {
		return nil, err
	}
	if err := pg.startServer(ctx); err != nil {
		return nil, err
	}
	version, _ := bin.Version()
	fmt.Fprintf(progressOrDiscard(opts.Progress), "postgres: %s ready on %s (data in %s)\n", version, hostPort(pg.port), pg.dataDir())
	return pg, nil
}

func progressOrDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// Port is the TCP port the server listens on at 127.0.0.1.
func (pg *Postgres) Port() int { return pg.port }

// Dir is the directory holding the cluster (data/ and sock/).
func (pg *Postgres) Dir() string { return pg.dir }

// SuperuserURL is a connection URL for the superuser to database. It holds
// the superuser password, if any: keep it out of logs (url.URL.Redacted).
func (pg *Postgres) SuperuserURL(database string) string {
	return pg.URL(Superuser, pg.password, database)
}

// URL is a connection URL for user, with password (may be empty), to database.
func (pg *Postgres) URL(user, password, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(user),
		Host:     hostPort(pg.port),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}

// startServer starts the server on the cluster and waits until it accepts
// connections. The caller holds mu or owns pg alone.
func (pg *Postgres) startServer(ctx context.Context) error {
	cmd := exec.Command(pg.bin.Postgres(), pg.serverArgs()...)
	cmd.Dir = pg.dir
	// SIGQUIT is PostgreSQL's immediate shutdown: the cleanest end we can
	// ask for if we die without stopping it.
	cmd.SysProcAttr = pg.su.sysProcAttr(syscall.SIGQUIT)
	p, err := startProcess("postgres", cmd, pg.log)
	if err != nil {
		return err
	}
	pg.proc = p
	return pg.waitReady(ctx, pg.startTimeout)
}

// StopServer shuts the server down (fast shutdown: sessions are ended, data
// is kept) and leaves the cluster in place for StartServer: a database
// outage. Stopping a stopped server does nothing.
func (pg *Postgres) StopServer() error {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	return pg.stopServer()
}

func (pg *Postgres) stopServer() error {
	if pg.proc == nil {
		return nil
	}
	pg.resume()
	p := pg.proc
	pg.proc = nil
	return p.stop(syscall.SIGINT, 30*time.Second)
}

// StartServer starts the server of a cluster stopped by StopServer, on the
// same port with the same data, and waits until it accepts connections.
func (pg *Postgres) StartServer(ctx context.Context) error {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.proc != nil {
		return errors.New("stack: PostgreSQL is already running")
	}
	if err := checkPortFree(portClaim{port: &pg.port, what: "PostgreSQL", env: EnvPostgresPort}); err != nil {
		return err
	}
	if err := pg.startServer(ctx); err != nil {
		if pg.proc != nil {
			pg.proc.stop(syscall.SIGQUIT, 10*time.Second)
			pg.proc = nil
		}
		return err
	}
	return nil
}

// Pause freezes the server and every session process (SIGSTOP): connections
// stay open and new ones are accepted by the kernel, but nothing answers.
// Unlike StopServer, clients see a database that hangs, not one that
// refuses; only their own timeouts end their waits.
func (pg *Postgres) Pause() error {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.proc == nil {
		return errors.New("stack: PostgreSQL is not running")
	}
	if pg.paused {
		return nil
	}
	// The postmaster first, so that it forks no new session meanwhile.
	// Sessions are not in its process group (each calls setsid), so each
	// gets its own signal.
	if err := signalTree(pg.proc.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("stack: pause PostgreSQL: %w", err)
	}
	pg.paused = true
	return nil
}

// Resume undoes Pause.
func (pg *Postgres) Resume() error {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	return pg.resume()
}

func (pg *Postgres) resume() error {
	if !pg.paused || pg.proc == nil {
		return nil
	}
	if err := signalTree(pg.proc.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("stack: resume PostgreSQL: %w", err)
	}
	pg.paused = false
	return nil
}

// signalTree sends sig to pid, then to each of its children. Children that
// exit meanwhile are no error.
func signalTree(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	children, err := childPIDs(pid)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := syscall.Kill(c, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
	}
	return nil
}

// childPIDs lists the processes whose parent is pid, from /proc (Linux).
func childPIDs(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var children []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			children = append(children, child)
		}
	}
	return children, nil
}

// process is the running server, or nil while it is stopped.
func (pg *Postgres) process() *process {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	return pg.proc
}

// Stop shuts the server down (fast shutdown: sessions are ended, data is
// kept) and removes a throwaway cluster. It is safe to call more than once.
func (pg *Postgres) Stop() error {
	pg.stopOnce.Do(func() {
		var errs []error
		pg.mu.Lock()
		errs = append(errs, pg.stopServer())
		pg.mu.Unlock()
		if pg.throwaway && pg.dir != "" {
			if err := os.RemoveAll(pg.dir); err != nil {
				errs = append(errs, fmt.Errorf("stack: remove throwaway cluster: %w", err))
			}
		}
		pg.stopErr = errors.Join(errs...)
	})
	return pg.stopErr
}

func (pg *Postgres) dataDir() string   { return filepath.Join(pg.dir, "data") }
func (pg *Postgres) socketDir() string { return filepath.Join(pg.dir, "sock") }

// maxSocketPath is the room a Unix socket path has (sun_path, less the NUL).
const maxSocketPath = 107

// prepareDir creates the cluster directory, owned by the server user.
func (pg *Postgres) prepareDir(su serverUser) error {
	if pg.throwaway {
		dir, err := os.MkdirTemp(su.tempParent(), "stack-pg-")
		if err != nil {
			return fmt.Errorf("stack: create throwaway cluster directory: %w", err)
		}
		pg.dir = dir
	} else {
		dir, err := filepath.Abs(pg.dir)
		if err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		pg.dir = dir
		// The parent stays searchable by others, so the server user can get
		// through it to the directory it owns.
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("stack: create cluster directory: %w", err)
		}
		if err := su.reachable(filepath.Dir(dir)); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("stack: create cluster directory: %w", err)
		}
	}
	socket := filepath.Join(pg.socketDir(), ".s.PGSQL."+strconv.Itoa(pg.port))
	if len(socket) > maxSocketPath {
		return fmt.Errorf("stack: the socket path %s is longer than the %d bytes Unix allows: use a shorter directory for the cluster", socket, maxSocketPath)
	}
	if err := os.MkdirAll(pg.socketDir(), 0o700); err != nil {
		return fmt.Errorf("stack: create socket directory: %w", err)
	}
	return su.chownAll(pg.dir)
}

// initdbDone marks a cluster whose initdb finished. initdb writes PG_VERSION
// early, so a run interrupted half-way leaves a data directory that looks
// made but cannot start; without this mark we remake it.
func (pg *Postgres) initdbDone() string { return filepath.Join(pg.dir, "initdb-done") }

func (pg *Postgres) initialised() bool {
	_, err := os.Stat(pg.initdbDone())
	return err == nil
}

// initdb creates the cluster. The superuser password travels in a file that
// only the server user can read, and is gone when initdb returns.
func (pg *Postgres) initdb(ctx context.Context, bin PostgresBinaries, su serverUser, log io.Writer) error {
	args := []string{"-D", pg.dataDir(), "-U", Superuser, "-E", "UTF8", "--locale=C"}
	if pg.throwaway {
		args = append(args, "--no-sync")
	}
	if pg.password == "" {
		args = append(args, "--auth=trust")
	} else {
		pwfile := filepath.Join(pg.dir, "initdb-password")
		if err := os.WriteFile(pwfile, []byte(pg.password+"\n"), 0o600); err != nil {
			return fmt.Errorf("stack: write initdb password file: %w", err)
		}
		defer os.Remove(pwfile)
		if err := su.chownAll(pwfile); err != nil {
			return err
		}
		args = append(args, "--auth=scram-sha-256", "--pwfile="+pwfile)
	}
	// Only a failed initdb of ours can have left data/ without the mark.
	if err := os.RemoveAll(pg.dataDir()); err != nil {
		return fmt.Errorf("stack: remove the unfinished cluster in %s: %w", pg.dataDir(), err)
	}
	out := newTailBuffer(16 << 10)
	cmd := exec.CommandContext(ctx, bin.Initdb(), args...)
	// SIGTERM lets initdb remove what it made; SIGKILL follows if it hangs.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = pg.dir
	cmd.SysProcAttr = su.sysProcAttr(syscall.SIGKILL)
	cmd.Stdout, cmd.Stderr = out, out
	if log != nil {
		w := io.MultiWriter(log, out)
		cmd.Stdout, cmd.Stderr = w, w
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("stack: initdb %s: %w; its output ends with:\n%s", pg.dataDir(), err, out.lastLines(20))
	}
	if err := os.WriteFile(pg.initdbDone(), nil, 0o600); err != nil {
		return fmt.Errorf("stack: mark the cluster as made: %w", err)
	}
	return nil
}

// writeHBA writes pg_hba.conf on every start, so the rules always match the
// kind of cluster. Service roles always need their password; the superuser
// needs none only on a throwaway cluster, and only on the loopback and socket.
func (pg *Postgres) writeHBA(su serverUser) error {
	superuser := "scram-sha-256"
	if pg.password == "" {
		superuser = "trust"
	}
	hba := fmt.Sprintf(`# Written by the e2e stack package on every start: edits are overwritten.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       %[1]s                    %[2]s
host    all       %[1]s  127.0.0.1/32   %[2]s
local   all       all                      scram-sha-256
host    all       all       127.0.0.1/32   scram-sha-256
`, Superuser, superuser)
	path := filepath.Join(pg.dataDir(), "pg_hba.conf")
	if err := os.WriteFile(path, []byte(hba), 0o600); err != nil {
		return fmt.Errorf("stack: write %s: %w", path, err)
	}
	if su.switchTo {
		if err := os.Chown(path, int(su.uid), int(su.gid)); err != nil {
			return fmt.Errorf("stack: give %s to user %s: %w", path, su.name, err)
		}
	}
	return nil
}

// serverArgs set everything on the command line, so that a reused cluster's
// postgresql.conf never needs editing.
func (pg *Postgres) serverArgs() []string {
	args := []string{
		"-D", pg.dataDir(),
		"-p", strconv.Itoa(pg.port),
		"-c", "listen_addresses=" + loopback,
		"-c", "unix_socket_directories=" + pg.socketDir(),
		// Integration tests run packages and tests in parallel, each with its
		// own pool and databases; the default 100 is close to that.
		"-c", "max_connections=200",
	}
	if pg.throwaway {
		// Nothing in a throwaway cluster must survive a crash.
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	return args
}

// waitReady polls until the superuser can connect, the server exits, or the
// timeout passes. A wrong password ends the wait at once: it will not fix itself.
func (pg *Postgres) waitReady(ctx context.Context, timeout time.Duration) error {
	err := stackkit.Poll(ctx, timeout, 100*time.Millisecond, "PostgreSQL on "+hostPort(pg.port)+" accepting connections", func() error {
		if pg.proc.exited() {
			return stackkit.Permanent(pg.proc.exitError())
		}
		err := pg.ping(ctx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "28P01" { // invalid_password
			return stackkit.Permanent(fmt.Errorf("stack: the cluster in %s rejects the superuser password: it was made with another one", pg.dir))
		}
		return err
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stack: %w; its log ends with:\n%s", err, pg.proc.tail.lastLines(20))
	}
	return err
}

func (pg *Postgres) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.SuperuserURL("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}
