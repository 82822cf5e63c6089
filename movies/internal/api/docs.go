package api

import (
	_ "embed"
	"encoding/json"
	"net/http"

	"github.com/swaggest/swgui"
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

// handleDocs serves Swagger UI with its assets embedded in the binary: no CDN. Its Authorize
// dialog takes a bearer token, or gets one with the client credentials flow from the document's
// token URL; the provider issues tokens for the audience a client asks for, and Swagger UI's form
// asks for none, so its token requests get audience (when not empty) added.
func handleDocs(audience string) http.Handler {
	cfg := swgui.Config{Title: "Movies API", SwaggerJSON: "/api/v1/movies/openapi.json", BasePath: "/api/v1/movies/docs/"}
	if audience != "" {
		quoted, _ := json.Marshal(audience) //nolint:errcheck // a string always marshals; < > & come out escaped
		cfg.SettingsUI = map[string]string{"requestInterceptor": `(request) => {
			if (/\/oauth2\/token$/.test(new URL(request.url, location.href).pathname) && typeof request.body === "string" &&
				!/(^|&)audience=/.test(request.body)) {
				request.body += "&audience=" + encodeURIComponent(` + string(quoted) + `);
			}
			return request;
		}`}
	}
	return v5emb.NewHandlerWithConfig(cfg)
}
