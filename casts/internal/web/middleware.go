package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/movies-microservices/casts/internal/telemetry"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// RequestIDHeader carries the id that ties together the log lines of one request across services.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// RequestID returns the request id stored in ctx by the logging middleware, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// clientKey holds a request's *clientSlot. The access log puts an empty one in the context, and
// the authentication of a write fills it in, so that the request's log line names its client.
type clientKey struct{}

type clientSlot struct{ id string }

// setClientID records, for the access log, the client that made the request.
func setClientID(ctx context.Context, id string) {
	if slot, ok := ctx.Value(clientKey{}).(*clientSlot); ok {
		slot.id = id
	}
}

// WithAccessLog gives every request an id (the caller's, if it sent a sane one), a logger that carries
// it, and the request's trace and span ids if it is traced (see WithTracing), and writes one log
// line when the request is done. It also turns a panic into a logged 500.
func WithAccessLog(logger zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)

		span := trace.SpanFromContext(r.Context())
		span.SetAttributes(attribute.String("request_id", id))
		lc := logger.With().Str("request_id", id)
		// Only a span of this service's own: with tracing off, the context holds the caller's.
		if sc := span.SpanContext(); span.IsRecording() && sc.IsValid() {
			lc = lc.Str("trace_id", sc.TraceID().String()).Str("span_id", sc.SpanID().String())
		}
		l := lc.Logger()
		client := &clientSlot{}
		ctx := context.WithValue(l.WithContext(r.Context()), requestIDKey{}, id)
		ctx = context.WithValue(ctx, clientKey{}, client)
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w}

		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				l.Error().Interface("panic", v).Msg("handler panicked")
				if rec.status == 0 {
					WriteProblem(rec, r, http.StatusInternalServerError, "The server failed to handle the request; it has been logged with the request id.", nil)
				}
			}
			// The mux records the matched pattern on the request it was handed.
			nameSpan(r, span)
			line := l.Info().
				Str("method", r.Method).
				Str("route", r.Pattern).
				Int("status", rec.status).
				Int("bytes", rec.bytes).
				Dur("duration", time.Since(start))
			if client.id != "" {
				line = line.Str("client_id", client.id)
			}
			line.Msg("request")
		}()
		next.ServeHTTP(rec, r)
	})
}

// nameSpan names the request's server span after the route the mux matched, such as
// "GET /api/v1/casts/{id}", and labels the request's duration with the route: otelhttp cannot,
// as the mux records the pattern on the request it is handed, not on otelhttp's. A request that
// matched no route keeps the method alone, and no route label: neither takes more values than
// there are routes.
func nameSpan(r *http.Request, span trace.Span) {
	i := strings.IndexByte(r.Pattern, '/')
	if i < 0 {
		return
	}
	route := r.Pattern[i:]
	span.SetName(r.Method + " " + route)
	span.SetAttributes(semconv.HTTPRoute(route))
	if labeler, ok := otelhttp.LabelerFromContext(r.Context()); ok {
		labeler.Add(semconv.HTTPRoute(route))
	}
}

// untraced are the paths of the probes and the metrics' scrapes: they come every few seconds and
// say nothing of the service's work.
var untraced = map[string]bool{"/livez": true, "/readyz": true, "/metrics": true}

// WithTracing makes a server span of every request but the probes and the scrapes, continuing the
// trace context the caller sent (read with prop), and records its duration (the histogram
// http.server.request.duration). The span is named after the method here, and after the route
// once the mux has matched one (see nameSpan). A nil provider or propagator means none. It is
// the outermost layer, and so the one that keeps the answer to a client that has gone from the
// wire (see StatusClientClosedRequest).
func WithTracing(tp trace.TracerProvider, mp metric.MeterProvider, prop propagation.TextMapPropagator, next http.Handler) http.Handler {
	tp, mp, prop = telemetry.OrNoop(tp, mp, prop)
	return withNothingForGoneClient(otelhttp.NewHandler(next, "http.server",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithMeterProvider(mp),
		otelhttp.WithPropagators(prop),
		otelhttp.WithFilter(func(r *http.Request) bool { return !untraced[r.URL.Path] }),
	))
}

// StatusClientClosedRequest is nginx's 499: the client closed its connection before the answer
// (wrk does at the end of a run, a browser when the user navigates away). RespondError "answers"
// such a request with it instead of the 503 that the cancelled query or call would make, so that
// the access log, the request's span and the status label of its duration record the client's
// cancellation, not a failure of the service. It never reaches the wire: the outermost layer
// (withNothingForGoneClient) drops the connection without an answer, as nginx does.
const StatusClientClosedRequest = 499

// ClientGone reports whether ctx, a request's context, says that the client has closed its
// connection: net/http cancels the request's context when it does. Nothing of the server's own cancels it: the request's deadline
// (WithTimeout) ends it with context.DeadlineExceeded, which stays the service's 503, and
// Shutdown lets the requests in flight finish.
func ClientGone(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.Canceled)
}

// withNothingForGoneClient sends nothing for a request answered StatusClientClosedRequest, and
// aborts it with http.ErrAbortHandler, so that net/http does not send the 200 it sends for a
// handler that wrote nothing either (a client that only half-closed its connection would read
// it). net/http closes the connection and logs nothing for that panic.
func withNothingForGoneClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw := &goneClientWriter{ResponseWriter: w}
		next.ServeHTTP(gw, r)
		if gw.gone {
			panic(http.ErrAbortHandler)
		}
	})
}

// goneClientWriter passes everything on to the client until the request is answered
// StatusClientClosedRequest, and nothing after.
type goneClientWriter struct {
	http.ResponseWriter
	gone bool
}

func (w *goneClientWriter) WriteHeader(status int) {
	if status == StatusClientClosedRequest {
		w.gone = true
	}
	if !w.gone {
		w.ResponseWriter.WriteHeader(status)
	}
}

func (w *goneClientWriter) Write(b []byte) (int, error) {
	if w.gone {
		return 0, http.ErrAbortHandler
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *goneClientWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// statusRecorder remembers what was sent, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// WithTimeout gives each request a deadline of d (none if d is 0). The database calls a request
// makes follow its context, so when the database hangs or is unreachable they are given up at the
// deadline, and RespondError answers 503, instead of the request waiting as long as the client.
func WithTimeout(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// WithProblemForUnrouted answers requests that match no route with problem+json instead of the
// mux's plain text, keeping the status (404 or 405) and the Allow header the mux computed.
func WithProblemForUnrouted(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &headerProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", probe.header.Get("Allow"))
			WriteProblem(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here; allowed: "+probe.header.Get("Allow"), nil)
		default:
			WriteProblem(w, r, http.StatusNotFound, "no resource at "+r.URL.Path, nil)
		}
	})
}

// headerProbe records the status and headers a handler sets and discards its body.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header { return p.header }
func (p *headerProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}
func (p *headerProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}
