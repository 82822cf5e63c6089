package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/movies-microservices/casts/internal/auth/authtest"
	"github.com/movies-microservices/casts/internal/postgres/pgtest"
	"github.com/rs/zerolog"
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
// waitRunReturns waits for run to return nil (an error is reported as errPrefix: err) or fails
// the test with timeoutMsg after 30 s.
func waitRunReturns(t *testing.T, runErr <-chan error, errPrefix, timeoutMsg string) {
	t.Helper()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("%s: %v", errPrefix, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal(timeoutMsg)
	}
}

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

// fakeMovies takes the events the relay delivers, as the movie service does.
type fakeMovies struct {
	mu     sync.Mutex
	events []map[string]any
	// authorizations are the deliveries' Authorization headers.
	authorizations []string
}

func (f *fakeMovies) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/internal/v1/movies/events" {
		http.NotFound(w, r)
		return
	}
	var event map[string]any
	if err := json.NewDecoder(r.Body).Decode(&event); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.events = append(f.events, event)
	f.authorizations = append(f.authorizations, r.Header.Get("Authorization"))
	f.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (f *fakeMovies) received() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.events...)
}

// authEnv is the configuration that trusts iss, and gives the relay a client at a token endpoint
// that issues it relayToken, which grants movies:events.
func authEnv(t *testing.T, iss *authtest.Issuer) (env map[string]string, relayToken string) {
	t.Helper()
	token := iss.Token(t, "movies:events")
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, _ := r.BasicAuth(); id != "casts-relay" || secret != "relay-secret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "bearer", "expires_in": 3600}) //nolint:errcheck // the client has gone
	}))
	t.Cleanup(tokenSrv.Close)
	return map[string]string{
		"CASTS_AUTH_ISSUER":         iss.URL,
		"CASTS_AUTH_JWKS_URL":       iss.JWKSURL,
		"CASTS_AUTH_AUDIENCE":       authtest.Audience,
		"CASTS_AUTH_TOKEN_URL":      tokenSrv.URL + "/oauth2/token",
		"CASTS_RELAY_CLIENT_ID":     "casts-relay",
		"CASTS_RELAY_CLIENT_SECRET": "relay-secret",
	}, token
}

