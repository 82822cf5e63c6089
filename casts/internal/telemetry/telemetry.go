// Package telemetry sets up the service's traces and metrics from the standard OTEL_ variables:
// spans go over OTLP/HTTP to the collector they name (none are made when they name none), and
// metrics are always kept, for the Prometheus text format at /metrics.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprometheus "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// exportTimeout bounds one export of spans. The exporter does not retry: a collector that does not
// answer costs one batch of spans (counted and logged), never a request's time.
const exportTimeout = 5 * time.Second

// Telemetry is the service's tracer and meter providers, and how trace context travels between
// services.
type Telemetry struct {
	settings       settings
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     propagation.TextMapPropagator
	metrics        http.Handler
	// shutdown flushes and stops the providers, the tracer's first: its last export counts on the meter.
	shutdown []func(context.Context) error
}

// Setup reads the OTEL_ variables through getenv and returns the service's telemetry; service
// names the service where OTEL_SERVICE_NAME does not. The error says every bad variable. logger
// gets the exporter's complaints (at most one line a minute).
//
// Without OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or with
// OTEL_SDK_DISABLED=true, no span is recorded (the tracer provider is a no-op) but the callers'
// trace context is still handed on. Metrics do not depend on either.
func Setup(ctx context.Context, service string, getenv func(string) string, logger zerolog.Logger) (*Telemetry, error) {
	s, err := parseSettings(service, getenv)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(semconv.ServiceName(s.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: describe the service: %w", err)
	}
	t := &Telemetry{settings: s, propagator: s.propagator(), tracerProvider: noop.NewTracerProvider()}

	// A registry of the service's own: the global one would collect whatever a library registers.
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exporter, err := otelprometheus.New(otelprometheus.WithRegisterer(registry), otelprometheus.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: metrics exporter: %w", err)
	}
	// No exemplars: the Prometheus text format has none, and the exporter would complain on every
	// scrape that those of the request durations (which keep every attribute) are too long.
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(exporter), sdkmetric.WithView(views()...),
		sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	t.meterProvider, t.metrics = mp, promhttp.HandlerFor(registry, promhttp.HandlerOpts{})

	if s.Disabled || s.TracesEndpoint == "" {
		t.shutdown = []func(context.Context) error{mp.Shutdown}
		return t, nil
	}
	otlp, err := otlptracehttp.New(ctx,
		otlptracehttp.WithEndpointURL(s.TracesEndpoint),
		otlptracehttp.WithTimeout(exportTimeout),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: span exporter: %w", err)
	}
	counted, err := newCountingExporter(otlp, mp.Meter(scope), logger)
	if err != nil {
		return nil, err
	}
	// The batch processor's queue is bounded (OTEL_BSP_MAX_QUEUE_SIZE, 2048 by default): spans
	// beyond it are dropped rather than held.
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSampler(s.sampler()), sdktrace.WithBatcher(counted))
	t.tracerProvider = tp
	t.shutdown = []func(context.Context) error{tp.Shutdown, mp.Shutdown}
	return t, nil
}

// scope names this package's instruments.
const scope = "github.com/movies-microservices/casts/internal/telemetry"

// views keep the metrics' series few. The server's request durations keep only the attributes of
// bounded values: server.address is the client's Host header, and the port, scheme and protocol
// say nothing about the service. Request and response sizes are left out.
func views() []sdkmetric.View {
	return []sdkmetric.View{
		sdkmetric.NewView(sdkmetric.Instrument{Name: "http.server.request.duration"}, sdkmetric.Stream{
			AttributeFilter: attribute.NewAllowKeysFilter(semconv.HTTPRequestMethodKey, semconv.HTTPRouteKey, semconv.HTTPResponseStatusCodeKey, semconv.ErrorTypeKey),
		}),
		sdkmetric.NewView(sdkmetric.Instrument{Name: "http.*.body.size"}, sdkmetric.Stream{Aggregation: sdkmetric.AggregationDrop{}}),
	}
}

// OrNoop returns tp, mp and prop, each nil one replaced by one that does nothing: the components
// that take them (the HTTP server, the clients of the other service) work without telemetry too,
// as their tests build them.
func OrNoop(tp trace.TracerProvider, mp metric.MeterProvider, prop propagation.TextMapPropagator) (trace.TracerProvider, metric.MeterProvider, propagation.TextMapPropagator) {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator()
	}
	return tp, mp, prop
}

// TracerProvider makes the service's spans: a no-op one when traces are not exported.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tracerProvider }

// MeterProvider makes the service's instruments, collected by MetricsHandler.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.meterProvider }

// Propagator reads trace context from requests and writes it into them (OTEL_PROPAGATORS).
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.propagator }

// MetricsHandler serves the service's metrics in the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler { return t.metrics }

// Traces says where spans are exported, such as http://jaeger:4318/v1/traces (without
// credentials), or why they are not.
func (t *Telemetry) Traces() string {
	switch {
	case t.settings.Disabled:
		return "off (OTEL_SDK_DISABLED=true)"
	case t.settings.TracesEndpoint == "":
		return "off (no OTEL_EXPORTER_OTLP_ENDPOINT)"
	}
	return withoutCredentials(t.settings.TracesEndpoint)
}

