package telemetry

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestParseSettings(t *testing.T) {
	t.Parallel()
	defaults := func(change func(*settings)) settings {
		s := settings{ServiceName: "casts", Sampler: "parentbased_always_on", SamplerRatio: 1, Propagators: []string{"tracecontext", "baggage"}}
		if change != nil {
			change(&s)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want settings
		// wantErrs are what the error must say, one string per bad variable; none means no error.
		wantErrs []string
	}{
		{name: "nothing set", want: defaults(nil)},
		{
			name: "base endpoint gets the traces path",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"},
			want: defaults(func(s *settings) { s.TracesEndpoint = "http://jaeger:4318/v1/traces" }),
		},
		{
			name: "base endpoint with a slash and a path",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example/otlp/"},
			want: defaults(func(s *settings) { s.TracesEndpoint = "https://collector.example/otlp/v1/traces" }),
		},
		{
			name: "traces endpoint is used as it is, over the base",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://other:4318/custom"},
			want: defaults(func(s *settings) { s.TracesEndpoint = "http://other:4318/custom" }),
		},
		{
			name: "http/protobuf is the protocol",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
			want: defaults(nil),
		},
		{
			name: "disabled, service name",
			env:  map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_SERVICE_NAME": "casts-canary", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"},
			want: defaults(func(s *settings) {
				s.Disabled, s.ServiceName, s.TracesEndpoint = true, "casts-canary", "http://jaeger:4318/v1/traces"
			}),
		},
		{
			name: "ratio sampler",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			want: defaults(func(s *settings) { s.Sampler, s.SamplerRatio = "parentbased_traceidratio", 0.25 }),
		},
		{
			name: "ratio sampler without a ratio samples all",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio"},
			want: defaults(func(s *settings) { s.Sampler = "traceidratio" }),
		},
		{
			name: "the argument of a sampler that takes none is ignored",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "always_off", "OTEL_TRACES_SAMPLER_ARG": "whatever"},
			want: defaults(func(s *settings) { s.Sampler = "always_off" }),
		},
		{
			name: "propagators in their order, spaces and repeats dropped",
			env:  map[string]string{"OTEL_PROPAGATORS": " baggage , tracecontext,baggage,"},
			want: defaults(func(s *settings) { s.Propagators = []string{"baggage", "tracecontext"} }),
		},
		{
			name: "no propagator",
			env:  map[string]string{"OTEL_PROPAGATORS": "none"},
			want: defaults(func(s *settings) { s.Propagators = nil }),
		},
		{
			name:     "grpc is not supported",
			env:      map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			wantErrs: []string{`OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported`},
		},
		{
			name:     "endpoint without a scheme, quoted nowhere",
			env:      map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "user:secret@jaeger:4318"},
			wantErrs: []string{"OTEL_EXPORTER_OTLP_ENDPOINT: not an absolute http:// or https:// URL"},
		},
		{
			name:     "relative traces endpoint",
			env:      map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "/v1/traces"},
			wantErrs: []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: not an absolute"},
		},
		{
			name: "every bad variable at once",
			env: map[string]string{
				"OTEL_SDK_DISABLED":                  "yes",
				"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
				"OTEL_TRACES_SAMPLER":                "jaeger_remote",
				"OTEL_PROPAGATORS":                   "tracecontext,b3",
			},
			wantErrs: []string{
				`OTEL_SDK_DISABLED: "yes" is neither true nor false`,
				`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json" is not supported`,
				`OTEL_TRACES_SAMPLER: "jaeger_remote" is not one of`,
				`OTEL_PROPAGATORS: "b3" is not one of`,
			},
		},
		{
			name:     "ratio above 1",
			env:      map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
			wantErrs: []string{`OTEL_TRACES_SAMPLER_ARG: "1.5" is not a ratio from 0 to 1`},
		},
		{
			name:     "ratio not a number",
			env:      map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "NaN"},
			wantErrs: []string{`OTEL_TRACES_SAMPLER_ARG: "NaN" is not a ratio`},
		},
		{
			name:     "none with others",
			env:      map[string]string{"OTEL_PROPAGATORS": "none,tracecontext"},
			wantErrs: []string{"OTEL_PROPAGATORS: none goes alone"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseSettings("casts", func(k string) string { return tc.env[k] })
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("parseSettings: %v", err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("settings (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseSettings: no error, want one saying %q", tc.wantErrs)
			}
			if lines := strings.Split(err.Error(), "\n"); len(lines) != len(tc.wantErrs) {
				t.Errorf("%d problems reported, want %d: %v", len(lines), len(tc.wantErrs), err)
			}
			for _, want := range tc.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q quotes a credential", err)
			}
		})
	}
}

