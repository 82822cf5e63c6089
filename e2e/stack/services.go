package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
)

// service is one of the app's binaries and its replicas, each on its own port.
type service struct {
	name     string
	binary   string
	ports    []int
	portEnv  string                     // variable that sets ports[0], for error messages
	env      func(addr string) []string // the service's own variables for one replica
	grace    time.Duration              // how long a replica may take to stop after SIGTERM
	replicas []*process                 // one slot per port; nil while that replica is not running
}

// replicaName is "casts" for the first replica and "casts-2", "casts-3", ...
// for the others: the name of its log file and of its lines in shared logs.
func (s *service) replicaName(i int) string {
	if i == 0 {
		return s.name
	}
	return s.name + "-" + strconv.Itoa(i+1)
}

// URLs are the base URLs of the replicas, as Traefik's routers.yml gets them.
func (s *service) URLs() []string {
	urls := make([]string, len(s.ports))
	for i, port := range s.ports {
		urls[i] = "http://" + hostPort(port)
	}
	return urls
}

func (s *service) replicaURL(i int) string { return "http://" + hostPort(s.ports[i]) }

// running lists the indexes of the replicas that are running.
func (s *service) running() []int {
	var idx []int
	for i, p := range s.replicas {
		if p != nil {
			idx = append(idx, i)
		}
	}
	return idx
}

// stopped lists the indexes of the replicas that are not running.
func (s *service) stopped() []int {
	var idx []int
	for i := range s.ports {
		if s.replicas[i] == nil {
			idx = append(idx, i)
		}
	}
	return idx
}

// checkReplica fails for an index that names no replica.
func (s *service) checkReplica(i int) error {
	if i < 0 || i >= len(s.ports) {
		return fmt.Errorf("stack: %s has no replica %d (it has %d, counted from 0)", s.name, i, len(s.ports))
	}
	return nil
}

// processLogs opens where a child's output goes.
type processLogs func(name string) (io.Writer, func() error, error)

// startReplica starts replica i on its port and waits until it answers
// /readyz with 200. started is called with the process as soon as it runs,
// so that the caller watches it even if it never becomes ready.
func (s *service) startReplica(ctx context.Context, i int, logs processLogs, timeout time.Duration, progress io.Writer, started func(*process)) error {
	if s.replicas[i] != nil {
		return fmt.Errorf("stack: %s is already running", s.replicaName(i))
	}
	name := s.replicaName(i)
	port := s.ports[i]
	claim := portClaim{port: &port, what: name, env: s.portEnv}
	if i > 0 {
		claim.env = fmt.Sprintf("%s (replica %d uses %s+%d)", s.portEnv, i+1, s.portEnv, i*replicaPortStep)
	}
	if err := checkPortFree(claim); err != nil {
		return err
	}
	log, closeLog, err := logs(name)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.binary)
	cmd.Env = append(os.Environ(), s.env(hostPort(port))...)
	cmd.SysProcAttr = childAttr(syscall.SIGTERM)
	p, err := startProcess(name, cmd, log)
	if err != nil {
		closeLog()
		return err
	}
	go func() { <-p.done; closeLog() }()
	s.replicas[i] = p
	started(p)
	url := s.replicaURL(i)
	if err := waitHTTPReady(ctx, url+"/readyz", p, timeout); err != nil {
		return err
	}
	fmt.Fprintf(progress, "%s: ready on %s\n", name, url)
	return nil
}

// stopReplica sends sig to replica i and waits for it to exit: SIGTERM lets
// a service fail /readyz, finish its requests and close its pool; SIGKILL
// follows if it takes longer than its grace period. A replica not running is
// left alone.
func (s *service) stopReplica(i int, sig syscall.Signal) error {
	p := s.replicas[i]
	if p == nil {
		return nil
	}
	s.replicas[i] = nil
	return p.stop(sig, s.grace)
}

// stop stops every running replica, all at once: each waits out its own
// shutdown delay, so one after the other would add them up.
func (s *service) stop() error {
	idx := s.running()
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for n, i := range idx {
		p := s.replicas[i]
		s.replicas[i] = nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[n] = p.stop(syscall.SIGTERM, s.grace)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitHTTPReady polls url until it answers 200, p exits, or timeout passes.
func waitHTTPReady(ctx context.Context, url string, p *process, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	err := stackkit.Poll(ctx, timeout, 100*time.Millisecond, p.name+" answering 200 on GET "+url, func() error {
		if p.exited() {
			return stackkit.Permanent(p.exitError())
		}
		status, err := httpStatus(ctx, client, url)
		switch {
		case err != nil:
			return err
		case status != http.StatusOK:
			return errors.New("status " + strconv.Itoa(status))
		}
		return nil
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stack: %s not ready: %w; last log lines:\n%s", p.name, err, p.tail.lastLines(20))
	}
	return err
}

func httpStatus(ctx context.Context, client *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
