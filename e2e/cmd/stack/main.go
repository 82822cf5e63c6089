// Command stack starts the system's pieces as local processes, without Docker.
//
//	go run ./e2e/cmd/stack exec -- <command> [args...]
//	go run ./e2e/cmd/stack run
//	go run ./e2e/cmd/stack compose -- <command> [args...]
//	go run ./e2e/cmd/stack swarm -- <command> [args...]
//	go run ./e2e/cmd/stack standins
//
// See usage for the details.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/movies-microservices/e2e/stackkit"
)

const usage = `usage: go run ./e2e/cmd/stack <command>

commands:
  exec [-pglog FILE] -- COMMAND [ARGS...]
        Start a throwaway PostgreSQL cluster (temp dir, free port), run COMMAND
        with TEST_DATABASE_URL set to its superuser URL, then remove the
        cluster, also on Ctrl-C. Exits with COMMAND's exit code.
        -pglog FILE writes the server's log to FILE.

  run   Start the whole stack from bin/ (make build, make traefik) with its
        data under .run/, print its URLs and run until Ctrl-C.
        Environment (defaults in brackets):
          WEB_PORT [8080]    Traefik public entrypoint
          ADMIN_PORT [8081]  Traefik API, ping, metrics
          MESH_PORT [8082]   Traefik entrypoint between services
          MOVIES_PORT [8000] movies (replica i on MOVIES_PORT+10*i)
          CASTS_PORT [8001]  casts (replica i on CASTS_PORT+10*i)
          PG_PORT [5433]     PostgreSQL
          REPLICAS [1]       replicas of each service (1-9)
          LOG_LEVEL [info]   log level of both services
          SHUTDOWN_DELAY [0s] how long a stopping replica fails /readyz before it
                             stops accepting (lets Traefik take it out of rotation)
        A port of 0 picks a free one. Delete .run/ to reset all local data.

  compose [-images auto|official|standins] [-project NAME] -- COMMAND [ARGS...]
        Build the images and bring up a throwaway Compose project of compose.yaml
        (docker compose up --build --wait; default name movies-microservices-e2e),
        everything published on 127.0.0.1 only on ports the engine picks; run
        COMMAND with the E2E_* variables that point the e2e suite at it; then take
        it down with its volumes (down -v), also on failure or Ctrl-C. Exits with
        COMMAND's exit code. -images auto (E2E_COMPOSE_IMAGES) uses the official
        images where the engine has or can pull them, else stand-ins made offline
        by e2e/compose/standins.sh (e2e/compose/standins.yaml); it says which.

  swarm [-stack NAME] -- COMMAND [ARGS...]
        Make a swarm of three Docker engines on this machine (each dockerd in a
        network namespace of its own, joined by a bridge; as root), run the
        registry (bin/registry) on its first node, build the images with the
        host's engine and push them there with the stand-in images (the nodes
        reach no other registry), deploy e2e/swarm/stack.yaml (default name
        movies-microservices-e2e), and run COMMAND with E2E_SWARM_STATE and the
        E2E_* variables that point the e2e suite at it (the gateway, dashboard,
        mesh and Jaeger forwarded to 127.0.0.1); then remove the stack, the
        engines and their data, also on failure or Ctrl-C. One at a time per
        machine. Exits with COMMAND's exit code.

  standins
        Make the stand-in images (make traefik hydra jaeger, then
        e2e/compose/standins.sh), as swarm always does and compose does where
        the engine cannot pull: once per change of what they are made from. CI
        makes them in a step of its own, timed apart.
`

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	var exit exitCode
	switch {
	case errors.As(err, &exit):
		os.Exit(int(exit))
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// exitCode is returned by exec to pass on its command's exit code silently.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitCode(2)
	}
	switch args[0] {
	case "exec":
		return runExec(ctx, args[1:], stderr)
	case "run":
		return runStack(ctx, getenv, stdout)
	case "compose":
		return runCompose(ctx, args[1:], getenv, stderr)
	case "swarm":
		return runSwarm(ctx, args[1:], getenv, stderr)
	case "standins":
		return runStandins(ctx, args[1:], stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "stack: unknown command %q\n\n%s", args[0], usage)
		return exitCode(2)
	}
}

// repoRoot is the repository holding the working directory; who names the command in errors.
func repoRoot(who string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("stack %s: %w", who, err)
	}
	return stackkit.FindRepoRoot(wd)
}
