package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
)

// defaultAddr is where the service listens when CASTS_ADDR is unset.
const defaultAddr = ":8001"

// Config is everything the service reads from its environment.
type Config struct {
	Addr string
	// DatabaseURL is CASTS_DATABASE_URL, with the password of its user set to the content of the
	// file CASTS_DATABASE_PASSWORD_FILE (a Docker secret) if that is set.
	DatabaseURL string
	// MoviesURL is the base URL where the movie service is reached: Traefik's mesh entrypoint.
	// The outbox relay delivers the cast service's events there (POST /internal/v1/movies/events).
	MoviesURL string
	// MoviesTimeout bounds one delivery of an event.
	MoviesTimeout time.Duration
	// OutboxMaxBackoff caps the wait between two attempts to deliver an event that keeps failing.
	OutboxMaxBackoff time.Duration
	LogLevel         zerolog.Level
	// RequestTimeout bounds every request: a request still waiting for the database when it
	// passes is answered 503.
	RequestTimeout time.Duration
	// ShutdownDelay is how long /readyz reports "not ready" before the server stops accepting
	// requests, so that a load balancer health-checking it has time to take it out of rotation.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds how long in-flight requests may take to finish on shutdown.
	ShutdownTimeout time.Duration
	// DebugAddr, if set, is where Go's profiles are served (see startDebug).
	DebugAddr string
	// AuthVerify is whether writes need a verified access token. Off is for benchmarks only.
	AuthVerify bool
	// AuthIssuer, AuthJWKSURL and AuthAudience say which access tokens are taken: those of the
	// identity provider AuthIssuer (exactly as its tokens' iss says it), signed by a key it
	// publishes at AuthJWKSURL, meant for AuthAudience.
	AuthIssuer   string
	AuthJWKSURL  string
	AuthAudience string
	// AuthTokenURL is the provider's token endpoint, where the outbox relay gets its own access
	// token (client credentials RelayClientID and RelayClientSecret, scope movies:events, audience
	// AuthAudience). Empty only with AuthVerify off: then the relay sends no token.
	AuthTokenURL  string
	RelayClientID string
	// RelayClientSecret is CASTS_RELAY_CLIENT_SECRET, or the content of the file
	// CASTS_RELAY_CLIENT_SECRET_FILE (a Docker secret).
	RelayClientSecret string
}

// loadConfig reads the configuration and reports every missing or bad variable at once.
func loadConfig(getenv func(string) string) (Config, error) {
	cfg := Config{
		Addr:             defaultAddr,
		MoviesTimeout:    5 * time.Second,
		OutboxMaxBackoff: 10 * time.Second,
		LogLevel:         zerolog.InfoLevel,
		RequestTimeout:   10 * time.Second,
		// No delay by default: how long a load balancer needs to notice depends on its health
		// check, so the deployment sets it (compose: 4s, for Traefik's 2s interval + 1s timeout).
		ShutdownDelay:   0,
		ShutdownTimeout: 15 * time.Second,
		AuthVerify:      true,
	}
	var errs []error

	if v := getenv("CASTS_ADDR"); v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			errs = append(errs, fmt.Errorf("CASTS_ADDR: %q is not host:port (example :8001)", v))
		}
		cfg.Addr = v
	}

	cfg.DatabaseURL = getenv("CASTS_DATABASE_URL")
	if path := getenv("CASTS_DATABASE_PASSWORD_FILE"); path != "" {
		password, readErr := readSecretFile("CASTS_DATABASE_PASSWORD_FILE", path)
		if readErr != nil {
			errs = append(errs, readErr)
		}
		// The URL is checked even when the file cannot be read, so that both are reported at
		// once; without a URL, it is reported as required below.
		if cfg.DatabaseURL != "" {
			if withPassword, err := setDatabasePassword(cfg.DatabaseURL, password); err != nil {
				errs = append(errs, err)
			} else if readErr == nil {
				cfg.DatabaseURL = withPassword
			}
		}
	}
	if cfg.DatabaseURL == "" {
		errs = append(errs, errors.New("CASTS_DATABASE_URL is required (example postgres://casts:secret@localhost:5432/casts)"))
	} else if _, err := pgxpool.ParseConfig(cfg.DatabaseURL); err != nil {
		// pgx redacts the password in its parse errors.
		errs = append(errs, fmt.Errorf("CASTS_DATABASE_URL: %w", err))
	}

	// Required, like the database: without it deleted casts would pile up in the outbox unnoticed.
	cfg.MoviesURL = getenv("CASTS_MOVIES_URL")
	if cfg.MoviesURL == "" {
		errs = append(errs, errors.New("CASTS_MOVIES_URL is required (example http://127.0.0.1:8082, Traefik's mesh entrypoint)"))
	} else if u, err := url.Parse(cfg.MoviesURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not quoted back: a URL may carry credentials.
		errs = append(errs, errors.New("CASTS_MOVIES_URL is not an absolute http:// or https:// URL (example http://127.0.0.1:8082)"))
	}

	errs = append(errs, loadAuthConfig(getenv, &cfg)...)

	if v := getenv("CASTS_DEBUG_ADDR"); v != "" {
		host, _, err := net.SplitHostPort(v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("CASTS_DEBUG_ADDR: %q is not host:port (example 127.0.0.1:6060)", v))
		case !isLoopback(host):
			errs = append(errs, fmt.Errorf("CASTS_DEBUG_ADDR: %q is not on a loopback address (127.0.0.1, ::1 or localhost): the profiles show the service's internals", v))
		}
		cfg.DebugAddr = v
	}

	if v := getenv("CASTS_LOG_LEVEL"); v != "" {
		level, err := zerolog.ParseLevel(v)
		if err != nil || level == zerolog.NoLevel {
			errs = append(errs, fmt.Errorf("CASTS_LOG_LEVEL: %q is not one of trace, debug, info, warn, error, fatal, panic, disabled", v))
		}
		cfg.LogLevel = level
	}

	for _, d := range []struct {
		name     string
		dst      *time.Duration
		positive bool
	}{
		{"CASTS_REQUEST_TIMEOUT", &cfg.RequestTimeout, true},
		{"CASTS_SHUTDOWN_DELAY", &cfg.ShutdownDelay, false},
		{"CASTS_SHUTDOWN_TIMEOUT", &cfg.ShutdownTimeout, false},
		{"CASTS_MOVIES_TIMEOUT", &cfg.MoviesTimeout, true},
		{"CASTS_OUTBOX_MAX_BACKOFF", &cfg.OutboxMaxBackoff, true},
	} {
		if v := getenv(d.name); v != "" {
			parsed, err := time.ParseDuration(v)
			switch {
			case err != nil || parsed < 0:
				errs = append(errs, fmt.Errorf("%s: %q is not a duration such as 5s", d.name, v))
			case d.positive && parsed == 0:
				errs = append(errs, fmt.Errorf("%s: must be more than 0 (example 5s)", d.name))
			}
			*d.dst = parsed
		}
	}

	return cfg, errors.Join(errs...)
}

