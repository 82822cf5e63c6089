package main

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
)

// defaultAddr is where the service listens when CASTS_ADDR is unset.
const defaultAddr = ":8001"

// Config is everything the service reads from its environment.
type Config struct {
	Addr        string
	DatabaseURL string
	LogLevel    zerolog.Level
	// ShutdownDelay is how long /readyz reports "not ready" before the server stops accepting
	// requests, so that a load balancer health-checking it has time to take it out of rotation.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds how long in-flight requests may take to finish on shutdown.
	ShutdownTimeout time.Duration
}

// loadConfig reads the configuration and reports every missing or bad variable at once.
func loadConfig(getenv func(string) string) (Config, error) {
	cfg := Config{
		Addr:            defaultAddr,
		LogLevel:        zerolog.InfoLevel,
		ShutdownDelay:   0,
		ShutdownTimeout: 15 * time.Second,
	}
	var errs []error

	if v := getenv("CASTS_ADDR"); v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			errs = append(errs, fmt.Errorf("CASTS_ADDR: %q is not host:port (example :8001)", v))
		}
		cfg.Addr = v
	}

	cfg.DatabaseURL = getenv("CASTS_DATABASE_URL")
	if cfg.DatabaseURL == "" {
		errs = append(errs, errors.New("CASTS_DATABASE_URL is required (example postgres://casts:secret@localhost:5432/casts)"))
	} else if _, err := pgxpool.ParseConfig(cfg.DatabaseURL); err != nil {
		// pgx redacts the password in its parse errors.
		errs = append(errs, fmt.Errorf("CASTS_DATABASE_URL: %w", err))
	}

	if v := getenv("CASTS_LOG_LEVEL"); v != "" {
		level, err := zerolog.ParseLevel(v)
		if err != nil || level == zerolog.NoLevel {
			errs = append(errs, fmt.Errorf("CASTS_LOG_LEVEL: %q is not one of trace, debug, info, warn, error, fatal, panic, disabled", v))
		}
		cfg.LogLevel = level
	}

	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{
		{"CASTS_SHUTDOWN_DELAY", &cfg.ShutdownDelay},
		{"CASTS_SHUTDOWN_TIMEOUT", &cfg.ShutdownTimeout},
	} {
		if v := getenv(d.name); v != "" {
			parsed, err := time.ParseDuration(v)
			if err != nil || parsed < 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a duration such as 5s", d.name, v))
			}
			*d.dst = parsed
		}
	}

	return cfg, errors.Join(errs...)
}
