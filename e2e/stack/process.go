package stack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// process is a child process whose output goes to a log and whose end is
// observed, so that a caller waiting for it to become ready can tell "not yet"
// from "never" and show why.
type process struct {
	name     string
	cmd      *exec.Cmd
	tail     *tailBuffer
	done     chan struct{} // closed once the process has exited
	err      error         // result of cmd.Wait, valid once done is closed
	stopping atomic.Bool   // set before we signal it, so its exit is not a crash
}

// startProcess starts cmd with its stdout and stderr copied to log (which may
// be nil) and to a small buffer kept for error messages.
func startProcess(name string, cmd *exec.Cmd, log io.Writer) (*process, error) {
	p := &process{name: name, cmd: cmd, tail: newTailBuffer(16 << 10), done: make(chan struct{})}
	out := io.Writer(p.tail)
	if log != nil {
		out = io.MultiWriter(log, p.tail)
	}
	// One writer for both streams: exec then serialises their writes.
	cmd.Stdout, cmd.Stderr = out, out
	// Bounds how long Wait waits for the output pipe after the process exits,
	// in case a grandchild kept it open.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stack: start %s (%s): %w", name, cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// childAttr puts a child in its own process group, so that a Ctrl-C in the
// terminal reaches only us and we stop the children in order, and asks the
// kernel to send it deathSignal if we die without stopping it.
func childAttr(deathSignal syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSignal}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes how the process ended, with its last log lines: the
// message a person needs when a child dies during start-up.
func (p *process) exitError() error {
	status := "exited"
	if p.err != nil {
		status = p.err.Error()
	}
	return fmt.Errorf("stack: %s stopped unexpectedly (%s); last log lines:\n%s", p.name, status, p.tail.lastLines(20))
}

// stop sends sig, waits up to grace for the process to exit, then kills it.
// Any exit after our signal counts as a clean stop: a process killed by the
// very signal we sent did what we asked.
func (p *process) stop(sig os.Signal, grace time.Duration) error {
	p.stopping.Store(true)
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stack: signal %s: %w", p.name, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stack: kill %s: %w", p.name, err)
	}
	<-p.done
	return fmt.Errorf("stack: %s did not stop within %s of %v and was killed", p.name, grace, sig)
}

// tailBuffer keeps the last bytes written to it.
type tailBuffer struct {
	mu   sync.Mutex
	max  int
	data []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data = append(b.data, p...)
	if over := len(b.data) - b.max; over > 0 {
		b.data = append(b.data[:0], b.data[over:]...)
	}
	return len(p), nil
}

// lastLines returns up to n complete-or-trailing lines, indented for use
// inside an error message.
func (b *tailBuffer) lastLines(n int) string {
	b.mu.Lock()
	text := strings.TrimRight(string(b.data), "\n")
	b.mu.Unlock()
	if text == "" {
		return "    (no output)"
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// lockedWriter lets several processes share one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// prefixWriter writes whole lines to w, each starting with prefix, so that
// the output of several processes on one writer stays readable.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
}

func (pw *prefixWriter) Write(p []byte) (int, error) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.buf = append(pw.buf, p...)
	for {
		i := bytes.IndexByte(pw.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := pw.prefix + string(pw.buf[:i+1])
		pw.buf = pw.buf[i+1:]
		if _, err := io.WriteString(pw.w, line); err != nil {
			return len(p), err
		}
	}
}