// checkMetrics checks that base's /metrics answers in the Prometheus text format with a series
// starting with each of want.
func checkMetrics(t *testing.T, base string, want ...string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, w := range want {
		if !strings.Contains(string(body), "\n"+w) {
			t.Errorf("/metrics has no series %s…:\n%s", w, body)
		}
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	movies := &fakeMovies{}
	moviesSrv := httptest.NewServer(movies)
	defer moviesSrv.Close()
	addr, debugAddr := freeAddr(t), freeAddr(t)
	// The secrets come in files, as Docker Swarm hands them over.
	dbURL, dbPassword := passwordInFile(t, pgtest.URL(t))
	env := map[string]string{
		"CASTS_ADDR":                   addr,
		"CASTS_DATABASE_URL":           dbURL,
		"CASTS_DATABASE_PASSWORD_FILE": secretFile(t, dbPassword+"\n"),
		"CASTS_MOVIES_URL":             moviesSrv.URL,
		"CASTS_LOG_LEVEL":              "info",
		"CASTS_DEBUG_ADDR":             debugAddr,
	}
	iss := authtest.New(t)
	auth, relayToken := authEnv(t, iss)
	maps.Copy(env, auth)
	relaySecret := env["CASTS_RELAY_CLIENT_SECRET"]
	delete(env, "CASTS_RELAY_CLIENT_SECRET")
	env["CASTS_RELAY_CLIENT_SECRET_FILE"] = secretFile(t, relaySecret+"\n")
	token := iss.Token(t, "casts:write")
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- run(ctx, []string{"casts"}, func(k string) string { return env[k] }, &logs) }()

	base := "http://" + addr
	waitReady(t, base, runErr)

	// Profiles are served on the debug address only, never on the API's.
	for url, want := range map[string]int{
		"http://" + debugAddr + "/debug/pprof/allocs?debug=1": http.StatusOK,
		base + "/debug/pprof/allocs?debug=1":                  http.StatusNotFound,
	} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: status %d, want %d", url, resp.StatusCode, want)
		}
	}

	req, _ := http.NewRequest("POST", base+"/api/v1/casts", strings.NewReader(`{"name":"Song Kang-ho","nationality":"South Korean"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "run-test-1")
	req.Header.Set("Authorization", "Bearer "+token)
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

	// Deleting the cast sends its cast.deleted event to the movie service.
	req, _ = http.NewRequest("DELETE", base+"/api/v1/casts/"+strconv.FormatInt(created.ID, 10), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: status %d", resp.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(movies.received()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := movies.received(); len(got) != 1 || got[0]["type"] != "cast.deleted" || got[0]["cast_id"] != float64(created.ID) {
		t.Errorf("events the movie service got = %v, want one cast.deleted of cast %d", got, created.ID)
	}
	movies.mu.Lock()
	if diff := cmp.Diff([]string{"Bearer " + relayToken}, movies.authorizations); diff != "" {
		t.Errorf("the event's Authorization, the relay's token (-want +got):\n%s", diff)
	}
	movies.mu.Unlock()

	// The requests, the relay's delivery, the pool and the outbox, on the service's own port.
	checkMetrics(t, base,
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="201",http_route="/api/v1/casts"} 1`,
		`http_client_request_duration_seconds_count{`,
		`db_client_connection_max{`,
		`db_client_connection_count{db_client_connection_pool_name=`,
		`casts_outbox_backlog `,
		`casts_outbox_oldest_age_seconds `,
	)

	cancel()
	waitRunReturns(t, runErr, "run after cancel", "run did not stop after its context was cancelled")

	// One JSON access-log line per request, with the route pattern and the request id.
	var found bool
	for _, line := range strings.Split(logs.String(), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil || entry["request_id"] != "run-test-1" {
			continue
		}
		found = true
		want := map[string]any{"method": "POST", "route": "POST /api/v1/casts", "status": float64(201), "client_id": authtest.ClientID, "message": "request"}
		got := map[string]any{"method": entry["method"], "route": entry["route"], "status": entry["status"], "client_id": entry["client_id"], "message": entry["message"]}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("access log line (-want +got):\n%s", diff)
		}
	}
	if !found {
		t.Errorf("no access log line with request_id run-test-1 in:\n%s", logs.String())
	}
	for _, secret := range []string{dbPassword, relaySecret, token, relayToken} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	if err := run(context.Background(), []string{"casts", "healthcheck"}, func(k string) string { return env[k] }, io.Discard); err == nil {
		t.Error("healthcheck succeeded after the service stopped")
	}
}

func TestRunConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string
		// notWant must not be in the error: secrets, and what is not required.
		notWant []string
	}{
		{
			name: "missing and malformed",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "sometimes", "CASTS_ADDR": "8001", "CASTS_LOG_LEVEL": "loud", "CASTS_DEBUG_ADDR": "6060", "CASTS_SHUTDOWN_DELAY": "soon"},
			want: []string{`OTEL_TRACES_SAMPLER: "sometimes"`, "CASTS_ADDR", "CASTS_DATABASE_URL is required", "CASTS_MOVIES_URL is required", "CASTS_LOG_LEVEL", "CASTS_SHUTDOWN_DELAY", "CASTS_DEBUG_ADDR",
				"CASTS_AUTH_ISSUER is required", "CASTS_AUTH_JWKS_URL is required", "CASTS_AUTH_AUDIENCE is required", "CASTS_AUTH_TOKEN_URL is required",
				"CASTS_RELAY_CLIENT_ID is required", "CASTS_RELAY_CLIENT_SECRET (or CASTS_RELAY_CLIENT_SECRET_FILE) is required"},
		},
		{
			name: "auth URLs and switch",
			env: map[string]string{"CASTS_AUTH_VERIFY": "maybe", "CASTS_AUTH_JWKS_URL": "hydra:4444/.well-known/jwks.json", "CASTS_AUTH_TOKEN_URL": "ftp://hydra/oauth2/token",
				"CASTS_RELAY_CLIENT_ID": "casts-relay", "CASTS_RELAY_CLIENT_SECRET": "s3cr3t-value"},
			want: []string{`CASTS_AUTH_VERIFY: "maybe" is neither on nor off`, "CASTS_AUTH_JWKS_URL is not an absolute http:// or https:// URL",
				"CASTS_AUTH_TOKEN_URL is not an absolute http:// or https:// URL"},
			notWant: []string{"s3cr3t-value", "hydra:4444", "ftp://", "CASTS_RELAY_CLIENT_ID is required", "CASTS_RELAY_CLIENT_SECRET (or CASTS_RELAY_CLIENT_SECRET_FILE) is required"},
		},
		{
			name:    "verification off: the relay's credentials still come together",
			env:     map[string]string{"CASTS_AUTH_VERIFY": "off", "CASTS_RELAY_CLIENT_SECRET": "s3cr3t-value"},
			want:    []string{"CASTS_AUTH_TOKEN_URL is required with CASTS_RELAY_CLIENT_ID and CASTS_RELAY_CLIENT_SECRET", "CASTS_RELAY_CLIENT_ID is required"},
			notWant: []string{"s3cr3t-value", "CASTS_AUTH_ISSUER", "CASTS_AUTH_JWKS_URL", "CASTS_AUTH_AUDIENCE", "CASTS_RELAY_CLIENT_SECRET (or CASTS_RELAY_CLIENT_SECRET_FILE) is required"},
		},
		{
			name: "movies URL and relay durations",
			env: map[string]string{"CASTS_DATABASE_URL": "postgres://u@127.0.0.1:1/db", "CASTS_MOVIES_URL": "traefik:8082",
				"CASTS_MOVIES_TIMEOUT": "0s", "CASTS_OUTBOX_MAX_BACKOFF": "often", "CASTS_REQUEST_TIMEOUT": "0s"},
			want: []string{"CASTS_MOVIES_URL is not an absolute http:// or https:// URL", "CASTS_MOVIES_TIMEOUT: must be more than 0", "CASTS_OUTBOX_MAX_BACKOFF",
				"CASTS_REQUEST_TIMEOUT: must be more than 0"},
		},
		{
			name: "profiles only on loopback",
			env:  map[string]string{"CASTS_DEBUG_ADDR": ":6060"},
			want: []string{"CASTS_DEBUG_ADDR: \":6060\" is not on a loopback address"},
		},
		{
			name: "telemetry",
			env: map[string]string{"CASTS_DATABASE_URL": "postgres://u@127.0.0.1:1/db", "CASTS_MOVIES_URL": "http://127.0.0.1:8082", "CASTS_AUTH_VERIFY": "off",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_SAMPLER": "sometimes", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:s3cr3t-value@jaeger:4318"},
			want:    []string{"configuration", `OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported`, `OTEL_TRACES_SAMPLER: "sometimes" is not one of`},
			notWant: []string{"s3cr3t-value"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), []string{"casts"}, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil {
				t.Fatal("run succeeded with a bad configuration")
			}
			for _, name := range tt.want {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error does not name %s:\n%v", name, err)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error says %s:\n%v", s, err)
				}
			}
		})
	}
	if err := run(context.Background(), []string{"casts", "serve"}, func(string) string { return "" }, io.Discard); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("unknown command: err = %v, want an error", err)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"CASTS_DATABASE_URL": "postgres://u@127.0.0.1:5432/db", "CASTS_MOVIES_URL": "http://127.0.0.1:8082",
		"CASTS_AUTH_ISSUER": "http://127.0.0.1:4444/", "CASTS_AUTH_JWKS_URL": "http://127.0.0.1:4444/.well-known/jwks.json",
		"CASTS_AUTH_AUDIENCE": "movies-microservices", "CASTS_AUTH_TOKEN_URL": "http://127.0.0.1:4444/oauth2/token",
		"CASTS_RELAY_CLIENT_ID": "casts-relay", "CASTS_RELAY_CLIENT_SECRET": "secret",
	}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr:              ":8001",
		DatabaseURL:       env["CASTS_DATABASE_URL"],
		MoviesURL:         env["CASTS_MOVIES_URL"],
		MoviesTimeout:     5 * time.Second,
		OutboxMaxBackoff:  10 * time.Second,
		LogLevel:          zerolog.InfoLevel,
		RequestTimeout:    10 * time.Second,
		ShutdownTimeout:   15 * time.Second,
		AuthVerify:        true,
		AuthIssuer:        env["CASTS_AUTH_ISSUER"],
		AuthJWKSURL:       env["CASTS_AUTH_JWKS_URL"],
		AuthAudience:      env["CASTS_AUTH_AUDIENCE"],
		AuthTokenURL:      env["CASTS_AUTH_TOKEN_URL"],
		RelayClientID:     env["CASTS_RELAY_CLIENT_ID"],
		RelayClientSecret: env["CASTS_RELAY_CLIENT_SECRET"],
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}

	// Without verification (benchmarks) nothing about the identity provider is required.
	off := map[string]string{"CASTS_DATABASE_URL": env["CASTS_DATABASE_URL"], "CASTS_MOVIES_URL": env["CASTS_MOVIES_URL"], "CASTS_AUTH_VERIFY": "off"}
	cfg, err = loadConfig(func(k string) string { return off[k] })
	if err != nil || cfg.AuthVerify {
		t.Errorf("CASTS_AUTH_VERIFY=off alone: AuthVerify %v, err %v; want false and no error", cfg.AuthVerify, err)
	}
}

