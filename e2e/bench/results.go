package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Scenario is one kind of request the benchmark sends.
type Scenario struct {
	Name    string `json:"name"`    // as wrk.lua knows it
	Title   string `json:"title"`   // for people
	Service string `json:"service"` // the service that answers it directly
}

// Scenarios are every scenario, in the order they run and are reported.
var Scenarios = []Scenario{
	{Name: "get-movie", Title: "GET movie by id", Service: "movies"},
	{Name: "list-movies", Title: "GET movie list (limit 50)", Service: "movies"},
	{Name: "post-cast", Title: "POST cast", Service: "casts"},
	{Name: "post-movie", Title: "POST movie (cast check via mesh)", Service: "movies"},
	{Name: "patch-movie", Title: "PATCH movie", Service: "movies"},
}

// Variants: where a scenario's requests go.
const (
	VariantDirect = "direct" // to the service's own port
	// VariantUnverified is direct to another process of the service, on the same database,
	// started with *_AUTH_VERIFY=off: "direct" against it is what verifying tokens costs.
	VariantUnverified = "unverified"
	VariantTraefik    = "traefik" // to Traefik's public entrypoint "web"
	VariantBare       = "bare"    // to a bare Traefik: same binary and servers transport, no middlewares, metrics or access log
	VariantNginx      = "nginx"   // to nginx, configured as the original gateway
	VariantPgbench    = "pgbench" // pgbench select-only: the reference for GET movie by id
	// VariantTraced is the public entrypoint of a second stack, the same but for tracing: its
	// Traefik and services trace every request (100 % sampled) to its own running Jaeger. The
	// bench's own stack, which every other variant uses, runs without tracing.
	VariantTraced = "traced"
)

// tracedScenarios are the scenarios measured through the traced stack too.
var tracedScenarios = []string{"get-movie", "post-movie"}

// Process groups whose CPU and memory each run records. "traefik" is the stack's Traefik (it
// also carries the movie service's cast check through the mesh in every variant), "bare" the
// bare one. In the runs of the traced variant, movies, casts, traefik and postgres are the traced
// stack's, and jaeger is its trace backend.
var processGroups = []string{"movies", "casts", "traefik", "bare", "nginx", "postgres", "jaeger"}

// Results is everything one benchmark run produced; it is written as JSON.
type Results struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	// Runs are every measured run, in the order they ran.
	Runs []Measurement `json:"runs"`
	// Summary has one entry per scenario and variant: medians over repeats.
	Summary []Summary `json:"summary"`
	Ratios  []Ratio   `json:"ratios"`
	// PeakRSS is, per process group, the largest peak over every run.
	PeakRSS map[string]ProcessStats `json:"peak_rss"`
	// TracedPeakRSS is the same over the runs of the traced variant only: the traced stack's
	// processes with every request traced.
	TracedPeakRSS map[string]ProcessStats `json:"traced_peak_rss,omitempty"`
	Checks        []Check                 `json:"checks"`
	// Profiles are the files of a run with Options.ProfileDir, and
	// ProfileError what went wrong taking them, if anything.
	Profiles     []string `json:"profiles,omitempty"`
	ProfileError string   `json:"profile_error,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs     int               `json:"cpus"`
	CPUModel string            `json:"cpu_model"`
	MemoryMB int64             `json:"memory_mb"`
	Kernel   string            `json:"kernel"`
	Versions map[string]string `json:"versions"`
}

// Settings are the knobs of the run.
type Settings struct {
	Duration    Duration `json:"duration"`
	Warmup      Duration `json:"warmup"`
	Connections int      `json:"connections"`
	Threads     int      `json:"threads"`
	Repeats     int      `json:"repeats"`
	Casts       int      `json:"casts"`
	Movies      int      `json:"movies"`
	PgbenchMode string   `json:"pgbench_mode"`
	Durable     bool     `json:"durable"`
	Seeding     string   `json:"seeding"`
	Generator   string   `json:"generator"`
	Errors      string   `json:"errors"`
}

// Duration is a time.Duration that reads as "10s" in JSON.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Measurement is one measured run of one scenario against one variant.
type Measurement struct {
	Scenario string  `json:"scenario"`
	Variant  string  `json:"variant"`
	Repeat   int     `json:"repeat"`
	Requests int64   `json:"requests"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	Latency  Latency `json:"latency_ms"`
	Errors   Errors  `json:"errors"`
	// GeneratorCPU is the cores wrk (or pgbench) kept busy: CPU time / wall time.
	GeneratorCPU float64 `json:"generator_cpu"`
	// HarnessCPU is the same for this program (the stack's log copying, sampling).
	HarnessCPU float64 `json:"harness_cpu"`
	// OtherCPU is the cores that processes outside the benchmark kept busy:
	// the machine's busy time less ours. Other work on a shared machine
	// shows here.
	OtherCPU  float64                 `json:"other_cpu"`
	Processes map[string]ProcessStats `json:"processes"`
}

