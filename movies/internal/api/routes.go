package api

import (
	"context"
	"net/http"

	"github.com/go-playground/validator/v10"
	"github.com/movies-microservices/movies/internal/web"
)

// addRoutes lists every endpoint. Each collection and item path is registered with and without a
// trailing slash ({$} matches only the slash), so neither form redirects. Reads are public; every
// write needs a token that grants movies:write, and the cast service's events movies:events.
func addRoutes(mux *http.ServeMux, store Store, casts Casts, auth web.Authenticator, ready func(context.Context, bool) error, v *validator.Validate, docsAudience string, metrics http.Handler) {
	mux.Handle("GET /livez", web.HandleLive())
	mux.Handle("GET /readyz", web.HandleReady(ready))
	mux.Handle("GET /problems/{status}", web.HandleGatewayProblem())
	// On the service's own port only: Traefik routes nothing but /api/v1/ and /internal/v1/.
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}

	mux.Handle("GET /api/v1/movies/openapi.json", handleOpenAPI())
	docs := handleDocs(docsAudience)
	mux.Handle("GET /api/v1/movies/docs", docs)
	mux.Handle("GET /api/v1/movies/docs/{$}", docs)
	mux.Handle("GET /api/v1/movies/docs/{asset}", docs)

	for _, base := range []string{"/api/v1/movies", "/api/v1/movies/{$}"} {
		mux.Handle("GET "+base, handleMovieList(store, casts))
		mux.Handle("POST "+base, web.RequireScope(auth, "movies:write", handleMovieCreate(store, casts, v)))
	}
	for _, item := range []string{"/api/v1/movies/{id}", "/api/v1/movies/{id}/{$}"} {
		mux.Handle("GET "+item, handleMovieGet(store, casts))
		mux.Handle("PUT "+item, web.RequireScope(auth, "movies:write", handleMovieReplace(store, casts, v)))
		mux.Handle("PATCH "+item, web.RequireScope(auth, "movies:write", handleMoviePatch(store, casts, v)))
		mux.Handle("DELETE "+item, web.RequireScope(auth, "movies:write", handleMovieDelete(store)))
	}

	// Events of the cast service's outbox. Traefik routes this path on the mesh entrypoint only:
	// through the public entrypoint it does not exist. Its scope is the cast service relay's own.
	for _, path := range []string{"/internal/v1/movies/events", "/internal/v1/movies/events/{$}"} {
		mux.Handle("POST "+path, web.RequireScope(auth, "movies:events", handleEventReceive(store, v)))
	}
}
