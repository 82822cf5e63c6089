package stack

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// loopback is the only interface anything in a local stack listens on.
const loopback = "127.0.0.1"

// Ports are the TCP ports on 127.0.0.1 that a stack listens on. Zero means
// "pick a free port", which is what tests want; DefaultPorts is what `make run`
// uses. Replica i (counting from 0) of a service listens on its port + 10*i,
// so that with the defaults movies uses 8000, 8010, ... and casts 8001, 8011, ...
type Ports struct {
	Web      int // Traefik entrypoint "web": the public gateway
	Admin    int // Traefik entrypoint "traefik": API, ping, metrics
	Mesh     int // Traefik entrypoint "mesh": calls between services
	Movies   int // first movies replica
	Casts    int // first casts replica
	Postgres int
	// The OpenID provider (Hydra): its public API (token endpoint, keys),
	// which the gateway also routes, and its admin API (clients, keys), which
	// nothing routes.
	HydraPublic int
	HydraAdmin  int
	// The trace backend (Jaeger): its OTLP receivers (gRPC and HTTP; the
	// stack exports over HTTP), its query API and UI, its query gRPC API and
	// its health check. Nothing routes them.
	JaegerOTLPGRPC  int
	JaegerOTLPHTTP  int
	JaegerQuery     int
	JaegerQueryGRPC int
	JaegerHealth    int
}

// DefaultPorts are the ports of `make run`, the ones the README shows.
func DefaultPorts() Ports {
	return Ports{Web: 8080, Admin: 8081, Mesh: 8082, Movies: 8000, Casts: 8001, Postgres: 5433,
		HydraPublic: 4444, HydraAdmin: 4445,
		JaegerOTLPGRPC: 4317, JaegerOTLPHTTP: 4318, JaegerQuery: 16686, JaegerQueryGRPC: 16685, JaegerHealth: 13133}
}

// replicaPortStep separates the ports of one service's replicas.
const replicaPortStep = 10

// portClaim is one port the stack needs, with what a person must know to free
// it or move it: what it is for and the variable that sets it.
type portClaim struct {
	port *int
	what string
	env  string
}

func hostPort(port int) string {
	return net.JoinHostPort(loopback, strconv.Itoa(port))
}

// checkPortFree fails, naming the port and the variable that moves it, when
// something already listens there. Trying to listen before a child starts
// gives this clear message instead of a child's log line about "bind".
func checkPortFree(c portClaim) error {
	ln, err := net.Listen("tcp", hostPort(*c.port))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("stack: port %d (%s) is already in use on %s: stop what listens there or set %s to another port",
				*c.port, c.what, loopback, c.env)
		}
		return fmt.Errorf("stack: cannot listen on port %d (%s), set %s to another port: %w", *c.port, c.what, c.env, err)
	}
	return ln.Close()
}

// resolvePorts checks every fixed port and fills every zero port with a free
// one. The listeners that found free ports stay open until all are chosen, so
// the kernel cannot hand out the same port twice.
func resolvePorts(claims []portClaim) error {
	seen := make(map[int]portClaim)
	var errs []error
	for _, c := range claims {
		if *c.port == 0 {
			continue
		}
		if *c.port < 0 || *c.port > 65535 {
			errs = append(errs, fmt.Errorf("stack: port %d (%s) is out of range: set %s to 1..65535, or 0 for a free port", *c.port, c.what, c.env))
			continue
		}
		if prev, ok := seen[*c.port]; ok {
			errs = append(errs, fmt.Errorf("stack: port %d is wanted twice, by %s (%s) and %s (%s): change one of them",
				*c.port, prev.what, prev.env, c.what, c.env))
			continue
		}
		seen[*c.port] = c
		if err := checkPortFree(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	var listeners []net.Listener
	defer func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}()
	for _, c := range claims {
		if *c.port != 0 {
			continue
		}
		ln, err := net.Listen("tcp", hostPort(0))
		if err != nil {
			return fmt.Errorf("stack: find a free port for %s: %w", c.what, err)
		}
		listeners = append(listeners, ln)
		*c.port = ln.Addr().(*net.TCPAddr).Port
	}
	return nil
}

// freePort returns a port nothing listens on right now.
func freePort(what string) (int, error) {
	port := 0
	err := resolvePorts([]portClaim{{port: &port, what: what}})
	return port, err
}