// Latency percentiles, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Errors count failed requests by kind.
type Errors struct {
	Status  int64 `json:"status"` // non-2xx answers (wrk counts status >= 400; nothing here redirects)
	Connect int64 `json:"connect"`
	Read    int64 `json:"read"`
	Write   int64 `json:"write"`
	Timeout int64 `json:"timeout"`
}

// Total is every failed request.
func (e Errors) Total() int64 { return e.Status + e.Connect + e.Read + e.Write + e.Timeout }

func (e Errors) add(o Errors) Errors {
	return Errors{e.Status + o.Status, e.Connect + o.Connect, e.Read + o.Read, e.Write + o.Write, e.Timeout + o.Timeout}
}

// ProcessStats is what one process group did during a run.
type ProcessStats struct {
	CPU       float64 `json:"cpu"`         // cores kept busy: CPU time / run time
	PeakRSSMB float64 `json:"peak_rss_mb"` // largest peak RSS of one process of the group
	// PeakRSSSumMB adds up the group's processes; for PostgreSQL it counts
	// the shared buffers once per process, so it overstates.
	PeakRSSSumMB float64 `json:"peak_rss_sum_mb"`
	Processes    int     `json:"processes"`
}

// Summary is the median over repeats of one scenario and variant.
type Summary struct {
	Scenario     string                  `json:"scenario"`
	Variant      string                  `json:"variant"`
	Repeats      int                     `json:"repeats"`
	RPS          float64                 `json:"rps"`
	Latency      Latency                 `json:"latency_ms"`
	Errors       Errors                  `json:"errors"` // summed over repeats
	GeneratorCPU float64                 `json:"generator_cpu"`
	HarnessCPU   float64                 `json:"harness_cpu"`
	OtherCPU     float64                 `json:"other_cpu"`
	Processes    map[string]ProcessStats `json:"processes"` // CPU: median; RSS: max
}

// Ratio compares the throughput of two summaries.
type Ratio struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target float64 `json:"target,omitempty"` // the least acceptable value; 0: none
}

// Met tells whether the ratio reaches its target (true when it has none).
func (r Ratio) Met() bool { return r.Target == 0 || r.Value >= r.Target }

// Check is one target of the issue, met or not, with the figure behind it.
type Check struct {
	Name   string `json:"name"`
	Met    bool   `json:"met"`
	Detail string `json:"detail"`
}

