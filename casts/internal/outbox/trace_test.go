package outbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/casts/internal/outbox"
	"github.com/movies-microservices/casts/internal/postgres"
	"github.com/movies-microservices/casts/internal/postgres/pgtest"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// syncBuffer collects the relay's log lines.
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

// traceID is the trace id of a traceparent header, or "".
func traceID(traceparent string) string {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}

// The event of a traced change is delivered in the change's trace: its stored traceparent is the
// parent of the delivery's span, whose request carries the trace on to the receiver. An event of
// untraced work is delivered in a trace of its own. The token requests are no part of any trace.
func TestRelayContinuesTheTrace(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	pool, err := postgres.Open(context.Background(), pgtest.URL(t), 10*time.Second, postgres.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	ctx, change := tp.Tracer("test").Start(context.Background(), "DELETE /api/v1/casts/{id}")
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return outbox.Enqueue(ctx, tx, "cast.deleted", payload{CastID: 31})
	})
	change.End()
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, pool, 32) // untraced

	rows, _ := pool.Query(context.Background(), "SELECT traceparent FROM outbox ORDER BY id")
	stored, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		t.Fatal(err)
	}
	changeTrace := change.SpanContext().TraceID().String()
	if len(stored) != 2 || stored[0] == nil || traceID(*stored[0]) != changeTrace || stored[1] != nil {
		t.Fatalf("stored traceparents %v, want one of trace %s, then none", stored, changeTrace)
	}

	var tokenTraceparents []string
	var mu sync.Mutex
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokenTraceparents = append(tokenTraceparents, r.Header.Get("Traceparent"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "token", "token_type": "bearer", "expires_in": 3600}) //nolint:errcheck // the client has gone
	}))
	t.Cleanup(tokenSrv.Close)
	rcv, srv := newReceiver(t, func(int) int { return http.StatusOK })
	var logs syncBuffer
	stop := startRelay(t, pool, outbox.RelayConfig{
		Endpoint:     srv.URL + "/internal/v1/movies/events",
		PollInterval: time.Hour,
		Credentials: &clientcredentials.Config{
			ClientID: "casts-relay", ClientSecret: "relay-secret", TokenURL: tokenSrv.URL + "/oauth2/token",
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		Logger:         zerolog.New(&logs),
		TracerProvider: tp,
		Propagator:     propagation.TraceContext{},
	})
	deliveries := rcv.waitAcked(t, 2, 10*time.Second)
	stop()

	if got := traceID(deliveries[0].traceparent); got != changeTrace {
		t.Errorf("the traced event's delivery is in trace %q, want the change's %s", got, changeTrace)
	}
	if got := traceID(deliveries[1].traceparent); got == "" || got == changeTrace {
		t.Errorf("the untraced event's delivery is in trace %q, want one of its own", got)
	}
	mu.Lock()
	if diff := cmp.Diff([]string{""}, tokenTraceparents); diff != "" {
		t.Errorf("traceparent of the token requests (-want +got):\n%s", diff)
	}
	mu.Unlock()

	// The spans of the traced event's delivery, as parent > child.
	ended := rec.Ended()
	names := map[trace.SpanID]string{}
	for _, s := range ended {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	var got []string
	for _, s := range ended {
		if s.SpanContext().TraceID().String() != changeTrace {
			continue
		}
		parent := names[s.Parent().SpanID()]
		if s.SpanKind() == trace.SpanKindProducer {
			parent += " (producer)"
		}
		got = append(got, parent+" > "+s.Name())
	}
	want := []string{
		"DELETE /api/v1/casts/{id} > BEGIN",
		"DELETE /api/v1/casts/{id} > INSERT",
		"DELETE /api/v1/casts/{id} > COMMIT",
		" > DELETE /api/v1/casts/{id}",
		"outbox deliver cast.deleted > POST /internal/v1/movies/events",
		"outbox deliver cast.deleted > DELETE",
		"DELETE /api/v1/casts/{id} (producer) > outbox deliver cast.deleted",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans of the change's trace, parent > name (-want +got):\n%s", diff)
	}

	// The delivery's log line names its trace.
	var delivered []string
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["message"] == "outbox: event delivered" {
			id, _ := m["trace_id"].(string)
			delivered = append(delivered, id)
		}
	}
	if len(delivered) != 2 || delivered[0] != changeTrace || delivered[1] == "" {
		t.Errorf("trace ids of the delivered lines %q, want %s then another", delivered, changeTrace)
	}
}

// backlog collects the outbox's metrics: the number of events and the oldest one's age.
func backlog(t *testing.T, pool *pgxpool.Pool) map[string]float64 {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	if err := outbox.ObserveBacklog(pool, sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, dp := range data.DataPoints {
					got[m.Name] = float64(dp.Value)
				}
			case metricdata.Gauge[float64]:
				for _, dp := range data.DataPoints {
					got[m.Name] = dp.Value
				}
			}
		}
	}
	return got
}

func TestObserveBacklog(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	if diff := cmp.Diff(map[string]float64{"casts.outbox.backlog": 0, "casts.outbox.oldest_age": 0}, backlog(t, pool)); diff != "" {
		t.Errorf("empty outbox (-want +got):\n%s", diff)
	}

	for _, id := range []int64{41, 42} {
		enqueue(t, pool, id)
	}
	if _, err := pool.Exec(context.Background(), "UPDATE outbox SET occurred_at = now() - interval '90 seconds' WHERE payload->>'cast_id' = '41'"); err != nil {
		t.Fatal(err)
	}
	got := backlog(t, pool)
	if age := got["casts.outbox.oldest_age"]; age < 90 || age > 120 {
		t.Errorf("oldest age %v s, want 90 s", age)
	}
	if got["casts.outbox.backlog"] != 2 {
		t.Errorf("backlog %v, want 2", got["casts.outbox.backlog"])
	}
}

// With the database down, a collection observes nothing, soon.
func TestObserveBacklogDatabaseDown(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://casts:secret@127.0.0.1:1/casts")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	start := time.Now()
	if got := backlog(t, pool); len(got) != 0 {
		t.Errorf("metrics %v, want none", got)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the collection took %s", took)
	}
}
