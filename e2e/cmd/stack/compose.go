package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/movies-microservices/e2e/compose"
	"github.com/movies-microservices/e2e/stackkit"
)

// runCompose runs a command against a throwaway Compose project of compose.yaml, which it always
// takes down with its volumes: after the command ends, and on SIGINT or SIGTERM, which it passes
// on to the command first.
func runCompose(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("compose", flag.ContinueOnError)
	fs.SetOutput(stderr)
	images := fs.String("images", envOr(getenv, "E2E_COMPOSE_IMAGES", "auto"), "`which` base images: official, standins, or auto (official where the engine has or can pull them)")
	name := fs.String("project", envOr(getenv, compose.EnvProject, "movies-microservices-e2e"), "Compose project `name`")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	command := fs.Args()
	if len(command) == 0 {
		fmt.Fprint(stderr, "stack compose: no command given\n\n"+usage)
		return exitCode(2)
	}
	root, err := repoRoot("compose")
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "docker", "compose", "version").CombinedOutput(); err != nil {
		return fmt.Errorf("stack compose: `docker compose version` failed (%v: %s): is a Docker engine running, "+
			"and the Compose plugin installed (bash .ci/install-compose builds it)?", err, strings.TrimSpace(string(out)))
	}

	opts := compose.Options{RepoRoot: root, Name: *name, Build: true, LogLevel: "warn", Progress: stderr}
	standins, err := standinsWanted(ctx, root, *images, "compose", stderr)
	if err != nil {
		return err
	}
	if standins {
		opts.Overrides = []string{compose.StandinsFile}
		fmt.Fprintf(stderr, "stack compose: images: stand-ins (%s)\n", compose.StandinsFile)
	} else {
		fmt.Fprintln(stderr, "stack compose: images: the official ones, as compose.yaml and the Dockerfiles name them")
	}

	return upRunDown(ctx, "compose", command, stderr,
		func(ctx context.Context) (*compose.Project, error) {
			started := time.Now()
			p, err := compose.Up(ctx, opts) // on error, Up took down what it had started
			if err == nil {
				fmt.Fprintf(stderr, "stack compose: project %s up in %s\n", p.Name(), time.Since(started).Round(time.Second))
			}
			return p, err
		},
		func(p *compose.Project) ([]string, error) { return p.Exports(), nil },
		func(ctx context.Context, p *compose.Project) error {
			err := p.Down(ctx)
			// The suite removes the projects it starts beside this one (NAME-...), unless it was killed.
			if left, err := compose.RemoveProjects(ctx, p.Name()); len(left) > 0 || err != nil {
				fmt.Fprintf(stderr, "stack compose: removed projects left behind: %v %v\n", left, err)
			}
			return err
		})
}

// standinsWanted decides, for -images mode (official, standins or auto), whether the stack runs
// on the stand-in images, and if so makes them (e2e/compose/standins.sh, after bin/traefik,
// bin/hydra and bin/jaeger, which three of them are). who names the command in messages.
func standinsWanted(ctx context.Context, root, mode, who string, stderr io.Writer) (bool, error) {
	switch mode {
	case "official":
		return false, nil
	case "standins":
	case "auto":
		missing, err := officialImagesMissing(ctx, root, stderr)
		if err != nil {
			return false, err
		}
		if missing == "" {
			return false, nil
		}
		fmt.Fprintf(stderr, "stack %s: %s; using stand-ins made offline (e2e/compose/standins.sh)\n", who, missing)
	default:
		return false, fmt.Errorf("stack %s: -images %q: want official, standins or auto", who, mode)
	}
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", root, "traefik", "hydra", "jaeger")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return false, fmt.Errorf("stack %s: make traefik hydra jaeger: %w", who, err)
	}
	cmd = exec.CommandContext(ctx, "bash", filepath.Join(root, "e2e", "compose", "standins.sh"))
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return false, fmt.Errorf("stack %s: make the stand-in images: %w", who, err)
	}
	return true, nil
}

// runStandins makes the stand-in images, whatever the engine can pull.
func runStandins(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 0 {
		fmt.Fprint(stderr, "stack standins: takes no arguments\n\n"+usage)
		return exitCode(2)
	}
	root, err := repoRoot("standins")
	if err != nil {
		return err
	}
	_, err = standinsWanted(ctx, root, "standins", "standins", stderr)
	return err
}

func envOr(getenv func(string) string, key, fallback string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return fallback
}

// officialImagesMissing says which official image the engine neither has nor can pull, "" if
// it has them all: the base images of the Dockerfiles (their ARG defaults) and compose.yaml's
// own images.
func officialImagesMissing(ctx context.Context, root string, progress io.Writer) (string, error) {
	images, err := officialImages(ctx, root)
	if err != nil {
		return "", err
	}
	for _, image := range images {
		if exec.CommandContext(ctx, "docker", "image", "inspect", image).Run() == nil {
			continue
		}
		fmt.Fprintf(progress, "stack compose: pulling %s\n", image)
		pullCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		out, err := exec.CommandContext(pullCtx, "docker", "pull", "--quiet", image).CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Sprintf("the engine cannot pull %s (%s)", image, stackkit.FirstLine(string(out))), nil
		}
	}
	return "", nil
}

func officialImages(ctx context.Context, root string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "docker", "compose", "--project-directory", root, "--file", filepath.Join(root, "compose.yaml"),
		"--env-file", filepath.Join(root, ".env.example"), "config", "--format", "json")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("stack compose: docker compose config: %w", err)
	}
	var cfg struct {
		Services map[string]struct {
			Image string `json:"image"`
			Build *struct {
				Context    string `json:"context"`
				Dockerfile string `json:"dockerfile"`
			} `json:"build"`
		} `json:"services"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		return nil, fmt.Errorf("stack compose: docker compose config: %w", err)
	}
	seen := map[string]bool{}
	var images []string
	add := func(image string) {
		if image != "" && !seen[image] {
			seen[image] = true
			images = append(images, image)
		}
	}
	for _, svc := range cfg.Services {
		if svc.Build == nil {
			add(svc.Image)
			continue
		}
		args, err := compose.DockerfileBaseArgs(filepath.Join(svc.Build.Context, svc.Build.Dockerfile))
		if err != nil {
			return nil, err
		}
		for _, name := range slices.Sorted(maps.Keys(args)) {
			add(args[name])
		}
	}
	return images, nil
}