// On shutdown the service first fails /readyz for the shutdown delay while it still serves, then
// stops taking connections, lets the requests in flight finish, and only then closes the pool.
func TestRunGracefulShutdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	moviesSrv := httptest.NewServer(&fakeMovies{})
	defer moviesSrv.Close()
	addr := freeAddr(t)
	dbURL := pgtest.URL(t)
	env := map[string]string{
		"CASTS_ADDR":         addr,
		"CASTS_DATABASE_URL": dbURL,
		"CASTS_MOVIES_URL":   moviesSrv.URL,
		// No identity provider: this test makes no write.
		"CASTS_AUTH_VERIFY": "off",
		// Long enough to see /readyz fail before the listener closes; the test does not wait it out.
		"CASTS_SHUTDOWN_DELAY":  "2s",
		"CASTS_REQUEST_TIMEOUT": "1m",
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- run(runCtx, []string{"casts"}, func(k string) string { return env[k] }, io.Discard) }()
	base := "http://" + addr
	waitReady(t, base, runErr)

	// A request held in flight: its query waits for a lock the test holds.
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	blocker, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, "LOCK TABLE casts IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	type result struct {
		status int
		err    error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := fresh().Get(base + "/api/v1/casts")
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		resp.Body.Close()
		inFlight <- result{status: resp.StatusCode}
	}()
	waitForLockWaiter(t, dbURL)

	cancel()
	// While the delay lasts, /readyz says not ready, even to the load balancer's probe that leaves
	// the database out, and the server still answers.
	var readyz *http.Response
	for range 100 {
		resp, err := fresh().Get(base + "/readyz?exclude=database")
		if err != nil {
			t.Fatalf("/readyz during the shutdown delay: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			readyz = resp
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if readyz == nil || readyz.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("/readyz never answered 503 problem+json after shutdown began")
	}
	// The container health check asks the same: a draining container is not healthy.
	if err := run(ctx, []string{"casts", "healthcheck"}, func(k string) string { return env[k] }, io.Discard); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("healthcheck during the shutdown delay: %v, want /readyz answered 503", err)
	}
	// Then the listener closes while the request is still in flight.
	for i := 0; ; i++ {
		resp, err := fresh().Get(base + "/livez")
		if err != nil {
			break
		}
		resp.Body.Close()
		if i == 1000 {
			t.Fatal("the server kept taking connections after the shutdown delay")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-inFlight:
		t.Fatalf("the request in flight ended before it could finish: %+v", r)
	case err := <-runErr:
		t.Fatalf("run returned with a request in flight: %v", err)
	default:
	}

	// Let the request finish: it succeeds, and only then does run return.
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-inFlight; r.err != nil || r.status != http.StatusOK {
		t.Errorf("request in flight during shutdown: status %d, err %v; want 200", r.status, r.err)
	}
	waitRunReturns(t, runErr, "run", "run did not return after its last request")
}

// fresh returns a client that opens a new connection for each request, as a new client would.
func fresh() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// waitForLockWaiter waits until a session of the database at dbURL waits for a lock.
func waitForLockWaiter(t *testing.T, dbURL string) {
	t.Helper()
	// A connection of its own, outside any transaction: pg_stat_activity stays the same within one.
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for range 1000 {
		var n int
		err := conn.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the request never waited for the lock")
}
