package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"text/template"
	"time"
)

// nginxConfig is the original system's gateway (the FastAPI tutorial's
// nginx_config.conf: one location per API prefix, proxied to its service
// with the path kept) plus what it lacked, keep-alive connections to the
// backends. Like Traefik in the stack, it writes an access log line per
// request and runs one worker per core. Everything it writes goes to Dir.
var nginxConfig = template.Must(template.New("nginx.conf").Parse(`# Written by e2e/bench for one run.
daemon off;
master_process on;
worker_processes auto;
{{- if .Root}}
user root;
{{- end}}
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log {{.Dir}}/access.log;
    client_body_temp_path {{.Dir}}/client_body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;

    upstream movie_service {
        server {{.Movies}};
        keepalive 64;
    }
    upstream cast_service {
        server {{.Casts}};
        keepalive 64;
    }

    server {
        listen {{.Listen}};

        location /api/v1/movies {
            proxy_pass http://movie_service/api/v1/movies;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }

        location /api/v1/casts {
            proxy_pass http://cast_service/api/v1/casts;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`))

type nginxParams struct {
	Dir           string
	Root          bool   // running as root: workers stay root (they only touch Dir)
	Listen        string // host:port
	Movies, Casts string // host:port of each service
}

func renderNginxConfig(p nginxParams) (string, error) {
	var b bytes.Buffer
	if err := nginxConfig.Execute(&b, p); err != nil {
		return "", fmt.Errorf("bench: nginx config: %w", err)
	}
	return b.String(), nil
}

// findNginx looks on PATH, then in /usr/sbin, where Debian puts it and where a
// normal user's PATH often does not reach.
func findNginx() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if isExecutable("/usr/sbin/nginx") {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("bench: nginx not found on PATH or in /usr/sbin: install it (Debian/Ubuntu: apt-get install nginx)")
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0
}

// startNginx starts nginx in front of the first replica of each service, on a
// free port, and returns once it answers.
func startNginx(ctx context.Context, dir, moviesURL, castsURL string) (*child, error) {
	bin, err := findNginx()
	if err != nil {
		return nil, err
	}
	movies, err := hostOf(moviesURL)
	if err != nil {
		return nil, err
	}
	casts, err := hostOf(castsURL)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf, err := renderNginxConfig(nginxParams{Dir: dir, Root: os.Geteuid() == 0, Listen: listen, Movies: movies, Casts: casts})
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("bench: write nginx config: %w", err)
	}
	// -e: the error log before the config is read (else /var/log/nginx).
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	return startChild(ctx, "nginx", cmd, "http://"+listen, 10*time.Second)
}

// child is a gateway the benchmark runs beside the stack's Traefik (nginx, the bare Traefik).
type child struct {
	name string
	cmd  *exec.Cmd
	url  string // where it listens, e.g. http://127.0.0.1:43210
	done chan struct{}
	out  bytes.Buffer
	// ready are the paths that must answer 200 through url before it counts as started; nil
	// means both API prefixes.
	ready []string
}

// startChild starts cmd and returns once both API prefixes (or the ready paths) answer 200
// through url. Its output is kept for error messages, unless cmd already has a Stdout.
func startChild(ctx context.Context, name string, cmd *exec.Cmd, url string, timeout time.Duration, ready ...string) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	c := &child{name: name, cmd: cmd, url: url, done: make(chan struct{}), ready: ready}
	if cmd.Stdout == nil {
		cmd.Stdout, cmd.Stderr = &c.out, &c.out
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	go func() { cmd.Wait(); close(c.done) }()
	if err := c.waitReady(ctx, timeout); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	answers := func(path string) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for {
		select {
		case <-c.done:
			return fmt.Errorf("bench: %s exited at start: %s", c.name, c.out.String())
		default:
		}
		paths := c.ready
		if paths == nil {
			paths = []string{"/api/v1/movies?limit=1", "/api/v1/casts?limit=1"}
		}
		if !slices.ContainsFunc(paths, func(p string) bool { return !answers(p) }) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: %s on %s did not answer within %s: %s", c.name, c.url, timeout, c.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop asks for a fast shutdown and waits for it.
func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

func hostOf(baseURL string) (string, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("bench: %q is not a base URL", baseURL)
	}
	return u.Host, nil
}

// freePort asks the kernel for a free port on the loopback.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
