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
	"syscall"
	"time"
)

// service is one of the app's binaries and its replicas, each on its own port.
type service struct {
	name     string
	binary   string
	ports    []int
	portEnv  string                     // variable that sets ports[0], for error messages
	env      func(addr string) []string // the service's own variables for one replica
	replicas []*process
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

// processLogs opens where a child's output goes.
type processLogs func(name string) (io.Writer, func() error, error)

// start starts every replica and waits until each answers /readyz with 200.
func (s *service) start(ctx context.Context, logs processLogs, timeout time.Duration, progress io.Writer) error {
	for i, port := range s.ports {
		name := s.replicaName(i)
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
		s.replicas = append(s.replicas, p)
		url := "http://" + hostPort(port)
		if err := waitHTTPReady(ctx, url+"/readyz", p, timeout); err != nil {
			return err
		}
		fmt.Fprintf(progress, "%s: ready on %s\n", name, url)
	}
	return nil
}

// stop stops every replica: SIGTERM lets a service fail /readyz, finish its
// requests and close its pool; SIGKILL follows after a deadline.
func (s *service) stop() error {
	var errs []error
	for _, p := range s.replicas {
		if err := p.stop(syscall.SIGTERM, 15*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	s.replicas = nil
	return errors.Join(errs...)
}

// waitHTTPReady polls url until it answers 200, p exits, or timeout passes.
func waitHTTPReady(ctx context.Context, url string, p *process, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		if p.exited() {
			return p.exitError()
		}
		status, err := httpStatus(ctx, client, url)
		switch {
		case err != nil:
			last = err.Error()
		case status == http.StatusOK:
			return nil
		default:
			last = "status " + strconv.Itoa(status)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return fmt.Errorf("stack: waiting for %s: %w", p.name, ctx.Err())
			}
			return fmt.Errorf("stack: %s not ready: GET %s did not answer 200 within %s (last: %s); last log lines:\n%s",
				p.name, url, timeout, last, p.tail.lastLines(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
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