func TestSetupRejectsBadSettings(t *testing.T) {
	t.Parallel()
	_, err := Setup(context.Background(), "casts", env(map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}), zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "OTEL_TRACES_SAMPLER") {
		t.Errorf("Setup: error %v, want one naming OTEL_TRACES_SAMPLER", err)
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Without an endpoint, or disabled, nothing is recorded, yet the callers' trace context is
// handed on as it came.
func TestSetupWithoutExportIsNoop(t *testing.T) {
	t.Parallel()
	for name, vars := range map[string]map[string]string{
		"no endpoint": {},
		"disabled":    {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tel, err := Setup(context.Background(), "casts", env(vars), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tel.Shutdown(context.Background()) }) //nolint:errcheck // nothing to flush
			if _, ok := tel.TracerProvider().(noop.TracerProvider); !ok {
				t.Errorf("TracerProvider is a %T, want a no-op one", tel.TracerProvider())
			}
			if got := tel.Traces(); !strings.HasPrefix(got, "off") {
				t.Errorf("Traces() = %q, want off", got)
			}

			const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			ctx := tel.Propagator().Extract(context.Background(), propagation.MapCarrier{"traceparent": incoming})
			ctx, span := tel.TracerProvider().Tracer("test").Start(ctx, "work")
			defer span.End()
			if span.IsRecording() {
				t.Error("the span is recording")
			}
			out := propagation.MapCarrier{}
			tel.Propagator().Inject(ctx, out)
			if diff := cmp.Diff(incoming, out.Get("traceparent")); diff != "" {
				t.Errorf("traceparent handed on (-want +got):\n%s", diff)
			}
		})
	}
}

// collector stands in for an OTLP/HTTP receiver; it answers status.
type collector struct {
	status   atomic.Int32
	requests atomic.Int32
	paths    sync.Map
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body) //nolint:errcheck // only counted
	c.requests.Add(1)
	c.paths.Store(r.URL.Path, true)
	w.WriteHeader(int(c.status.Load()))
}

// lockedBuffer collects log lines written from the exporter's goroutine.
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

