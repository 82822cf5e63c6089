package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestParseWrkOutput(t *testing.T) {
	t.Parallel()
	out := []byte("Running 10s test @ http://127.0.0.1:8080\n  2 threads and 32 connections\n" +
		`@@wrk-result {"duration_us":10000000,"requests":50000,"bytes":123,"errors":{"connect":1,"read":2,"write":3,"status":4,"timeout":5},` +
		`"latency_us":{"p50":1500,"p90":3000,"p99":9000,"max":20000,"mean":1700.5}}` + "\n")
	got, err := parseWrkOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	var want wrkResult
	want.DurationUS, want.Requests, want.Bytes = 10000000, 50000, 123
	want.Errors.Connect, want.Errors.Read, want.Errors.Write, want.Errors.Status, want.Errors.Timeout = 1, 2, 3, 4, 5
	want.LatencyUS.P50, want.LatencyUS.P90, want.LatencyUS.P99, want.LatencyUS.Max, want.LatencyUS.Mean = 1500, 3000, 9000, 20000, 1700.5
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseWrkOutput (-want +got):\n%s", diff)
	}

	if _, err := parseWrkOutput([]byte("unable to connect to 127.0.0.1:1 Connection refused\n")); err == nil {
		t.Error("parseWrkOutput of output without a result line: no error")
	}
}

func TestParsePgbench(t *testing.T) {
	t.Parallel()
	out := []byte(`pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 1
query mode: prepared
number of clients: 32
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 400000
number of failed transactions: 3 (0.001%)
latency average = 0.800 ms
initial connection time = 25.123 ms
tps = 40000.000000 (without initial connection time)
`)
	got, err := parsePgbenchOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 400000 || got.DurationUS != 10000000 || got.Errors.Status != 3 {
		t.Errorf("parsePgbenchOutput = %d requests in %d µs, %d failed; want 400000 in 10000000 µs, 3 failed",
			got.Requests, got.DurationUS, got.Errors.Status)
	}

	log := []byte("0 1 250 0 1764240000 123456\n3 7 1200 0 1764240000 123999\n1 2 failed 0 1764240001 1\n")
	lat, err := parsePgbenchLog(log)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float64{250, 1200}, lat); diff != "" {
		t.Errorf("parsePgbenchLog (-want +got):\n%s", diff)
	}
}

func TestParseProc(t *testing.T) {
	t.Parallel()
	// comm with a space and a parenthesis, as PostgreSQL's never are but could be.
	stat := "4242 (post gres) x) S 17 4242 4242 0 -1 4194560 100 0 0 0 30 12 5 2 20 0 1 0 100 1000 200"
	p, err := parseStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := (procInfo{pid: 4242, ppid: 17, comm: "post gres) x", ownCPU: 42, waitedCPU: 7}); p != want {
		t.Errorf("parseStat = %+v, want %+v", p, want)
	}

	status := []byte("Name:\tmovies\nVmPeak:\t 1000 kB\nVmHWM:\t   28416 kB\nVmRSS:\t   20000 kB\n")
	hwm, err := parseVmHWM(status)
	if err != nil || hwm != 28416<<10 {
		t.Errorf("parseVmHWM = %d, %v; want %d", hwm, err, 28416<<10)
	}

	busy, err := parseProcStat([]byte("cpu  100 5 50 1000 40 3 2 1 0 0\ncpu0 50 2 25 500 20 1 1 0 0 0\n"))
	if err != nil || busy != 161*time.Second/clockTicks {
		t.Errorf("parseProcStat = %s, %v; want %s", busy, err, 161*time.Second/clockTicks)
	}
}

func TestWithDescendants(t *testing.T) {
	t.Parallel()
	procs := []procInfo{{pid: 1}, {pid: 10, ppid: 1}, {pid: 11, ppid: 10}, {pid: 12, ppid: 10}, {pid: 13, ppid: 11}, {pid: 20, ppid: 1}}
	var got []int
	for _, p := range withDescendants(procs, 10) {
		got = append(got, p.pid)
	}
	if diff := cmp.Diff([]int{10, 11, 12, 13}, got); diff != "" {
		t.Errorf("withDescendants (-want +got):\n%s", diff)
	}
	if got := withDescendants(procs, 99); got != nil {
		t.Errorf("withDescendants of a missing pid = %v, want nil", got)
	}
}

func TestMedianAndPercentile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	sorted := make([]float64, 100)
	for i := range sorted {
		sorted[i] = float64(i + 1)
	}
	for p, want := range map[float64]float64{50: 50, 90: 90, 99: 99, 100: 100, 0: 1} {
		if got := percentile(sorted, p); got != want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", p, got, want)
		}
	}
}

// measurement builds a run with the figures the summary and ratios read.
func measurement(scenario, variant string, repeat int, rps float64, errs int64, moviesRSS float64) Measurement {
	return Measurement{
		Scenario: scenario, Variant: variant, Repeat: repeat, RPS: rps,
		Latency: Latency{P50: 1, P90: 2, P99: rps / 1000},
		Errors:  Errors{Status: errs},
		Processes: map[string]ProcessStats{
			"movies":   {CPU: 0.5, PeakRSSMB: moviesRSS, PeakRSSSumMB: moviesRSS, Processes: 1},
			"casts":    {CPU: 0.1, PeakRSSMB: 20, PeakRSSSumMB: 20, Processes: 1},
			"postgres": {CPU: 0.3, PeakRSSMB: 30, PeakRSSSumMB: 300, Processes: 12},
		},
	}
}

