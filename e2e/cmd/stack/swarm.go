package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/swarm"
)

// stackName is what -stack takes: it names the stack, its directory and its secrets.
var stackName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,40}$`)

// lockFile is held by the run that has the swarm: its bridge, namespaces and subnet have fixed
// names (swarm.Layout), so there is one per machine, whatever TMPDIR says.
const lockFile = "/run/lock/movies-microservices-e2e-swarm.lock"

// runSwarm runs a command against a throwaway three-node swarm running stack.yaml, which it
// always removes, with the engines and their data: after the command ends, and on SIGINT or
// SIGTERM, which it passes on to the command first.
func runSwarm(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("swarm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("stack", "movies-microservices-e2e", "the stack's `name` (lower case letters, digits, dashes)")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	if !stackName.MatchString(*name) {
		return fmt.Errorf("stack swarm: -stack %q: want lower case letters, digits and dashes", *name)
	}
	command := fs.Args()
	if len(command) == 0 {
		fmt.Fprint(stderr, "stack swarm: no command given\n\n"+usage)
		return exitCode(2)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("stack swarm: needs root (network namespaces, dockerd)")
	}
	root, err := repoRoot("swarm")
	if err != nil {
		return err
	}
	for _, tool := range []string{"dockerd", "ip", "nsenter", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("stack swarm: %s not found (Debian: apt-get install docker.io iproute2 util-linux)", tool)
		}
	}
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Errorf("stack swarm: the host's Docker engine does not answer (%s): it builds the images", stackkit.FirstLine(string(out)))
	}

	// One swarm per machine: the bridge, namespaces and subnet have fixed names (swarm.Layout).
	if err := os.MkdirAll(filepath.Dir(lockFile), 0o755); err != nil {
		return fmt.Errorf("stack swarm: %w", err)
	}
	lock, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("stack swarm: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("stack swarm: another swarm run holds %s (one at a time on a machine): %w", lock.Name(), err)
	}

	// The test swarm's nodes reach no registry but their own: the images they run are pushed
	// there, the stand-ins for the official ones (a mirror of the official images would do too,
	// where they can be pulled; not made here).
	if _, err := standinsWanted(ctx, root, "standins", "swarm", stderr); err != nil {
		return err
	}

	layout := swarm.Layout{Dir: filepath.Join(os.TempDir(), "e2e-swarm-"+*name)}
	return upRunDown(ctx, "swarm", command, stderr,
		func(ctx context.Context) (*swarm.Deployment, error) {
			started := time.Now()
			// On error, Up removed what it had made.
			d, err := swarm.Up(ctx, swarm.Options{RepoRoot: root, Layout: layout, Stack: *name, Standins: true, Progress: stderr})
			if err == nil {
				fmt.Fprintf(stderr, "stack swarm: up in %s\n", time.Since(started).Round(time.Second))
			}
			return d, err
		},
		func(d *swarm.Deployment) ([]string, error) {
			state, err := d.WriteState()
			if err != nil {
				return nil, err
			}
			return d.Exports(state), nil
		},
		func(ctx context.Context, d *swarm.Deployment) error {
			started := time.Now()
			err := d.Down(ctx)
			fmt.Fprintf(stderr, "stack swarm: stack, engines and their data removed in %s\n", time.Since(started).Round(time.Second))
			return err
		})
}
