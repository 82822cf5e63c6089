package swarm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
)

// A cluster is a swarm of engines on this one machine, each node a dockerd of its own in a
// network namespace of its own (own data root, exec root, socket, bridge, iptables), its eth0
// a veth whose other end is on a bridge this package makes in the host's namespace. Node 1 is
// the manager and holds the registry; the others are workers. Nothing here is reachable from
// outside the machine: the bridge's subnet is private and has no route out.
//
// Names (short enough for Linux interface names): the bridge Prefix+"0", node i's namespace
// Prefix+"-n"+i and the host end of its veth Prefix+"-h"+i.

// Node is one engine of the cluster.
type Node struct {
	Index  int    // from 1
	Name   string // its hostname, swarm-<index>
	NetNS  string // the network namespace, under /var/run/netns
	Addr   string // its address on the bridge
	Socket string // the engine's API socket
	Dir    string // data root, exec root, pid file and log under it
	Veth   string // the host end of its link to the bridge
}

// callLimit bounds one docker command against a node: the longest (a rolling update that
// rolls back, a stack deploy) take about a minute here, and a command that hangs (the client
// waiting on a stream its engine never ends) fails the test that ran it instead of holding the
// suite until go test's own timeout.
const callLimit = 5 * time.Minute

// Docker runs the docker client against this node's engine and returns its standard output.
func (n Node) Docker(ctx context.Context, args ...string) (string, error) {
	return n.DockerInput(ctx, nil, args...)
}

// DockerOutput runs the docker client against this node's engine and returns its standard
// output and standard error together: for `docker logs`, which passes a container's two
// streams on as its own two.
func (n Node) DockerOutput(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, callLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--host", "unix://" + n.Socket}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("swarm: %s: docker %s: %w: %s", n.Name, strings.Join(args, " "), err, stackkit.FirstLine(string(out)))
	}
	return string(out), nil
}

