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
	"strings"
	"syscall"
	"time"
)

// The OpenID provider is Ory Hydra (bin/hydra, built by e2e/hydra/build.sh).
// It keeps its clients and signing keys in a database of its own on the
// stack's cluster, open to its role only, and issues JWT access tokens that
// each service verifies against its key set.

// Clients, scopes and the audience the stack's provider knows.
const (
	ServiceHydra = "hydra"
	// DemoClientID is the client for people: client credentials, both write scopes.
	DemoClientID = "demo"
	DemoScopes   = "casts:write movies:write"
	// RelayClientID is the cast service's outbox relay, which posts events to movies.
	RelayClientID = "casts-relay"
	RelayScopes   = "movies:events"
	// Audience is the one audience of both services' tokens.
	Audience = "movies-microservices"
	// AccessTokenTTL is how long an access token lives (Hydra's TTL_ACCESS_TOKEN): a verified
	// JWT stays valid until it expires, so it is short.
	AccessTokenTTL = 5 * time.Minute
	// accessTokenKeySet is the key set Hydra signs access tokens with.
	accessTokenKeySet = "hydra.jwt.access-token"
)

// TokenURL is the token endpoint of the provider whose public API (or the gateway in front of
// it) is at base.
func TokenURL(base string) string { return base + "/oauth2/token" }

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
		"TTL_ACCESS_TOKEN=" + AccessTokenTTL.String(),
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
		dsn:        s.pg.URL(ServiceHydra, s.secrets.Hydra, ServiceHydra),
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
	log, closeLog, err := s.logFiles(true)(ServiceHydra)
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
		{ID: DemoClientID, Secret: s.secrets.DemoClient, Scope: DemoScopes},
		{ID: RelayClientID, Secret: s.secrets.RelayClient, Scope: RelayScopes},
	} {
		if err := ensureClient(ctx, s.hydraAdminURL(), c); err != nil {
			return err
		}
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if err := GetJSON(ctx, client, s.hydraPublicURL()+"/.well-known/jwks.json", nil); err != nil {
		return fmt.Errorf("stack: hydra: %w", err)
	}
	fmt.Fprintf(s.opts.Progress, "hydra: ready on %s (admin %s), clients %s and %s, tokens for %s\n",
		s.hydraPublicURL(), s.hydraAdminURL(), DemoClientID, RelayClientID, s.issuer())
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
	log, closeLog, err := s.logFiles(false)(ServiceHydra)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.opts.Binaries.Hydra, hydraServeArgs...)
	cmd.Env = s.hydraConfig().env()
	cmd.SysProcAttr = childAttr(syscall.SIGTERM)
	p, err := startProcess(ServiceHydra, cmd, log)
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
		"audience":                   []string{Audience},
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
		return resp.StatusCode, oauthError(data), nil
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, "", fmt.Errorf("decode the answer of %s %s: %w", method, url, err)
		}
	}
	return resp.StatusCode, "", nil
}

// oauthError is the error and description of an OAuth 2.0 (or Hydra) error body.
func oauthError(body []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return strings.TrimSpace(string(body[:min(len(body), 200)]))
	}
	if e.Description == "" {
		return e.Error
	}
	return e.Error + ": " + e.Description
}

// FetchToken gets an access token with the client credentials grant (RFC
// 6749 section 4.4) from tokenURL, for the stack's audience. The error says
// what the provider answered, without the secret.
func FetchToken(ctx context.Context, tokenURL, clientID, secret, scope string) (string, error) {
	return FetchTokenFor(ctx, tokenURL, clientID, secret, scope, Audience)
}

// FetchTokenFor is FetchToken for another audience; "" asks for none.
func FetchTokenFor(ctx context.Context, tokenURL, clientID, secret, scope, audience string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	if audience != "" {
		form.Set("audience", audience)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// RFC 6749 section 2.3.1: both form-encoded, then HTTP Basic.
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("token for %s: %w", clientID, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("token for %s: %w", clientID, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token for %s: POST %s answered %d: %s", clientID, tokenURL, resp.StatusCode, oauthError(data))
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(data, &tok); err != nil || tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "bearer") {
		return "", fmt.Errorf("token for %s: POST %s answered 200 without a bearer access token", clientID, tokenURL)
	}
	return tok.AccessToken, nil
}

// Token gets an access token of the demo client with scope (space-separated)
// through the gateway's token endpoint, as a client of the stack would.
func (s *Stack) Token(ctx context.Context, scope string) (string, error) {
	return FetchToken(ctx, TokenURL(s.urls.Gateway), DemoClientID, s.secrets.DemoClient, scope)
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
// key set, so tokens it signed stay valid until they expire.
func (s *Stack) RotateSigningKey(ctx context.Context) (string, error) {
	var set json.RawMessage
	status, msg, err := adminCall(ctx, http.MethodPost, s.hydraAdminURL()+"/admin/keys/"+accessTokenKeySet,
		[]byte(`{"alg":"RS256","use":"sig"}`), &set)
	if err != nil {
		return "", fmt.Errorf("stack: hydra: new signing key: %w", err)
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return "", fmt.Errorf("stack: hydra: new signing key: answered %d: %s", status, msg)
	}
	return FirstKeyID(set)
}

// FirstKeyID is the kid of the first key of a JSON Web Key Set, as Hydra
// answers the creation of a key. Only the kid is read: the set may hold the
// private key, and no part of it goes into an error.
func FirstKeyID(set []byte) (string, error) {
	var keys struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(set, &keys); err != nil || len(keys.Keys) == 0 || keys.Keys[0].Kid == "" {
		return "", errors.New("stack: hydra: the new key set names no key")
	}
	return keys.Keys[0].Kid, nil
}
