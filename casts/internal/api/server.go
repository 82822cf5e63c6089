// Package api is the HTTP interface of the cast service: its routes, handlers and OpenAPI
// document. The plumbing they stand on, the same in both services, is package web.
package api

import (
	"context"
	"net/http"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/movies-microservices/casts/internal/cast"
	"github.com/movies-microservices/casts/internal/idempotency"
	"github.com/movies-microservices/casts/internal/web"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Store is what the handlers need from the cast store.
type Store interface {
	Create(ctx context.Context, f cast.Fields) (cast.Cast, error)
	Get(ctx context.Context, id int64) (cast.Cast, error)
	List(ctx context.Context, p cast.ListParams) ([]cast.Cast, error)
	CreateOnce(ctx context.Context, f cast.Fields, key idempotency.Key, respond func(cast.Cast) (idempotency.Response, error)) (idempotency.Response, bool, error)
	Update(ctx context.Context, id, version int64, f cast.Fields) (cast.Cast, error)
	Delete(ctx context.Context, id int64, version *int64) error
}

// Deps are the server's collaborators.
type Deps struct {
	Logger zerolog.Logger
	Store  Store
	// Auth checks the credentials of every write; nil refuses them all.
	Auth web.Authenticator
	// DocsAudience is the audience the docs page's token requests ask for (see handleDocs);
	// empty asks for none.
	DocsAudience string
	// Ready reports whether the service can take traffic: false while shutting down or when the
	// database does not answer.
	// With database false it leaves the database out (see web.HandleReady).
	Ready func(ctx context.Context, database bool) error
	// RequestTimeout bounds each request: past it, what the request waits for (the database) is
	// given up and the request is answered 503. Zero means no bound.
	RequestTimeout time.Duration
	// TracerProvider, MeterProvider and Propagator are the service's telemetry (see package
	// telemetry): the requests' spans, their durations, and the trace context taken from callers.
	// Nil means none.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	// Metrics serves the service's metrics at GET /metrics; nil serves none.
	Metrics http.Handler
}

// NewServer returns the service's whole HTTP handler.
func NewServer(d Deps) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, d.Store, d.Auth, d.Ready, newValidator(), d.DocsAudience, d.Metrics)
	// The deadline is set outside the access log, which must see the request the mux records the
	// matched pattern on. The span is outermost: it times the whole request.
	h := web.WithTimeout(d.RequestTimeout, web.WithAccessLog(d.Logger, web.WithProblemForUnrouted(mux)))
	return web.WithTracing(d.TracerProvider, d.MeterProvider, d.Propagator, h)
}

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(web.JSONFieldName)
	v.RegisterValidation("nonul", noNUL) //nolint:errcheck // fails only on an empty tag name
	return v
}
