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

// defaultAddr is where the service listens when MOVIES_ADDR is unset.
const defaultAddr = ":8000"

// Config is everything the service reads from its environment.
type Config struct {
	Addr string
	// DatabaseURL is MOVIES_DATABASE_URL, with the password of its user set to the content of the
	// file MOVIES_DATABASE_PASSWORD_FILE (a Docker secret) if that is set.
	DatabaseURL string
	// CastsURL is the base URL where the cast API is reached: Traefik's mesh entrypoint, so that
	// calls between the services get its retry and circuit breaker.
	CastsURL string
	// CastsTimeout bounds one attempt of a cast check; an attempt that times out is made once
	// more (castsclient), and past the second the write is answered 503.
	CastsTimeout time.Duration
	LogLevel     zerolog.Level
	// RequestTimeout bounds every request: a request still waiting for the database (or the cast
	// service) when it passes is answered 503.
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
}

// loadConfig reads the configuration and reports every missing or bad variable at once.
func loadConfig(getenv func(string) string) (Config, error) {
	cfg := Config{
		Addr:           defaultAddr,
		CastsTimeout:   2 * time.Second,
		LogLevel:       zerolog.InfoLevel,
		RequestTimeout: 10 * time.Second,
		// No delay by default: how long a load balancer needs to notice depends on its health
		// check, so the deployment sets it (compose: 4s, for Traefik's 2s interval + 1s timeout).
		ShutdownDelay:   0,
		ShutdownTimeout: 15 * time.Second,
		AuthVerify:      true,
	}
	var errs []error

	if v := getenv("MOVIES_ADDR"); v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			errs = append(errs, fmt.Errorf("MOVIES_ADDR: %q is not host:port (example :8000)", v))
		}
		cfg.Addr = v
	}

	cfg.DatabaseURL = getenv("MOVIES_DATABASE_URL")
	if path := getenv("MOVIES_DATABASE_PASSWORD_FILE"); path != "" {
		password, readErr := readSecretFile("MOVIES_DATABASE_PASSWORD_FILE", path)
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
		errs = append(errs, errors.New("MOVIES_DATABASE_URL is required (example postgres://movies:secret@localhost:5432/movies)"))
	} else if _, err := pgxpool.ParseConfig(cfg.DatabaseURL); err != nil {
		// pgx redacts the password in its parse errors.
		errs = append(errs, fmt.Errorf("MOVIES_DATABASE_URL: %w", err))
	}

	cfg.CastsURL = getenv("MOVIES_CASTS_URL")
	if cfg.CastsURL == "" {
		errs = append(errs, errors.New("MOVIES_CASTS_URL is required (example http://127.0.0.1:8082, Traefik's mesh entrypoint)"))
	} else if u, err := url.Parse(cfg.CastsURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not quoted back: a URL may carry credentials.
		errs = append(errs, errors.New("MOVIES_CASTS_URL is not an absolute http:// or https:// URL (example http://127.0.0.1:8082)"))
	}

	errs = append(errs, loadAuthConfig(getenv, &cfg)...)

	if v := getenv("MOVIES_DEBUG_ADDR"); v != "" {
		host, _, err := net.SplitHostPort(v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("MOVIES_DEBUG_ADDR: %q is not host:port (example 127.0.0.1:6060)", v))
		case !isLoopback(host):
			errs = append(errs, fmt.Errorf("MOVIES_DEBUG_ADDR: %q is not on a loopback address (127.0.0.1, ::1 or localhost): the profiles show the service's internals", v))
		}
		cfg.DebugAddr = v
	}

	if v := getenv("MOVIES_LOG_LEVEL"); v != "" {
		level, err := zerolog.ParseLevel(v)
		if err != nil || level == zerolog.NoLevel {
			errs = append(errs, fmt.Errorf("MOVIES_LOG_LEVEL: %q is not one of trace, debug, info, warn, error, fatal, panic, disabled", v))
		}
		cfg.LogLevel = level
	}

	for _, d := range []struct {
		name     string
		dst      *time.Duration
		positive bool
	}{
		{"MOVIES_REQUEST_TIMEOUT", &cfg.RequestTimeout, true},
		{"MOVIES_SHUTDOWN_DELAY", &cfg.ShutdownDelay, false},
		{"MOVIES_SHUTDOWN_TIMEOUT", &cfg.ShutdownTimeout, false},
		{"MOVIES_CASTS_TIMEOUT", &cfg.CastsTimeout, true},
	} {
		if v := getenv(d.name); v != "" {
			parsed, err := time.ParseDuration(v)
			switch {
			case err != nil || parsed < 0:
				errs = append(errs, fmt.Errorf("%s: %q is not a duration such as 5s", d.name, v))
			case d.positive && parsed == 0:
				errs = append(errs, fmt.Errorf("%s: must be more than 0 (example 2s)", d.name))
			}
			*d.dst = parsed
		}
	}

	return cfg, errors.Join(errs...)
}

// loadAuthConfig reads the MOVIES_AUTH_ variables into cfg.
func loadAuthConfig(getenv func(string) string, cfg *Config) []error {
	var errs []error
	switch v := getenv("MOVIES_AUTH_VERIFY"); v {
	case "", "on":
	case "off":
		cfg.AuthVerify = false
	default:
		errs = append(errs, fmt.Errorf("MOVIES_AUTH_VERIFY: %q is neither on nor off (off is for benchmarks only)", v))
	}
	// Verifying needs the provider's coordinates; without verification they are optional.
	required := cfg.AuthVerify
	cfg.AuthIssuer = getenv("MOVIES_AUTH_ISSUER")
	if cfg.AuthIssuer == "" && required {
		errs = append(errs, errors.New("MOVIES_AUTH_ISSUER is required (example http://127.0.0.1:4444/, exactly as the tokens' iss says it)"))
	}
	cfg.AuthAudience = getenv("MOVIES_AUTH_AUDIENCE")
	if cfg.AuthAudience == "" && required {
		errs = append(errs, errors.New("MOVIES_AUTH_AUDIENCE is required (example movies-microservices)"))
	}
	cfg.AuthJWKSURL = getenv("MOVIES_AUTH_JWKS_URL")
	if cfg.AuthJWKSURL == "" {
		if required {
			errs = append(errs, errors.New("MOVIES_AUTH_JWKS_URL is required (example http://127.0.0.1:4444/.well-known/jwks.json)"))
		}
	} else if u, err := url.Parse(cfg.AuthJWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not quoted back: a URL may carry credentials.
		errs = append(errs, errors.New("MOVIES_AUTH_JWKS_URL is not an absolute http:// or https:// URL (example http://127.0.0.1:4444/.well-known/jwks.json)"))
	}
	return errs
}

// isLoopback reports whether host names this machine only.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
