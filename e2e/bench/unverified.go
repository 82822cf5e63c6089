package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/movies-microservices/e2e/stack"
	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// unverified is one more process of each service, the same binary on the same database, started
// with *_AUTH_VERIFY=off: the "unverified" variant, direct to it, against "direct" to the
// stack's own (which verifies every write's token), is what verification costs. The bench's
// writes carry a token to both; this one does not look at it.
type unverified struct {
	casts, movies *child
	logs          []*os.File
}

// startUnverified starts both services with verification off on free ports, their logs in dir
// (copied through a pipe by this process, as the stack copies its services' logs). Movies
// checks its cast ids through the stack's mesh, as the stack's movies does.
func startUnverified(ctx context.Context, repoRoot, dir string, st *stack.Stack) (_ *unverified, err error) {
	u := &unverified{}
	defer func() {
		if err != nil {
			u.stop()
		}
	}()
	mesh := st.URLs().Mesh
	logs := func(name string) string { return filepath.Join(dir, name+"-unverified.log") }
	start := func(name string, env ...string) (*child, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		prefix := strings.ToUpper(name) + "_"
		log, err := os.Create(logs(name))
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		u.logs = append(u.logs, log)
		cmd := exec.Command(filepath.Join(repoRoot, "bin", name))
		cmd.Env = append(os.Environ(), prefix+"ADDR="+addr, prefix+"LOG_LEVEL=info", prefix+"AUTH_VERIFY=off",
			prefix+"DATABASE_URL="+st.DatabaseURL(name, name))
		cmd.Env = append(cmd.Env, env...)
		// Through a pipe, not straight into the file: the stack's services write to one too.
		out := struct{ io.Writer }{log}
		cmd.Stdout, cmd.Stderr = out, out
		c, err := startChild(ctx, name+" without verification", cmd, "http://"+addr, 20*time.Second, "/readyz")
		if err != nil {
			// Its log is in dir, which goes when the bench ends: the error carries its end.
			out, _ := os.ReadFile(logs(name))
			return nil, fmt.Errorf("%w; its last output:\n%s", err, out[max(0, len(out)-2000):])
		}
		return c, nil
	}
	// Its outbox relay is a client of its own, as the stack's: events, if any, are delivered.
	urls := st.URLs()
	if u.casts, err = start(target.ServiceCasts, "CASTS_MOVIES_URL="+mesh, "CASTS_AUTH_TOKEN_URL="+stackkit.TokenURL(urls.HydraPublic),
		"CASTS_AUTH_AUDIENCE="+target.Audience, "CASTS_RELAY_CLIENT_ID="+target.RelayClientID, "CASTS_RELAY_CLIENT_SECRET="+st.Secrets().RelayClient); err != nil {
		return nil, err
	}
	if u.movies, err = start(target.ServiceMovies, "MOVIES_CASTS_URL="+mesh); err != nil {
		return nil, err
	}
	return u, nil
}

// url is where scenario's service listens.
func (u *unverified) url(service string) string {
	if service == target.ServiceCasts {
		return u.casts.url
	}
	return u.movies.url
}

func (u *unverified) stop() {
	for _, c := range []*child{u.movies, u.casts} {
		if c != nil {
			c.stop()
		}
	}
	for _, f := range u.logs {
		f.Close()
	}
}