// Spans go to <endpoint>/v1/traces; those the collector takes and those it refuses are counted,
// and a collector that keeps failing is logged once in a while, not on every batch.
func TestSetupExportsAndCounts(t *testing.T) {
	t.Parallel()
	col := &collector{}
	col.status.Store(http.StatusOK)
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close)
	var logs lockedBuffer
	tel, err := Setup(context.Background(), "casts", env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}), zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(srv.URL+"/v1/traces", tel.Traces()); diff != "" {
		t.Errorf("Traces() (-want +got):\n%s", diff)
	}
	tp, ok := tel.TracerProvider().(*sdktrace.TracerProvider)
	if !ok {
		t.Fatalf("TracerProvider is a %T, want the SDK's", tel.TracerProvider())
	}
	exportOne := func() {
		t.Helper()
		_, span := tp.Tracer("test").Start(context.Background(), "work")
		span.End()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tp.ForceFlush(ctx); err != nil {
			t.Fatalf("ForceFlush: %v", err)
		}
	}

	exportOne()
	if _, ok := col.paths.Load("/v1/traces"); !ok || col.requests.Load() != 1 {
		t.Errorf("the collector got %d requests, want 1 to /v1/traces", col.requests.Load())
	}
	col.status.Store(http.StatusServiceUnavailable)
	exportOne()
	exportOne()
	// Refused without a retry: one request per batch.
	if got := col.requests.Load(); got != 3 {
		t.Errorf("the collector got %d requests, want 3", got)
	}

	metrics := scrape(t, tel.MetricsHandler())
	for _, want := range []string{"telemetry_spans_exported_total 1", "telemetry_spans_dropped_total 2"} {
		if !strings.Contains(metrics, "\n"+want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	if got := strings.Count(logs.String(), "the trace collector is unreachable"); got != 1 {
		t.Errorf("%d log lines about the collector, want 1:\n%s", got, logs.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if !strings.Contains(logs.String(), `"spans_dropped":1,"message":"telemetry: spans dropped since the last report"`) {
		t.Errorf("no log line on shutdown about the span dropped after the first report:\n%s", logs.String())
	}
}

// An unreachable collector costs a batch, not a wait.
func TestSetupCollectorUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there any more
	tel, err := Setup(context.Background(), "casts", env(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": srv.URL + "/v1/traces"}), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "work")
	span.End()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.TracerProvider().(*sdktrace.TracerProvider).ForceFlush(ctx); err != nil {
		t.Errorf("ForceFlush: %v", err)
	}
	if took := time.Since(start); took > exportTimeout {
		t.Errorf("the export took %s", took)
	}
	if metrics := scrape(t, tel.MetricsHandler()); !strings.Contains(metrics, "\ntelemetry_spans_dropped_total 1\n") {
		t.Errorf("metrics do not count the dropped span:\n%s", metrics)
	}
	if err := tel.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// The server's request durations keep the method, route and status, and nothing unbounded.
func TestMetricsKeepBoundedHTTPAttributes(t *testing.T) {
	t.Parallel()
	tel, err := Setup(context.Background(), "casts", env(nil), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h, err := tel.MeterProvider().Meter("test").Float64Histogram("http.server.request.duration", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"a.example", "b.example"} {
		h.Record(context.Background(), 0.01, metric.WithAttributes(
			attribute.String("http.request.method", "GET"), attribute.String("http.route", "/api/v1/casts/{id}"),
			attribute.Int("http.response.status_code", 200), attribute.String("server.address", host),
			attribute.Int("server.port", 8001), attribute.String("url.scheme", "http"), attribute.String("network.protocol.version", "1.1"),
		))
	}
	metrics := scrape(t, tel.MetricsHandler())
	want := `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/api/v1/casts/{id}"} 2`
	if !strings.Contains(metrics, "\n"+want+"\n") {
		t.Errorf("metrics lack %s:\n%s", want, metrics)
	}
	for _, label := range []string{"server_address", "server_port", "url_scheme", "network_protocol_version"} {
		if strings.Contains(metrics, label) {
			t.Errorf("metrics have the label %s:\n%s", label, metrics)
		}
	}
}

// Measurements made in sampled spans carry no exemplars: the exporter would complain of their
// length on every scrape, through the standard logger. Not parallel: it takes that logger over.
func TestMetricsWithoutExemplars(t *testing.T) {
	col := &collector{}
	col.status.Store(http.StatusOK)
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close)
	tel, err := Setup(context.Background(), "casts", env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) }) //nolint:errcheck // checked elsewhere
	var logged lockedBuffer
	log.SetOutput(&logged)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })

	ctx, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "request")
	h, err := tel.MeterProvider().Meter("test").Float64Histogram("http.server.request.duration", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	h.Record(ctx, 0.01, metric.WithAttributes(attribute.String("http.route", "/api/v1/casts/{id}"),
		attribute.String("server.address", strings.Repeat("long-host-name.", 10)), attribute.String("user_agent.original", strings.Repeat("agent ", 20))))
	span.End()
	if metrics := scrape(t, tel.MetricsHandler()); strings.Contains(metrics, "# {") {
		t.Errorf("metrics with exemplars:\n%s", metrics)
	}
	if logged.String() != "" {
		t.Errorf("a scrape logged:\n%s", logged.String())
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d: %s", w.Code, w.Body)
	}
	return w.Body.String()
}
