// Command bench measures the stack: every scenario direct to the service,
// through Traefik and through nginx, and pgbench as the floor under GET by id.
//
//	go run ./e2e/cmd/bench [flags]
//
// It needs bin/ built (make build traefik), wrk and nginx (Debian: apt-get
// install wrk nginx) and the PostgreSQL server binaries. It writes the
// results as JSON under .run/bench/ and prints Markdown tables to stdout;
// progress goes to stderr. Every flag has an environment variable too.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/movies-microservices/e2e/bench"
	"github.com/movies-microservices/e2e/stackkit"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opts := bench.DefaultOptions()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		out       string
		scenarios string
		strict    bool
		render    string
		profile   bool
	)
	// Each flag's default comes from its variable, if set, else from DefaultOptions.
	envErrs := []error{}
	durationVar := func(dst *time.Duration, name, env, usage string) {
		if v := getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
			*dst = d
		}
		fs.DurationVar(dst, name, *dst, usage+" ($"+env+")")
	}
	intVar := func(dst *int, name, env, usage string) {
		if v := getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: not a whole number", env, v))
			}
			*dst = n
		}
		fs.IntVar(dst, name, *dst, usage+" ($"+env+")")
	}
	stringVar := func(dst *string, name, env, usage string) {
		if v := getenv(env); v != "" {
			*dst = v
		}
		fs.StringVar(dst, name, *dst, usage+" ($"+env+")")
	}
	boolVar := func(dst *bool, name, env, usage string) {
		if v := getenv(env); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: not true or false", env, v))
			}
			*dst = b
		}
		fs.BoolVar(dst, name, *dst, usage+" ($"+env+")")
	}
	durationVar(&opts.Duration, "duration", "BENCH_DURATION", "length of each measured run, whole seconds")
	durationVar(&opts.Warmup, "warmup", "BENCH_WARMUP", "unmeasured load before each run, whole seconds")
	intVar(&opts.Connections, "connections", "BENCH_CONNECTIONS", "concurrent connections of every run (wrk -c, pgbench -c)")
	intVar(&opts.Threads, "threads", "BENCH_THREADS", "generator threads (wrk -t, pgbench -j)")
	intVar(&opts.Repeats, "repeats", "BENCH_REPEATS", "interleaved repeats of every run; the report takes the median")
	intVar(&opts.Casts, "casts", "BENCH_CASTS", "casts to seed")
	intVar(&opts.Movies, "movies", "BENCH_MOVIES", "movies to seed")
	stringVar(&opts.PgbenchMode, "pgbench-mode", "BENCH_PGBENCH_MODE", "pgbench query mode: prepared (as pgx), simple or extended")
	boolVar(&opts.Durable, "durable", "BENCH_DURABLE", "PostgreSQL with fsync on, as in production (default off: on a shared VM disk, writes would measure the disk)")
	stringVar(&scenarios, "scenarios", "BENCH_SCENARIOS", "comma-separated scenarios to run (default all: "+scenarioNames()+")")
	stringVar(&out, "out", "BENCH_OUT", "directory for the JSON results (default .run/bench in the repository)")
	boolVar(&strict, "strict", "BENCH_STRICT", "exit 1 when a target is missed")
	boolVar(&profile, "profile", "BENCH_PROFILE", "after the measured runs, run each scenario once more through Traefik and save the CPU and allocation profiles (pprof) of movies, casts and Traefik beside the results")
	fs.StringVar(&render, "render", "", "print the tables of an earlier results `file` and exit, running nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if render != "" {
		return renderResults(render, stdout)
	}
	if err := errors.Join(envErrs...); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	if scenarios != "" {
		opts.Scenarios = strings.Split(scenarios, ",")
	}

	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := stackkit.FindRepoRoot(wd)
	if err != nil {
		return err
	}
	opts.RepoRoot = root
	opts.Progress = stderr
	if out == "" {
		out = filepath.Join(root, ".run", "bench")
	}

	if profile {
		opts.ProfileDir = filepath.Join(out, "profiles-"+time.Now().UTC().Format("20060102T150405Z"))
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, opts)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	path := filepath.Join(out, "results-"+res.Started.Format("20060102T150405Z")+".json")
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: write results: %w", err)
	}
	if err := res.WriteMarkdown(stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nResults: %s\n", path)
	if len(res.Profiles) > 0 {
		fmt.Fprintf(stdout, "Profiles: %s (read one with: go tool pprof -top FILE; allocations: go tool pprof -sample_index=alloc_space -top FILE)\n", opts.ProfileDir)
	}
	if res.ProfileError != "" {
		return fmt.Errorf("bench: the measurements are saved, but profiling failed:\n%s", res.ProfileError)
	}
	if strict {
		for _, c := range res.Checks {
			if !c.Met {
				return errors.New("bench: a target was missed (see the last table)")
			}
		}
	}
	return nil
}

// renderResults prints the Markdown tables of a results file, for a README
// updated from a run made earlier.
func renderResults(path string, stdout io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	var res bench.Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("bench: read %s: %w", path, err)
	}
	return res.WriteMarkdown(stdout)
}

func scenarioNames() string {
	names := make([]string, len(bench.Scenarios))
	for i, s := range bench.Scenarios {
		names[i] = s.Name
	}
	return strings.Join(names, ",")
}
