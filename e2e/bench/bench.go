package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/movies-microservices/e2e/stack"
	"github.com/movies-microservices/e2e/target"
)

// Options configure Run. Zero values take the defaults of DefaultOptions.
type Options struct {
	// RepoRoot holds bin/ and traefik/ (see stackkit.FindRepoRoot). Required.
	RepoRoot string
	// Duration of each measured run, whole seconds (wrk's unit).
	Duration time.Duration
	// Warmup runs the same load before each measured run, and is discarded.
	Warmup time.Duration
	// Connections kept open by the generator: the concurrency of every run,
	// pgbench's included.
	Connections int
	// Threads of the generator (wrk -t, pgbench -j).
	Threads int
	// Repeats of the whole set of runs, with the variants in a rotated order
	// each time; the report takes the median.
	Repeats int
	// Casts and Movies to seed.
	Casts, Movies int
	// Scenarios to run, by name; empty means all.
	Scenarios []string
	// PgbenchMode is pgbench's -M: "prepared" (as pgx does) or "simple".
	PgbenchMode string
	// Durable runs PostgreSQL with fsync on, as in production. False (the
	// default) uses the stack's throwaway cluster, whose fsync and
	// synchronous_commit are off: on a VM's shared disk, durable writes
	// measure the disk (fdatasync took 0.3 to 3.5 ms here, varying with
	// other tenants' I/O) rather than the stack, and no two variants of a
	// write scenario would see the same disk.
	Durable bool
	// ProfileDir, if set, receives CPU and allocation profiles of the Go
	// processes (movies, casts, Traefik; pprof format), taken during one more
	// run of each scenario through Traefik after the measured runs (see
	// runner.profile). A profile that fails is reported in
	// Results.ProfileError; the measurements are kept.
	ProfileDir string
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
}

// DefaultOptions are those of `make bench`: about seven minutes on 2 cores.
func DefaultOptions() Options {
	return Options{
		Duration:    10 * time.Second,
		Warmup:      time.Second,
		Connections: 32,
		Threads:     2,
		Repeats:     2,
		Casts:       10000,
		Movies:      10000,
		PgbenchMode: "prepared",
	}
}

func (o Options) validate() error {
	var errs []error
	if o.RepoRoot == "" {
		errs = append(errs, errors.New("bench: Options.RepoRoot is required"))
	}
	if o.Duration < time.Second || o.Duration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("bench: duration %s: want whole seconds, at least 1s (wrk's unit)", o.Duration))
	}
	if o.Warmup < 0 || o.Warmup%time.Second != 0 {
		errs = append(errs, fmt.Errorf("bench: warm-up %s: want whole seconds, or 0", o.Warmup))
	}
	if o.Threads < 1 || o.Connections < o.Threads {
		errs = append(errs, fmt.Errorf("bench: %d threads and %d connections: want at least 1 thread and a connection per thread", o.Threads, o.Connections))
	}
	if o.Repeats < 1 {
		errs = append(errs, fmt.Errorf("bench: %d repeats: want at least 1", o.Repeats))
	}
	if o.Casts < 10 || o.Movies < 50 {
		errs = append(errs, fmt.Errorf("bench: %d casts and %d movies: want at least 10 casts (a movie has up to 10) and 50 movies (a list page)", o.Casts, o.Movies))
	}
	if o.PgbenchMode != "prepared" && o.PgbenchMode != "simple" && o.PgbenchMode != "extended" {
		errs = append(errs, fmt.Errorf("bench: pgbench mode %q: want prepared, simple or extended", o.PgbenchMode))
	}
	for _, name := range o.Scenarios {
		if _, ok := scenarioByName(name); !ok {
			errs = append(errs, fmt.Errorf("bench: unknown scenario %q", name))
		}
	}
	return errors.Join(errs...)
}

func (o Options) scenarios() []Scenario {
	if len(o.Scenarios) == 0 {
		return Scenarios
	}
	var out []Scenario
	for _, sc := range Scenarios {
		for _, name := range o.Scenarios {
			if sc.Name == name {
				out = append(out, sc)
			}
		}
	}
	return out
}

// Estimate is how long the measured runs take, without start-up and seeding.
func (o Options) Estimate() time.Duration {
	runs := 0
	for _, sc := range o.scenarios() {
		runs += 5
		if sc.Name == targetScenarioForPgbench {
			runs++
		}
		if slices.Contains(tracedScenarios, sc.Name) {
			runs++
		}
	}
	total := time.Duration(o.Repeats*runs) * (o.Duration + o.Warmup + runPause)
	if o.ProfileDir != "" {
		total += time.Duration(len(o.scenarios())) * (o.Duration + 2*time.Second)
	}
	return total
}

