package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/movies-microservices/movies/internal/auth/authtest"
	"github.com/movies-microservices/movies/internal/postgres/pgtest"
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

// fakeCasts speaks the cast service's list contract (GET /api/v1/casts?id=..&limit=..) for the
// casts it holds, and records the requests it gets.
type fakeCasts struct {
	existing map[int64]bool

	mu       sync.Mutex
	requests []*http.Request
}

func (f *fakeCasts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.mu.Unlock()
	if r.URL.Path != "/api/v1/casts" {
		http.NotFound(w, r)
		return
	}
	casts := []map[string]any{}
	for _, v := range r.URL.Query()["id"] {
		if id, _ := strconv.ParseInt(v, 10, 64); f.existing[id] {
			casts = append(casts, map[string]any{"id": id, "name": "Cast " + v, "nationality": nil,
				"created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(casts) //nolint:errcheck
}

// takeRequests returns the requests made since the last call and forgets them.
func (f *fakeCasts) takeRequests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	reqs := f.requests
	f.requests = nil
	return reqs
}

type movieJSON struct {
	ID      int64   `json:"id"`
	Name    string  `json:"name"`
	CastIDs []int64 `json:"cast_ids"`
}

type problemJSON struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// send makes a request and decodes the JSON answer into out (if not nil).
func send(t *testing.T, method, url, body, requestID string, out any) *http.Response {
	t.Helper()
	return sendWithToken(t, "", method, url, body, requestID, out)
}

// sendWithToken is send with a bearer token, if token is not "".
func sendWithToken(t *testing.T, token, method, url, body, requestID string, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode %T: %v", method, url, out, err)
		}
	}
	return resp
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
	casts := &fakeCasts{existing: map[int64]bool{1: true, 2: true}}
	castsSrv := httptest.NewServer(casts)
	defer castsSrv.Close()

	addr, debugAddr := freeAddr(t), freeAddr(t)
	iss := authtest.New(t)
	// The database password comes in a file, as Docker Swarm hands it over.
	dbURL, dbPassword := passwordInFile(t, pgtest.URL(t))
	env := map[string]string{
		"MOVIES_ADDR":                   addr,
		"MOVIES_DATABASE_URL":           dbURL,
		"MOVIES_DATABASE_PASSWORD_FILE": secretFile(t, dbPassword+"\n"),
		"MOVIES_CASTS_URL":              castsSrv.URL,
		"MOVIES_CASTS_TIMEOUT":          "1s",
		"MOVIES_LOG_LEVEL":              "info",
		"MOVIES_DEBUG_ADDR":             debugAddr,
		"MOVIES_AUTH_ISSUER":            iss.URL,
		"MOVIES_AUTH_JWKS_URL":          iss.JWKSURL,
		"MOVIES_AUTH_AUDIENCE":          authtest.Audience,
	}
	token := iss.Token(t, "movies:write")
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- run(ctx, []string{"movies"}, func(k string) string { return env[k] }, &logs) }()

	base := "http://" + addr
	waitReady(t, base, runErr)

	// Profiles are served on the debug address only, never on the API's.
	if resp := send(t, "GET", "http://"+debugAddr+"/debug/pprof/allocs?debug=1", "", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /debug/pprof/allocs on MOVIES_DEBUG_ADDR: status %d, want 200", resp.StatusCode)
	}
	if resp := send(t, "GET", base+"/debug/pprof/allocs?debug=1", "", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/allocs on MOVIES_ADDR: status %d, want 404", resp.StatusCode)
	}
	moviesNamed := func(name string) []movieJSON {
		var movies []movieJSON
		send(t, "GET", base+"/api/v1/movies?name="+name, "", "", &movies)
		return movies
	}

	// A movie whose casts all exist: one batch request to the cast service, with our request id.
	var created movieJSON
	resp := sendWithToken(t, token, "POST", base+"/api/v1/movies", `{"name":"Mother","cast_ids":[2,1]}`, "run-test-1", &created)
	if resp.StatusCode != http.StatusCreated || created.Name != "Mother" {
		t.Fatalf("POST: status %d, body %+v", resp.StatusCode, created)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "run-test-1" {
		t.Errorf("X-Request-Id = %q, want it echoed", got)
	}
	reqs := casts.takeRequests()
	if len(reqs) != 1 {
		t.Fatalf("the cast service got %d requests for one create, want 1", len(reqs))
	}
	if got := reqs[0].Header.Get("X-Request-Id"); got != "run-test-1" {
		t.Errorf("X-Request-Id sent to the cast service = %q, want run-test-1", got)
	}
	if got := reqs[0].URL.Query()["id"]; !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("ids asked of the cast service = %v, want [1 2]", got)
	}

	resp = send(t, "GET", base+resp.Header.Get("Location"), "", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET Location: status %d", resp.StatusCode)
	}
	if len(resp.Header.Get("X-Request-Id")) != 32 {
		t.Errorf("generated X-Request-Id = %q, want 32 hex digits", resp.Header.Get("X-Request-Id"))
	}
	if n := len(casts.takeRequests()); n != 0 {
		t.Errorf("a read made %d requests to the cast service, want none", n)
	}

	// A movie naming a cast that does not exist: 422 naming it, and nothing written.
	var problem problemJSON
	resp = sendWithToken(t, token, "POST", base+"/api/v1/movies", `{"name":"Memories of Murder","cast_ids":[1,99]}`, "", &problem)
	if resp.StatusCode != http.StatusUnprocessableEntity || len(problem.Errors) != 1 || problem.Errors[0].Message != "cast 99 does not exist" {
		t.Errorf("POST with a missing cast: status %d, problem %+v; want 422 naming cast 99", resp.StatusCode, problem)
	}
	if got := moviesNamed("Memories"); len(got) != 0 {
		t.Errorf("a movie with a missing cast was written: %+v", got)
	}

	// ?expand=casts embeds the casts, from one more batch request.
	casts.takeRequests()
	item := base + "/api/v1/movies/" + strconv.FormatInt(created.ID, 10)
	var expanded struct {
		Casts []struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"casts"`
	}
	send(t, "GET", item+"?expand=casts", "", "", &expanded)
	if len(expanded.Casts) != 2 || expanded.Casts[0].Name != "Cast 2" || expanded.Casts[1].Name != "Cast 1" {
		t.Errorf("GET ?expand=casts: casts %+v, want casts 2 and 1", expanded.Casts)
	}
	if n := len(casts.takeRequests()); n != 1 {
		t.Errorf("an expanded read made %d requests to the cast service, want 1", n)
	}

	// The cast service's relay tells that cast 1 is gone: the movie drops it.
	resp = sendWithToken(t, iss.Token(t, "movies:events"), "POST", base+"/internal/v1/movies/events",
		`{"id":"6f1c3a52-8d0e-4b8a-9a57-0d6f3e2b7c11","type":"cast.deleted","occurred_at":"2024-05-01T10:00:00Z","cast_id":1}`, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST event: status %d", resp.StatusCode)
	}
	var afterEvent movieJSON
	send(t, "GET", item, "", "", &afterEvent)
	if !slices.Equal(afterEvent.CastIDs, []int64{2}) {
		t.Errorf("cast_ids after cast 1 was deleted = %v, want [2]", afterEvent.CastIDs)
	}

	// The cast service goes away: writes that need it get 503 and write nothing; the rest still work.
	castsSrv.Close()
	resp = send(t, "GET", item+"?expand=casts", "", "", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Expansion-Unavailable") != "casts" {
		t.Errorf("GET ?expand=casts with the cast service down: status %d, Expansion-Unavailable %q; want 200, casts",
			resp.StatusCode, resp.Header.Get("Expansion-Unavailable"))
	}
	problem = problemJSON{}
	resp = sendWithToken(t, token, "POST", base+"/api/v1/movies", `{"name":"Okja","cast_ids":[1]}`, "run-test-down", &problem)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(problem.Detail, "cast service is unavailable") {
		t.Errorf("POST with the cast service down: status %d, problem %+v; want 503", resp.StatusCode, problem)
	}
	if got := moviesNamed("Okja"); len(got) != 0 {
		t.Errorf("a movie was written while its casts could not be checked: %+v", got)
	}
	resp = sendWithToken(t, token, "PATCH", base+"/api/v1/movies/"+strconv.FormatInt(created.ID, 10), `{"name":"Mother (2009)"}`, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("PATCH that needs no cast check, with the cast service down: status %d", resp.StatusCode)
	}

	resp, err := http.Get(base + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/livez: status %d", resp.StatusCode)
	}
	if err := run(ctx, []string{"movies", "healthcheck"}, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Errorf("healthcheck: %v", err)
	}

	// The requests, the cast checks and the pool, on the service's own port.
	checkMetrics(t, base,
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="201",http_route="/api/v1/movies"} `,
		`http_client_request_duration_seconds_count{`,
		`movies_casts_check_duration_seconds_count{outcome="ok"} `,
		`movies_casts_check_duration_seconds_count{outcome="unavailable"} `,
		`db_client_connection_max{`,
	)

	cancel()
	waitRunReturns(t, runErr, "run after cancel", "run did not stop after its context was cancelled")

	// One JSON access-log line per request, with the route pattern and the request id; the cause
	// of the 503 is logged with the request id too.
	var found, cause bool
	for _, line := range strings.Split(logs.String(), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil {
			continue
		}
		if entry["request_id"] == "run-test-down" && entry["message"] == "cast check failed" {
			cause = true
		}
		if entry["request_id"] != "run-test-1" {
			continue
		}
		found = true
		want := map[string]any{"method": "POST", "route": "POST /api/v1/movies", "status": float64(201), "client_id": authtest.ClientID, "message": "request"}
		got := map[string]any{"method": entry["method"], "route": entry["route"], "status": entry["status"], "client_id": entry["client_id"], "message": entry["message"]}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("access log line (-want +got):\n%s", diff)
		}
	}
	if !found {
		t.Errorf("no access log line with request_id run-test-1 in:\n%s", logs.String())
	}
	if !cause {
		t.Errorf("no log line with the cause of the 503 for request_id run-test-down in:\n%s", logs.String())
	}
	for _, secret := range []string{dbPassword, token} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	if err := run(context.Background(), []string{"movies", "healthcheck"}, func(k string) string { return env[k] }, io.Discard); err == nil {
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
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "sometimes", "MOVIES_ADDR": "8000", "MOVIES_LOG_LEVEL": "loud", "MOVIES_DEBUG_ADDR": "6060", "MOVIES_SHUTDOWN_DELAY": "soon"},
			want: []string{`OTEL_TRACES_SAMPLER: "sometimes"`, "MOVIES_ADDR", "MOVIES_DATABASE_URL is required", "MOVIES_CASTS_URL is required", "MOVIES_LOG_LEVEL", "MOVIES_SHUTDOWN_DELAY", "MOVIES_DEBUG_ADDR",
				"MOVIES_AUTH_ISSUER is required", "MOVIES_AUTH_JWKS_URL is required", "MOVIES_AUTH_AUDIENCE is required"},
		},
		{
			name:    "auth URL and switch",
			env:     map[string]string{"MOVIES_AUTH_VERIFY": "maybe", "MOVIES_AUTH_JWKS_URL": "user:s3cr3t@hydra:4444/.well-known/jwks.json"},
			want:    []string{`MOVIES_AUTH_VERIFY: "maybe" is neither on nor off`, "MOVIES_AUTH_JWKS_URL is not an absolute http:// or https:// URL"},
			notWant: []string{"s3cr3t"},
		},
		{
			name:    "verification off",
			env:     map[string]string{"MOVIES_AUTH_VERIFY": "off"},
			want:    []string{"MOVIES_DATABASE_URL is required"},
			notWant: []string{"MOVIES_AUTH_ISSUER", "MOVIES_AUTH_JWKS_URL", "MOVIES_AUTH_AUDIENCE"},
		},
		{
			name: "casts URL and timeout",
			env: map[string]string{"MOVIES_DATABASE_URL": "postgres://u@127.0.0.1:1/db", "MOVIES_CASTS_URL": "traefik:8082",
				"MOVIES_CASTS_TIMEOUT": "0s", "MOVIES_SHUTDOWN_TIMEOUT": "-1s", "MOVIES_REQUEST_TIMEOUT": "0"},
			want: []string{"MOVIES_CASTS_URL is not an absolute http:// or https:// URL", "MOVIES_CASTS_TIMEOUT: must be more than 0", "MOVIES_SHUTDOWN_TIMEOUT",
				"MOVIES_REQUEST_TIMEOUT: must be more than 0"},
		},
		{
			name: "profiles only on loopback",
			env:  map[string]string{"MOVIES_DEBUG_ADDR": ":6060"},
			want: []string{"MOVIES_DEBUG_ADDR: \":6060\" is not on a loopback address"},
		},
		{
			name: "telemetry",
			env: map[string]string{"MOVIES_DATABASE_URL": "postgres://u@127.0.0.1:1/db", "MOVIES_CASTS_URL": "http://127.0.0.1:8082", "MOVIES_AUTH_VERIFY": "off",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_SAMPLER": "sometimes", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:s3cr3t-value@jaeger:4318"},
			want:    []string{"configuration", `OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported`, `OTEL_TRACES_SAMPLER: "sometimes" is not one of`},
			notWant: []string{"s3cr3t-value"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), []string{"movies"}, func(k string) string { return tt.env[k] }, io.Discard)
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
	if err := run(context.Background(), []string{"movies", "serve"}, func(string) string { return "" }, io.Discard); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("unknown command: err = %v, want an error", err)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"MOVIES_DATABASE_URL": "postgres://u@127.0.0.1:5432/db", "MOVIES_CASTS_URL": "http://127.0.0.1:8082",
		"MOVIES_AUTH_ISSUER": "http://127.0.0.1:4444/", "MOVIES_AUTH_JWKS_URL": "http://127.0.0.1:4444/.well-known/jwks.json",
		"MOVIES_AUTH_AUDIENCE": "movies-microservices",
	}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr:            ":8000",
		DatabaseURL:     env["MOVIES_DATABASE_URL"],
		CastsURL:        env["MOVIES_CASTS_URL"],
		CastsTimeout:    2 * time.Second,
		LogLevel:        zerolog.InfoLevel,
		RequestTimeout:  10 * time.Second,
		ShutdownTimeout: 15 * time.Second,
		AuthVerify:      true,
		AuthIssuer:      env["MOVIES_AUTH_ISSUER"],
		AuthJWKSURL:     env["MOVIES_AUTH_JWKS_URL"],
		AuthAudience:    env["MOVIES_AUTH_AUDIENCE"],
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}

	// Without verification (benchmarks) nothing about the identity provider is required.
	off := map[string]string{"MOVIES_DATABASE_URL": env["MOVIES_DATABASE_URL"], "MOVIES_CASTS_URL": env["MOVIES_CASTS_URL"], "MOVIES_AUTH_VERIFY": "off"}
	cfg, err = loadConfig(func(k string) string { return off[k] })
	if err != nil || cfg.AuthVerify {
		t.Errorf("MOVIES_AUTH_VERIFY=off alone: AuthVerify %v, err %v; want false and no error", cfg.AuthVerify, err)
	}
}

