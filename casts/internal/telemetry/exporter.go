package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// reportInterval is the least time between two log lines about failed exports.
const reportInterval = time.Minute

// countingExporter counts the spans next exports and those it fails to, and logs the failures, at
// most once every reportInterval: an unreachable collector fails every batch.
type countingExporter struct {
	next     sdktrace.SpanExporter
	exported metric.Int64Counter
	dropped  metric.Int64Counter
	logger   zerolog.Logger
	// now is time.Now but in tests.
	now func() time.Time

	mu         sync.Mutex
	reported   time.Time // when the last failure was logged
	unreported int64     // spans dropped since
}

func newCountingExporter(next sdktrace.SpanExporter, meter metric.Meter, logger zerolog.Logger) (*countingExporter, error) {
	exported, err := meter.Int64Counter("telemetry.spans.exported", metric.WithUnit("{span}"),
		metric.WithDescription("Spans the trace collector took."))
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	dropped, err := meter.Int64Counter("telemetry.spans.dropped", metric.WithUnit("{span}"),
		metric.WithDescription("Spans lost because the trace collector was unreachable or refused them."))
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	return &countingExporter{next: next, exported: exported, dropped: dropped, logger: logger, now: time.Now}, nil
}

// ExportSpans exports spans through next. A failure is counted and logged here, and not returned:
// the batch is lost either way, and the SDK would only print the error again, on every batch.
func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.next.ExportSpans(ctx, spans)
	n := int64(len(spans))
	if err == nil {
		e.exported.Add(context.WithoutCancel(ctx), n)
		return nil
	}
	e.dropped.Add(context.WithoutCancel(ctx), n)

	e.mu.Lock()
	e.unreported += n
	now := e.now()
	if !e.reported.IsZero() && now.Sub(e.reported) < reportInterval {
		e.mu.Unlock()
		return nil
	}
	dropped := e.unreported
	e.reported, e.unreported = now, 0
	e.mu.Unlock()

	// The exporter's *url.Error repeats the URL, which may carry credentials.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	e.logger.Warn().Err(err).Int64("spans_dropped", dropped).Dur("next_report_in", reportInterval).
		Msg("telemetry: the trace collector is unreachable or refused spans; they are dropped (metric telemetry_spans_dropped_total)")
	return nil
}

// Shutdown stops next, saying how many spans were dropped since the last line about it.
func (e *countingExporter) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	dropped := e.unreported
	e.unreported = 0
	e.mu.Unlock()
	if dropped > 0 {
		e.logger.Warn().Int64("spans_dropped", dropped).Msg("telemetry: spans dropped since the last report")
	}
	return e.next.Shutdown(ctx)
}