// Sampler names the sampler, such as parentbased_traceidratio(0.25).
func (t *Telemetry) Sampler() string {
	if strings.HasSuffix(t.settings.Sampler, "traceidratio") {
		return t.settings.Sampler + "(" + strconv.FormatFloat(t.settings.SamplerRatio, 'g', -1, 64) + ")"
	}
	return t.settings.Sampler
}

// Shutdown exports the spans not yet exported, within ctx, and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, shutdown := range t.shutdown {
		if err := shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("telemetry: shut down: %w", err)
	}
	return nil
}

// settings are what the OTEL_ variables say.
type settings struct {
	ServiceName string
	// Disabled is OTEL_SDK_DISABLED=true: no spans, whatever the endpoint.
	Disabled bool
	// TracesEndpoint is the URL spans are POSTed to; empty exports none.
	TracesEndpoint string
	// Sampler is one of the names of OTEL_TRACES_SAMPLER; SamplerRatio is the ratio of the
	// traceidratio ones.
	Sampler      string
	SamplerRatio float64
	// Propagators are those of OTEL_PROPAGATORS, in order; none is empty.
	Propagators []string
}

const (
	defaultSampler     = "parentbased_always_on"
	defaultPropagators = "tracecontext,baggage"
)

var samplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// CheckEnv reports every bad OTEL_ variable, as Setup would, so that a service can say them with
// its other configuration errors, all at once.
func CheckEnv(getenv func(string) string) error {
	_, err := parseSettings("", getenv)
	return err
}

// parseSettings reads the OTEL_ variables and reports every bad one at once.
func parseSettings(service string, getenv func(string) string) (settings, error) {
	s := settings{ServiceName: service, Sampler: defaultSampler, SamplerRatio: 1}
	var errs []error

	switch v := getenv("OTEL_SDK_DISABLED"); strings.ToLower(v) {
	case "", "false":
	case "true":
		s.Disabled = true
	default:
		errs = append(errs, fmt.Errorf("OTEL_SDK_DISABLED: %q is neither true nor false", v))
	}
	if v := getenv("OTEL_SERVICE_NAME"); v != "" {
		s.ServiceName = v
	}

	// The signal's own endpoint is used as it is; the base endpoint gets the signal's path.
	if v := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
		if _, err := parseEndpoint(v); err != nil {
			errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: %w (example http://jaeger:4318/v1/traces)", err))
		}
		s.TracesEndpoint = v
	} else if v := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
		u, err := parseEndpoint(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w (example http://jaeger:4318)", err))
		} else {
			s.TracesEndpoint = u.JoinPath("v1", "traces").String()
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if v := getenv(name); v != "" && v != "http/protobuf" {
			errs = append(errs, fmt.Errorf("%s: %q is not supported: the only protocol is http/protobuf (OTLP over HTTP, port 4318)", name, v))
		}
	}

	if v := getenv("OTEL_TRACES_SAMPLER"); v != "" {
		if !slices.Contains(samplers, v) {
			errs = append(errs, fmt.Errorf("OTEL_TRACES_SAMPLER: %q is not one of %s", v, strings.Join(samplers, ", ")))
		}
		s.Sampler = v
	}
	if v := getenv("OTEL_TRACES_SAMPLER_ARG"); v != "" && strings.HasSuffix(s.Sampler, "traceidratio") {
		ratio, err := strconv.ParseFloat(v, 64)
		if err != nil || !(ratio >= 0 && ratio <= 1) {
			errs = append(errs, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio from 0 to 1 (example 0.25)", v))
		}
		s.SamplerRatio = ratio
	}

	propagators := getenv("OTEL_PROPAGATORS")
	if propagators == "" {
		propagators = defaultPropagators
	}
	none := false
	for p := range strings.SplitSeq(propagators, ",") {
		switch p = strings.TrimSpace(p); p {
		case "":
		case "none":
			none = true
		case "tracecontext", "baggage":
			if !slices.Contains(s.Propagators, p) {
				s.Propagators = append(s.Propagators, p)
			}
		default:
			errs = append(errs, fmt.Errorf("OTEL_PROPAGATORS: %q is not one of tracecontext, baggage, none", p))
		}
	}
	if none && len(s.Propagators) > 0 {
		errs = append(errs, errors.New("OTEL_PROPAGATORS: none goes alone"))
	}

	return s, errors.Join(errs...)
}

// parseEndpoint checks that v is an absolute http(s) URL. The error does not quote v: it may
// carry credentials.
func parseEndpoint(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("not an absolute http:// or https:// URL")
	}
	return u, nil
}

// withoutCredentials is endpoint without its user info and query, for the log.
func withoutCredentials(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func (s settings) sampler() sdktrace.Sampler {
	switch s.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(s.SamplerRatio)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(s.SamplerRatio))
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample())
}

func (s settings) propagator() propagation.TextMapPropagator {
	var ps []propagation.TextMapPropagator
	for _, p := range s.Propagators {
		switch p {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
		}
	}
	return propagation.NewCompositeTextMapPropagator(ps...)
}
