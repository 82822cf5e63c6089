package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/movies-microservices/e2e/stack"
)

// bareRouters is the bare Traefik's whole dynamic configuration but for the servers transport:
// one router per service on "web", straight to the service's first replica. No middlewares,
// no health check, nothing else: what Traefik costs before the project adds to it.
var bareRouters = template.Must(template.New("bare.yml").Parse(`# Written by e2e/bench for one run: Traefik with nothing of the project's on top.
http:
  routers:
    movies:
      entryPoints: [web]
      rule: PathPrefix(` + "`/api/v1/movies`" + `)
      service: movies
    casts:
      entryPoints: [web]
      rule: PathPrefix(` + "`/api/v1/casts`" + `)
      service: casts
  services:
    movies:
      loadBalancer:
        serversTransport: backend@file
        servers:
          - url: {{printf "%q" .Movies}}
    casts:
      loadBalancer:
        serversTransport: backend@file
        servers:
          - url: {{printf "%q" .Casts}}
`))

// serversTransports returns the serversTransports section of traefik/dynamic/middlewares.yml
// as a file of its own, so that the bare Traefik reaches the services exactly as the stack's
// does (keep-alive pool, timeouts) without the file's routers, middlewares and services.
func serversTransports(middlewaresYML []byte) ([]byte, error) {
	var out bytes.Buffer
	in := false
	for _, line := range strings.Split(string(middlewaresYML), "\n") {
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " "))
		switch {
		case line == "  serversTransports:":
			in = true
			out.WriteString("http:\n")
		case in && trimmed != "" && !strings.HasPrefix(trimmed, "#") && indent <= 2:
			in = false
		}
		if in {
			out.WriteString(line + "\n")
		}
	}
	if out.Len() == 0 {
		return nil, fmt.Errorf("bench: no serversTransports section in traefik/dynamic/middlewares.yml")
	}
	return out.Bytes(), nil
}

// startBareTraefik starts a second Traefik, the same binary as the stack's, with one router
// per service and nothing else (no middlewares, metrics or access log), on free ports in dir.
func startBareTraefik(ctx context.Context, repoRoot, dir, moviesURL, castsURL string) (*child, error) {
	shared, err := os.ReadFile(filepath.Join(repoRoot, "traefik", "dynamic", "middlewares.yml"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	transports, err := serversTransports(shared)
	if err != nil {
		return nil, err
	}
	var routers bytes.Buffer
	if err := bareRouters.Execute(&routers, struct{ Movies, Casts string }{moviesURL, castsURL}); err != nil {
		return nil, fmt.Errorf("bench: bare Traefik config: %w", err)
	}
	dynamic := filepath.Join(dir, "dynamic")
	if err := os.MkdirAll(dynamic, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	for name, body := range map[string][]byte{"transports.yml": transports, "routers.yml": routers.Bytes()} {
		if err := os.WriteFile(filepath.Join(dynamic, name), body, 0o644); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	web, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(web))
	cmd := exec.Command(filepath.Join(repoRoot, "bin", "traefik"),
		"--entrypoints.web.address="+listen,
		"--entrypoints.traefik.address="+net.JoinHostPort("127.0.0.1", strconv.Itoa(admin)),
		"--ping=true",
		"--log.level=ERROR",
		"--log.nocolor=true",
		"--providers.file.directory="+dynamic,
		"--global.checknewversion=false",
		"--global.sendanonymoususage=false",
	)
	// The stack's Traefik runs with the same GOGC.
	cmd.Env = append(os.Environ(), "GOGC="+stack.TraefikGOGC)
	return startChild(ctx, "the bare Traefik", cmd, "http://"+listen, 20*time.Second)
}