func TestSummaryRatiosChecks(t *testing.T) {
	t.Parallel()
	runs := []Measurement{
		// Repeats in a rotated order, as Run makes them.
		measurement("get-movie", VariantTraefik, 1, 4000, 0, 30),
		measurement("get-movie", VariantDirect, 1, 9000, 0, 30),
		measurement("get-movie", VariantNginx, 1, 8000, 0, 30),
		measurement("get-movie", VariantBare, 1, 5000, 0, 30),
		measurement("get-movie", VariantPgbench, 1, 40000, 0, 0),
		measurement("get-movie", VariantBare, 2, 5400, 0, 30),
		measurement("get-movie", VariantDirect, 2, 11000, 0, 31),
		measurement("get-movie", VariantTraefik, 2, 6000, 0, 55),
		measurement("get-movie", VariantNginx, 2, 8000, 0, 30),
		measurement("get-movie", VariantPgbench, 2, 40000, 0, 0),
		measurement("post-movie", VariantTraefik, 1, 1500, 2, 30),
		measurement("post-movie", VariantNginx, 1, 1500, 0, 30),
		measurement("post-movie", VariantBare, 1, 1600, 0, 30),
	}
	summary := summarize(runs)

	var order []string
	for _, s := range summary {
		order = append(order, s.Scenario+"/"+s.Variant)
	}
	wantOrder := []string{"get-movie/direct", "get-movie/traefik", "get-movie/bare", "get-movie/nginx", "get-movie/pgbench", "post-movie/traefik", "post-movie/bare", "post-movie/nginx"}
	if diff := cmp.Diff(wantOrder, order); diff != "" {
		t.Errorf("summary order (-want +got):\n%s", diff)
	}
	if got := summary[0].RPS; got != 10000 {
		t.Errorf("median req/s of get-movie/direct = %v, want 10000", got)
	}
	if got := summary[1].Processes["movies"].PeakRSSMB; got != 55 {
		t.Errorf("peak RSS of movies in get-movie/traefik = %v, want the max, 55", got)
	}

	got := make(map[string]float64)
	for _, r := range ratios(summary) {
		got[r.Name] = r.Value
	}
	want := map[string]float64{
		"GET movie by id: project Traefik / bare Traefik":                  5000.0 / 5200,
		"POST movie (cast check via mesh): project Traefik / bare Traefik": 1500.0 / 1600,
		"GET movie by id: Traefik / direct":                                0.5,
		"GET movie by id: Traefik / nginx":                                 5000.0 / 8000,
		"POST movie (cast check via mesh): Traefik / nginx":                1,
		"GET movie by id: direct / pgbench select-only":                    0.25,
		"POST movie / GET movie by id (both via Traefik)":                  0.3,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}

	met := make(map[string]bool)
	for _, c := range checks(summary, ratios(summary), peakRSS(runs)) {
		met[c.Name] = c.Met
	}
	// Only project Traefik / bare Traefik has a target: 0.962 >= 0.95 for a read, 0.9375 >= 0.9
	// for a write.
	wantMet := map[string]bool{
		"GET movie by id: project Traefik / bare Traefik >= 0.95":                  true,
		"POST movie (cast check via mesh): project Traefik / bare Traefik >= 0.90": true,
		"zero errors in every scenario":                                            false,
		"movies peak RSS under load <= 50 MB":                                      false,
		"casts peak RSS under load <= 50 MB":                                       true,
	}
	if diff := cmp.Diff(wantMet, met); diff != "" {
		t.Errorf("checks met (-want +got):\n%s", diff)
	}
}

func TestWriteMarkdown(t *testing.T) {
	t.Parallel()
	runs := []Measurement{
		measurement("get-movie", VariantDirect, 1, 10000, 0, 30),
		measurement("get-movie", VariantTraefik, 1, 7000, 0, 30),
		measurement("get-movie", VariantNginx, 1, 8000, 0, 30),
		measurement("get-movie", VariantBare, 1, 7500, 0, 30),
		measurement("get-movie", VariantPgbench, 1, 19000, 0, 0),
	}
	res := &Results{Settings: Settings{PgbenchMode: "prepared", Connections: 32, Threads: 2, Repeats: 1}, Runs: runs}
	res.Summary = summarize(runs)
	res.Ratios = ratios(res.Summary)
	res.PeakRSS = peakRSS(runs)
	res.Checks = checks(res.Summary, res.Ratios, res.PeakRSS)
	var b bytes.Buffer
	if err := res.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| GET movie by id | direct | 10,000 | 1.00 | 2.00 | 10.00 | 0 | 0.50 / 0.10 / - / - / - / 0.30 / - / 0.00 / 0.00 | 0.00 |",
		"|  | bare | 7,500 |",
		"|  | pgbench -S (-M prepared) | 19,000 |",
		"| GET movie by id | direct | 50 / 10 / - / - / - / 30 / - / - |",
		"| GET movie by id: project Traefik / bare Traefik | 0.933 | >= 0.95 | **no** |",
		"| GET movie by id: Traefik / direct | 0.700 |  |  |",
		"| GET movie by id: direct / pgbench select-only | 0.526 |  |  |",
		"| postgres | 30.0 (largest of 12 processes; 300 summed",
		"| zero errors in every scenario | yes | none |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q; it is:\n%s", want, md)
		}
	}
	// Every table row has as many cells as its header.
	for _, table := range strings.Split(md, "\n\n") {
		lines := strings.Split(strings.TrimSpace(table), "\n")
		if !strings.HasPrefix(lines[0], "|") {
			continue
		}
		cells := strings.Count(lines[0], "|")
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, "|") && strings.Count(l, "|") != cells {
				t.Errorf("row %q has %d separators, its header %d", l, strings.Count(l, "|"), cells)
			}
		}
	}
}

