package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/movies-microservices/e2e/stack"
)

// pgbenchDatabase is the scratch database of the pgbench run, in the stack's
// cluster beside the services' databases.
const pgbenchDatabase = "bench_pgbench"

// pgbench runs PostgreSQL's own benchmark: select-only at the scenarios'
// concurrency, the physical floor under GET-by-id (one indexed row by primary
// key per request, over the same loopback, to the same server).
type pgbench struct {
	path    string
	dbURL   string
	dir     string
	threads int
	conns   int
	mode    string // pgbench -M: "prepared" is what pgx does (cached prepared statements)
}

// findPgbench looks beside the server binaries the stack uses: Debian's
// /usr/bin/pgbench is a wrapper that picks a version by other rules.
func findPgbench() (string, error) {
	bin, err := stack.FindPostgres()
	if err != nil {
		return "", err
	}
	path := filepath.Join(bin.Dir, "pgbench")
	if !isExecutable(path) {
		return "", fmt.Errorf("bench: no pgbench beside %s (Debian ships it in the postgresql server package; elsewhere in postgresql-contrib)", bin.Dir)
	}
	return path, nil
}

// newPgbench creates the scratch database and fills it with `pgbench -i`
// (scale 1: 100,000 accounts, all in memory, as the seeded movies are).
func newPgbench(ctx context.Context, adminURL, dir string, threads, conns int, mode string) (*pgbench, error) {
	path, err := findPgbench()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("bench: pgbench: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, sql := range []string{"DROP DATABASE IF EXISTS " + pgbenchDatabase, "CREATE DATABASE " + pgbenchDatabase} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("bench: pgbench: %s: %w", sql, err)
		}
	}
	dbURL, err := databaseURL(adminURL, pgbenchDatabase)
	if err != nil {
		return nil, err
	}
	p := &pgbench{path: path, dbURL: dbURL, dir: dir, threads: threads, conns: conns, mode: mode}
	if out, err := p.command(ctx, "-i", "-q", "-s", "1").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("bench: pgbench -i: %w; its output:\n%s", err, out)
	}
	return p, nil
}

// command runs pgbench with args against the scratch database (given last,
// as a connection URI, which pgbench accepts as the database name).
func (p *pgbench) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.path, append(args, p.dbURL)...)
	cmd.Dir = p.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// pgbenchSampling is the share of transactions pgbench logs, for the latency
// percentiles: enough for a p99, few enough not to load pgbench.
const pgbenchSampling = 0.1

func (p *pgbench) run(ctx context.Context, d time.Duration, n int) (wrkRun, error) {
	prefix := fmt.Sprintf("pgbench-%d", n)
	cmd := p.command(ctx,
		"-S", "-n",
		"-M", p.mode,
		"-c", strconv.Itoa(p.conns),
		"-j", strconv.Itoa(p.threads),
		"-T", strconv.Itoa(int(d.Round(time.Second)/time.Second)),
		"--log", "--log-prefix", prefix, "--sampling-rate", strconv.FormatFloat(pgbenchSampling, 'f', -1, 64),
	)
	out, run, err := runGenerator(cmd)
	if err != nil {
		return wrkRun{}, fmt.Errorf("bench: pgbench: %w; its output:\n%s", err, out)
	}
	res, err := parsePgbenchOutput(out)
	if err != nil {
		return wrkRun{}, err
	}
	logs, _ := filepath.Glob(filepath.Join(p.dir, prefix+".*"))
	var latencies []float64
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			return wrkRun{}, fmt.Errorf("bench: pgbench log: %w", err)
		}
		l, err := parsePgbenchLog(b)
		if err != nil {
			return wrkRun{}, fmt.Errorf("bench: pgbench log %s: %w", f, err)
		}
		latencies = append(latencies, l...)
		os.Remove(f)
	}
	if len(latencies) == 0 {
		return wrkRun{}, errors.New("bench: pgbench logged no transactions")
	}
	slices.Sort(latencies)
	res.LatencyUS.P50 = percentile(latencies, 50)
	res.LatencyUS.P90 = percentile(latencies, 90)
	res.LatencyUS.P99 = percentile(latencies, 99)
	res.LatencyUS.Max = latencies[len(latencies)-1]
	res.LatencyUS.Mean = mean(latencies)
	run.result = res
	return run, nil
}

var (
	pgbenchTPS       = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	pgbenchProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	pgbenchFailed    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	pgbenchDuration  = regexp.MustCompile(`(?m)^duration: (\d+) s`)
)

// parsePgbenchOutput reads pgbench's summary into the shape of a wrk result:
// requests are transactions, errors are failed transactions. The duration is
// recomputed from tps, which pgbench measures without connection set-up.
func parsePgbenchOutput(out []byte) (wrkResult, error) {
	var res wrkResult
	tps := pgbenchTPS.FindSubmatch(out)
	processed := pgbenchProcessed.FindSubmatch(out)
	if tps == nil || processed == nil {
		return res, fmt.Errorf("bench: pgbench printed no tps or transaction count; its output:\n%s", out)
	}
	rate, err := strconv.ParseFloat(string(tps[1]), 64)
	if err != nil || rate <= 0 {
		return res, fmt.Errorf("bench: pgbench tps %q", tps[1])
	}
	res.Requests, _ = strconv.ParseInt(string(processed[1]), 10, 64)
	res.DurationUS = int64(float64(res.Requests) / rate * 1e6)
	if m := pgbenchFailed.FindSubmatch(out); m != nil {
		res.Errors.Status, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if res.Requests == 0 && pgbenchDuration.Match(out) {
		return res, fmt.Errorf("bench: pgbench processed no transactions; its output:\n%s", out)
	}
	return res, nil
}

// parsePgbenchLog reads a per-transaction log ("client_id transaction_no
// time script_no time_epoch time_us"), returning each latency (time, µs).
func parsePgbenchLog(b []byte) ([]float64, error) {
	var lat []float64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			return nil, fmt.Errorf("short line %q", sc.Text())
		}
		if f[2] == "failed" || f[2] == "skipped" {
			continue
		}
		us, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", sc.Text(), err)
		}
		lat = append(lat, us)
	}
	return lat, sc.Err()
}
