package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/casts/internal/api"
	"github.com/rs/zerolog"
)

// Traefik's errors middleware fetches these pages to answer its own errors as problem+json.
func TestGatewayProblemPages(t *testing.T) {
	t.Parallel()
	h := api.NewServer(api.Deps{Logger: zerolog.Nop(), Ready: func(context.Context, bool) error { return nil }})
	tests := []struct {
		path string
		want problemJSON
	}{
		{"/problems/413?url=http%3A%2F%2Flocalhost%3A8080%2Fapi%2Fv1%2Fcasts%3Fx%3D1", problemJSON{Status: 413, Detail: "body must not be larger than 1048576 bytes", Instance: "/api/v1/casts"}},
		{"/problems/404?url=http%3A%2F%2Flocalhost%3A8080%2Fnope", problemJSON{Status: 404, Detail: "no resource at this address; the API is under /api/v1/movies and /api/v1/casts", Instance: "/nope"}},
		{"/problems/429", problemJSON{Status: 429, Detail: "too many requests from this address; slow down and retry later", Instance: "/problems/429"}},
		{"/problems/200", problemJSON{Status: 404, Detail: "no resource at /problems/200", Instance: "/problems/200"}},
		{"/problems/x", problemJSON{Status: 404, Detail: "no resource at /problems/x", Instance: "/problems/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			resp := do(t, h, request{method: "GET", path: tt.path})
			want := tt.want
			want.Type, want.Title = "about:blank", http.StatusText(want.Status)
			if diff := cmp.Diff(want, decode[problemJSON](t, resp)); diff != "" {
				t.Errorf("GET %s (-want +got):\n%s", tt.path, diff)
			}
			if resp.StatusCode != want.Status || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("GET %s: %d %s", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		})
	}
}
