package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/casts/internal/web"
)

// Traefik's errors middleware fetches these pages to answer its own errors as problem+json.
func TestGatewayProblemPages(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle("GET /problems/{status}", web.HandleGatewayProblem())
	tests := []struct {
		path string
		want web.Problem
	}{
		{"/problems/413?url=http%3A%2F%2Flocalhost%3A8080%2Fapi%2Fv1%2Fcasts%3Fx%3D1", web.Problem{Status: 413, Detail: "body must not be larger than 1048576 bytes", Instance: "/api/v1/casts"}},
		{"/problems/404?url=http%3A%2F%2Flocalhost%3A8080%2Fnope", web.Problem{Status: 404, Detail: "no resource at this address; the API is under /api/v1/movies and /api/v1/casts", Instance: "/nope"}},
		{"/problems/429", web.Problem{Status: 429, Detail: "too many requests from this address; slow down and retry later", Instance: "/problems/429"}},
		{"/problems/200", web.Problem{Status: 404, Detail: "no resource at /problems/200", Instance: "/problems/200"}},
		{"/problems/x", web.Problem{Status: 404, Detail: "no resource at /problems/x", Instance: "/problems/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
			want := tt.want
			want.Type, want.Title = "about:blank", http.StatusText(want.Status)
			var got web.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("GET %s: %q: %v", tt.path, w.Body, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("GET %s (-want +got):\n%s", tt.path, diff)
			}
			if w.Code != want.Status || w.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("GET %s: %d %s", tt.path, w.Code, w.Header().Get("Content-Type"))
			}
		})
	}
}
