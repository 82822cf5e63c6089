package swarm

import (
	"io"
	"net"
	"sync"
	"time"
)

// A forward listens on 127.0.0.1 and passes each connection on to an address on the cluster's
// bridge: the suite's requests, and the host engine's pushes to the registry, go to loopback
// only (the host engine takes a registry on 127.0.0.1 as plain HTTP without configuration).
type forward struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// newForward listens on a free port of 127.0.0.1 for target (host:port).
func newForward(target string) (*forward, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &forward{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f, nil
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
	t, err := net.DialTimeout("tcp", f.target, 10*time.Second)
	if err != nil {
		return
	}
	defer t.Close()
	f.track(c, t, true)
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

func (f *forward) track(c, t net.Conn, add bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if add {
		f.conns[c], f.conns[t] = struct{}{}, struct{}{}
	} else {
		delete(f.conns, c)
		delete(f.conns, t)
	}
}

// Close stops listening and ends every connection.
func (f *forward) Close() {
	f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
