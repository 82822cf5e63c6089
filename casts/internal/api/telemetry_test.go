package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/casts/internal/api"
	"github.com/movies-microservices/casts/internal/cast"
	"github.com/movies-microservices/casts/internal/telemetry"
	"github.com/movies-microservices/casts/internal/web"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// syncBuffer collects the log lines of concurrent requests.
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

// lines returns the log lines, decoded.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// unreachablePool is a pool on a database that refuses every connection: the requests that need
// it are answered 503, and the handler logs why.
func unreachablePool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), "postgres://casts:secret@127.0.0.1:1/casts?connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// tracedSpan is what the tests check of a server span.
type tracedSpan struct {
	Name      string
	Status    codes.Code
	Route     string
	RequestID string
}

// Each request is a server span named after its route, in the caller's trace, and measured
// with its route; a request that matched no route is named and measured by its method alone. The
// probes are neither.
func TestTracing(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	var logs syncBuffer
	h := api.NewServer(api.Deps{
		Logger:         zerolog.New(&logs),
		Store:          cast.NewStore(unreachablePool(t)),
		Ready:          func(context.Context, bool) error { return nil },
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
		Propagator:     propagation.TraceContext{},
	})

	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	var requestIDs []string
	for _, req := range []request{
		{method: "GET", path: "/api/v1/casts/openapi.json", header: map[string]string{"Traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"}},
		{method: "GET", path: "/api/v1/casts/7"},
		{method: "GET", path: "/no/such/thing/42"},
		{method: "GET", path: "/livez"},
		{method: "GET", path: "/readyz"},
	} {
		resp := do(t, h, req)
		resp.Body.Close()
		requestIDs = append(requestIDs, resp.Header.Get(web.RequestIDHeader))
	}

	ended := rec.Ended()
	var got []tracedSpan
	for _, s := range ended {
		ts := tracedSpan{Name: s.Name(), Status: s.Status().Code}
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case "http.route":
				ts.Route = kv.Value.AsString()
			case "request_id":
				ts.RequestID = kv.Value.AsString()
			}
		}
		got = append(got, ts)
	}
	want := []tracedSpan{
		{Name: "GET /api/v1/casts/openapi.json", Route: "/api/v1/casts/openapi.json", RequestID: requestIDs[0]},
		{Name: "GET /api/v1/casts/{id}", Route: "/api/v1/casts/{id}", RequestID: requestIDs[1], Status: codes.Error}, // 503
		{Name: "GET", RequestID: requestIDs[2]}, // 404, not an error of the server
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("server spans (-want +got):\n%s", diff)
	}
	if sc, parent := ended[0].SpanContext(), ended[0].Parent(); sc.TraceID().String() != callerTrace || parent.SpanID().String() != callerSpan {
		t.Errorf("first span in trace %s under %s, want the caller's %s under %s", sc.TraceID(), parent.SpanID(), callerTrace, callerSpan)
	}

	// Every line logged within a traced request names its trace and span: the access log's, and
	// the handler's own ("database unavailable").
	spanOf := map[string][2]string{}
	for i, s := range ended {
		spanOf[requestIDs[i]] = [2]string{s.SpanContext().TraceID().String(), s.SpanContext().SpanID().String()}
	}
	handlerLines := 0
	for _, line := range logs.lines(t) {
		id, _ := line["request_id"].(string)
		want, traced := spanOf[id]
		if got := [2]string{str(line["trace_id"]), str(line["span_id"])}; got != want {
			t.Errorf("log line %v: trace and span %q, want %q (traced: %v)", line, got, want, traced)
		}
		if line["message"] != "request" {
			handlerLines++
		}
	}
	if handlerLines == 0 {
		t.Error("no line logged by a handler")
	}

	// The durations: by route where one matched, and without a route label where none did.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var series []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "http.server.request.duration" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				route, _ := dp.Attributes.Value("http.route")
				status, _ := dp.Attributes.Value("http.response.status_code")
				series = append(series, route.Emit()+" "+status.Emit())
			}
		}
	}
	slices.Sort(series)
	if diff := cmp.Diff([]string{" 404", "/api/v1/casts/openapi.json 200", "/api/v1/casts/{id} 503"}, series); diff != "" {
		t.Errorf("http.server.request.duration series, route and status (-want +got):\n%s", diff)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// /metrics answers in the Prometheus text format; requests for different ids make one series,
// labelled with the route, not the path.
func TestMetrics(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.Setup(context.Background(), "casts", func(string) string { return "" }, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h := api.NewServer(api.Deps{
		Logger:         zerolog.Nop(),
		Store:          cast.NewStore(unreachablePool(t)),
		Ready:          func(context.Context, bool) error { return nil },
		TracerProvider: tel.TracerProvider(),
		MeterProvider:  tel.MeterProvider(),
		Propagator:     tel.Propagator(),
		Metrics:        tel.MetricsHandler(),
	})
	scrape := func() (count string, series []string) {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		body, _ := io.ReadAll(w.Body)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
			t.Fatalf("/metrics: %d %s:\n%s", w.Code, w.Header().Get("Content-Type"), body)
		}
		for line := range strings.SplitSeq(string(body), "\n") {
			if strings.HasPrefix(line, "http_server_request_duration_seconds_count{") {
				series = append(series, line)
			}
		}
		return string(body), series
	}

	for _, path := range []string{"/api/v1/casts/1", "/api/v1/casts/2", "/api/v1/casts/3", "/livez", "/readyz"} {
		do(t, h, request{method: "GET", path: path}).Body.Close()
	}
	_, before := scrape()
	do(t, h, request{method: "GET", path: "/api/v1/casts/4"}).Body.Close()
	body, after := scrape()

	want := []string{`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="503",http_route="/api/v1/casts/{id}"} 4`}
	if diff := cmp.Diff(want, after); diff != "" {
		t.Errorf("request count series (-want +got):\n%s", diff)
	}
	if len(before) != len(after) {
		t.Errorf("one more id made %d series out of %d: %q", len(after), len(before), after)
	}
	// No label of any series carries a path of its own, a host, or a probe.
	label := regexp.MustCompile(`[a-z_]+="[^"]*"`)
	for _, l := range label.FindAllString(body, -1) {
		if regexp.MustCompile(`/[0-9]`).MatchString(l) || strings.Contains(l, "livez") || strings.Contains(l, "readyz") || strings.HasPrefix(l, "server_address") {
			t.Errorf("/metrics has the label %s", l)
		}
	}
}