// DockerInput is Docker with stdin as the command's standard input.
func (n Node) DockerInput(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, callLimit)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--host", "unix://" + n.Socket}, args...)...)
	cmd.Stdin, cmd.Stderr = stdin, &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("swarm: %s: docker %s: %w: %s", n.Name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// pidFile is where the node's dockerd writes its pid.
func (n Node) pidFile() string { return filepath.Join(n.Dir, "dockerd.pid") }

// LogFile is the node's dockerd output.
func (n Node) LogFile() string { return filepath.Join(n.Dir, "dockerd.log") }

// Layout is where a cluster's parts are: the same values make the same names, so that a
// process other than the one that made the cluster (the e2e suite) acts on it, and a cluster
// left behind by a killed run is found and removed.
type Layout struct {
	Dir      string // nodes' directories and the registry's storage; removed with the cluster
	Prefix   string // of the bridge, namespaces and veths; default "mmsw"
	Subnet   string // first three octets of the bridge's /24; default "10.99.0"
	Nodes    int    // default 3
	Registry int    // the registry's port on node 1; default 5000
}

func (l Layout) withDefaults() Layout {
	if l.Prefix == "" {
		l.Prefix = "mmsw"
	}
	if l.Subnet == "" {
		l.Subnet = "10.99.0"
	}
	if l.Nodes == 0 {
		l.Nodes = 3
	}
	if l.Registry == 0 {
		l.Registry = 5000
	}
	return l
}

// Bridge is the host's bridge joining the nodes; BridgeAddr its address.
func (l Layout) Bridge() string     { return l.Prefix + "0" }
func (l Layout) BridgeAddr() string { return l.Subnet + ".1" }

// Node describes node i (from 1).
func (l Layout) Node(i int) Node {
	dir := filepath.Join(l.Dir, "node-"+strconv.Itoa(i))
	return Node{Index: i, Name: "swarm-" + strconv.Itoa(i), NetNS: l.Prefix + "-n" + strconv.Itoa(i),
		Addr: l.Subnet + "." + strconv.Itoa(10+i), Socket: filepath.Join(dir, "docker.sock"), Dir: dir,
		Veth: l.Prefix + "-h" + strconv.Itoa(i)}
}

// AllNodes are the cluster's nodes, the manager first.
func (l Layout) AllNodes() []Node {
	nodes := make([]Node, l.Nodes)
	for i := range nodes {
		nodes[i] = l.Node(i + 1)
	}
	return nodes
}

// RegistryAddr is host:port of the registry, as the nodes reach it.
func (l Layout) RegistryAddr() string { return l.Node(1).Addr + ":" + strconv.Itoa(l.Registry) }

// run runs a command of the host (ip, iptables) and says what failed.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("swarm: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// forwardRule lets the bridge forward between its own ports: where a Docker engine on the host
// set the FORWARD policy to DROP and bridged traffic goes through iptables, the nodes would not
// reach each other. iptables runs with -w: the host's engine may hold the lock at that moment.
func (l Layout) forwardRule() []string {
	return []string{"FORWARD", "-i", l.Bridge(), "-o", l.Bridge(), "-j", "ACCEPT"}
}

// MakeNetwork makes the bridge, each node's namespace and its link.
func (l Layout) MakeNetwork(ctx context.Context) error {
	steps := [][]string{
		{"ip", "link", "add", l.Bridge(), "type", "bridge"},
		{"ip", "addr", "add", l.BridgeAddr() + "/24", "dev", l.Bridge()},
		{"ip", "link", "set", l.Bridge(), "up"},
	}
	if _, err := exec.LookPath("iptables"); err == nil {
		steps = append(steps, append([]string{"iptables", "-w", "-I"}, l.forwardRule()...))
	}
	for _, n := range l.AllNodes() {
		steps = append(steps,
			[]string{"ip", "netns", "add", n.NetNS},
			[]string{"ip", "link", "add", n.Veth, "type", "veth", "peer", "name", "eth0", "netns", n.NetNS},
			[]string{"ip", "link", "set", n.Veth, "master", l.Bridge(), "up"},
			[]string{"ip", "-n", n.NetNS, "addr", "add", n.Addr + "/24", "dev", "eth0"},
			[]string{"ip", "-n", n.NetNS, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", n.NetNS, "link", "set", "lo", "up"},
			[]string{"ip", "-n", n.NetNS, "route", "add", "default", "via", l.BridgeAddr()},
		)
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// resolverPID is where the nodes' resolver writes its pid.
func (l Layout) resolverPID() string { return filepath.Join(l.Dir, "dnsmasq.pid") }

// StartResolver runs the nodes' upstream DNS server on the bridge's address: dnsmasq, answering
// NXDOMAIN to every name, as a site's resolver does for a name it has never heard of. A node's
// engine asks it the names the engine does not know itself, such as a service scaled to 0 (a
// stopped database). Without one the nodes reach no resolver (the host forwards nothing from
// the bridge), Docker's resolver then gives no answer at all, and each lookup of the stopped
// database waits out the client's DNS timeout: a request that should fail at once with a 503
// takes 10 s. It runs in the background (its pid in Dir); RemoveCluster stops it.
func (l Layout) StartResolver(ctx context.Context) error {
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		return errors.New("swarm: dnsmasq not found: it is the nodes' DNS server (Debian: apt-get install dnsmasq-base)")
	}
	return run(ctx, "dnsmasq", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
		"--bind-interfaces", "--listen-address="+l.BridgeAddr(), "--except-interface=lo",
		"--address=/#/", // every name: NXDOMAIN
		"--user=nobody", "--pid-file="+l.resolverPID())
}

// StartEngine starts node n's dockerd in its namespace, with a hostname of its own (a UTS
// namespace), and waits until it answers. It runs in a session of its own, so that it outlives
// the process that started it (the suite restarts engines; RemoveCluster stops them all).
func (l Layout) StartEngine(ctx context.Context, n Node) error {
	for _, d := range []string{filepath.Join(n.Dir, "data"), filepath.Join(n.Dir, "exec")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("swarm: %w", err)
		}
	}
	logf, err := os.OpenFile(n.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("swarm: %w", err)
	}
	defer logf.Close()
	args := []string{"--net=/var/run/netns/" + n.NetNS, "unshare", "--uts", "sh", "-c", `hostname "$0" && exec "$@"`, n.Name,
		"dockerd", "--data-root", filepath.Join(n.Dir, "data"), "--exec-root", filepath.Join(n.Dir, "exec"),
		"--host", "unix://" + n.Socket, "--pidfile", n.pidFile(), "--cgroup-parent", l.Prefix + "-" + n.Name,
		// The registry is plain HTTP on node 1; a team's registry would have TLS.
		"--insecure-registry", l.RegistryAddr(),
		// The nodes' upstream resolver (StartResolver), for the names the engine does not know.
		"--dns", l.BridgeAddr(),
		// Namespaces of its own in containerd, should the engine find a system containerd to
		// share: its containers are then its own, and go when it does.
		"--containerd-namespace", l.Prefix + "-" + n.Name, "--containerd-plugins-namespace", l.Prefix + "-" + n.Name + "-plugins",
		"--shutdown-timeout", "30"}
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("swarm: start %s's engine: %w", n.Name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// An engine that does not answer is stopped again: it may not have written its pid file yet.
	stop := func(err error) error {
		cmd.Process.Kill() //nolint:errcheck // it may have exited
		return err
	}
	var exitErr error
	err = stackkit.Poll(ctx, 90*time.Second, pollEvery, n.Name+"'s engine answering on "+n.Socket, func() error {
		if _, err := n.Docker(ctx, "version", "--format", "{{.Server.Version}}"); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			exitErr = fmt.Errorf("swarm: %s's engine exited (%v); its log %s:\n%s", n.Name, err, n.LogFile(), tail(n.LogFile(), 10))
			return stackkit.Permanent(exitErr)
		default:
			return errors.New("no answer")
		}
	})
	switch {
	case err == nil || exitErr != nil:
		return err
	case ctx.Err() != nil:
		return stop(ctx.Err())
	}
	return stop(fmt.Errorf("swarm: %w; its log:\n%s", err, tail(n.LogFile(), 10)))
}

// StopEngine stops node n's dockerd with SIGTERM, as `systemctl stop docker` does: its
// containers get their stop signal and grace period, then it exits. It returns once it has.
func (l Layout) StopEngine(n Node) error {
	pid, err := readPID(n.pidFile())
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("swarm: stop %s's engine: %w", n.Name, err)
	}
	return waitGone(pid, 60*time.Second, n.Name+"'s engine")
}

// CutLink takes node n's link to the bridge down: it is cut off from the other nodes and the
// host; RestoreLink brings it up again.
func (l Layout) CutLink(ctx context.Context, n Node) error {
	return run(ctx, "ip", "link", "set", n.Veth, "down")
}

func (l Layout) RestoreLink(ctx context.Context, n Node) error {
	return run(ctx, "ip", "link", "set", n.Veth, "up")
}

// RemoveCluster stops every engine (and the registry) and removes the namespaces, the bridge,
// the forward rule and Dir, whatever of them exists: after a run, or one that was killed.
func (l Layout) RemoveCluster(ctx context.Context) error {
	var errs []error
	// Only processes that are still ours: a pid file left by a killed run may name a pid that
	// another process has since been given.
	pids := map[int]string{}
	for _, n := range l.AllNodes() {
		if pid, err := readPID(n.pidFile()); err == nil && cmdlineHas(pid, "dockerd", n.Socket) {
			pids[pid] = n.Name + "'s engine"
		}
	}
	if pid, err := readPID(filepath.Join(l.Dir, "registry.pid")); err == nil && cmdlineHas(pid, "registry", "serve") {
		pids[pid] = "the registry"
	}
	if pid, err := readPID(l.resolverPID()); err == nil && cmdlineHas(pid, "dnsmasq", l.BridgeAddr()) {
		pids[pid] = "the nodes' resolver"
	}
	for pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM) //nolint:errcheck // gone already is fine
	}
	for pid, what := range pids {
		if err := waitGone(pid, 60*time.Second, what); err != nil {
			syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck
			errs = append(errs, err)
		}
	}
	// The engines' containers are gone with them; their shims and mounts too, but a killed
	// engine can leave mounts under its data root, which would keep Dir from going.
	if l.Dir != "" {
		if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
			var mounts []string
			for line := range strings.Lines(string(b)) {
				if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], l.Dir+"/") {
					mounts = append(mounts, f[1])
				}
			}
			for i := len(mounts) - 1; i >= 0; i-- {
				syscall.Unmount(mounts[i], syscall.MNT_DETACH) //nolint:errcheck // best effort
			}
		}
	}
	for _, n := range l.AllNodes() {
		if exists("/var/run/netns/" + n.NetNS) {
			if err := run(ctx, "ip", "netns", "del", n.NetNS); err != nil {
				errs = append(errs, err)
			}
		}
		if exists("/sys/class/net/" + n.Veth) {
			run(ctx, "ip", "link", "del", n.Veth) //nolint:errcheck // goes with the namespace
		}
	}
	if exists("/sys/class/net/" + l.Bridge()) {
		if err := run(ctx, "ip", "link", "del", l.Bridge()); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := exec.LookPath("iptables"); err == nil {
		for exec.CommandContext(ctx, "iptables", append([]string{"-w", "-C"}, l.forwardRule()...)...).Run() == nil {
			if err := run(ctx, "iptables", append([]string{"-w", "-D"}, l.forwardRule()...)...); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	if l.Dir != "" {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, fmt.Errorf("swarm: %w", err))
		}
	}
	return errors.Join(errs...)
}

// cmdlineHas tells whether process pid's command line has every one of words among its
// arguments (the first one a program's base name).
func cmdlineHas(pid int, words ...string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	for _, w := range words {
		found := false
		for _, a := range args {
			if a == w || filepath.Base(a) == w || strings.HasSuffix(a, w) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readPID(file string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("swarm: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("swarm: %s holds no pid", file)
	}
	return pid, nil
}

// waitGone waits until process pid has exited.
func waitGone(pid int, timeout time.Duration, what string) error {
	err := stackkit.Poll(context.Background(), timeout, 200*time.Millisecond, fmt.Sprintf("%s (pid %d) to exit", what, pid), func() error {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
				return nil // exited; its parent has not reaped it yet
			}
		}
		return errors.New("still running")
	})
	if err != nil {
		return fmt.Errorf("swarm: %w", err)
	}
	return nil
}

// tail is the last n lines of a file, for errors.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	return lastLines(strings.TrimRight(string(b), "\n"), n)
}
