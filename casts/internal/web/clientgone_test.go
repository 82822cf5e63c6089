package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/casts/internal/web"
	"github.com/rs/zerolog"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// wireProbe records whether anything reached net/http's writer, that is the client.
type wireProbe struct {
	http.ResponseWriter
	wrote *bool
}

func (p wireProbe) WriteHeader(status int) { *p.wrote = true; p.ResponseWriter.WriteHeader(status) }
func (p wireProbe) Write(b []byte) (int, error) {
	*p.wrote = true
	return p.ResponseWriter.Write(b)
}

// A request whose client goes away while the service waits for the database is the client's
// cancellation, 499 in the access log and in its duration's status label, and nothing is
// written to the client; one that the service's own deadline ends is still its 503.
func TestClientGone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		timeout      time.Duration // the service's RequestTimeout
		clientCancel bool
		want         int
		wantWritten  bool
	}{
		{name: "client cancels", timeout: time.Minute, clientCancel: true, want: web.StatusClientClosedRequest},
		{name: "request timeout", timeout: 50 * time.Millisecond, want: http.StatusServiceUnavailable, wantWritten: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			var logs bytes.Buffer
			started := make(chan struct{})
			mux := http.NewServeMux()
			// As a handler whose query is given up with the request's context.
			mux.HandleFunc("GET /api/v1/casts/{id}", func(w http.ResponseWriter, r *http.Request) {
				close(started)
				<-r.Context().Done()
				web.RespondError(w, r, fmt.Errorf("query: %w", r.Context().Err()))
			})
			h := web.WithTracing(nil, mp, nil, web.WithTimeout(tc.timeout, web.WithAccessLog(zerolog.New(&logs), web.WithProblemForUnrouted(mux))))

			var (
				done    sync.WaitGroup
				written bool
			)
			done.Add(1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer done.Done() // also when the request is aborted (a panic net/http recovers)
				h.ServeHTTP(wireProbe{ResponseWriter: w, wrote: &written}, r)
			}))
			defer srv.Close()

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/casts/1", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.clientCancel {
				go func() {
					<-started
					cancel()
				}()
			}
			resp, err := srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done.Wait()

			var statuses []int64
			dec := json.NewDecoder(&logs)
			for dec.More() {
				var line struct {
					Message string
					Status  int64
				}
				if err := dec.Decode(&line); err != nil {
					t.Fatal(err)
				}
				if line.Message == "request" {
					statuses = append(statuses, line.Status)
				}
			}
			if diff := cmp.Diff([]int64{int64(tc.want)}, statuses); diff != "" {
				t.Errorf("statuses in the access log (-want +got):\n%s", diff)
			}
			if written != tc.wantWritten {
				t.Errorf("something written to the client: %v, want %v", written, tc.wantWritten)
			}

			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			statuses = nil
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != "http.server.request.duration" {
						continue
					}
					for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
						v, _ := dp.Attributes.Value(semconv.HTTPResponseStatusCodeKey)
						statuses = append(statuses, v.AsInt64())
					}
				}
			}
			if diff := cmp.Diff([]int64{int64(tc.want)}, statuses); diff != "" {
				t.Errorf("status labels of http.server.request.duration (-want +got):\n%s", diff)
			}
		})
	}
}
