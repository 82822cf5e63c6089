package api

import (
	"context"
	"net/http"

	"github.com/go-playground/validator/v10"
)

// addRoutes lists every endpoint. Each collection and item path is registered with and without a
// trailing slash ({$} matches only the slash), so neither form redirects.
func addRoutes(mux *http.ServeMux, store Store, casts CastChecker, ready func(context.Context) error, v *validator.Validate) {
	mux.Handle("GET /livez", handleLive())
	mux.Handle("GET /readyz", handleReady(ready))

	mux.Handle("GET /api/v1/movies/openapi.json", handleOpenAPI())
	mux.Handle("GET /api/v1/movies/docs", handleDocs())
	mux.Handle("GET /api/v1/movies/docs/{$}", handleDocs())
	mux.Handle("GET /api/v1/movies/docs/{asset}", handleDocs())

	for _, base := range []string{"/api/v1/movies", "/api/v1/movies/{$}"} {
		mux.Handle("GET "+base, handleMovieList(store))
		mux.Handle("POST "+base, handleMovieCreate(store, casts, v))
	}
	for _, item := range []string{"/api/v1/movies/{id}", "/api/v1/movies/{id}/{$}"} {
		mux.Handle("GET "+item, handleMovieGet(store))
		mux.Handle("PUT "+item, handleMovieReplace(store, casts, v))
		mux.Handle("PATCH "+item, handleMoviePatch(store, casts, v))
		mux.Handle("DELETE "+item, handleMovieDelete(store))
	}
}
