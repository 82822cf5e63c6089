package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WriteMarkdown writes the results as Markdown tables: throughput and
// latency, ratios against the targets, and peak memory.
func (r *Results) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	s := r.Settings
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %d MB; kernel %s.\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemoryMB, r.Machine.Kernel)
	if len(r.Machine.Versions) > 0 {
		fmt.Fprintf(&b, "Versions: %s.\n", joinVersions(r.Machine.Versions))
	}
	fmt.Fprintf(&b, "Load: %s, %d connections, %d threads, %s per run after %s warm-up; median of %d interleaved repeat(s). "+
		"Data: %d casts, %d movies (%s). PostgreSQL durable (fsync on): %v.\n\n",
		s.Generator, s.Connections, s.Threads, s.Duration, s.Warmup, s.Repeats, s.Casts, s.Movies, s.Seeding, s.Durable)

	b.WriteString("| scenario | via | req/s | p50 ms | p90 ms | p99 ms | errors | CPU cores: " + strings.Join(processGroups, " / ") + " / generator / harness | other load |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|---|--:|\n")
	last := ""
	for _, sm := range r.Summary {
		title := ""
		if sm.Scenario != last {
			title, last = scenarioTitle(sm.Scenario), sm.Scenario
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d | %s | %s |\n",
			title, r.variantLabel(sm.Variant), formatThousands(sm.RPS),
			formatFloat(sm.Latency.P50, 2), formatFloat(sm.Latency.P90, 2), formatFloat(sm.Latency.P99, 2),
			sm.Errors.Total(), cpuColumn(sm), formatFloat(sm.OtherCPU, 2))
	}

	b.WriteString("\nCPU cores: CPU time of each process group (PostgreSQL and nginx with their children) divided by the run's wall time; " +
		"harness is this program (it copies the services' logs, as the stack does). Other load: cores that processes outside the benchmark kept busy.\n")
	b.WriteString("\n| scenario | via | CPU µs per request: " + strings.Join(processGroups, " / ") + " / generator |\n|---|---|---|\n")
	last = ""
	for _, sm := range r.Summary {
		title := ""
		if sm.Scenario != last {
			title, last = scenarioTitle(sm.Scenario), sm.Scenario
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", title, r.variantLabel(sm.Variant), perRequestColumn(sm))
	}
	b.WriteString("\nCPU µs per request: a process group's CPU cores divided by the requests per second (medians of both): " +
		"what each part costs per request, and where a proxy's cost comes from.\n")

	b.WriteString("\n| ratio (req/s) | value | target | met |\n|---|--:|--:|---|\n")
	for _, ra := range r.Ratios {
		target, met := "", ""
		if ra.Target > 0 {
			target = ">= " + formatFloat(ra.Target, 2)
			met = yesNo(ra.Met())
		}
		// Three decimals: 0.847 must not read as a met 0.85.
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", ra.Name, formatFloat(ra.Value, 3), target, met)
	}

	b.WriteString("\n| process | peak RSS MB (max over runs) |\n|---|--:|\n")
	for _, g := range processGroups {
		p, ok := r.PeakRSS[g]
		if !ok {
			continue
		}
		switch g {
		case "postgres":
			fmt.Fprintf(&b, "| %s | %s (largest of %d processes; %s summed, shared buffers counted in each) |\n",
				g, formatFloat(p.PeakRSSMB, 1), p.Processes, formatFloat(p.PeakRSSSumMB, 0))
		case "nginx":
			fmt.Fprintf(&b, "| %s (master + workers) | %s |\n", g, formatFloat(p.PeakRSSSumMB, 1))
		default:
			fmt.Fprintf(&b, "| %s | %s |\n", g, formatFloat(p.PeakRSSMB, 1))
		}
	}

	if len(r.TracedPeakRSS) > 0 {
		b.WriteString("\nWith every request traced (the traced variant's runs):\n\n| process | peak RSS MB (max over runs) |\n|---|--:|\n")
		for _, g := range processGroups {
			if p, ok := r.TracedPeakRSS[g]; ok && g != "postgres" {
				fmt.Fprintf(&b, "| %s | %s |\n", g, formatFloat(p.PeakRSSMB, 1))
			}
		}
	}

	b.WriteString("\n| target | met | figure |\n|---|---|---|\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Name, yesNo(c.Met), c.Detail)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func cpuColumn(sm Summary) string {
	parts := make([]string, 0, len(processGroups)+1)
	for _, g := range processGroups {
		if p, ok := sm.Processes[g]; ok && p.CPU >= 0.005 {
			parts = append(parts, formatFloat(p.CPU, 2))
		} else {
			parts = append(parts, "-")
		}
	}
	parts = append(parts, formatFloat(sm.GeneratorCPU, 2), formatFloat(sm.HarnessCPU, 2))
	return strings.Join(parts, " / ")
}

// scenarioTitle is a scenario's title for people, or its name if unknown.
func scenarioTitle(name string) string {
	if sc, ok := scenarioByName(name); ok {
		return sc.Title
	}
	return name
}

// variantLabel names a variant in the tables; pgbench with its mode.
func (r *Results) variantLabel(v string) string {
	if v == VariantPgbench {
		return "pgbench -S (-M " + r.Settings.PgbenchMode + ")"
	}
	return v
}

// perRequestColumn is the CPU time each process group spent per request.
func perRequestColumn(sm Summary) string {
	perRequest := func(cores float64) string {
		if sm.RPS <= 0 || cores < 0.005 {
			return "-"
		}
		return formatFloat(cores/sm.RPS*1e6, 0)
	}
	parts := make([]string, 0, len(processGroups)+1)
	for _, g := range processGroups {
		parts = append(parts, perRequest(sm.Processes[g].CPU))
	}
	parts = append(parts, perRequest(sm.GeneratorCPU))
	return strings.Join(parts, " / ")
}

func joinVersions(v map[string]string) string {
	var parts []string
	for _, k := range []string{"go", "postgres", "traefik", "nginx", "wrk"} {
		if s, ok := v[k]; ok {
			parts = append(parts, k+" "+s)
		}
	}
	return strings.Join(parts, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func formatFloat(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

// formatThousands rounds v and groups its digits: 12345.6 -> "12,346".
func formatThousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
