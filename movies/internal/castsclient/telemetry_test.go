package castsclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/movies/internal/castsclient"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Each request to the cast service is a client span under the caller's, and carries the trace on;
// each check is measured by its outcome.
func TestMissingTracedAndMeasured(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	client := func(t *testing.T, baseURL string) *castsclient.Client {
		t.Helper()
		c, err := castsclient.New(castsclient.Config{BaseURL: baseURL, Timeout: 2 * time.Second, TracerProvider: tp, MeterProvider: mp, Propagator: propagation.TraceContext{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	fake := &fakeCasts{existing: map[int64]bool{1: true, 2: true}}
	c := client(t, fake.start(t).URL)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "POST /api/v1/movies")
	for _, ids := range [][]int64{{1, 2}, {1, 9}, nil} {
		if _, err := c.Missing(ctx, ids); err != nil {
			t.Fatalf("Missing(%v): %v", ids, err)
		}
	}
	if _, err := client(t, failing.URL).Missing(ctx, []int64{1}); err == nil {
		t.Fatal("Missing succeeded against a failing cast service")
	}
	parent.End()

	for _, r := range fake.seen() {
		ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(r.Header))
		if got := trace.SpanContextFromContext(ctx).TraceID(); got != parent.SpanContext().TraceID() {
			t.Errorf("request in trace %s, want the caller's %s", got, parent.SpanContext().TraceID())
		}
	}
	var spans []string
	for _, s := range rec.Ended() {
		if s.Parent().SpanID() == parent.SpanContext().SpanID() && s.SpanKind() == trace.SpanKindClient {
			spans = append(spans, s.Name()+" "+s.Status().Code.String())
		}
	}
	if diff := cmp.Diff([]string{"GET /api/v1/casts Unset", "GET /api/v1/casts Unset", "GET /api/v1/casts Error"}, spans); diff != "" {
		t.Errorf("client spans under the caller's (-want +got):\n%s", diff)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	checks := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "movies.casts_check.duration" {
				continue
			}
			if m.Unit != "s" {
				t.Errorf("unit %q, want s", m.Unit)
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				outcome, _ := dp.Attributes.Value("outcome")
				checks[outcome.AsString()] = dp.Count
			}
		}
	}
	if diff := cmp.Diff(map[string]uint64{"ok": 1, "missing_ids": 1, "unavailable": 1}, checks); diff != "" {
		t.Errorf("checks by outcome (-want +got):\n%s", diff)
	}
}
