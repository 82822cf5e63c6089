// Package api is the HTTP interface of the movie service: its routes, handlers and OpenAPI
// document. The plumbing they stand on, the same in both services, is package web.
package api

import (
	"context"
	"net/http"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/movies-microservices/movies/internal/castsclient"
	"github.com/movies-microservices/movies/internal/idempotency"
	"github.com/movies-microservices/movies/internal/movie"
	"github.com/movies-microservices/movies/internal/web"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Store is what the handlers need from the movie store.
type Store interface {
	Create(ctx context.Context, f movie.Fields) (movie.Movie, error)
	Get(ctx context.Context, id int64) (movie.Movie, error)
	List(ctx context.Context, p movie.ListParams) ([]movie.Movie, error)
	CreateOnce(ctx context.Context, f movie.Fields, key idempotency.Key, respond func(movie.Movie) (idempotency.Response, error)) (idempotency.Response, bool, error)
	FindResponse(ctx context.Context, key idempotency.Key) (idempotency.Response, bool, error)
	Update(ctx context.Context, id, version int64, f movie.Fields) (movie.Movie, error)
	Delete(ctx context.Context, id int64, version *int64) error
	ApplyCastDeleted(ctx context.Context, e movie.CastDeleted) (movie.Applied, error)
}

// Casts is what the handlers need from the cast service.
type Casts interface {
	// Missing returns the ids among ids that name no cast, in ascending order. An error means the
	// cast service could not be asked or gave no clear answer.
	Missing(ctx context.Context, ids []int64) ([]int64, error)
	// Lookup returns the casts that ids name, each once; ids that name no cast are left out. An
	// error means the cast service could not be asked or gave no clear answer.
	Lookup(ctx context.Context, ids []int64) ([]castsclient.Cast, error)
}

// Deps are the server's collaborators.
type Deps struct {
	Logger zerolog.Logger
	Store  Store
	Casts  Casts
	// Auth checks the credentials of every write; nil refuses them all.
	Auth web.Authenticator
	// DocsAudience is the audience the docs page's token requests ask for (see handleDocs);
	// empty asks for none.
	DocsAudience string
	// Ready reports whether the service can take traffic: false while shutting down or when the
	// database does not answer. The cast service is not part of it: reads still work without it.
	// With database false it leaves the database out (see web.HandleReady).
	Ready func(ctx context.Context, database bool) error
	// RequestTimeout bounds each request: past it, what the request waits for (the database, the
	// cast service) is given up and the request is answered 503. Zero means no bound.
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
	addRoutes(mux, d.Store, d.Casts, d.Auth, d.Ready, newValidator(), d.DocsAudience, d.Metrics)
	// The deadline is set outside the access log, which must see the request the mux records the
	// matched pattern on. The span is outermost: it times the whole request.
	h := web.WithTimeout(d.RequestTimeout, web.WithAccessLog(d.Logger, web.WithProblemForUnrouted(mux)))
	return web.WithTracing(d.TracerProvider, d.MeterProvider, d.Propagator, h)
}

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(web.JSONFieldName)
	v.RegisterValidation("nonul", noNUL)           //nolint:errcheck // fails only on an empty tag name
	v.RegisterValidation("uniquefold", uniqueFold) //nolint:errcheck // fails only on an empty tag name
	return v
}
