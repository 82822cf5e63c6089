package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/casts/internal/telemetry"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Defaults of the RelayConfig fields left zero.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 10 * time.Second
	DefaultPollInterval = 5 * time.Second
)

const (
	// batchSize is how many events one transaction delivers at most.
	batchSize = 100
	// batchDeadline bounds one batch's transaction. Past it the batch rolls back, and the events
	// it had delivered are delivered again later: harmless, receivers deduplicate.
	batchDeadline = time.Minute
	// relayLock is the advisory lock that lets one relay deliver at a time, whatever the number of
	// replicas. FOR UPDATE SKIP LOCKED alone would not do: a second relay would skip the events
	// the first one is delivering and deliver later events before them.
	relayLock = 0x636173745f6f7574 // "cast_out"
	// maxErrorBody is how much of a refusal's body goes into the error, to say why.
	maxErrorBody = 512
)

const (
	sqlTryLock = `SELECT pg_try_advisory_xact_lock($1)`
	sqlPending = `
SELECT id, event_id::text AS event_id, type, payload, occurred_at, traceparent FROM outbox
ORDER BY id
LIMIT $1`
	sqlDelivered = `DELETE FROM outbox WHERE id = $1`
	// The outbox's trigger notifies this channel when a transaction that wrote events commits.
	sqlListen = `LISTEN casts_outbox`
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Endpoint is the URL each event is POSTed to, as a JSON object (see Event.MarshalJSON).
	Endpoint string
	// Timeout bounds one delivery attempt. Zero means DefaultTimeout.
	Timeout time.Duration
	// After a failed attempt the relay waits MinBackoff, doubled on each consecutive failure up
	// to MaxBackoff, then tries the same event again. Zero means the defaults.
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is how often an idle relay looks for events on its own. Notifications wake it
	// at once; the poll covers those it cannot get (its listening connection lost, or another
	// replica delivering when they came). Zero means DefaultPollInterval.
	PollInterval time.Duration
	// Credentials, if set, are the relay's own OAuth 2.0 client: every delivery carries an access
	// token it gets from the token endpoint with them, and renews before it expires. Nil sends none.
	Credentials *clientcredentials.Config
	Logger      zerolog.Logger
	// TracerProvider makes a span of each delivery, in the trace of the change that wrote the
	// event; MeterProvider measures the deliveries' requests (http.client.request.duration);
	// Propagator hands the trace context on to the receiver. Nil means none.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

// Relay delivers the outbox's events. It is meant to run in every replica of the service: the
// replicas take turns, and one delivers at a time.
type Relay struct {
	pool     *pgxpool.Pool
	cfg      RelayConfig
	endpoint *url.URL
	http     *http.Client
	// transport is http's, under the oauth2 one with Credentials (which cannot close connections).
	transport *http.Transport
	// tokens is the source of the deliveries' access tokens; nil without Credentials.
	tokens *tokenSource
	tracer trace.Tracer
}

// NewRelay returns a relay that delivers the events in pool's outbox to cfg.Endpoint.
func NewRelay(pool *pgxpool.Pool, cfg RelayConfig) (*Relay, error) {
	endpoint, err := url.Parse(cfg.Endpoint)
	if err != nil || (endpoint.Scheme != "http" && endpoint.Scheme != "https") || endpoint.Host == "" {
		return nil, errors.New("outbox: the endpoint is not an absolute http(s) URL")
	}
	setDefault(&cfg.Timeout, DefaultTimeout)
	setDefault(&cfg.MinBackoff, DefaultMinBackoff)
	setDefault(&cfg.MaxBackoff, DefaultMaxBackoff)
	setDefault(&cfg.PollInterval, DefaultPollInterval)
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	transport := &http.Transport{
		// No proxy: this is service-to-service traffic inside the stack, never egress.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: cfg.Timeout,
		ForceAttemptHTTP2:   true,
	}
	tp, mp, prop := cfg.TracerProvider, cfg.MeterProvider, cfg.Propagator
	tp, mp, prop = telemetry.OrNoop(tp, mp, prop)
	// Each delivery's request is a client span under the delivery's span, and carries its trace
	// context to the receiver.
	traced := otelhttp.NewTransport(transport,
		otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(mp), otelhttp.WithPropagators(prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
	r := &Relay{pool: pool, cfg: cfg, endpoint: endpoint, http: &http.Client{Transport: traced}, transport: transport, tracer: tp.Tracer(scope)}
	if cfg.Credentials != nil {
		// The token endpoint is asked through the same transport, within the same timeout, and
		// untraced: a token is fetched for no delivery in particular.
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: transport, Timeout: cfg.Timeout})
		r.tokens = &tokenSource{fresh: func() oauth2.TokenSource { return cfg.Credentials.TokenSource(ctx) }}
		r.tokens.reset()
		r.http.Transport = &oauth2.Transport{Source: r.tokens, Base: traced}
	}
	return r, nil
}

// scope names this package's spans and instruments.
const scope = "github.com/movies-microservices/casts/internal/outbox"

// tokenSource hands out the relay's access token, fetched once and renewed before it expires
// (oauth2's ReuseTokenSource), and can be made to forget it: the receiver may refuse a token
// before its expiry, after a key rotation for instance.
type tokenSource struct {
	fresh func() oauth2.TokenSource

	mu      sync.Mutex
	current oauth2.TokenSource
}

func (s *tokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	current := s.current
	s.mu.Unlock()
	return current.Token()
}

// reset forgets the token: the next delivery gets a new one.
func (s *tokenSource) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = s.fresh()
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// errNotLeader means another relay holds the delivery lock: it delivers the events.
var errNotLeader = errors.New("outbox: another relay is delivering")

// Run delivers events until ctx ends. It never gives up on an event: a failed delivery is retried,
// with capped exponential backoff, until the receiver acknowledges it, and later events wait for it.
// When ctx ends, a delivery in progress is finished and recorded before Run returns.
func (r *Relay) Run(ctx context.Context) {
	wake := make(chan struct{}, 1)
	var listening sync.WaitGroup
	listening.Go(func() { r.listen(ctx, wake) })
	defer listening.Wait()
	defer r.transport.CloseIdleConnections()

	failures := 0
	for {
		err := r.deliverPending(ctx)
		wait, delay := (<-chan struct{})(wake), r.cfg.PollInterval
		switch {
		case err == nil || errors.Is(err, errNotLeader):
			failures = 0
		default:
			failures++
			delay = backoff(failures, r.cfg.MinBackoff, r.cfg.MaxBackoff)
			// New events do not make a failing receiver succeed sooner.
			wait = nil
			r.cfg.Logger.Warn().Err(err).Int("attempt", failures).Dur("retry_in", delay).Msg("outbox: delivery failed; will retry")
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-wait:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// backoff is the wait after the given number of consecutive failures (1 or more).
func backoff(failures int, minimum, maximum time.Duration) time.Duration {
	d := minimum
	for i := 1; i < failures && d < maximum; i++ {
		d *= 2
	}
	return min(d, maximum)
}

// deliverPending delivers events in order until none is left, one fails, or ctx ends.
func (r *Relay) deliverPending(ctx context.Context) error {
	for ctx.Err() == nil {
		more, err := r.deliverBatch(ctx)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// deliverBatch delivers up to batchSize events, oldest first, under the delivery lock, and deletes
// those acknowledged in the same transaction. It stops at the first failure: later events must not
// overtake it. more reports whether more events may be waiting.
func (r *Relay) deliverBatch(ctx context.Context) (more bool, err error) {
	// An acknowledged delivery must be recorded even if ctx ends meanwhile, so the work does not
	// follow ctx; ctx only stops the relay between two events.
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchDeadline)
	defer cancel()

	tx, err := r.pool.Begin(work)
	if err != nil {
		return false, fmt.Errorf("outbox: begin: %w", err)
	}
	defer tx.Rollback(work) //nolint:errcheck // a no-op after Commit

	var leader bool
	if err := tx.QueryRow(work, sqlTryLock, int64(relayLock)).Scan(&leader); err != nil {
		return false, fmt.Errorf("outbox: take the delivery lock: %w", err)
	}
	if !leader {
		return false, errNotLeader
	}
	rows, err := tx.Query(work, sqlPending, batchSize)
	if err != nil {
		return false, fmt.Errorf("outbox: read pending events: %w", err)
	}
	events, err := pgx.CollectRows(rows, pgx.RowToStructByName[Event])
	if err != nil {
		return false, fmt.Errorf("outbox: read pending events: %w", err)
	}

	var sendErr error
	delivered := 0
	for _, e := range events {
		if ctx.Err() != nil {
			break
		}
		eventCtx, span := r.startDelivery(work, e)
		if sendErr = r.send(eventCtx, e); sendErr != nil {
			endDelivery(span, sendErr)
			break
		}
		if _, err := tx.Exec(eventCtx, sqlDelivered, e.Seq); err != nil {
			endDelivery(span, err)
			return false, fmt.Errorf("outbox: record the delivery of event %s: %w", e.ID, err)
		}
		delivered++
		line := r.cfg.Logger.Info().Str("event_id", e.ID).Str("event_type", e.Type)
		if sc := span.SpanContext(); span.IsRecording() && sc.IsValid() {
			line = line.Str("trace_id", sc.TraceID().String()).Str("span_id", sc.SpanID().String())
		}
		line.Msg("outbox: event delivered")
		endDelivery(span, nil)
	}
	if err := tx.Commit(work); err != nil {
		return false, fmt.Errorf("outbox: record %d deliveries: %w", delivered, err)
	}
	if sendErr != nil {
		return false, sendErr
	}
	return delivered == batchSize, nil
}

// startDelivery starts the span of one attempt to deliver e: in the trace of the change that wrote
// e, if it was traced, or else of a trace of its own.
func (r *Relay) startDelivery(ctx context.Context, e Event) (context.Context, trace.Span) {
	if e.TraceParent != nil {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": *e.TraceParent})
	}
	return r.tracer.Start(ctx, "outbox deliver "+e.Type,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("deliver"),
			semconv.MessagingMessageID(e.ID),
			attribute.String("outbox.event.type", e.Type),
		))
}

func endDelivery(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// send POSTs one event; only a 2xx answer counts as acknowledged.
func (r *Relay) send(ctx context.Context, e Event) error {
	body, err := e.MarshalJSON()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("outbox: deliver event %s: %w", e.ID, err)
	}
	req.Header.Set("Content-Type", "application/json")
	// The receiver logs it with its request: the event id ties both services' log lines together.
	req.Header.Set("X-Request-Id", e.ID)
	resp, err := r.http.Do(req)
	if err != nil {
		// Not the URL itself: it may carry credentials.
		return fmt.Errorf("outbox: deliver event %s (%s) to %s: %w", e.ID, e.Type, r.endpoint.Redacted(), unwrapURLError(err))
	}
	defer func() {
		// Reading the rest lets the connection go back to the pool.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) //nolint:errcheck // best effort
		resp.Body.Close()
	}()
	if resp.StatusCode == http.StatusUnauthorized && r.tokens != nil {
		r.tokens.reset()
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		why, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return fmt.Errorf("outbox: deliver event %s (%s): %s answered %s: %s",
			e.ID, e.Type, r.endpoint.Redacted(), resp.Status, strings.TrimSpace(string(why)))
	}
	return nil
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the URL unredacted.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// listen wakes the relay whenever the outbox's trigger signals newly committed events, on a
// connection of its own (a LISTENing connection cannot go back to the pool). When the connection
// fails it reconnects with backoff; meanwhile the relay polls.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	for failures := 0; ; {
		start := time.Now()
		err := r.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			failures = 0 // it worked for a while: this is a new problem
		}
		failures++
		delay := backoff(failures, time.Second, 30*time.Second)
		r.cfg.Logger.Warn().Err(err).Dur("retry_in", delay).Msg("outbox: not listening for new events; polling meanwhile")
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx) //nolint:errcheck // closing anyway
	}()
	if _, err := conn.Exec(ctx, sqlListen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Events committed before LISTEN took effect sent their notification to nobody.
	signal(wake)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("wait for a notification: %w", err)
		}
		signal(wake)
	}
}

// signal wakes the relay unless a wake-up is already pending.
func signal(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}
