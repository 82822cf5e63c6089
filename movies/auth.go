package main

import (
	"context"

	"github.com/movies-microservices/movies/internal/api"
	"github.com/movies-microservices/movies/internal/auth"
	"github.com/rs/zerolog"
)

// newAuthenticator returns what checks the access tokens of writes. It fetches the identity
// provider's keys once now, but starts without them: until they can be fetched, writes are
// refused and reads still served.
func newAuthenticator(ctx context.Context, cfg Config, logger zerolog.Logger) api.Authenticator {
	if !cfg.AuthVerify {
		logger.Warn().Msg("MOVIES_AUTH_VERIFY=off: writes are NOT authenticated, anyone may write; for benchmarks only")
		return auth.Unverified{}
	}
	v := auth.NewVerifier(auth.Config{Issuer: cfg.AuthIssuer, JWKSURL: cfg.AuthJWKSURL, Audience: cfg.AuthAudience, Logger: logger})
	if err := v.Refresh(ctx); err != nil {
		logger.Warn().Err(err).Msg("auth: cannot fetch the identity provider's keys yet; writes are refused until they can be fetched")
	}
	return v
}