// On shutdown the service first fails /readyz for the shutdown delay while it still serves, then
// stops taking connections, lets the requests in flight finish, and only then closes the pool.
func TestRunGracefulShutdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	castsSrv := httptest.NewServer(&fakeCasts{})
	defer castsSrv.Close()
	addr := freeAddr(t)
	dbURL := pgtest.URL(t)
	env := map[string]string{
		"MOVIES_ADDR":         addr,
		"MOVIES_DATABASE_URL": dbURL,
		"MOVIES_CASTS_URL":    castsSrv.URL,
		// No identity provider: this test makes no write.
		"MOVIES_AUTH_VERIFY": "off",
		// Long enough to see /readyz fail before the listener closes; the test does not wait it out.
		"MOVIES_SHUTDOWN_DELAY":  "2s",
		"MOVIES_REQUEST_TIMEOUT": "1m",
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- run(runCtx, []string{"movies"}, func(k string) string { return env[k] }, io.Discard) }()
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
	if _, err := blocker.Exec(ctx, "LOCK TABLE movies IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	type result struct {
		status int
		err    error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := fresh().Get(base + "/api/v1/movies")
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
	if err := run(ctx, []string{"movies", "healthcheck"}, func(k string) string { return env[k] }, io.Discard); err == nil || !strings.Contains(err.Error(), "503") {
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
