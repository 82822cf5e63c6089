package api

import (
	"context"
	"net/http"

	"github.com/go-playground/validator/v10"
	"github.com/movies-microservices/casts/internal/web"
)

// addRoutes lists every endpoint. Each collection and item path is registered with and without a
// trailing slash ({$} matches only the slash), so neither form redirects. Reads are public; every
// write needs a token that grants casts:write.
func addRoutes(mux *http.ServeMux, store Store, auth web.Authenticator, ready func(context.Context, bool) error, v *validator.Validate, docsAudience string, metrics http.Handler) {
	mux.Handle("GET /livez", web.HandleLive())
	mux.Handle("GET /readyz", web.HandleReady(ready))
	mux.Handle("GET /problems/{status}", web.HandleGatewayProblem())
	// On the service's own port only: Traefik routes nothing but /api/v1/ and /internal/v1/.
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}

	mux.Handle("GET /api/v1/casts/openapi.json", handleOpenAPI())
	docs := handleDocs(docsAudience)
	mux.Handle("GET /api/v1/casts/docs", docs)
	mux.Handle("GET /api/v1/casts/docs/{$}", docs)
	mux.Handle("GET /api/v1/casts/docs/{asset}", docs)

	for _, base := range []string{"/api/v1/casts", "/api/v1/casts/{$}"} {
		mux.Handle("GET "+base, handleCastList(store))
		mux.Handle("POST "+base, web.RequireScope(auth, "casts:write", handleCastCreate(store, v)))
	}
	for _, item := range []string{"/api/v1/casts/{id}", "/api/v1/casts/{id}/{$}"} {
		mux.Handle("GET "+item, handleCastGet(store))
		mux.Handle("PUT "+item, web.RequireScope(auth, "casts:write", handleCastReplace(store, v)))
		mux.Handle("PATCH "+item, web.RequireScope(auth, "casts:write", handleCastPatch(store, v)))
		mux.Handle("DELETE "+item, web.RequireScope(auth, "casts:write", handleCastDelete(store)))
	}
}