// runPause separates runs, so that one run's closing connections and
// finishing writes do not land in the next.
const runPause = 500 * time.Millisecond

// Run starts the stack, seeds it, starts nginx beside Traefik, and runs every
// scenario against every variant; it stops everything it started before it
// returns.
func Run(ctx context.Context, opts Options) (_ *Results, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	// Fail before anything starts when a tool is missing.
	if _, err := exec.LookPath("wrk"); err != nil {
		return nil, errors.New("bench: wrk not found on PATH: install it (Debian/Ubuntu: apt-get install wrk)")
	}
	if _, err := findNginx(); err != nil {
		return nil, err
	}
	if _, err := findPgbench(); err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	// PostgreSQL runs as its own user when we are root: it must get through.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}

	res := &Results{Started: time.Now().UTC(), Machine: describeMachine(opts.RepoRoot)}
	res.Settings = Settings{
		Duration: Duration(opts.Duration), Warmup: Duration(opts.Warmup),
		Connections: opts.Connections, Threads: opts.Threads, Repeats: opts.Repeats,
		Casts: opts.Casts, Movies: opts.Movies, PgbenchMode: opts.PgbenchMode, Durable: opts.Durable,
		Seeding:   "COPY into each service's tables as the superuser",
		Generator: "wrk " + res.Machine.Versions["wrk"],
		Errors:    "non-2xx answers (wrk counts status >= 400; the API never redirects) plus connect, read, write errors and timeouts (5s)",
	}

	// Without tracing: every variant but "traced" measures the stack as it was before tracing.
	stackOpts := stack.Options{RepoRoot: opts.RepoRoot, LogLevel: "info", Progress: progress, Profiling: opts.ProfileDir != "", NoTracing: true}
	if opts.Durable {
		// A persistent cluster (fsync on, as in production) in our temp dir.
		stackOpts.Dir = filepath.Join(dir, "stack")
	}
	fmt.Fprintln(progress, "bench: starting the stack")
	st, err := stack.Start(ctx, stackOpts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if stopErr := st.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	urls := st.URLs()
	pids := st.PIDs()

	fmt.Fprintf(progress, "bench: seeding %d casts and %d movies\n", opts.Casts, opts.Movies)
	ids, err := seed(ctx, urls.DatabaseAdmin, opts.Casts, opts.Movies)
	if err != nil {
		return nil, err
	}

	// The traced stack: the same programs, with Jaeger and every request traced, seeded alike.
	fmt.Fprintln(progress, "bench: starting a second stack that traces every request to its Jaeger")
	// The same options but for tracing (and profiles, which only the bench stack records): with
	// -durable, a durable cluster of its own too.
	tracedOpts := stackOpts
	tracedOpts.NoTracing, tracedOpts.Profiling = false, false
	if opts.Durable {
		tracedOpts.Dir = filepath.Join(dir, "traced")
	}
	traced, err := stack.Start(ctx, tracedOpts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if stopErr := traced.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	var tracedGroups []group
	for name, pid := range traced.PIDs() {
		if slices.Contains(processGroups, name) {
			tracedGroups = append(tracedGroups, group{name: name, roots: []int{pid}})
		}
	}
	if tracedIDs, err := seed(ctx, traced.URLs().DatabaseAdmin, opts.Casts, opts.Movies); err != nil {
		return nil, err
	} else if tracedIDs != ids {
		return nil, fmt.Errorf("bench: the traced stack was seeded with ids %v, the bench stack with %v", tracedIDs, ids)
	}

	fmt.Fprintln(progress, "bench: starting nginx")
	ngx, err := startNginx(ctx, filepath.Join(dir, "nginx"), urls.Movies[0], urls.Casts[0])
	if err != nil {
		return nil, err
	}
	defer ngx.stop()
	pids["nginx"] = ngx.pid()

	fmt.Fprintln(progress, "bench: starting a bare Traefik")
	bare, err := startBareTraefik(ctx, opts.RepoRoot, filepath.Join(dir, "bare"), urls.Movies[0], urls.Casts[0])
	if err != nil {
		return nil, err
	}
	defer bare.stop()
	pids["bare"] = bare.pid()

	fmt.Fprintln(progress, "bench: starting casts and movies without token verification")
	unv, err := startUnverified(ctx, opts.RepoRoot, dir, st)
	if err != nil {
		return nil, err
	}
	defer unv.stop()

	fmt.Fprintln(progress, "bench: pgbench -i")
	pgDir := filepath.Join(dir, "pgbench")
	if err := os.MkdirAll(pgDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	pgb, err := newPgbench(ctx, urls.DatabaseAdmin, pgDir, opts.Threads, opts.Connections, opts.PgbenchMode)
	if err != nil {
		return nil, err
	}
	gen, err := newWrk(dir, opts.Threads, opts.Connections)
	if err != nil {
		return nil, err
	}

	groups := make([]group, 0, len(processGroups))
	for _, name := range processGroups {
		g := group{name: name, roots: []int{pids[name]}}
		// The services without verification count as the services: only one of the two serves
		// at a time, the other idles.
		switch name {
		case target.ServiceCasts:
			g.roots = append(g.roots, unv.casts.pid())
		case target.ServiceMovies:
			g.roots = append(g.roots, unv.movies.pid())
		}
		groups = append(groups, g)
	}
	r := runner{gen: gen, pgbench: pgb, groups: groups, tracedGroups: tracedGroups, opts: opts, ids: ids, progress: progress,
		// Each stack's Hydra signs with its own keys.
		token: func(ctx context.Context, variant string) (string, error) {
			if variant == VariantTraced {
				return traced.Token(ctx, target.DemoScopes)
			}
			return st.Token(ctx, target.DemoScopes)
		}}

	fmt.Fprintf(progress, "bench: measuring, about %s\n", opts.Estimate().Round(time.Second))
	variants := []string{VariantDirect, VariantUnverified, VariantTraefik, VariantBare, VariantNginx}
	for rep := range opts.Repeats {
		for _, sc := range opts.scenarios() {
			vs := append([]string(nil), variants...)
			if sc.Name == targetScenarioForPgbench {
				vs = append(vs, VariantPgbench)
			}
			if slices.Contains(tracedScenarios, sc.Name) {
				vs = append(vs, VariantTraced)
			}
			// Each repeat starts with another variant, so that none always
			// runs first (cold) or last (after the database grew most).
			vs = append(vs[rep%len(vs):], vs[:rep%len(vs)]...)
			for _, v := range vs {
				base := ""
				switch v {
				case VariantDirect:
					base = urls.Movies[0]
					if sc.Service == "casts" {
						base = urls.Casts[0]
					}
				case VariantUnverified:
					base = unv.url(sc.Service)
				case VariantTraefik:
					base = urls.Gateway
				case VariantBare:
					base = bare.url
				case VariantNginx:
					base = ngx.url
				case VariantTraced:
					base = traced.URLs().Gateway
				}
				run, err := r.measure(ctx, sc, v, base, rep+1)
				if err != nil {
					return nil, err
				}
				res.Runs = append(res.Runs, run)
			}
		}
	}

	if opts.ProfileDir != "" {
		if err := os.MkdirAll(opts.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		for _, sc := range opts.scenarios() {
			fmt.Fprintf(progress, "bench: %-12s traefik  profiling movies, casts and Traefik for %s\n", sc.Name, opts.Duration)
			files, err := r.profile(ctx, sc, urls.Gateway, urls.Profiles, opts.ProfileDir)
			res.Profiles = append(res.Profiles, files...)
			if err != nil {
				// Keep the measurements: minutes of runs are worth more than a profile.
				fmt.Fprintf(progress, "bench: %v\n", err)
				res.ProfileError = strings.TrimSpace(res.ProfileError + "\n" + err.Error())
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
			}
		}
	}

	res.Summary = summarize(res.Runs)
	res.Ratios = ratios(res.Summary)
	res.PeakRSS = peakRSS(res.Runs)
	res.TracedPeakRSS = peakRSS(slices.DeleteFunc(slices.Clone(res.Runs), func(m Measurement) bool { return m.Variant != VariantTraced }))
	res.Checks = checks(res.Summary, res.Ratios, res.PeakRSS)
	res.Finished = time.Now().UTC()
	return res, nil
}

// runner runs one scenario against one variant.
type runner struct {
	gen     *wrk
	pgbench *pgbench
	groups  []group
	// tracedGroups are the traced stack's processes, measured in the runs of VariantTraced.
	tracedGroups []group
	opts         Options
	ids          idRange
	progress     io.Writer
	count        int
	// token gets an access token for the writes to variant's stack: tokens live minutes, a
	// bench longer.
	token func(ctx context.Context, variant string) (string, error)
}

func (r *runner) measure(ctx context.Context, sc Scenario, variant, baseURL string, repeat int) (Measurement, error) {
	r.count++
	// The same requests for every variant of a repeat.
	seed := int64(repeat)
	token, err := r.token(ctx, variant)
	if err != nil {
		return Measurement{}, fmt.Errorf("bench: get an access token for the writes: %w", err)
	}
	if variant != VariantPgbench && r.opts.Warmup > 0 {
		if _, err := r.gen.run(ctx, baseURL, sc.Name, r.opts.Warmup, r.ids, seed+1000, token); err != nil {
			return Measurement{}, err
		}
	}
	time.Sleep(runPause)

	groups := r.groups
	if variant == VariantTraced {
		groups = r.tracedGroups
	}
	w, err := startWatcher(groups, 250*time.Millisecond)
	if err != nil {
		return Measurement{}, err
	}
	harness, machine := selfCPU(), machineCPU()
	var out wrkRun
	if variant == VariantPgbench {
		out, err = r.pgbench.run(ctx, r.opts.Duration, r.count)
	} else {
		out, err = r.gen.run(ctx, baseURL, sc.Name, r.opts.Duration, r.ids, seed, token)
	}
	stats := w.finish()
	if err != nil {
		return Measurement{}, err
	}
	harnessCPU, machineBusy := selfCPU()-harness, machineCPU()-machine

	res := out.result
	secs := float64(res.DurationUS) / 1e6
	run := Measurement{
		Scenario: sc.Name, Variant: variant, Repeat: repeat,
		Requests: res.Requests, Seconds: secs,
		Latency: Latency{
			P50: res.LatencyUS.P50 / 1000, P90: res.LatencyUS.P90 / 1000, P99: res.LatencyUS.P99 / 1000,
			Max: res.LatencyUS.Max / 1000, Mean: res.LatencyUS.Mean / 1000,
		},
		Errors: Errors{
			Status: res.Errors.Status, Connect: res.Errors.Connect, Read: res.Errors.Read,
			Write: res.Errors.Write, Timeout: res.Errors.Timeout,
		},
		GeneratorCPU: out.cpu.Seconds() / out.wall.Seconds(),
		HarnessCPU:   harnessCPU.Seconds() / out.wall.Seconds(),
		Processes:    make(map[string]ProcessStats, len(stats)),
	}
	if secs > 0 {
		run.RPS = float64(res.Requests) / secs
	}
	ours := out.cpu + harnessCPU
	for _, s := range stats {
		ours += s.CPU
	}
	run.OtherCPU = max(0, (machineBusy-ours).Seconds()/out.wall.Seconds())
	for name, s := range stats {
		run.Processes[name] = ProcessStats{
			CPU:          s.CPU.Seconds() / out.wall.Seconds(),
			PeakRSSMB:    float64(s.PeakRSS) / (1 << 20),
			PeakRSSSumMB: float64(s.PeakRSSSum) / (1 << 20),
			Processes:    s.Processes,
		}
	}
	fmt.Fprintf(r.progress, "bench: %-12s %-8s repeat %d: %8.0f req/s  p99 %6.2f ms  errors %d  generator %.2f cores  other load %.2f cores\n",
		sc.Name, variant, repeat, run.RPS, run.Latency.P99, run.Errors.Total(), run.GeneratorCPU, run.OtherCPU)
	return run, nil
}

// describeMachine records the CPUs, memory, kernel and tool versions.
func describeMachine(repoRoot string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Versions: map[string]string{"go": strings.TrimPrefix(runtime.Version(), "go")}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				m.MemoryMB = kb >> 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	version := func(name string, args []string, pick func(string) string) {
		out, _ := exec.Command(args[0], args[1:]...).CombinedOutput()
		if v := pick(string(out)); v != "" {
			m.Versions[name] = v
		}
	}
	field := func(prefix string) func(string) string {
		return func(out string) string {
			for _, line := range strings.Split(out, "\n") {
				if i := strings.Index(line, prefix); i >= 0 {
					return strings.Fields(line[i+len(prefix):] + " ")[0]
				}
			}
			return ""
		}
	}
	version("traefik", []string{filepath.Join(repoRoot, "bin", "traefik"), "version"}, field("Version:"))
	if p, err := findNginx(); err == nil {
		version("nginx", []string{p, "-v"}, field("nginx/"))
	}
	version("wrk", []string{"wrk", "--version"}, field("wrk "))
	if bin, err := stack.FindPostgres(); err == nil {
		version("postgres", []string{bin.Postgres(), "--version"}, field("(PostgreSQL) "))
	}
	return m
}
