package castsclient_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/movies/internal/castsclient"
)

// fakeCasts speaks the cast service's list contract for the casts it holds and records what it was asked.
type fakeCasts struct {
	existing map[int64]bool

	mu       sync.Mutex
	requests []*http.Request
	conns    int
}

func (f *fakeCasts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.mu.Unlock()
	if r.Method != http.MethodGet || r.URL.Path != "/api/v1/casts" {
		http.NotFound(w, r)
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	casts := []map[string]any{}
	for _, v := range r.URL.Query()["id"] {
		id, _ := strconv.ParseInt(v, 10, 64)
		if f.existing[id] && len(casts) < limit {
			casts = append(casts, map[string]any{"id": id, "name": "Cast " + v, "nationality": nil,
				"created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(casts) //nolint:errcheck
}

func (f *fakeCasts) seen() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.requests...)
}

// start serves f and counts the connections made to it.
func (f *fakeCasts) start(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

type ctxKey struct{}

func requestIDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

func newClient(t *testing.T, baseURL string, timeout time.Duration) *castsclient.Client {
	t.Helper()
	c, err := castsclient.New(castsclient.Config{BaseURL: baseURL, Timeout: timeout, RequestID: requestIDFromContext})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestMissing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ids  []int64
		want []int64
		// query is the one request's query string; "" means no request at all.
		query string
	}{
		{name: "all found", ids: []int64{3, 1, 2}, want: nil, query: "id=1&id=2&id=3&limit=3"},
		{name: "some missing, named in order", ids: []int64{42, 1, 7, 40}, want: []int64{7, 40, 42}, query: "id=1&id=7&id=40&id=42&limit=4"},
		{name: "none found", ids: []int64{9}, want: []int64{9}, query: "id=9&limit=1"},
		{name: "duplicates are asked and reported once", ids: []int64{5, 5, 2, 5}, want: []int64{5}, query: "id=2&id=5&limit=2"},
		{name: "empty list asks nothing", ids: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := &fakeCasts{existing: map[int64]bool{1: true, 2: true, 3: true}}
			srv := fake.start(t)
			c := newClient(t, srv.URL, 2*time.Second)

			ctx := context.WithValue(context.Background(), ctxKey{}, "req-"+tt.name)
			got, err := c.Missing(ctx, tt.ids)
			if err != nil {
				t.Fatalf("Missing: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Missing(%v) (-want +got):\n%s", tt.ids, diff)
			}

			reqs := fake.seen()
			if tt.query == "" {
				if len(reqs) != 0 {
					t.Errorf("%d requests, want none", len(reqs))
				}
				return
			}
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want exactly one", len(reqs))
			}
			r := reqs[0]
			if r.URL.RawQuery != tt.query {
				t.Errorf("query = %q, want %q", r.URL.RawQuery, tt.query)
			}
			if got := r.Header.Get("X-Request-Id"); got != "req-"+tt.name {
				t.Errorf("X-Request-Id = %q, want the caller's request id passed on", got)
			}
		})
	}
}

// Checks reuse one kept-alive connection instead of dialling for each.
func TestMissingReusesConnections(t *testing.T) {
	t.Parallel()
	fake := &fakeCasts{existing: map[int64]bool{1: true}}
	srv := fake.start(t)
	c := newClient(t, srv.URL, 2*time.Second)
	for range 5 {
		if _, err := c.Missing(context.Background(), []int64{1, 2}); err != nil {
			t.Fatalf("Missing: %v", err)
		}
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.conns != 1 {
		t.Errorf("5 sequential checks opened %d connections, want 1", fake.conns)
	}
}

func TestMissingFailures(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond

	// A port that was just free refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String()
	ln.Close()

	serve := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name    string
		baseURL string
		errText string
	}{
		{
			name:    "down",
			baseURL: closedURL,
			errText: "connection refused",
		},
		{
			name: "slow",
			baseURL: serve(func(w http.ResponseWriter, r *http.Request) {
				// Answer only after the client has given up (or far too late).
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			}),
			errText: "Client.Timeout exceeded",
		},
		{
			name: "slow body",
			baseURL: serve(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`[{"id":1},`)) //nolint:errcheck
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			}),
			errText: "Client.Timeout",
		},
		{
			name: "500",
			baseURL: serve(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusInternalServerError)
				w.Write([]byte(`{"status":500}`)) //nolint:errcheck
			}),
			errText: "answered 500 Internal Server Error",
		},
		{
			name: "503 from the gateway",
			baseURL: serve(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "no available server", http.StatusServiceUnavailable)
			}),
			errText: "answered 503 Service Unavailable",
		},
		{
			name: "not JSON",
			baseURL: serve(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.Write([]byte(`<html>hello</html>`)) //nolint:errcheck
			}),
			errText: `Content-Type "text/html"`,
		},
		{
			name: "JSON that is not a list of casts",
			baseURL: serve(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"id":1}`)) //nolint:errcheck
			}),
			errText: "decode the answer",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, tt.baseURL, timeout)
			start := time.Now()
			missing, err := c.Missing(context.Background(), []int64{1, 2})
			if err == nil {
				t.Fatalf("Missing = %v, nil; want an error", missing)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error %q does not contain %q", err, tt.errText)
			}
			// Two attempts at most (a timed-out attempt is made once more), so twice the timeout.
			if elapsed := time.Since(start); elapsed > 2*timeout+time.Second {
				t.Errorf("Missing took %v, want it bounded by twice the %v timeout", elapsed, timeout)
			}
		})
	}
}

// TestMissingRetriesATimeout: an attempt that times out (an instance that went away without
// closing its connections) is made once more, and only once; an answer is never retried.
func TestMissingRetriesATimeout(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	tests := []struct {
		name       string
		hang       int // how many requests hang before the server answers
		status     int
		wantErr    string
		wantMissed []int64
		wantCalls  int32
	}{
		{name: "first attempt hangs", hang: 1, status: http.StatusOK, wantMissed: []int64{2}, wantCalls: 2},
		{name: "both attempts hang", hang: 2, status: http.StatusOK, wantErr: "Client.Timeout", wantCalls: 2},
		{name: "an error status is an answer", status: http.StatusBadGateway, wantErr: "answered 502", wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if int(calls.Add(1)) <= tt.hang {
					<-r.Context().Done()
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				w.Write([]byte(`[{"id":1,"name":"A"}]`)) //nolint:errcheck
			}))
			t.Cleanup(srv.Close)
			missing, err := newClient(t, srv.URL, timeout).Missing(context.Background(), []int64{1, 2})
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Missing: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Missing error = %v, want one containing %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantMissed, missing); diff != "" {
				t.Errorf("missing ids (-want +got):\n%s", diff)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("the cast service got %d requests, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestMissingTooManyIDs(t *testing.T) {
	t.Parallel()
	fake := &fakeCasts{}
	c := newClient(t, fake.start(t).URL, time.Second)
	ids := make([]int64, castsclient.MaxIDs+1)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	if _, err := c.Missing(context.Background(), ids); err == nil {
		t.Error("Missing with more ids than fit in one request succeeded")
	}
	if n := len(fake.seen()); n != 0 {
		t.Errorf("%d requests, want none", n)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		baseURL string
		timeout time.Duration
		ok      bool
	}{
		{"http://127.0.0.1:8082", time.Second, true},
		{"https://traefik:8082/", time.Second, true},
		{"127.0.0.1:8082", time.Second, false},
		{"ftp://host", time.Second, false},
		{"http://", time.Second, false},
		{"", time.Second, false},
		{"http://127.0.0.1:8082", 0, false},
	}
	for _, tt := range tests {
		_, err := castsclient.New(castsclient.Config{BaseURL: tt.baseURL, Timeout: tt.timeout})
		if (err == nil) != tt.ok {
			t.Errorf("New(%q, %v): err = %v, want ok = %v", tt.baseURL, tt.timeout, err, tt.ok)
		}
	}
}

// A base URL with a path prefix keeps it.
func TestMissingBasePath(t *testing.T) {
	t.Parallel()
	paths := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write([]byte(`[]`)) //nolint:errcheck
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL+"/gateway/", time.Second)
	missing, err := c.Missing(context.Background(), []int64{4})
	if err != nil {
		t.Fatalf("Missing: %v", err)
	}
	if diff := cmp.Diff([]int64{4}, missing); diff != "" {
		t.Errorf("Missing (-want +got):\n%s", diff)
	}
	if gotPath := <-paths; gotPath != "/gateway/api/v1/casts" {
		t.Errorf("path = %q, want /gateway/api/v1/casts", gotPath)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	fake := &fakeCasts{existing: map[int64]bool{1: true, 2: true, 3: true}}
	c := newClient(t, fake.start(t).URL, 2*time.Second)

	ctx := context.WithValue(context.Background(), ctxKey{}, "req-lookup")
	got, err := c.Lookup(ctx, []int64{3, 42, 1, 3})
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	want := []castsclient.Cast{
		{ID: 1, Name: "Cast 1", CreatedAt: at, UpdatedAt: at},
		{ID: 3, Name: "Cast 3", CreatedAt: at, UpdatedAt: at},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Lookup (-want +got):\n%s", diff)
	}
	reqs := fake.seen()
	if len(reqs) != 1 || reqs[0].URL.RawQuery != "id=1&id=3&id=42&limit=3" || reqs[0].Header.Get("X-Request-Id") != "req-lookup" {
		t.Errorf("requests = %v, want one batch for 1, 3, 42 with the request id", reqs)
	}

	if got, err := c.Lookup(ctx, nil); err != nil || got != nil {
		t.Errorf("Lookup(nil) = %v, %v; want nothing, without a request", got, err)
	}
	if n := len(fake.seen()); n != 1 {
		t.Errorf("%d requests after an empty lookup, want still 1", n)
	}
}

// More distinct ids than fit in one request take one request per MaxIDs.
func TestLookupManyIDs(t *testing.T) {
	t.Parallel()
	fake := &fakeCasts{existing: map[int64]bool{1: true, castsclient.MaxIDs + 5: true}}
	c := newClient(t, fake.start(t).URL, 2*time.Second)
	ids := make([]int64, castsclient.MaxIDs+10)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	got, err := c.Lookup(context.Background(), ids)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if len(got) != 2 || got[0].ID != 1 || got[1].ID != castsclient.MaxIDs+5 {
		t.Errorf("Lookup found %+v, want casts 1 and %d", got, castsclient.MaxIDs+5)
	}
	if n := len(fake.seen()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestLookupFailure(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no available server", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, time.Second)
	if got, err := c.Lookup(context.Background(), []int64{1}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("Lookup = %v, %v; want an error naming the 503", got, err)
	}
}
