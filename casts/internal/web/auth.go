package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/movies-microservices/casts/internal/auth"
	"github.com/rs/zerolog"
)

// Authenticator checks the credentials of the requests that write (see auth.Verifier).
type Authenticator interface {
	Authenticate(ctx context.Context, h http.Header) (auth.Claims, error)
}

// authRealm names the service in its challenges (RFC 6750).
const authRealm = "casts"

// RequireScope lets a request through to next only if it carries a valid bearer token that grants
// scope. It runs before next reads anything, so a refused request writes nothing. The token's
// client goes into the access log line.
func RequireScope(a Authenticator, scope string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := authenticate(r, a)
		var refused *auth.InvalidTokenError
		switch {
		case errors.Is(err, auth.ErrNoToken):
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+authRealm+`"`)
			WriteProblem(w, r, http.StatusUnauthorized, "this request needs a bearer access token with scope "+scope, nil)
			return
		case errors.As(err, &refused):
			// The reason only: jwx's error may quote parts of the token.
			zerolog.Ctx(r.Context()).Debug().Str("reason", refused.Description).Msg("access token refused")
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+authRealm+`", error="invalid_token", error_description="`+refused.Description+`"`)
			WriteProblem(w, r, http.StatusUnauthorized, refused.Description, nil)
			return
		case err != nil:
			RespondError(w, r, err)
			return
		}
		setClientID(r.Context(), claims.ClientID)
		if !claims.HasScope(scope) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+authRealm+`", error="insufficient_scope", scope="`+scope+`"`)
			WriteProblem(w, r, http.StatusForbidden, "the access token does not grant scope "+scope, nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authenticate asks a, which may be nil: then no request is let through.
func authenticate(r *http.Request, a Authenticator) (auth.Claims, error) {
	if a == nil {
		return auth.Claims{}, auth.ErrNoToken
	}
	return a.Authenticate(r.Context(), r.Header)
}
