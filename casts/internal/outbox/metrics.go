package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
)

// backlogTimeout bounds the query of each collection: with the database down, the metrics are
// left out of the scrape rather than hold it.
const backlogTimeout = time.Second

// The outbox is nearly always empty or small: counting it is cheap.
const sqlBacklog = `
SELECT count(*), COALESCE(GREATEST(EXTRACT(EPOCH FROM now() - min(occurred_at)), 0), 0)::float8 FROM outbox`

// ObserveBacklog reports, at each collection of mp's metrics, how many events wait in pool's
// outbox (casts.outbox.backlog) and how long the oldest has waited (casts.outbox.oldest_age, 0
// when none waits). Deliveries that keep failing show as both growing.
func ObserveBacklog(pool *pgxpool.Pool, mp metric.MeterProvider) error {
	meter := mp.Meter(scope)
	backlog, err := meter.Int64ObservableGauge("casts.outbox.backlog", metric.WithUnit("{event}"),
		metric.WithDescription("Events in the outbox, waiting to be delivered."))
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	oldest, err := meter.Float64ObservableGauge("casts.outbox.oldest_age", metric.WithUnit("s"),
		metric.WithDescription("How long the oldest event in the outbox has waited; 0 when it is empty."))
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	_, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, backlogTimeout)
		defer cancel()
		var n int64
		var age float64
		// Without an answer nothing is observed: no value is better than a stale one, the outage
		// shows on /readyz and in the requests' metrics, and an error would only be printed on
		// every scrape.
		if pool.QueryRow(ctx, sqlBacklog).Scan(&n, &age) == nil {
			o.ObserveInt64(backlog, n)
			o.ObserveFloat64(oldest, age)
		}
		return nil
	}, backlog, oldest)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}
