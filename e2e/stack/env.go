package stack

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Environment variables that configure `make run`. Port errors name them, so
// that a person knows what to change.
const (
	EnvWebPort      = "WEB_PORT"
	EnvAdminPort    = "ADMIN_PORT"
	EnvMeshPort     = "MESH_PORT"
	EnvMoviesPort   = "MOVIES_PORT"
	EnvCastsPort    = "CASTS_PORT"
	EnvPostgresPort = "PG_PORT"
	EnvHydraPublic  = "HYDRA_PUBLIC_PORT"
	EnvHydraAdmin   = "HYDRA_ADMIN_PORT"
	// Jaeger's ports (the same names its configuration, e2e/jaeger/config.yaml, reads).
	EnvJaegerOTLPGRPC  = "JAEGER_OTLP_GRPC_PORT"
	EnvJaegerOTLPHTTP  = "JAEGER_OTLP_HTTP_PORT"
	EnvJaegerQuery     = "JAEGER_QUERY_PORT"
	EnvJaegerQueryGRPC = "JAEGER_QUERY_GRPC_PORT"
	EnvJaegerHealth    = "JAEGER_HEALTH_PORT"
	EnvReplicas        = "REPLICAS"
	EnvShutdownDelay   = "SHUTDOWN_DELAY"
	EnvLogLevel        = "LOG_LEVEL"
)

// OptionsFromEnv reads ports, replicas, shutdown delay and log level from the
// variables above, starting from DefaultPorts, one replica, no delay and level
// "info". It reports
// every bad value at once. The caller sets RepoRoot, Dir and the writers.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	opts := Options{Ports: DefaultPorts(), Replicas: 1, LogLevel: "info"}
	var errs []error
	intVar := func(key string, dst *int, min, max int) {
		v := strings.TrimSpace(getenv(key))
		if v == "" {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < min || n > max {
			errs = append(errs, fmt.Errorf("stack: %s=%q: want a whole number from %d to %d", key, v, min, max))
			return
		}
		*dst = n
	}
	intVar(EnvWebPort, &opts.Ports.Web, 0, 65535)
	intVar(EnvAdminPort, &opts.Ports.Admin, 0, 65535)
	intVar(EnvMeshPort, &opts.Ports.Mesh, 0, 65535)
	intVar(EnvMoviesPort, &opts.Ports.Movies, 0, 65535)
	intVar(EnvCastsPort, &opts.Ports.Casts, 0, 65535)
	intVar(EnvPostgresPort, &opts.Ports.Postgres, 0, 65535)
	intVar(EnvHydraPublic, &opts.Ports.HydraPublic, 0, 65535)
	intVar(EnvHydraAdmin, &opts.Ports.HydraAdmin, 0, 65535)
	intVar(EnvJaegerOTLPGRPC, &opts.Ports.JaegerOTLPGRPC, 0, 65535)
	intVar(EnvJaegerOTLPHTTP, &opts.Ports.JaegerOTLPHTTP, 0, 65535)
	intVar(EnvJaegerQuery, &opts.Ports.JaegerQuery, 0, 65535)
	intVar(EnvJaegerQueryGRPC, &opts.Ports.JaegerQueryGRPC, 0, 65535)
	intVar(EnvJaegerHealth, &opts.Ports.JaegerHealth, 0, 65535)
	intVar(EnvReplicas, &opts.Replicas, 1, 9)
	if v := strings.TrimSpace(getenv(EnvShutdownDelay)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Minute {
			errs = append(errs, fmt.Errorf("stack: %s=%q: want a duration from 0s to 1m, such as 4s", EnvShutdownDelay, v))
		} else {
			opts.ShutdownDelay = d
		}
	}
	if v := strings.TrimSpace(getenv(EnvLogLevel)); v != "" {
		opts.LogLevel = v
	}
	return opts, errors.Join(errs...)
}