// loadAuthConfig reads the CASTS_AUTH_ and CASTS_RELAY_ variables into cfg.
func loadAuthConfig(getenv func(string) string, cfg *Config) []error {
	var errs []error
	switch v := getenv("CASTS_AUTH_VERIFY"); v {
	case "", "on":
	case "off":
		cfg.AuthVerify = false
	default:
		errs = append(errs, fmt.Errorf("CASTS_AUTH_VERIFY: %q is neither on nor off (off is for benchmarks only)", v))
	}
	// Verifying needs the provider's coordinates; without verification they are optional.
	required := cfg.AuthVerify
	cfg.AuthIssuer = getenv("CASTS_AUTH_ISSUER")
	if cfg.AuthIssuer == "" && required {
		errs = append(errs, errors.New("CASTS_AUTH_ISSUER is required (example http://127.0.0.1:4444/, exactly as the tokens' iss says it)"))
	}
	cfg.AuthAudience = getenv("CASTS_AUTH_AUDIENCE")
	if cfg.AuthAudience == "" && required {
		errs = append(errs, errors.New("CASTS_AUTH_AUDIENCE is required (example movies-microservices)"))
	}
	for _, u := range []struct {
		name, example string
		dst           *string
		required      bool
	}{
		{"CASTS_AUTH_JWKS_URL", "http://127.0.0.1:4444/.well-known/jwks.json", &cfg.AuthJWKSURL, required},
		{"CASTS_AUTH_TOKEN_URL", "http://127.0.0.1:4444/oauth2/token", &cfg.AuthTokenURL, required},
	} {
		*u.dst = getenv(u.name)
		if err := checkURL(u.name, *u.dst, u.example, u.required); err != nil {
			errs = append(errs, err)
		}
	}

	// The relay's credentials come with the token endpoint, and without it they would go unused.
	// The secret is never quoted back.
	cfg.RelayClientID = getenv("CASTS_RELAY_CLIENT_ID")
	cfg.RelayClientSecret = getenv("CASTS_RELAY_CLIENT_SECRET")
	secretFile := getenv("CASTS_RELAY_CLIENT_SECRET_FILE")
	if secretFile != "" {
		if cfg.RelayClientSecret != "" {
			errs = append(errs, errors.New("set CASTS_RELAY_CLIENT_SECRET or CASTS_RELAY_CLIENT_SECRET_FILE, not both"))
		} else if secret, err := readSecretFile("CASTS_RELAY_CLIENT_SECRET_FILE", secretFile); err != nil {
			errs = append(errs, err)
		} else {
			cfg.RelayClientSecret = secret
		}
	}
	// A file that cannot be read is reported above, not again as a missing secret.
	secretGiven := cfg.RelayClientSecret != "" || secretFile != ""
	if required || cfg.AuthTokenURL != "" || cfg.RelayClientID != "" || secretGiven {
		const why = "with CASTS_AUTH_TOKEN_URL: the outbox relay's credentials"
		if cfg.AuthTokenURL == "" && !required {
			errs = append(errs, errors.New("CASTS_AUTH_TOKEN_URL is required with CASTS_RELAY_CLIENT_ID and CASTS_RELAY_CLIENT_SECRET"))
		}
		if cfg.RelayClientID == "" {
			errs = append(errs, errors.New("CASTS_RELAY_CLIENT_ID is required "+why))
		}
		if !secretGiven {
			errs = append(errs, errors.New("CASTS_RELAY_CLIENT_SECRET (or CASTS_RELAY_CLIENT_SECRET_FILE) is required "+why))
		}
	}
	return errs
}

// checkURL checks that the variable name holds an absolute http(s) URL, if required or set.
func checkURL(name, v, example string, required bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("%s is required (example %s)", name, example)
		}
		return nil
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not quoted back: a URL may carry credentials.
		return fmt.Errorf("%s is not an absolute http:// or https:// URL (example %s)", name, example)
	}
	return nil
}

// isLoopback reports whether host names this machine only.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
