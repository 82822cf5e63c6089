package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/casts/internal/postgres"
	"github.com/movies-microservices/casts/internal/postgres/pgtest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// tracedPool opens a pool on a new database whose statements' spans go to the returned recorder.
func tracedPool(t *testing.T, opts ...postgres.Option) (*pgxpool.Pool, *tracetest.SpanRecorder, trace.Tracer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	pool, err := postgres.Open(context.Background(), pgtest.URL(t), 10*time.Second, append(opts, postgres.WithTracerProvider(tp))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, rec, tp.Tracer("test")
}

// span is what the tests check of a statement's span.
type span struct {
	Name, Parent string
	Kind         trace.SpanKind
	Attributes   map[attribute.Key]string
	Status       codes.Code
}

func spans(rec *tracetest.SpanRecorder, names map[trace.SpanID]string) []span {
	var got []span
	for _, s := range rec.Ended() {
		if s.InstrumentationScope().Name == "test" {
			continue
		}
		attrs := map[attribute.Key]string{}
		for _, kv := range s.Attributes() {
			attrs[kv.Key] = kv.Value.Emit()
		}
		got = append(got, span{Name: s.Name(), Parent: names[s.Parent().SpanID()], Kind: s.SpanKind(), Attributes: attrs, Status: s.Status().Code})
	}
	return got
}

// Each statement of traced work is a client span under the work's span, with the SQL as sent
// (placeholders, never the values) and the SQLSTATE of a failure.
func TestQueryTracer(t *testing.T) {
	t.Parallel()
	pool, rec, tracer := tracedPool(t)
	ctx, parent := tracer.Start(context.Background(), "request")

	var got string
	if err := pool.QueryRow(ctx, "SELECT $1::text", "secret-value").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "/* why */ -- and how\n select 1/0"); err == nil {
		t.Fatal("division by zero succeeded")
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "CREATE TEMPORARY TABLE t (n int)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	parent.End()

	database := pool.Config().ConnConfig.Database
	host := pool.Config().ConnConfig.Host
	port := pool.Config().ConnConfig.Port
	attrs := func(op, sql string, extra ...string) map[attribute.Key]string {
		m := map[attribute.Key]string{
			"db.system.name": "postgresql", "db.namespace": database, "db.operation.name": op, "db.query.text": sql,
			"server.address": host, "server.port": attribute.IntValue(int(port)).Emit(),
		}
		for i := 0; i < len(extra); i += 2 {
			m[attribute.Key(extra[i])] = extra[i+1]
		}
		return m
	}
	want := []span{
		{Name: "SELECT", Parent: "request", Kind: trace.SpanKindClient, Attributes: attrs("SELECT", "SELECT $1::text")},
		{Name: "SELECT", Parent: "request", Kind: trace.SpanKindClient, Status: codes.Error,
			Attributes: attrs("SELECT", "/* why */ -- and how\n select 1/0", "db.response.status_code", "22012", "error.type", "22012")},
		{Name: "BEGIN", Parent: "request", Kind: trace.SpanKindClient, Attributes: attrs("BEGIN", "begin")},
		{Name: "CREATE", Parent: "request", Kind: trace.SpanKindClient, Attributes: attrs("CREATE", "CREATE TEMPORARY TABLE t (n int)")},
		{Name: "COMMIT", Parent: "request", Kind: trace.SpanKindClient, Attributes: attrs("COMMIT", "commit")},
	}
	if diff := cmp.Diff(want, spans(rec, map[trace.SpanID]string{parent.SpanContext().SpanID(): "request"})); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}

// Work that is not traced, such as the background sweeps, makes no span at all.
func TestQueryTracerWithoutParent(t *testing.T) {
	t.Parallel()
	pool, rec, _ := tracedPool(t)
	if _, err := pool.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	batch := &pgx.Batch{}
	batch.Queue("SELECT 1")
	if err := pool.SendBatch(context.Background(), batch).Close(); err != nil {
		t.Fatal(err)
	}
	if got := rec.Ended(); len(got) != 0 {
		t.Errorf("%d spans without a parent, want none: first %q", len(got), got[0].Name())
	}
}

// A batch is a span, and each of its statements one under it.
func TestQueryTracerBatch(t *testing.T) {
	t.Parallel()
	pool, rec, tracer := tracedPool(t)
	ctx, parent := tracer.Start(context.Background(), "request")
	batch := &pgx.Batch{}
	batch.Queue("SELECT 1")
	batch.Queue("SELECT 2")
	if err := pool.SendBatch(ctx, batch).Close(); err != nil {
		t.Fatal(err)
	}
	parent.End()

	names := map[trace.SpanID]string{parent.SpanContext().SpanID(): "request"}
	var got []string
	for _, s := range rec.Ended() {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	for _, s := range spans(rec, names) {
		got = append(got, s.Parent+" > "+s.Name+" "+s.Attributes["db.query.text"]+s.Attributes["db.operation.batch.size"])
	}
	want := []string{"BATCH > SELECT SELECT 1", "BATCH > SELECT SELECT 2", "request > BATCH 2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans, parent > name (-want +got):\n%s", diff)
	}
}

// The pool's connections are counted by state, next to the pool's size.
func TestPoolMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	pool, _, _ := tracedPool(t, postgres.WithMeterProvider(mp))
	held, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	released, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	released.Release()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Errorf("%s is a %T, want an up-down counter", m.Name, m.Data)
				continue
			}
			for _, dp := range sum.DataPoints {
				state, _ := dp.Attributes.Value("db.client.connection.state")
				got[m.Name+" "+state.AsString()] = dp.Value
			}
		}
	}
	// One connection is back in the pool, the other held.
	want := map[string]int64{
		"db.client.connection.count idle": 1,
		"db.client.connection.count used": 1,
		"db.client.connection.max ":       int64(pool.Config().MaxConns),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pool metrics (-want +got):\n%s", diff)
	}
}
