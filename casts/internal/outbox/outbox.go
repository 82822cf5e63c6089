// Package outbox is the cast service's transactional outbox. A change writes its event with
// Enqueue in its own transaction, so the event exists exactly when the change committed; a Relay
// then delivers the pending events over HTTP, in order and at least once, and deletes each one only
// after the receiver has acknowledged it with a 2xx. Receivers deduplicate on the event id.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/propagation"
)

const sqlEnqueue = `INSERT INTO outbox (type, payload, traceparent) VALUES ($1, $2, $3)`

// Enqueue writes an event of type typ, whose own fields are those of payload (any value that
// encodes as a JSON object), in tx: it will be delivered if and only if tx commits. The trace
// context of ctx goes with it: the event's delivery continues the trace.
func Enqueue(ctx context.Context, tx pgx.Tx, typ string, payload any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("outbox: encode the payload of %s: %w", typ, err)
	}
	if _, err := tx.Exec(ctx, sqlEnqueue, typ, b, traceParent(ctx)); err != nil {
		return fmt.Errorf("outbox: enqueue %s: %w", typ, err)
	}
	return nil
}

// traceParent is the W3C traceparent of ctx's span, or nil if ctx has none.
func traceParent(ctx context.Context) *string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	if v := carrier.Get("traceparent"); v != "" {
		return &v
	}
	return nil
}

// Event is a pending event as the relay reads it.
type Event struct {
	// Seq is its place in the delivery order.
	Seq int64 `db:"id"`
	// ID identifies the event; it stays the same on every redelivery.
	ID         string          `db:"event_id"`
	Type       string          `db:"type"`
	Payload    json.RawMessage `db:"payload"`
	OccurredAt time.Time       `db:"occurred_at"`
	// TraceParent is the W3C trace context of the change that wrote the event, if it was traced.
	TraceParent *string `db:"traceparent"`
}

// MarshalJSON gives the form receivers get: one flat object with id, type and occurred_at next to
// the payload's fields, such as {"id":"…","type":"cast.deleted","occurred_at":"…","cast_id":42}.
func (e Event) MarshalJSON() ([]byte, error) {
	// RawMessage values keep the payload's numbers exact (cast ids may exceed 2^53).
	fields := map[string]json.RawMessage{}
	if err := json.Unmarshal(e.Payload, &fields); err != nil {
		return nil, fmt.Errorf("outbox: payload of event %s is not a JSON object: %w", e.ID, err)
	}
	for name, v := range map[string]any{"id": e.ID, "type": e.Type, "occurred_at": e.OccurredAt.UTC()} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		fields[name] = b
	}
	return json.Marshal(fields)
}
