// Package logbuf batches log lines on their way to a slow writer, as nginx's
// `access_log ... buffer=64k flush=100ms` does: a service's stdout is a pipe
// to a container runtime or a supervisor, and one write system call per
// access-log line cost a third of the requests per second of the cheapest
// request (GET by id, measured with `make bench`).
//
// Lines reach the writer when the buffer fills, at every flush interval, and
// on Close; after Close every write goes straight through. A crash (SIGKILL)
// loses at most the last interval's lines; a graceful shutdown loses none. A
// failed write drops what was buffered, not the logging after it.
package logbuf

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// Writer is an io.Writer that buffers writes (zerolog writes one line per
// call; a line that does not fit in what is left of the buffer may reach the
// writer in two parts, in order) and flushes them in the background. It is
// safe for concurrent use.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer
	buf    *bufio.Writer
	closed bool
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// New starts a Writer that holds up to size bytes for w and flushes them at
// least every interval.
func New(w io.Writer, size int, interval time.Duration) *Writer {
	b := &Writer{w: w, buf: bufio.NewWriterSize(w, size), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushEvery(interval)
	return b
}

// Write buffers p, or writes it through when it does not fit or the Writer
// is closed.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if err == nil && b.closed {
		err = b.buf.Flush()
	}
	b.resetAfter(err)
	return n, err
}

// Flush writes what is buffered.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.buf.Flush()
	b.resetAfter(err)
	return err
}

// resetAfter forgets a write error: bufio.Writer would otherwise fail every
// later write with it. What was buffered is dropped.
func (b *Writer) resetAfter(err error) {
	if err != nil {
		b.buf.Reset(b.w)
	}
}

// Close stops the background flushes and writes what is left; later writes
// go straight through (a handler still running after a shutdown timeout).
func (b *Writer) Close() error {
	b.once.Do(func() {
		close(b.stop)
		<-b.done
	})
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.Flush()
}

func (b *Writer) flushEvery(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.Flush() //nolint:errcheck // a log sink that fails has nowhere to report it
		}
	}
}
