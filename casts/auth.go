package main

import (
	"context"
	"time"

	"github.com/movies-microservices/casts/internal/auth"
	"github.com/movies-microservices/casts/internal/web"
	"github.com/rs/zerolog"
)

// newAuthenticator returns what checks the access tokens of writes. It fetches the identity
// provider's keys once now, but starts without them: until they can be fetched, writes are
// refused and reads still served, and it tries again every auth.MinRefreshInterval until it has
// them (or ctx ends), so that a provider slow at start (Hydra makes its first key on the first
// request for its key set) costs no write later, even one made while the provider is down.
func newAuthenticator(ctx context.Context, cfg Config, logger zerolog.Logger) web.Authenticator {
	if !cfg.AuthVerify {
		logger.Warn().Msg("CASTS_AUTH_VERIFY=off: writes are NOT authenticated, anyone may write; for benchmarks only")
		return auth.Unverified{}
	}
	v := auth.NewVerifier(auth.Config{Issuer: cfg.AuthIssuer, JWKSURL: cfg.AuthJWKSURL, Audience: cfg.AuthAudience, Logger: logger})
	if err := v.Refresh(ctx); err != nil {
		logger.Warn().Err(err).Msg("auth: cannot fetch the identity provider's keys yet; writes are refused until they can be fetched")
		go fetchKeysUntilDone(ctx, v, logger)
	}
	return v
}

// fetchKeysUntilDone refreshes v's keys every auth.MinRefreshInterval until one fetch succeeds or
// ctx ends.
func fetchKeysUntilDone(ctx context.Context, v *auth.Verifier, logger zerolog.Logger) {
	tick := time.NewTicker(auth.MinRefreshInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if v.Refresh(ctx) == nil {
			logger.Info().Msg("auth: the identity provider's keys are fetched")
			return
		}
	}
}
