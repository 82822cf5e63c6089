// Package castsclient asks the cast service which cast ids exist, and fetches casts. It speaks the
// cast service's public contract (GET /api/v1/casts?id=..), not its code: the two services share
// nothing but HTTP and JSON.
package castsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/movies-microservices/movies/internal/telemetry"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const (
	// MaxIDs is the most distinct ids one request can carry: the cast service accepts at most 1000
	// id parameters and returns at most 1000 casts per page. A check is always a single request.
	MaxIDs = 1000
	// maxResponseBytes bounds how much of an answer is read: 1000 casts are far less than this.
	maxResponseBytes = 4 << 20
)

// Config says where the cast service is and how long to wait for it.
type Config struct {
	// BaseURL is where the cast API is reached, such as http://127.0.0.1:8082 (Traefik's mesh entrypoint).
	BaseURL string
	// Timeout bounds one attempt of a check, from connecting to reading the last byte of the
	// answer; an attempt that times out is made once more (see fetch), so a check takes at most
	// twice as long.
	Timeout time.Duration
	// RequestID returns the id of the request a check is made for; it is sent on as X-Request-Id so
	// that the log lines of both services can be tied together. It may be nil.
	RequestID func(context.Context) string
	// TracerProvider makes a client span of each request, under the span of the caller's context;
	// Propagator writes the trace context into the request; MeterProvider measures the checks
	// (movies.casts_check.duration) and the requests (http.client.request.duration). Nil means none.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

// Client checks cast ids against the cast service and looks casts up there. It is safe for concurrent use.
type Client struct {
	listURL   *url.URL
	http      *http.Client
	transport *http.Transport
	timeout   time.Duration
	requestID func(context.Context) string
	// checkDuration is movies.casts_check.duration.
	checkDuration metric.Float64Histogram
}

// Outcomes of a check, the values of the attribute outcome of movies.casts_check.duration.
const (
	outcomeOK          = "ok"          // every id names a cast
	outcomeMissingIDs  = "missing_ids" // the cast service answered: some ids name no cast
	outcomeUnavailable = "unavailable" // no clear answer: unreachable, too slow, an error status, a bad body
)

// recordCheck records the duration of a check made since start.
func (c *Client) recordCheck(ctx context.Context, start time.Time, outcome string) {
	c.checkDuration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attribute.String("outcome", outcome)))
}