// TestBareTraefikConfig: the bare Traefik gets the servers transport of the shared file, and
// nothing else of it.
func TestBareTraefikConfig(t *testing.T) {
	t.Parallel()
	shared, err := os.ReadFile(filepath.Join("..", "..", "traefik", "dynamic", "middlewares.yml"))
	if err != nil {
		t.Fatal(err)
	}
	transports, err := serversTransports(shared)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		HTTP map[string]map[string]map[string]any `yaml:"http"`
	}
	if err := yaml.Unmarshal(transports, &parsed); err != nil {
		t.Fatalf("transports file does not parse: %v\n%s", err, transports)
	}
	var sections []string
	for k := range parsed.HTTP {
		sections = append(sections, k)
	}
	if diff := cmp.Diff([]string{"serversTransports"}, sections); diff != "" {
		t.Errorf("sections of the bare Traefik's transports file (-want +got):\n%s", diff)
	}
	backend := parsed.HTTP["serversTransports"]["backend"]
	if backend == nil || backend["maxIdleConnsPerHost"] == nil || backend["forwardingTimeouts"] == nil {
		t.Errorf("serversTransports.backend lacks the shared settings: %v", backend)
	}
	if _, err := serversTransports([]byte("http:\n  routers: {}\n")); err == nil {
		t.Error("a file without serversTransports gave no error")
	}

	var routers bytes.Buffer
	if err := bareRouters.Execute(&routers, struct{ Movies, Casts string }{"http://127.0.0.1:1", "http://127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	var bare struct {
		HTTP struct {
			Routers map[string]struct {
				EntryPoints []string `yaml:"entryPoints"`
				Middlewares []string `yaml:"middlewares"`
				Service     string   `yaml:"service"`
			} `yaml:"routers"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(routers.Bytes(), &bare); err != nil {
		t.Fatalf("bare routers do not parse: %v\n%s", err, routers.String())
	}
	for name, r := range bare.HTTP.Routers {
		if len(r.Middlewares) > 0 || !slices.Equal(r.EntryPoints, []string{"web"}) || r.Service != name {
			t.Errorf("bare router %s = %+v, want entrypoint web, service %s, no middlewares", name, r, name)
		}
	}
	if len(bare.HTTP.Routers) != 2 {
		t.Errorf("bare Traefik has %d routers, want movies and casts", len(bare.HTTP.Routers))
	}
}

func TestNginxConfig(t *testing.T) {
	t.Parallel()
	conf, err := renderNginxConfig(nginxParams{Dir: "/tmp/x", Root: true, Listen: "127.0.0.1:9000", Movies: "127.0.0.1:8000", Casts: "127.0.0.1:8001"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"user root;",
		"listen 127.0.0.1:9000;",
		"server 127.0.0.1:8000;\n        keepalive 64;",
		"location /api/v1/movies {\n            proxy_pass http://movie_service/api/v1/movies;\n            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";",
		"location /api/v1/casts {\n            proxy_pass http://cast_service/api/v1/casts;",
		"pid /tmp/x/nginx.pid;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx config lacks %q; it is:\n%s", want, conf)
		}
	}
	conf, _ = renderNginxConfig(nginxParams{Dir: "/tmp/x", Listen: "127.0.0.1:9000", Movies: "a:1", Casts: "b:2"})
	if strings.Contains(conf, "user ") {
		t.Errorf("nginx config for a normal user names a user:\n%s", conf)
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	ok := DefaultOptions()
	ok.RepoRoot = "/repo"
	if err := ok.validate(); err != nil {
		t.Errorf("DefaultOptions with a RepoRoot: %v", err)
	}
	bad := ok
	bad.Duration = 1500 * time.Millisecond
	bad.Connections = 1
	bad.Scenarios = []string{"get-movie", "delete-everything"}
	err := bad.validate()
	if err == nil {
		t.Fatal("validate accepted a fractional duration, fewer connections than threads and an unknown scenario")
	}
	for _, want := range []string{"whole seconds", "connection per thread", `"delete-everything"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validate error %q does not mention %q", err, want)
		}
	}
}
