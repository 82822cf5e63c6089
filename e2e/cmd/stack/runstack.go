package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/movies-microservices/e2e/stack"
	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// runStack is `make run`: the whole stack with its data under .run/, up until
// Ctrl-C or SIGTERM, then stopped in order.
func runStack(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	root, err := repoRoot("run")
	if err != nil {
		return err
	}
	opts, err := stack.OptionsFromEnv(getenv)
	if err != nil {
		return err
	}
	opts.RepoRoot = root
	opts.Dir = filepath.Join(root, ".run")
	opts.Progress = stdout

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := stack.Start(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			return errors.Join(errors.New("stack run: interrupted while starting"), err)
		}
		return err
	}
	printURLs(ctx, stdout, root, s)
	waitErr := s.Wait(ctx)
	if waitErr != nil {
		fmt.Fprintln(stdout, "stack: a process stopped unexpectedly; stopping everything")
	} else {
		fmt.Fprintln(stdout, "\nstack: stopping (services, then Traefik, then Hydra and Jaeger, then PostgreSQL)")
	}
	return errors.Join(waitErr, s.Stop())
}

// printURLs says where to go, using localhost as a person would type it.
func printURLs(ctx context.Context, w io.Writer, root string, s *stack.Stack) {
	u := s.URLs()
	local := func(base string) string {
		parsed, err := url.Parse(base)
		if err != nil {
			return base
		}
		return "http://localhost:" + parsed.Port()
	}
	gateway, admin := local(u.Gateway), local(u.Admin)
	db := u.DatabaseAdmin
	if parsed, err := url.Parse(db); err == nil {
		db = parsed.Redacted()
	}
	dashboard := admin + "/dashboard/"
	if err := stackkit.CheckDashboard(ctx, u.Admin); err != nil {
		dashboard = "not in bin/traefik: " + err.Error()
	}
	rel := func(path string) string {
		if r, err := filepath.Rel(root, path); err == nil {
			return r
		}
		return path
	}
	fmt.Fprintf(w, `
The stack is up.
  Movies API         %[1]s/api/v1/movies
  Casts API          %[1]s/api/v1/casts
  Movies API docs    %[1]s/api/v1/movies/docs
  Casts API docs     %[1]s/api/v1/casts/docs
  Traefik routers    %[2]s/api/http/routers   (also /api/http/services, /ping, /metrics)
  Traefik dashboard  %[9]s
  Services directly  movies %[3]s, casts %[4]s
  PostgreSQL         %[5]s (passwords in %[6]s)
  OpenID provider    Hydra: tokens at %[15]s, admin API %[10]s (loopback only)
  Traces             Jaeger: %[16]s (query API %[16]s/api/traces?service=movies)
  Metrics            %[17]s (each service's own port; Traefik's at %[2]s/metrics)
  Logs               %[7]s/
Reads are public; writes need a token (it lives %[11]s). Client %[12]q, scopes %[13]q; get one with:

%[14]s

then write with curl -H "$AUTH" ... (the README's tour).
Press Ctrl-C to stop. Data survives restarts; delete %[8]s/ to reset it.
`, gateway, admin, joinLocal(u.Movies, local), joinLocal(u.Casts, local), db,
		rel(filepath.Join(root, ".run", "secrets.env")), rel(s.LogDir()), rel(filepath.Join(root, ".run")), dashboard,
		u.HydraAdmin, target.AccessTokenTTL, target.DemoClientID, target.DemoScopes,
		tokenCommand(gateway, target.DemoClientID, s.Secrets().DemoClient), stackkit.TokenURL(gateway),
		local(u.Jaeger), metricsURLs(u, local))
}

// metricsURLs lists each replica's /metrics.
func metricsURLs(u target.URLs, local func(string) string) string {
	var urls []string
	for _, base := range slices.Concat(u.Movies, u.Casts) {
		urls = append(urls, local(base)+"/metrics")
	}
	return joinLocal(urls, func(u string) string { return u })
}

// tokenCommand is the one line a person copies to get a token into $AUTH: the
// README's tour writes with -H "$AUTH".
func tokenCommand(gateway, clientID, secret string) string {
	return fmt.Sprintf(`TOKEN=$(curl -s -u %s:%s -d grant_type=client_credentials -d 'scope=%s' -d audience=%s %s | sed -E 's/.*"access_token":"([^"]+)".*/\1/'); AUTH="Authorization: Bearer $TOKEN"`,
		clientID, secret, target.DemoScopes, target.Audience, stackkit.TokenURL(gateway))
}

func joinLocal(urls []string, local func(string) string) string {
	out := ""
	for i, u := range urls {
		if i > 0 {
			out += " "
		}
		out += local(u)
	}
	if out == "" {
		return "(none)"
	}
	return out
}