// New returns a client for the cast service at cfg.BaseURL.
func New(cfg Config) (*Client, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("castsclient: base URL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.Timeout <= 0 {
		return nil, errors.New("castsclient: the timeout must be positive")
	}
	transport := &http.Transport{
		// No proxy: this is service-to-service traffic inside the stack, never egress.
		Proxy:       nil,
		DialContext: (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		// Every movie write may make a check, so keep enough connections open to the one host (the
		// mesh entrypoint) that bursts of concurrent writes do not each pay for a new connection.
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		// Shorter than Traefik's idle timeout (180s), so that we close an idle connection before it does.
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: cfg.Timeout,
		ForceAttemptHTTP2:   true,
	}
	listURL := base.JoinPath("api/v1/casts")
	if !strings.HasPrefix(listURL.Path, "/") {
		listURL.Path = "/" + listURL.Path // JoinPath keeps an empty base path relative
	}

	tp, mp, prop := cfg.TracerProvider, cfg.MeterProvider, cfg.Propagator
	tp, mp, prop = telemetry.OrNoop(tp, mp, prop)
	checkDuration, err := mp.Meter("github.com/movies-microservices/movies/internal/castsclient").Float64Histogram(
		"movies.casts_check.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of the checks that cast ids exist, by outcome."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	if err != nil {
		return nil, fmt.Errorf("castsclient: %w", err)
	}
	traced := otelhttp.NewTransport(transport,
		otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(mp), otelhttp.WithPropagators(prop),
		// The path is always the list's: the ids are in the query.
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
	return &Client{
		listURL:       listURL,
		http:          &http.Client{Transport: traced, Timeout: cfg.Timeout},
		transport:     transport,
		timeout:       cfg.Timeout,
		requestID:     cfg.RequestID,
		checkDuration: checkDuration,
	}, nil
}

// Cast is a cast as the cast service describes it.
type Cast struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Nationality *string   `json:"nationality"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Missing returns, in ascending order and without duplicates, the ids that name no cast. It asks
// the cast service once, whatever the number of ids, and not at all for an empty list. Any failure
// to get a clear answer (unreachable, too slow, a status other than 200, a body that is not a JSON
// list of casts) is an error: the caller cannot tell which ids exist.
func (c *Client) Missing(ctx context.Context, ids []int64) ([]int64, error) {
	wanted := distinct(ids)
	if len(wanted) == 0 {
		return nil, nil
	}
	if len(wanted) > MaxIDs {
		return nil, fmt.Errorf("castsclient: %d ids in one check; at most %d fit in one request", len(wanted), MaxIDs)
	}
	start := time.Now()
	found, err := c.fetch(ctx, wanted)
	if err != nil {
		c.recordCheck(ctx, start, outcomeUnavailable)
		return nil, err
	}
	exists := make(map[int64]bool, len(found))
	for _, f := range found {
		exists[f.ID] = true
	}
	var missing []int64
	for _, id := range wanted {
		if !exists[id] {
			missing = append(missing, id)
		}
	}
	outcome := outcomeOK
	if len(missing) > 0 {
		outcome = outcomeMissingIDs
	}
	c.recordCheck(ctx, start, outcome)
	return missing, nil
}

// Lookup returns the casts that ids name, in ascending id order and each once; ids that name no
// cast are left out. It asks the cast service with one batch request per MaxIDs distinct ids (so
// once for up to 1000), and not at all for an empty list. Any failure to get a clear answer is an
// error, as for Missing.
func (c *Client) Lookup(ctx context.Context, ids []int64) ([]Cast, error) {
	var casts []Cast
	for chunk := range slices.Chunk(distinct(ids), MaxIDs) {
		found, err := c.fetch(ctx, chunk)
		if err != nil {
			return nil, err
		}
		casts = append(casts, found...)
	}
	return casts, nil
}

// distinct returns ids sorted, without duplicates.
func distinct(ids []int64) []int64 {
	wanted := slices.Clone(ids)
	slices.Sort(wanted)
	return slices.Compact(wanted)
}

// fetch asks the cast service, in one request, for the casts among ids (distinct, at most MaxIDs).
//
// An attempt that times out is made once more, so a check is bounded by twice the timeout. The
// request is a GET, so a second attempt is harmless, and it is what saves the write when a cast
// instance is lost without closing its connections (its node lost, its link cut): the first
// attempt hangs on it, and Traefik goes on routing to it until its active health check notices
// (within its interval plus its timeout, 3 s). Traefik's retry on the mesh cannot do this: it
// never replays a request once sent. Any other failure is an answer, and is not retried.
func (c *Client) fetch(ctx context.Context, ids []int64) ([]Cast, error) {
	found, err := c.fetchOnce(ctx, ids)
	var netErr net.Error
	if err != nil && ctx.Err() == nil && errors.As(err, &netErr) && netErr.Timeout() {
		found, err = c.fetchOnce(ctx, ids)
	}
	return found, err
}

// fetchOnce is one attempt of fetch, bounded by the client's timeout.
func (c *Client) fetchOnce(ctx context.Context, ids []int64) ([]Cast, error) {
	q := make(url.Values, 2)
	for _, id := range ids {
		q.Add("id", strconv.FormatInt(id, 10))
	}
	// One page holds every cast that can match, so there is never a next page to follow.
	q.Set("limit", strconv.Itoa(len(ids)))
	u := *c.listURL
	u.RawQuery = q.Encode()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("castsclient: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if c.requestID != nil {
		if id := c.requestID(ctx); id != "" {
			req.Header.Set("X-Request-Id", id)
		}
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("castsclient: %w", c.timedOut(ctx, err))
	}
	defer func() {
		// Reading the rest lets the connection go back to the pool.
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes)) //nolint:errcheck // best effort
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("castsclient: GET %s answered %s", c.listURL.Redacted(), resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, fmt.Errorf("castsclient: GET %s answered Content-Type %q, want application/json", c.listURL.Redacted(), resp.Header.Get("Content-Type"))
	}
	var found []Cast
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(&found); err != nil {
		return nil, fmt.Errorf("castsclient: decode the answer of GET %s: %w", c.listURL.Redacted(), c.timedOut(ctx, err))
	}
	return found, nil
}

// timedOut makes err say so when the client's own timeout ended the request. With a transport it
// does not know (the tracing one), http.Client arms both a timer and the request's context with
// the timeout, and says "Client.Timeout" only when the timer wins the race.
func (c *Client) timedOut(ctx context.Context, err error) error {
	if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout") {
		return err
	}
	return fmt.Errorf("%w (Client.Timeout exceeded: no answer within %s)", err, c.timeout)
}

// CloseIdleConnections closes the pooled connections to the cast service; call it on shutdown.
func (c *Client) CloseIdleConnections() {
	// Not through c.http: the tracing transport does not pass the call on.
	c.transport.CloseIdleConnections()
}
