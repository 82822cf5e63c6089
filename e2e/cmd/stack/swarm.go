package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/movies-microservices/e2e/compose"
	"github.com/movies-microservices/e2e/stack"
	"github.com/movies-microservices/e2e/swarm"
)

// runSwarm runs a command against a throwaway three-node swarm running stack.yaml, which it
// always removes, with the engines and their data: after the command ends, and on SIGINT or
// SIGTERM, which it passes on to the command first.
func runSwarm(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("swarm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	images := fs.String("images", envOr(getenv, "E2E_SWARM_IMAGES", "auto"), "`which` images: official, standins, or auto (official where the host's engine has or can pull them)")
	name := fs.String("stack", "movies-microservices-e2e", "the stack's `name`")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	command := fs.Args()
	if len(command) == 0 {
		fmt.Fprint(stderr, "stack swarm: no command given\n\n"+usage)
		return exitCode(2)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("stack swarm: needs root (network namespaces, dockerd)")
	}
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("stack swarm: %w", err)
	}
	root, err := stack.FindRepoRoot(wd)
	if err != nil {
		return err
	}
	for _, tool := range []string{"dockerd", "ip", "nsenter", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("stack swarm: %s not found (Debian: apt-get install docker.io iproute2 util-linux)", tool)
		}
	}
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Errorf("stack swarm: the host's Docker engine does not answer (%s): it builds the images", compose.FirstLine(string(out)))
	}

	// One swarm per machine: the bridge, namespaces and subnet have fixed names (swarm.Layout).
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "e2e-swarm.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("stack swarm: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("stack swarm: another swarm run holds %s (one at a time on a machine): %w", lock.Name(), err)
	}

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)

	standins := false
	switch *images {
	case "official":
	case "standins":
		standins = true
	case "auto":
		missing, err := officialImagesMissing(ctx, root, stderr)
		if err != nil {
			return err
		}
		if missing != "" {
			fmt.Fprintf(stderr, "stack swarm: %s; using stand-ins made offline (e2e/compose/standins.sh)\n", missing)
			standins = true
		}
	default:
		return fmt.Errorf("stack swarm: -images %q: want official, standins or auto", *images)
	}
	if standins {
		cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", root, "traefik", "hydra", "jaeger")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("stack swarm: make traefik hydra jaeger: %w", err)
		}
		cmd = exec.CommandContext(ctx, "bash", filepath.Join(root, "e2e", "compose", "standins.sh"))
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("stack swarm: make the stand-in images: %w", err)
		}
	}

	started := time.Now()
	layout := swarm.Layout{Dir: filepath.Join(os.TempDir(), "e2e-swarm-"+*name)}
	d, err := startInterruptibly(ctx, signals, func(ctx context.Context) (*swarm.Deployment, error) {
		return swarm.Up(ctx, swarm.Options{RepoRoot: root, Layout: layout, Stack: *name, Standins: standins, Progress: stderr})
	})
	if err != nil {
		return err // Up removed what it had made
	}
	fmt.Fprintf(stderr, "stack swarm: up in %s\n", time.Since(started).Round(time.Second))
	code := 0
	state, err := d.WriteState()
	if err != nil {
		fmt.Fprintf(stderr, "stack swarm: %v\n", err)
		code = 1
	} else {
		cmd := exec.Command(command[0], command[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), d.Exports(state)...)
		code = runChild(cmd, signals, stderr)
	}
	downCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	started = time.Now()
	if err := d.Down(downCtx); err != nil {
		fmt.Fprintf(stderr, "stack swarm: %v\n", err)
		code = max(code, 1)
	}
	fmt.Fprintf(stderr, "stack swarm: stack, engines and their data removed in %s\n", time.Since(started).Round(time.Second))
	return exitCode(code)
}
