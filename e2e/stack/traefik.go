package stack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
)

// Routers the file provider must define, as Traefik's API names them.
var wantRouters = []string{"movies@file", "casts@file", "movies-read@file", "casts-read@file", "movies-mesh@file", "casts-mesh@file", "hydra@file"}

// Variables that traefik/dynamic/routers.yml reads (through the file
// provider's Go templates) for the servers of each service.
const (
	envStackCastsURLs  = "STACK_CASTS_URLS"
	envStackMoviesURLs = "STACK_MOVIES_URLS"
	envStackHydraURLs  = "STACK_HYDRA_URLS"
)

// Traefik's settings that decide what it costs rather than what it routes;
// compose.yaml sets the same (e2e/parity checks that it does).
var (
	// TraefikAccessLogFilters keep the gateway's access log to what only the
	// gateway sees: failed requests (including those Traefik answers itself,
	// such as the 404 outside the API), retried ones and slow ones.
	// Each service logs every request it serves, with its request id. Writing
	// a JSON line for every request took about 15% of Traefik's CPU under
	// load (make bench BENCH_PROFILE=1). addinternals lets the 404 of the catch-all
	// router in (its service is noop@internal, which Traefik leaves out by
	// default); internal requests that succeed (ping, API) stay out.
	TraefikAccessLogFilters = []string{
		"--accesslog.filters.statuscodes=400-599",
		"--accesslog.filters.retryattempts=true",
		"--accesslog.filters.minduration=1s",
		"--accesslog.addinternals=true",
	}
	// TraefikTracing is Traefik's part of the trace of each request: a span
	// for each entry point a request crosses ("web" from clients, "mesh"
	// between the services), continuing the caller's W3C trace context and
	// handing it on, every request sampled (the services follow Traefik's
	// decision), and the request id on the span. The OTLP endpoint is set
	// apart: it differs per stack.
	TraefikTracing = []string{
		"--tracing=true",
		"--tracing.serviceName=traefik",
		"--tracing.sampleRate=1.0",
		"--tracing.capturedRequestHeaders=X-Request-Id",
	}
	// TraefikMetrics are Prometheus metrics per entry point only: every
	// request on "web" and "mesh" by status and method, the 404, 413 and 429
	// that Traefik decides itself included. Traefik's default adds a second
	// metrics middleware per service, which cost about 5% of its CPU per
	// request (make bench BENCH_PROFILE=1) and cannot count those: they never
	// reach a service, and the problem pages the errors middleware fetches
	// bypass the services' metrics. The services' own logs split the rest.
	// addinternals lets the catch-all router's 404 in (its service is
	// noop@internal, which Traefik leaves out of metrics by default); it also
	// counts the requests to Traefik's own API, ping and metrics on "traefik".
	TraefikMetrics = []string{
		"--metrics.prometheus=true",
		"--metrics.prometheus.addServicesLabels=false",
		"--metrics.addinternals=true",
	}
	// TraefikGOGC lets Traefik's heap grow to three times the live data
	// between collections instead of twice (Go's default, GOGC=100): it
	// allocated about 35 KB per proxied request with every request logged
	// and 26 KB with the filters above (make bench BENCH_PROFILE=1), and
	// collecting less often buys CPU for some memory (Traefik is not bound
	// by the services' 50 MB).
	TraefikGOGC = "200"
)

// traefikConfig is what a local Traefik needs to know.
type traefikConfig struct {
	dynamicDir string // absolute traefik/dynamic
	accessLog  string // file for the JSON access log
	ports      Ports
	casts      []string // base URLs of the casts replicas
	movies     []string // base URLs of the movies replicas
	hydra      string   // base URL of the OpenID provider's public API
	profiling  bool     // serve /debug/pprof/ on the API entrypoint
	accessAll  bool     // log every request, without TraefikAccessLogFilters
	otlp       string   // base URL of the trace backend's OTLP/HTTP receiver; empty: no tracing
}

// args is the whole static configuration as flags: Traefik takes its static
// configuration from one source only (file, flags or environment), and flags
// keep everything that varies per run in one place.
func (c traefikConfig) args() []string {
	args := []string{
		"--entrypoints.web.address=" + hostPort(c.ports.Web),
		"--entrypoints.traefik.address=" + hostPort(c.ports.Admin),
		"--entrypoints.mesh.address=" + hostPort(c.ports.Mesh),
		"--api.insecure=true",
		// On the traefik entrypoint, which listens on loopback only. The
		// web UI is in bin/traefik when traefik/build.sh found Node.js.
		"--api.dashboard=true",
		"--ping=true",
		"--accesslog=true",
		"--accesslog.format=json",
		"--accesslog.filepath=" + c.accessLog,
		"--log.level=INFO",
		// Its log goes to a file, where colour codes are noise.
		"--log.nocolor=true",
		"--providers.file.directory=" + c.dynamicDir,
		"--providers.file.watch=true",
		// A local run has no business calling home.
		"--global.checknewversion=false",
		"--global.sendanonymoususage=false",
	}
	args = append(args, TraefikMetrics...)
	if !c.accessAll {
		args = append(args, TraefikAccessLogFilters...)
	}
	if c.profiling {
		args = append(args, "--api.debug=true")
	}
	if c.otlp != "" {
		args = append(args, TraefikTracing...)
		args = append(args, "--tracing.otlp.http.endpoint="+c.otlp+OTLPTracesPath)
	}
	return args
}

