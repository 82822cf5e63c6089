package logbuf_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/movies-microservices/movies/internal/logbuf"
)

// lockedBuffer is a bytes.Buffer safe to read while the flusher writes.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Lines are batched into few writes, arrive whole and in order, and Close delivers the rest.
func TestBatchesAndDeliversEverything(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	w := logbuf.New(&out, 4096, time.Hour) // no flush by time: only a full buffer or Close writes
	var want strings.Builder
	for i := range 1000 {
		line := strings.Repeat("x", i%50) + "\n"
		want.WriteString(line)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Fatalf("got %d bytes, want the %d written, in order", len(out.String()), want.Len())
	}
	if out.writes >= 1000/10 {
		t.Errorf("%d writes for 1000 lines: not batched", out.writes)
	}
}

// A line written and then left alone reaches the writer without Close, by the periodic flush.
func TestFlushesByInterval(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	w := logbuf.New(&out, 4096, 10*time.Millisecond)
	defer w.Close()
	w.Write([]byte("one line\n")) //nolint:errcheck // checked by what arrives
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != "one line\n" {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s the writer has %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Concurrent writers never interleave inside a line.
func TestConcurrentLinesStayWhole(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	w := logbuf.New(&out, 512, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			line := []byte(strings.Repeat(string(rune('a'+g)), 100) + "\n")
			for range 200 {
				w.Write(line) //nolint:errcheck // checked by what arrives
			}
		})
	}
	wg.Wait()
	w.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*200 {
		t.Fatalf("%d lines, want %d", len(lines), 8*200)
	}
	for _, l := range lines {
		if len(l) != 100 || strings.Count(l, l[:1]) != 100 {
			t.Fatalf("a line was interleaved: %q", l)
		}
	}
}

// failOnce fails its first write and takes the others.
type failOnce struct {
	lockedBuffer
	failed bool
}

func (f *failOnce) Write(p []byte) (int, error) {
	if !f.failed {
		f.failed = true
		return 0, errors.New("disk full")
	}
	return f.lockedBuffer.Write(p)
}

// One failed write loses what was buffered then, not the lines after it; after Close, lines go
// straight through.
func TestRecoversFromAWriteErrorAndWritesThroughAfterClose(t *testing.T) {
	t.Parallel()
	out := &failOnce{}
	w := logbuf.New(out, 4096, time.Hour)
	w.Write([]byte("lost\n")) //nolint:errcheck // checked by what arrives
	if err := w.Flush(); err == nil {
		t.Fatal("the first flush should have failed")
	}
	w.Write([]byte("kept\n")) //nolint:errcheck // checked by what arrives
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("after close\n")) //nolint:errcheck // checked by what arrives
	if got := out.String(); got != "kept\nafter close\n" {
		t.Errorf("the writer got %q, want the lines after the failure", got)
	}
}