// summarize takes the median of each scenario and variant over its repeats,
// in the order of Scenarios and then of first appearance.
func summarize(runs []Measurement) []Summary {
	type key struct{ scenario, variant string }
	var order []key
	groups := make(map[key][]Measurement)
	for _, r := range runs {
		k := key{r.Scenario, r.Variant}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	slices.SortStableFunc(order, func(a, b key) int {
		if c := scenarioIndex(a.scenario) - scenarioIndex(b.scenario); c != 0 {
			return c
		}
		return variantIndex(a.variant) - variantIndex(b.variant)
	})
	out := make([]Summary, 0, len(order))
	for _, k := range order {
		rs := groups[k]
		s := Summary{Scenario: k.scenario, Variant: k.variant, Repeats: len(rs), Processes: make(map[string]ProcessStats)}
		pick := func(f func(Measurement) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			return median(v)
		}
		s.RPS = pick(func(r Measurement) float64 { return r.RPS })
		s.Latency = Latency{
			P50:  pick(func(r Measurement) float64 { return r.Latency.P50 }),
			P90:  pick(func(r Measurement) float64 { return r.Latency.P90 }),
			P99:  pick(func(r Measurement) float64 { return r.Latency.P99 }),
			Max:  pick(func(r Measurement) float64 { return r.Latency.Max }),
			Mean: pick(func(r Measurement) float64 { return r.Latency.Mean }),
		}
		s.GeneratorCPU = pick(func(r Measurement) float64 { return r.GeneratorCPU })
		s.HarnessCPU = pick(func(r Measurement) float64 { return r.HarnessCPU })
		s.OtherCPU = pick(func(r Measurement) float64 { return r.OtherCPU })
		for _, r := range rs {
			s.Errors = s.Errors.add(r.Errors)
		}
		for _, g := range processGroups {
			var ps ProcessStats
			seen := false
			for _, r := range rs {
				p, ok := r.Processes[g]
				if !ok {
					continue
				}
				seen = true
				ps.PeakRSSMB = max(ps.PeakRSSMB, p.PeakRSSMB)
				ps.PeakRSSSumMB = max(ps.PeakRSSSumMB, p.PeakRSSSumMB)
				ps.Processes = max(ps.Processes, p.Processes)
			}
			if !seen {
				continue
			}
			ps.CPU = pick(func(r Measurement) float64 { return r.Processes[g].CPU })
			s.Processes[g] = ps
		}
		out = append(out, s)
	}
	return out
}

// peakRSS is, per process group, the largest peaks over every run.
func peakRSS(runs []Measurement) map[string]ProcessStats {
	out := make(map[string]ProcessStats)
	for _, r := range runs {
		for g, p := range r.Processes {
			cur := out[g]
			cur.PeakRSSMB = max(cur.PeakRSSMB, p.PeakRSSMB)
			cur.PeakRSSSumMB = max(cur.PeakRSSSumMB, p.PeakRSSSumMB)
			cur.Processes = max(cur.Processes, p.Processes)
			out[g] = cur
		}
	}
	return out
}

// The targets: what the project's own Traefik configuration may cost on top of a bare Traefik
// (same binary, same servers transport), per scenario. The other ratios are information: on 2
// shared cores they measure Traefik's and PostgreSQL's own costs more than the project's.
const (
	targetProjectOverBareReads  = 0.95 // GET by id and the list
	targetProjectOverBareWrites = 0.9  // POST and PATCH
	targetServiceRSSMB          = 50.0 // each service, under load
	// targetVerifiedOverUnverified: writes that verify a bearer JWT keep 90% of the throughput
	// of the same writes without verification.
	targetVerifiedOverUnverified = 0.9
	targetScenarioForPgbench     = "get-movie"
	// targetTracedOverUntraced: GET by id and POST movie through the gateway with every request
	// traced keep 90% of the throughput without tracing.
	targetTracedOverUntraced = 0.9
)

// ratios computes every ratio the report shows, with the targets.
func ratios(summary []Summary) []Ratio {
	rps := make(map[[2]string]float64)
	for _, s := range summary {
		rps[[2]string{s.Scenario, s.Variant}] = s.RPS
	}
	var out []Ratio
	add := func(name string, num, den [2]string, target float64) {
		n, okN := rps[num]
		d, okD := rps[den]
		if !okN || !okD || d == 0 {
			return
		}
		out = append(out, Ratio{Name: name, Value: n / d, Target: target})
	}
	for _, sc := range Scenarios {
		target := targetProjectOverBareWrites
		if sc.Name == "get-movie" || sc.Name == "list-movies" {
			target = targetProjectOverBareReads
		}
		add(sc.Title+": project Traefik / bare Traefik", [2]string{sc.Name, VariantTraefik}, [2]string{sc.Name, VariantBare}, target)
	}
	for _, sc := range Scenarios {
		// Reads verify nothing: their ratio only shows the noise.
		target := targetVerifiedOverUnverified
		if sc.Name == "get-movie" || sc.Name == "list-movies" {
			target = 0
		}
		add(sc.Title+": token verified / not verified (direct)", [2]string{sc.Name, VariantDirect}, [2]string{sc.Name, VariantUnverified}, target)
	}
	for _, sc := range Scenarios {
		add(sc.Title+": Traefik / direct", [2]string{sc.Name, VariantTraefik}, [2]string{sc.Name, VariantDirect}, 0)
	}
	for _, sc := range Scenarios {
		add(sc.Title+": Traefik / nginx", [2]string{sc.Name, VariantTraefik}, [2]string{sc.Name, VariantNginx}, 0)
	}
	for _, sc := range Scenarios {
		if slices.Contains(tracedScenarios, sc.Name) {
			add(sc.Title+": traced / not traced (both via Traefik)", [2]string{sc.Name, VariantTraced}, [2]string{sc.Name, VariantTraefik}, targetTracedOverUntraced)
		}
	}
	add("GET movie by id: direct / pgbench select-only", [2]string{targetScenarioForPgbench, VariantDirect}, [2]string{targetScenarioForPgbench, VariantPgbench}, 0)
	add("POST movie / GET movie by id (both via Traefik)", [2]string{"post-movie", VariantTraefik}, [2]string{"get-movie", VariantTraefik}, 0)
	return out
}

// checks lists the targets: the ratios that have one, zero errors
// everywhere, and each service's peak RSS.
func checks(summary []Summary, rs []Ratio, peaks map[string]ProcessStats) []Check {
	var out []Check
	for _, r := range rs {
		if r.Target == 0 {
			continue
		}
		out = append(out, Check{Name: r.Name + " >= " + formatFloat(r.Target, 2), Met: r.Met(), Detail: formatFloat(r.Value, 3)})
	}
	var failed []string
	for _, s := range summary {
		if n := s.Errors.Total(); n > 0 {
			failed = append(failed, fmt.Sprintf("%s via %s: %d", s.Scenario, s.Variant, n))
		}
	}
	detail := "none"
	if failed != nil {
		detail = fmt.Sprint(failed)
	}
	out = append(out, Check{Name: "zero errors in every scenario", Met: failed == nil, Detail: detail})
	for _, svc := range []string{"movies", "casts"} {
		p, ok := peaks[svc]
		if !ok {
			continue
		}
		out = append(out, Check{
			Name:   fmt.Sprintf("%s peak RSS under load <= %.0f MB", svc, targetServiceRSSMB),
			Met:    p.PeakRSSMB <= targetServiceRSSMB,
			Detail: formatFloat(p.PeakRSSMB, 1) + " MB",
		})
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile of sorted values, nearest rank.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

func scenarioIndex(name string) int {
	for i, s := range Scenarios {
		if s.Name == name {
			return i
		}
	}
	return len(Scenarios)
}

func scenarioByName(name string) (Scenario, bool) {
	i := scenarioIndex(name)
	if i == len(Scenarios) {
		return Scenario{}, false
	}
	return Scenarios[i], true
}

func variantIndex(v string) int {
	i := slices.Index([]string{VariantDirect, VariantTraefik, VariantBare, VariantNginx, VariantPgbench}, v)
	if i < 0 {
		return 99
	}
	return i
}
