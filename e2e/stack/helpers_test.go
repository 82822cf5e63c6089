package stack

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// requirePostgres skips a test that needs PostgreSQL server binaries when the
// machine lacks them, except in CI, where a missing database must fail loudly.
func requirePostgres(t *testing.T) {
	t.Helper()
	if _, err := FindPostgres(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("skipping: %v (with CI=true this test fails instead)", err)
	}
}

// startTestPostgres starts a cluster stopped at the end of the test.
func startTestPostgres(t *testing.T, opts PostgresOptions) *Postgres {
	t.Helper()
	pg, err := StartPostgres(testContext(t), opts)
	if err != nil {
		t.Fatalf("StartPostgres: %v", err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return pg
}

// startStack starts a stack for the test and stops it when the test ends,
// logging every process's output, which it also returns, if the test failed.
func startStack(t *testing.T, ctx context.Context, opts Options) (*Stack, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	opts.LogOutput = logs
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("process output:\n%s", logs.String())
		}
	})
	return s, logs
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// traversableTempDir is a temp dir that the server user, which is not us
// when we are root, can get through.
func traversableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "stack-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// connect opens a connection closed at the end of the test.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testContext(t), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// sqlState is the SQLSTATE of err, or "" for none.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	if err != nil {
		return "not a PostgreSQL error: " + err.Error()
	}
	return ""
}

// syncBuffer is a bytes.Buffer that processes' output goroutines can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// assertNoSecrets fails if any password shows up in text.
func assertNoSecrets(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && bytes.Contains([]byte(text), []byte(s)) {
			t.Errorf("%s contains a password", where)
		}
	}
}
