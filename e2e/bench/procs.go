package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procInfo is what /proc/<pid>/stat tells about a process.
type procInfo struct {
	pid, ppid int
	comm      string
	// ownCPU is the process's user+system time and waitedCPU that of the
	// children it has waited for, in clock ticks. Their sum over a group
	// stays right as short-lived children (PostgreSQL backends) come and go.
	ownCPU, waitedCPU int64
}

func (p procInfo) cpu() int64 { return p.ownCPU + p.waitedCPU }

// parseStat reads a /proc/<pid>/stat line. comm may hold spaces and
// parentheses, so the fields after it are found from the last ')'.
func parseStat(line string) (procInfo, error) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return procInfo{}, fmt.Errorf("bench: malformed stat line %q", line)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return procInfo{}, fmt.Errorf("bench: malformed stat line %q", line)
	}
	// After comm: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(line[end+1:])
	if len(f) < 15 {
		return procInfo{}, fmt.Errorf("bench: short stat line %q", line)
	}
	p := procInfo{pid: pid, comm: line[open+1 : end]}
	if p.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procInfo{}, fmt.Errorf("bench: stat of %d: ppid: %w", pid, err)
	}
	for i, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return procInfo{}, fmt.Errorf("bench: stat of %d: cpu time: %w", pid, err)
		}
		if i < 2 {
			p.ownCPU += n
		} else {
			p.waitedCPU += n
		}
	}
	return p, nil
}

// listProcs reads every process in /proc. Processes that exit while it
// reads are skipped.
func listProcs() ([]procInfo, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("bench: read /proc: %w", err)
	}
	var procs []procInfo
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		p, err := parseStat(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// withDescendants returns root and every process below it.
func withDescendants(procs []procInfo, root int) []procInfo {
	children := make(map[int][]procInfo)
	var out []procInfo
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
		if p.pid == root {
			out = append(out, p)
		}
	}
	if out == nil {
		return nil
	}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].pid]...)
	}
	return out
}

// vmHWM is the peak resident set size of pid in bytes ("VmHWM" in
// /proc/<pid>/status).
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	return parseVmHWM(b)
}

func parseVmHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: VmHWM %q: %w", rest, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("bench: no VmHWM line")
}

// resetHWM sets pid's peak RSS back to its current RSS (Linux 4.0+), so that
// a later VmHWM is the peak of what came after.
func resetHWM(pid int) error {
	return os.WriteFile(filepath.Join("/proc", strconv.Itoa(pid), "clear_refs"), []byte("5"), 0)
}

// group is a process and its descendants, watched as one: a service, Traefik,
// nginx (master and workers), PostgreSQL (postmaster and backends).
type group struct {
	name  string
	roots []int // the group is these processes and every process below them
}

// processes are the group's processes in procs.
func (g group) processes(procs []procInfo) []procInfo {
	var out []procInfo
	for _, root := range g.roots {
		out = append(out, withDescendants(procs, root)...)
	}
	return out
}

// groupStats is what a watcher saw of one group during a run.
type groupStats struct {
	CPU        time.Duration // user+system time of the group during the run
	PeakRSS    int64         // the largest peak RSS of any one process, bytes
	PeakRSSSum int64         // peak RSS summed over the group's processes, bytes
	Processes  int           // processes seen in the group
}

// watcher follows the groups during one run: it resets their peak RSS at the
// start, samples their processes (so that processes that come and go, such
// as pgbench's backends, are seen), and reads the CPU time spent.
type watcher struct {
	groups   []group
	startCPU map[string]int64
	resetOK  bool

	mu    sync.Mutex
	peaks map[string]map[int]int64 // group -> pid -> VmHWM
	stop  chan struct{}
	done  chan struct{}
}

func startWatcher(groups []group, every time.Duration) (*watcher, error) {
	w := &watcher{
		groups:   groups,
		startCPU: make(map[string]int64),
		resetOK:  true,
		peaks:    make(map[string]map[int]int64),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	procs, err := listProcs()
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		w.peaks[g.name] = make(map[int]int64)
		for _, p := range g.processes(procs) {
			w.startCPU[g.name] += p.cpu()
			if err := resetHWM(p.pid); err != nil {
				w.resetOK = false
			}
		}
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			w.sample()
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w, nil
}

func (w *watcher) sample() {
	procs, err := listProcs()
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, g := range w.groups {
		for _, p := range g.processes(procs) {
			if hwm, err := vmHWM(p.pid); err == nil && hwm > w.peaks[g.name][p.pid] {
				w.peaks[g.name][p.pid] = hwm
			}
		}
	}
}

// finish stops sampling, takes a last sample and returns each group's stats.
func (w *watcher) finish() map[string]groupStats {
	close(w.stop)
	<-w.done
	w.sample()
	procs, _ := listProcs()
	w.mu.Lock()
	defer w.mu.Unlock()
	stats := make(map[string]groupStats, len(w.groups))
	for _, g := range w.groups {
		var s groupStats
		var cpu int64
		for _, p := range g.processes(procs) {
			cpu += p.cpu()
		}
		s.CPU = time.Duration(max(0, cpu-w.startCPU[g.name])) * time.Second / clockTicks
		pids := make([]int, 0, len(w.peaks[g.name]))
		for pid := range w.peaks[g.name] {
			pids = append(pids, pid)
		}
		slices.Sort(pids)
		for _, pid := range pids {
			hwm := w.peaks[g.name][pid]
			s.PeakRSS = max(s.PeakRSS, hwm)
			s.PeakRSSSum += hwm
		}
		s.Processes = len(pids)
		stats[g.name] = s
	}
	return stats
}

// selfCPU is the CPU time this process has used so far, without its children
// (wrk, pgbench): the harness's share (the stack's log copying, the watcher).
func selfCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	p, err := parseStat(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return time.Duration(p.ownCPU) * time.Second / clockTicks
}

// machineCPU is the CPU time every process on the machine has used since
// boot (busy time in /proc/stat), for telling how much of the machine other
// work took during a run.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	busy, err := parseProcStat(b)
	if err != nil {
		return 0
	}
	return busy
}

// parseProcStat sums the busy fields of the "cpu" line of /proc/stat: user,
// nice, system, irq, softirq and steal (not idle and iowait; guest time is
// already in user).
func parseProcStat(b []byte) (time.Duration, error) {
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("bench: unexpected /proc/stat line %q", line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc/stat field %d: %w", i, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
