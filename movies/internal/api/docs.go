package api

import (
	_ "embed"
	"net/http"

	"github.com/swaggest/swgui/v5emb"
)

// openAPI is the service's contract; e2e tests check every response against it.
//
//go:embed openapi.json
var openAPI []byte

func handleOpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI) //nolint:errcheck // the client has gone
	})
}

// docsHandler serves Swagger UI with its assets embedded in the binary: no CDN.
var docsHandler = v5emb.New("Movies API", "/api/v1/movies/openapi.json", "/api/v1/movies/docs/")

func handleDocs() http.Handler {
	return docsHandler
}
