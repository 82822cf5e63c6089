package bench

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkScript builds the requests of every scenario; see its header.
//
//go:embed wrk.lua
var wrkScript []byte

// wrkMarker starts the line on which wrk.lua's done() prints its figures.
const wrkMarker = "@@wrk-result "

// wrkResult is what wrk.lua's done() prints: wrk's own counters and
// latency histogram, untouched.
type wrkResult struct {
	DurationUS int64 `json:"duration_us"`
	Requests   int64 `json:"requests"`
	Bytes      int64 `json:"bytes"`
	Errors     struct {
		Connect int64 `json:"connect"`
		Read    int64 `json:"read"`
		Write   int64 `json:"write"`
		Status  int64 `json:"status"` // responses with a status over 399
		Timeout int64 `json:"timeout"`
	} `json:"errors"`
	LatencyUS struct {
		P50  float64 `json:"p50"`
		P90  float64 `json:"p90"`
		P99  float64 `json:"p99"`
		Max  float64 `json:"max"`
		Mean float64 `json:"mean"`
	} `json:"latency_us"`
}

// parseWrkOutput finds the result line among wrk's output.
func parseWrkOutput(out []byte) (wrkResult, error) {
	var res wrkResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), wrkMarker)
		if !ok {
			continue
		}
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			return res, fmt.Errorf("bench: parse wrk result %q: %w", line, err)
		}
		return res, nil
	}
	return res, fmt.Errorf("bench: wrk printed no result line; its output:\n%s", out)
}

// wrk runs the load generator.
type wrk struct {
	path    string
	script  string // wrk.lua written to a temp dir
	threads int
	conns   int
	timeout time.Duration
}

func newWrk(dir string, threads, conns int) (*wrk, error) {
	path, err := exec.LookPath("wrk")
	if err != nil {
		return nil, errors.New("bench: wrk not found on PATH: install it (Debian/Ubuntu: apt-get install wrk)")
	}
	script := filepath.Join(dir, "wrk.lua")
	if err := os.WriteFile(script, wrkScript, 0o644); err != nil {
		return nil, fmt.Errorf("bench: write wrk script: %w", err)
	}
	return &wrk{path: path, script: script, threads: threads, conns: conns, timeout: 5 * time.Second}, nil
}

// wrkRun is one wrk run: its figures and the CPU time wrk itself used.
type wrkRun struct {
	result wrkResult
	cpu    time.Duration
	wall   time.Duration
}

// run runs wrk for d; its writes carry token.
func (w *wrk) run(ctx context.Context, baseURL, scenario string, d time.Duration, ids idRange, seed int64, token string) (wrkRun, error) {
	args := []string{
		"-t", strconv.Itoa(w.threads),
		"-c", strconv.Itoa(w.conns),
		"-d", strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s",
		"--timeout", strconv.Itoa(int(w.timeout/time.Second)) + "s",
		"-s", w.script,
		baseURL,
		"--", scenario, strconv.FormatInt(ids.maxMovie, 10), strconv.FormatInt(ids.maxCast, 10), strconv.FormatInt(seed, 10), token,
	}
	cmd := exec.CommandContext(ctx, w.path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, run, err := runGenerator(cmd)
	if err != nil {
		return wrkRun{}, fmt.Errorf("bench: wrk %s: %w; its output:\n%s", strings.Join(args[:len(args)-1], " "), err, out)
	}
	if run.result, err = parseWrkOutput(out); err != nil {
		return wrkRun{}, err
	}
	return run, nil
}

// runGenerator runs a load generator (wrk, pgbench) to its end and returns
// its output, its wall time and the CPU it used; the caller fills the result.
func runGenerator(cmd *exec.Cmd) ([]byte, wrkRun, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	run := wrkRun{wall: time.Since(start)}
	if cmd.ProcessState != nil {
		run.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return out.Bytes(), run, err
}