// env is our environment without TRAEFIK_* variables (Traefik would read
// them as a second static configuration) plus the replicas' URLs.
func (c traefikConfig) env() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(strings.ToUpper(kv), "TRAEFIK_")
	})
	return append(env,
		"GOGC="+TraefikGOGC,
		envStackCastsURLs+"="+strings.Join(c.casts, ","),
		envStackMoviesURLs+"="+strings.Join(c.movies, ","),
		envStackHydraURLs+"="+c.hydra,
	)
}

// Parts of Traefik's API answers that we read.
type (
	traefikRouter struct {
		Name   string   `json:"name"`
		Status string   `json:"status"`
		Error  []string `json:"error"`
	}
	traefikService = stackkit.TraefikService
)

// waitTraefikReady polls Traefik's API until it answers /ping, lists every
// router in wantRouters as enabled, and reports every server in servers UP;
// or until p exits or timeout passes. The error says what was still missing.
func waitTraefikReady(ctx context.Context, adminURL string, servers []string, p *process, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	err := stackkit.Poll(ctx, timeout, 200*time.Millisecond, "traefik ready", func() error {
		if p != nil && p.exited() {
			return stackkit.Permanent(p.exitError())
		}
		return checkTraefik(ctx, client, adminURL, servers)
	})
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("stack: %w", err)
		if p != nil {
			err = fmt.Errorf("%w; last log lines:\n%s", err, p.tail.lastLines(20))
		}
	}
	return err
}

func checkTraefik(ctx context.Context, client *http.Client, adminURL string, servers []string) error {
	status, err := httpStatus(ctx, client, adminURL+"/ping")
	if err != nil {
		return fmt.Errorf("GET /ping: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET /ping answered %d", status)
	}
	var routers []traefikRouter
	if err := stackkit.GetJSON(ctx, client, adminURL+"/api/http/routers", &routers); err != nil {
		return err
	}
	if err := checkRouters(routers); err != nil {
		return err
	}
	var services []traefikService
	if err := stackkit.GetJSON(ctx, client, adminURL+"/api/http/services", &services); err != nil {
		return err
	}
	return checkServers(services, servers)
}

func checkRouters(routers []traefikRouter) error {
	byName := make(map[string]traefikRouter, len(routers))
	for _, r := range routers {
		byName[r.Name] = r
	}
	var problems []string
	for _, name := range wantRouters {
		r, ok := byName[name]
		switch {
		case !ok:
			problems = append(problems, "router "+name+" missing (check traefik/dynamic)")
		case r.Status != "enabled":
			problems = append(problems, fmt.Sprintf("router %s is %s: %s", name, r.Status, strings.Join(r.Error, "; ")))
		}
	}
	if problems != nil {
		return fmt.Errorf("%s", strings.Join(problems, ", "))
	}
	return nil
}

// checkServers wants each server URL reported UP by every service that
// lists it. A server missing from every service means routers.yml did not get
// our URLs. "Every" matters: the gateway's problem pages (problems@file in
// middlewares.yml) list the casts replicas too, health-checked on /livez,
// which passes as soon as the process listens; taking that service's UP for
// casts@file's would call a restarted replica in rotation before the casts
// service has it back, and a rolling restart would then stop the other one
// while Traefik has none ("no available server").
func checkServers(services []traefikService, servers []string) error {
	status := make(map[string][]string) // server URL -> "service: status" that is not UP
	listed := make(map[string]bool)
	for _, s := range services {
		for url, st := range s.ServerStatus {
			url = strings.TrimSuffix(url, "/")
			listed[url] = true
			if st != "UP" {
				status[url] = append(status[url], s.Name+" has it "+st)
			}
		}
	}
	var problems []string
	for _, url := range servers {
		switch {
		case !listed[url]:
			problems = append(problems, "server "+url+" not in any service (is STACK_*_URLS used by routers.yml?)")
		case len(status[url]) > 0:
			slices.Sort(status[url])
			problems = append(problems, "server "+url+" is not UP: "+strings.Join(status[url], ", "))
		}
	}
	if problems != nil {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}
