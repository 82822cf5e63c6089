package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// The OpenID provider is Ory Hydra (bin/hydra, built by e2e/hydra/build.sh).
// It keeps its clients and signing keys in a database of its own on the
// stack's cluster, open to its role only, and issues JWT access tokens that
// each service verifies against its key set.

// hydraConfig is what a local Hydra needs to know.
type hydraConfig struct {
	dsn        string // its database, as its own role
	issuer     string // the gateway's URL with a slash, as the tokens' iss says it
	publicPort int
	adminPort  int
	system     string // Secrets.HydraSystem
}

// env is Hydra's whole environment: it reads its configuration from
// variables, and ours (LOG_LEVEL, PORT-like names, a DSN of something else)
// must not leak into it.
func (c hydraConfig) env() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"DSN=" + c.dsn,
		"URLS_SELF_ISSUER=" + c.issuer,
		"STRATEGIES_ACCESS_TOKEN=jwt",
		"TTL_ACCESS_TOKEN=" + target.AccessTokenTTL.String(),
		"SECRETS_SYSTEM=" + c.system,
		"SERVE_PUBLIC_HOST=" + loopback,
		"SERVE_PUBLIC_PORT=" + strconv.Itoa(c.publicPort),
		"SERVE_ADMIN_HOST=" + loopback,
		"SERVE_ADMIN_PORT=" + strconv.Itoa(c.adminPort),
		"LOG_FORMAT=json",
		"LOG_LEVEL=info",
	}
}

// hydraServeArgs: --dev allows the plain-HTTP issuer of a local stack;
// --sqa-opt-out sends Ory no usage statistics (a local run has no business
// calling home).
var hydraServeArgs = []string{"serve", "all", "--dev", "--sqa-opt-out"}

func (s *Stack) hydraConfig() hydraConfig {
	return hydraConfig{
		dsn:        s.pg.URL(target.ServiceHydra, s.secrets.Hydra, target.ServiceHydra),
		issuer:     s.issuer(),
		publicPort: s.opts.Ports.HydraPublic,
		adminPort:  s.opts.Ports.HydraAdmin,
		system:     s.secrets.HydraSystem,
	}
}

// issuer is where clients reach the provider: behind the gateway.
func (s *Stack) issuer() string { return "http://" + hostPort(s.opts.Ports.Web) + "/" }

func (s *Stack) hydraPublicURL() string { return "http://" + hostPort(s.opts.Ports.HydraPublic) }
func (s *Stack) hydraAdminURL() string  { return "http://" + hostPort(s.opts.Ports.HydraAdmin) }

// startHydra runs Hydra's migrations on its database, starts it, creates (or
// updates) the stack's clients and has it make its signing key, so that the
// first token and the services' first key fetch do not wait for it.
func (s *Stack) startHydra(ctx context.Context) error {
	log, closeLog, err := s.logFiles(true)(target.ServiceHydra)
	if err != nil {
		return err
	}
	migrateCtx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	migrate := exec.CommandContext(migrateCtx, s.opts.Binaries.Hydra, "migrate", "sql", "up", "--read-from-env", "--yes")
	migrate.Env = s.hydraConfig().env()
	migrate.Stdout, migrate.Stderr = log, log
	err = migrate.Run()
	closeLog()
	if err != nil {
		return fmt.Errorf("stack: hydra migrate sql up: %w (its output is in %s/hydra.log)", err, s.logDir)
	}
	if err := s.serveHydra(ctx); err != nil {
		return err
	}
	for _, c := range []hydraClient{
		{ID: target.DemoClientID, Secret: s.secrets.DemoClient, Scope: target.DemoScopes},
		{ID: target.RelayClientID, Secret: s.secrets.RelayClient, Scope: target.RelayScopes},
	} {
		if err := ensureClient(ctx, s.hydraAdminURL(), c); err != nil {
			return err
		}
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if err := stackkit.GetJSON(ctx, client, s.hydraPublicURL()+"/.well-known/jwks.json", nil); err != nil {
		return fmt.Errorf("stack: hydra: %w", err)
	}
	fmt.Fprintf(s.opts.Progress, "hydra: ready on %s (admin %s), clients %s and %s, tokens for %s\n",
		s.hydraPublicURL(), s.hydraAdminURL(), target.DemoClientID, target.RelayClientID, s.issuer())
	return nil
}

// serveHydra starts `hydra serve all` and waits until both its APIs are ready.
func (s *Stack) serveHydra(ctx context.Context) error {
	for _, c := range []portClaim{
		{port: &s.opts.Ports.HydraPublic, what: "Hydra public API", env: EnvHydraPublic},
		{port: &s.opts.Ports.HydraAdmin, what: "Hydra admin API", env: EnvHydraAdmin},
	} {
		if err := checkPortFree(c); err != nil {
			return err
		}
	}
	log, closeLog, err := s.logFiles(false)(target.ServiceHydra)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.opts.Binaries.Hydra, hydraServeArgs...)
	cmd.Env = s.hydraConfig().env()
	cmd.SysProcAttr = childAttr(syscall.SIGTERM)
	p, err := startProcess(target.ServiceHydra, cmd, log)
	if err != nil {
		closeLog()
		return err
	}
	go func() { <-p.done; closeLog() }()
	s.hydra = p
	s.watch(p)
	if err := s.waitHydraReady(ctx); err != nil {
		// Not left half started: StartProvider may try again.
		s.hydra = nil
		p.stop(syscall.SIGTERM, 15*time.Second) //nolint:errcheck // the readiness error says more
		return err
	}
	return nil
}

