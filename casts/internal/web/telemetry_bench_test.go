package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/movies-microservices/casts/internal/telemetry"
	"github.com/rs/zerolog"
)

// BenchmarkRequestTelemetry is what the server's telemetry costs per request, in-process: the
// access log and the mux alone ("none"), then under otelhttp with every provider a no-op
// ("noop"), with the metrics but no tracing (no OTEL_EXPORTER_OTLP_ENDPOINT, as without a
// collector: "metrics"). The request carries a caller's traceparent, as through Traefik.
//
//	go test -run '^$' -bench RequestTelemetry ./casts/internal/web/
func BenchmarkRequestTelemetry(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/casts/{id}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"id":1}`)) }) //nolint:errcheck // a recorder
	inner := WithAccessLog(zerolog.Nop(), WithProblemForUnrouted(mux))
	tel, err := telemetry.Setup(context.Background(), "casts", func(string) string { return "" }, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		h    http.Handler
	}{
		{"none", inner},
		{"noop", WithTracing(nil, nil, nil, inner)},
		{"metrics", WithTracing(tel.TracerProvider(), tel.MeterProvider(), tel.Propagator(), inner)},
	} {
		b.Run(v.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/casts/1", nil)
			req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
			b.ReportAllocs()
			for b.Loop() {
				v.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
