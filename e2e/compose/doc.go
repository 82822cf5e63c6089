// Package compose runs the system as a Docker Compose project (compose.yaml) for the e2e suite,
// and acts on it through the engine: a driver of the stack under test (target.Target, see
// target.go), with the fault operations it asks for (stop and start a service, a replica, the
// databases; SIGKILL a replica).
//
// It talks to the engine only through the `docker` and `docker compose` commands. Up starts a
// project of its own: compose.yaml, then the caller's overrides (standins.yaml where no registry
// is reachable), then a generated test override that publishes Traefik's three entrypoints and
// every service replica on 127.0.0.1 only, on ports the engine picks, and makes Traefik's access
// log record every request, as the process stack's does for the suite. Attach drives a project
// started that way by someone else (go run ./e2e/cmd/stack compose).
//
// The same directory holds the stand-in recipe (standins.sh, postgres-entrypoint.sh) and its
// override (standins.yaml).
package compose
