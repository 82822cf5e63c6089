package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// scope names this package's spans and instruments.
const scope = "github.com/movies-microservices/casts/internal/postgres"

// queryTracer makes a client span of each statement that runs for a traced piece of work (a
// request, an event's delivery), named after its first keyword (SELECT, INSERT, BEGIN, ...), with
// the SQL as it was sent: its parameters are never part of it. Statements of untraced work (the
// background sweeps and polls) make none: they would each be a trace of their own.
type queryTracer struct {
	tracer trace.Tracer
}

// newQueryTracer returns the tracer of tp's spans, or nil (no tracer at all) when tp makes none.
func newQueryTracer(tp trace.TracerProvider) *queryTracer {
	if tp == nil {
		return nil
	}
	if _, ok := tp.(noop.TracerProvider); ok {
		return nil
	}
	return &queryTracer{tracer: tp.Tracer(scope)}
}

// querySpanKey holds the span TraceQueryStart made, so that TraceQueryEnd ends that one only.
type querySpanKey struct{}

func (t *queryTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	keyword := firstKeyword(data.SQL)
	ctx, span := t.tracer.Start(ctx, keyword, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(connAttributes(conn)...),
		trace.WithAttributes(semconv.DBOperationName(keyword), semconv.DBQueryText(data.SQL)))
	return context.WithValue(ctx, querySpanKey{}, span)
}

func (t *queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	span, ok := ctx.Value(querySpanKey{}).(trace.Span)
	if !ok {
		return
	}
	endSpan(span, data.Err)
}

// A batch is a span of its own ("BATCH"), and each of its statements a span under it, from when
// its result was read.
func (t *queryTracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	ctx, span := t.tracer.Start(ctx, "BATCH", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(connAttributes(conn)...),
		trace.WithAttributes(semconv.DBOperationName("BATCH"), semconv.DBOperationBatchSize(data.Batch.Len())))
	return context.WithValue(ctx, querySpanKey{}, span)
}

func (t *queryTracer) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	if _, ok := ctx.Value(querySpanKey{}).(trace.Span); !ok {
		return
	}
	start := data.ReadStartTime
	if start.IsZero() {
		start = time.Now()
	}
	keyword := firstKeyword(data.SQL)
	_, span := t.tracer.Start(ctx, keyword, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start),
		trace.WithAttributes(connAttributes(conn)...),
		trace.WithAttributes(semconv.DBOperationName(keyword), semconv.DBQueryText(data.SQL)))
	endSpan(span, data.Err)
}

func (t *queryTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	span, ok := ctx.Value(querySpanKey{}).(trace.Span)
	if !ok {
		return
	}
	endSpan(span, data.Err)
}

func connAttributes(conn *pgx.Conn) []attribute.KeyValue {
	cfg := conn.Config()
	return []attribute.KeyValue{
		semconv.DBSystemNamePostgreSQL,
		semconv.DBNamespace(cfg.Database),
		semconv.ServerAddress(cfg.Host),
		semconv.ServerPort(int(cfg.Port)),
	}
}

// endSpan ends span, marking it failed if err is not nil. A PostgreSQL error is told by its
// SQLSTATE only: its message can quote the values of parameters.
func endSpan(span trace.Span, err error) {
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			span.SetAttributes(semconv.DBResponseStatusCode(pgErr.Code), semconv.ErrorTypeKey.String(pgErr.Code))
			span.SetStatus(codes.Error, "SQLSTATE "+pgErr.Code)
		} else {
			span.SetAttributes(semconv.ErrorType(err))
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// firstKeyword is the first word of sql, upper-cased, after spaces and comments: SELECT, INSERT,
// BEGIN, ... It is "SQL" when sql starts with no word.
func firstKeyword(sql string) string {
	for {
		sql = strings.TrimLeft(sql, " \t\r\n")
		switch {
		case strings.HasPrefix(sql, "--"):
			_, sql, _ = strings.Cut(sql, "\n")
			continue
		case strings.HasPrefix(sql, "/*"):
			_, sql, _ = strings.Cut(sql, "*/")
			continue
		}
		break
	}
	end := strings.IndexFunc(sql, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') })
	if end < 0 {
		end = len(sql)
	}
	if end == 0 {
		return "SQL"
	}
	return strings.ToUpper(sql[:end])
}
