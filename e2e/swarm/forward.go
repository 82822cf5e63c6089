package swarm

import (
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A forward listens on 127.0.0.1 and passes each connection on to an address on the cluster's
// bridge: the suite's requests, and the host engine's pushes to the registry, go to loopback
// only (the host engine takes a registry on 127.0.0.1 as plain HTTP without configuration).
type forward struct {
	ln     net.Listener
	target string
	dial   func(target string) (net.Conn, error)
	svc    string // the service of a task's forward (ReplicaURLs)
	closer func() // run by Close, if set
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool // set by Close: connections made after are closed at once
}

// newForward listens on a free port of 127.0.0.1 for target (host:port).
func newForward(target string) (*forward, error) {
	return startForward(target, func(target string) (net.Conn, error) { return net.DialTimeout("tcp", target, 10*time.Second) }, nil)
}

func startForward(target string, dial func(string) (net.Conn, error), closer func()) (*forward, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &forward{ln: ln, target: target, dial: dial, closer: closer, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// newNetNSForward is a forward to target inside the network namespace of process pid: a task's
// container, whose addresses are on overlay networks the host has no route to. The namespace is
// opened once, here, so that a later process of the same pid cannot stand in for it.
func newNetNSForward(pid int, target string) (*forward, error) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f, err := startForward(target, func(target string) (net.Conn, error) { return dialInNetNS(fd, target) }, func() { unix.Close(fd) })
	if err != nil {
		unix.Close(fd)
	}
	return f, err
}

// dialInNetNS connects to target from inside the network namespace fd: on a thread of its own,
// locked and never unlocked, so that Go ends the thread (and its namespace) with the goroutine;
// the socket stays in the namespace it was made in.
func dialInNetNS(fd int, target string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- result{nil, err}
			return
		}
		c, err := net.DialTimeout("tcp", target, 10*time.Second)
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}

// Addr is the forward's 127.0.0.1:port.
func (f *forward) Addr() string { return f.ln.Addr().String() }

func (f *forward) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return // closed
		}
		f.wg.Add(1)
		go f.pass(c)
	}
}

// pass copies both ways until either side closes; a target that does not answer closes the
// client's connection, as a refused connection would.
func (f *forward) pass(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	t, err := f.dial(f.target)
	if err != nil {
		return
	}
	defer t.Close()
	if !f.track(c, t, true) {
		return // closed meanwhile
	}
	defer f.track(c, t, false)
	done := make(chan struct{}, 2)
	copyHalf := func(dst, src net.Conn) {
		io.Copy(dst, src) //nolint:errcheck // either side closing ends it
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite() //nolint:errcheck
		}
		done <- struct{}{}
	}
	go copyHalf(t, c)
	go copyHalf(c, t)
	<-done
	<-done
}

func (f *forward) track(c, t net.Conn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case add && f.closed:
		return false
	case add:
		f.conns[c], f.conns[t] = struct{}{}, struct{}{}
	default:
		delete(f.conns, c)
		delete(f.conns, t)
	}
	return true
}

// Close stops listening and ends every connection.
func (f *forward) Close() {
	f.ln.Close()
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	if f.closer != nil {
		f.closer()
	}
}