// waitHydraReady waits until both of Hydra's APIs answer /health/ready.
func (s *Stack) waitHydraReady(ctx context.Context) error {
	for _, base := range []string{s.hydraPublicURL(), s.hydraAdminURL()} {
		if err := waitHTTPReady(ctx, base+"/health/ready", s.hydra, s.opts.ReadyTimeout); err != nil {
			return err
		}
	}
	return nil
}

// hydraClient is an OAuth 2.0 client as Hydra's admin API takes it.
type hydraClient struct {
	ID     string
	Secret string
	Scope  string
}

func (c hydraClient) body() ([]byte, error) {
	return json.Marshal(map[string]any{
		"client_id":                  c.ID,
		"client_secret":              c.Secret,
		"grant_types":                []string{"client_credentials"},
		"scope":                      c.Scope,
		"audience":                   []string{target.Audience},
		"token_endpoint_auth_method": "client_secret_basic",
	})
}

// ensureClient creates the client, or, when it exists (a persistent stack),
// sets it to this state, its secret included.
func ensureClient(ctx context.Context, adminURL string, c hydraClient) error {
	body, err := c.body()
	if err != nil {
		return err
	}
	status, msg, err := adminCall(ctx, http.MethodPost, adminURL+"/admin/clients", body, nil)
	if err == nil && status == http.StatusConflict {
		status, msg, err = adminCall(ctx, http.MethodPut, adminURL+"/admin/clients/"+url.PathEscape(c.ID), body, nil)
	}
	if err != nil {
		return fmt.Errorf("stack: hydra: create client %s: %w", c.ID, err)
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return fmt.Errorf("stack: hydra: create client %s: answered %d: %s", c.ID, status, msg)
	}
	return nil
}

// adminCall sends a JSON body to Hydra's admin API and decodes a 2xx answer
// into out (if not nil). Otherwise it returns the status and the error's
// description: Hydra's error bodies hold no secret, but the request's body
// does, so it is never part of an error.
func adminCall(ctx context.Context, method, url string, body []byte, out any) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, stackkit.OAuthError(data), nil
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, "", fmt.Errorf("decode the answer of %s %s: %w", method, url, err)
		}
	}
	return resp.StatusCode, "", nil
}

// Token gets an access token of the demo client with scope (space-separated)
// through the gateway's token endpoint, as a client of the stack would.
func (s *Stack) Token(ctx context.Context, scope string) (string, error) {
	return stackkit.DemoToken(ctx, s.urls.Gateway, s.secrets, scope)
}

// StopProvider stops Hydra, and nothing else: tokens already issued stay
// valid until they expire, and the services keep the keys they fetched.
func (s *Stack) StopProvider() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hydra == nil || s.hydra.exited() {
		return errors.New("stack: hydra is not running")
	}
	p := s.hydra
	s.hydra = nil
	return p.stop(syscall.SIGTERM, 15*time.Second)
}

// StartProvider starts Hydra again after StopProvider, and returns once it is
// ready and Traefik has it back in rotation (the gateway hands out tokens).
func (s *Stack) StartProvider(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("stack: stopped")
	}
	if s.hydra != nil && !s.hydra.exited() {
		return errors.New("stack: hydra is already running")
	}
	if err := s.serveHydra(ctx); err != nil {
		return err
	}
	return s.waitInRotation(ctx, []string{s.hydraPublicURL()})
}

// RotateSigningKey has Hydra make a new key for its access tokens and sign
// with it from then on; it returns the new key's id. The old key stays in the
// key set, so tokens it signed stay valid until they expire. bin/hydra's own
// command does it, as on the container stacks, against the admin API.
func (s *Stack) RotateSigningKey(ctx context.Context) (string, error) {
	return stackkit.RotateSigningKey(ctx, s.hydraAdminURL(), func(ctx context.Context, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, s.opts.Binaries.Hydra, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%w: %s", err, stackkit.FirstLine(stderr.String()))
		}
		return out, nil
	})
}
