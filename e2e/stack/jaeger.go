package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/movies-microservices/e2e/target"
)

// The trace backend is Jaeger v2, all-in-one with its traces in memory
// (bin/jaeger, built by e2e/jaeger/build.sh, configured by
// e2e/jaeger/config.yaml). Traefik and both services export their spans to
// its OTLP/HTTP receiver; its query API and UI answer on JaegerQuery.

// jaegerConfigPath is Jaeger's configuration, relative to the repository root.
const jaegerConfigPath = "e2e/jaeger/config.yaml"

// OTLPTracesPath is where an OTLP/HTTP receiver takes traces.
const OTLPTracesPath = "/v1/traces"

// jaegerEnv is Jaeger's whole environment: the addresses its configuration
// reads (see e2e/jaeger/config.yaml), and nothing of ours.
func (s *Stack) jaegerEnv() []string {
	p := s.opts.Ports
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"JAEGER_LISTEN_HOST=" + loopback,
		"JAEGER_OTLP_GRPC_PORT=" + strconv.Itoa(p.JaegerOTLPGRPC),
		"JAEGER_OTLP_HTTP_PORT=" + strconv.Itoa(p.JaegerOTLPHTTP),
		"JAEGER_QUERY_PORT=" + strconv.Itoa(p.JaegerQuery),
		"JAEGER_QUERY_GRPC_PORT=" + strconv.Itoa(p.JaegerQueryGRPC),
		"JAEGER_HEALTH_PORT=" + strconv.Itoa(p.JaegerHealth),
	}
}

// jaegerClaims are Jaeger's ports, for resolvePorts and checkPortFree.
func (s *Stack) jaegerClaims() []portClaim {
	p := &s.opts.Ports
	return []portClaim{
		{&p.JaegerOTLPGRPC, "Jaeger OTLP/gRPC receiver", EnvJaegerOTLPGRPC},
		{&p.JaegerOTLPHTTP, "Jaeger OTLP/HTTP receiver", EnvJaegerOTLPHTTP},
		{&p.JaegerQuery, "Jaeger query API and UI", EnvJaegerQuery},
		{&p.JaegerQueryGRPC, "Jaeger query gRPC API", EnvJaegerQueryGRPC},
		{&p.JaegerHealth, "Jaeger health check", EnvJaegerHealth},
	}
}

// otlpEndpoint is the base URL of Jaeger's OTLP/HTTP receiver (the services'
// OTEL_EXPORTER_OTLP_ENDPOINT); empty when the stack runs without Jaeger.
func (s *Stack) otlpEndpoint() string {
	if s.opts.NoTracing {
		return ""
	}
	return "http://" + hostPort(s.opts.Ports.JaegerOTLPHTTP)
}

func (s *Stack) jaegerQueryURL() string { return "http://" + hostPort(s.opts.Ports.JaegerQuery) }

// startJaeger starts Jaeger and waits until it is healthy; fresh empties its
// log file first.
func (s *Stack) startJaeger(ctx context.Context, fresh bool) error {
	if s.opts.NoTracing {
		return nil
	}
	for _, c := range s.jaegerClaims() {
		if err := checkPortFree(c); err != nil {
			return err
		}
	}
	log, closeLog, err := s.logFiles(fresh)(target.ServiceJaeger)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.opts.Binaries.Jaeger, "--config", filepath.Join(s.opts.RepoRoot, jaegerConfigPath))
	cmd.Env = s.jaegerEnv()
	cmd.SysProcAttr = childAttr(syscall.SIGTERM)
	p, err := startProcess(target.ServiceJaeger, cmd, log)
	if err != nil {
		closeLog()
		return err
	}
	go func() { <-p.done; closeLog() }()
	s.jaeger = p
	s.watch(p)
	// Healthy, and its query API answers.
	for _, url := range []string{"http://" + hostPort(s.opts.Ports.JaegerHealth) + "/status", s.jaegerQueryURL() + "/api/services"} {
		if err := waitHTTPReady(ctx, url, p, s.opts.ReadyTimeout); err != nil {
			// Not left half started: StartTraceBackend may try again.
			s.jaeger = nil
			p.stop(syscall.SIGTERM, 15*time.Second) //nolint:errcheck // the readiness error says more
			return err
		}
	}
	if fresh {
		// Set once, before URLs is read: a restart keeps the port.
		s.urls.Jaeger = s.jaegerQueryURL()
	}
	fmt.Fprintf(s.opts.Progress, "jaeger: ready, traces at %s (OTLP/HTTP in on %s)\n", s.urls.Jaeger, s.otlpEndpoint())
	return nil
}

// StopTraceBackend stops Jaeger, and nothing else: the services and Traefik
// go on exporting to an address that refuses them.
func (s *Stack) StopTraceBackend() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jaeger == nil || s.jaeger.exited() {
		return errors.New("stack: jaeger is not running")
	}
	p := s.jaeger
	s.jaeger = nil
	return p.stop(syscall.SIGTERM, 15*time.Second)
}

// StartTraceBackend starts Jaeger again after StopTraceBackend, with no
// traces (it keeps them in memory), and returns once it is healthy.
func (s *Stack) StartTraceBackend(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("stack: stopped")
	}
	if s.opts.NoTracing {
		return errors.New("stack: started without a trace backend (Options.NoTracing)")
	}
	if s.jaeger != nil && !s.jaeger.exited() {
		return errors.New("stack: jaeger is already running")
	}
	return s.startJaeger(ctx, false)
}

// telemetryEnv is how a service exports its spans: OTLP/HTTP to Jaeger, with
// the sampler's default (parent-based: each request follows the decision of
// Traefik, which samples all). Empty with Options.NoTracing: no exporter.
func (s *Stack) telemetryEnv() []string {
	if s.opts.NoTracing {
		return nil
	}
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + s.otlpEndpoint()}
}
