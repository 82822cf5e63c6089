package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/casts/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// lockedBuffer collects the service's log while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitReady polls /readyz until it answers 200 or run fails.
func waitReady(t *testing.T, base string, runErr <-chan error) {
	t.Helper()
	for range 200 {
		select {
		case err := <-runErr:
			t.Fatalf("run ended before it was ready: %v", err)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("service never became ready")
}

func TestRun(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	env := map[string]string{
		"CASTS_ADDR":         addr,
		"CASTS_DATABASE_URL": pgtest.URL(t),
		"CASTS_LOG_LEVEL":    "info",
	}
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- run(ctx, []string{"casts"}, func(k string) string { return env[k] }, &logs) }()

	base := "http://" + addr
	waitReady(t, base, runErr)

	req, _ := http.NewRequest("POST", base+"/api/v1/casts", strings.NewReader(`{"name":"Song Kang-ho","nationality":"South Korean"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "run-test-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || created.Name != "Song Kang-ho" {
		t.Fatalf("POST: status %d, body %+v", resp.StatusCode, created)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "run-test-1" {
		t.Errorf("X-Request-Id = %q, want it echoed", got)
	}

	resp, err = http.Get(base + resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET Location: status %d", resp.StatusCode)
	}
	if len(resp.Header.Get("X-Request-Id")) != 32 {
		t.Errorf("generated X-Request-Id = %q, want 32 hex digits", resp.Header.Get("X-Request-Id"))
	}
	resp, err = http.Get(base + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/livez: status %d", resp.StatusCode)
	}
	if err := run(ctx, []string{"casts", "healthcheck"}, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Errorf("healthcheck: %v", err)
	}

	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after its context was cancelled")
	}

	// One JSON access-log line per request, with the route pattern and the request id.
	var found bool
	for _, line := range strings.Split(logs.String(), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil || entry["request_id"] != "run-test-1" {
			continue
		}
		found = true
		want := map[string]any{"method": "POST", "route": "POST /api/v1/casts", "status": float64(201), "message": "request"}
		got := map[string]any{"method": entry["method"], "route": entry["route"], "status": entry["status"], "message": entry["message"]}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("access log line (-want +got):\n%s", diff)
		}
	}
	if !found {
		t.Errorf("no access log line with request_id run-test-1 in:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), env["CASTS_DATABASE_URL"]) {
		t.Error("the log contains the database URL")
	}
	if err := run(context.Background(), []string{"casts", "healthcheck"}, func(k string) string { return env[k] }, io.Discard); err == nil {
		t.Error("healthcheck succeeded after the service stopped")
	}
}

func TestRunConfigErrors(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CASTS_ADDR": "8001", "CASTS_LOG_LEVEL": "loud", "CASTS_SHUTDOWN_DELAY": "soon"}
	err := run(context.Background(), []string{"casts"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil {
		t.Fatal("run succeeded with a bad configuration")
	}
	for _, name := range []string{"CASTS_ADDR", "CASTS_DATABASE_URL is required", "CASTS_LOG_LEVEL", "CASTS_SHUTDOWN_DELAY"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
	if err := run(context.Background(), []string{"casts", "serve"}, func(string) string { return "" }, io.Discard); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("unknown command: err = %v, want an error", err)
	}
}
