package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// Every write needs a bearer token from the stack's OpenID provider (Hydra). The suite gets its
// tokens the way a client does, through the gateway's token endpoint, and never makes one up:
// only the hostile tests in auth_test.go forge tokens, to see them refused.

// tokenRefreshAge is how old a cached token may get before it is fetched again. The provider's
// tokens live 5 minutes (TTL_ACCESS_TOKEN); a test holding one must still find it valid.
const tokenRefreshAge = 90 * time.Second

// tokenCache holds one access token and fetches a new one when it gets old.
type tokenCache struct {
	fetch func(ctx context.Context) (string, error)

	mu     sync.Mutex
	token  string
	at     time.Time
	issued []string // every token it fetched, for the no-secret-in-logs test
}

// get returns a token, fetching one when it has none or its token is old. A failed fetch is
// tried again for up to 30 s (the provider may be on its way back from a fault test's outage);
// then it returns "" and says why on stderr: the request goes without a token and its 401
// fails the test.
func (c *tokenCache) get() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Since(c.at) < tokenRefreshAge {
		return c.token
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var token string
	err := stackkit.Poll(ctx, 30*time.Second, 500*time.Millisecond, "an access token", func() (err error) {
		token, err = c.fetch(ctx)
		return err
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: get an access token: %v\n", err)
		return ""
	}
	c.token, c.at = token, time.Now()
	c.issued = append(c.issued, token)
	return token
}

func (c *tokenCache) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.issued...)
}

// tokenSource is what can hand out tokens: the targets, through their provider.
type tokenSource interface {
	Token(ctx context.Context, scope string) (string, error)
}

// tokensOf caches tokens with the given scope from src.
func tokensOf(src tokenSource, scope string) *tokenCache {
	return &tokenCache{fetch: func(ctx context.Context) (string, error) { return src.Token(ctx, scope) }}
}

// relayTokensOf caches tokens of the cast service's relay client (scope movies:events), as the
// relay gets them, for tests that post events to the movie service themselves.
func relayTokensOf(tg target.Target) *tokenCache {
	return &tokenCache{fetch: func(ctx context.Context) (string, error) {
		return stackkit.FetchToken(ctx, stackkit.TokenURL(tg.URLs().Gateway), target.RelayClientID, tg.Secrets().RelayClient, scopeEvents)
	}}
}

// Scopes the services require (their OpenAPI documents list them).
const (
	scopeCasts  = "casts:write"
	scopeMovies = "movies:write"
	scopeEvents = "movies:events"
)

// suiteTokens are the demo client's tokens (both write scopes) for the suite's stack. Set by
// runSuite: from the target, or, for a stack started elsewhere (E2E_BASE_URL), from the client
// named by E2E_CLIENT_ID (default demo) and E2E_CLIENT_SECRET.
var suiteTokens *tokenCache

func newSuiteTokens() *tokenCache {
	if suite.target != nil {
		return tokensOf(suite.target, target.DemoScopes)
	}
	id := os.Getenv("E2E_CLIENT_ID")
	if id == "" {
		id = target.DemoClientID
	}
	secret := os.Getenv("E2E_CLIENT_SECRET")
	return &tokenCache{fetch: func(ctx context.Context) (string, error) {
		if secret == "" {
			return "", fmt.Errorf("E2E_CLIENT_SECRET is not set: the writes of a stack started elsewhere need its demo client's secret (.env: HYDRA_DEMO_CLIENT_SECRET)")
		}
		return stackkit.FetchToken(ctx, stackkit.TokenURL(suite.gateway), id, secret, target.DemoScopes)
	}}
}

// isWrite reports whether a request with this method needs a token.
func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// authorize gives a write to the services' API a bearer token from tokens, unless the request
// has an Authorization header already.
func authorize(req *http.Request, tokens *tokenCache) {
	if !isWrite(req.Method) || req.Header.Get("Authorization") != "" ||
		!(strings.HasPrefix(req.URL.Path, "/api/") || strings.HasPrefix(req.URL.Path, "/internal/")) {
		return
	}
	if token := tokens.get(); token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
}

// noToken, as call's headers, sends a write without any Authorization header.
var noToken = []string{"Authorization", ""}

// bearer is the Authorization header value for a token.
func bearer(token string) string { return "Bearer " + token }

// mustToken fetches a fresh token of scope from the suite's provider (not the cache).
func mustToken(t *testing.T, scope string) string {
	t.Helper()
	tg := needTarget(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	token, err := tg.Token(ctx, scope)
	if err != nil {
		t.Fatalf("get a token with scope %q: %v", scope, err)
	}
	return token
}

// suiteRelayTokens are the relay client's tokens for the suite's stack: from the target's
// secrets, or E2E_RELAY_CLIENT_SECRET for a stack started elsewhere.
var suiteRelayTokens = sync.OnceValue(func() *tokenCache {
	if suite.target != nil {
		return relayTokensOf(suite.target)
	}
	secret := os.Getenv("E2E_RELAY_CLIENT_SECRET")
	return &tokenCache{fetch: func(ctx context.Context) (string, error) {
		if secret == "" {
			return "", fmt.Errorf("E2E_RELAY_CLIENT_SECRET is not set: events posted to a stack started elsewhere need its relay client's secret (.env: HYDRA_RELAY_CLIENT_SECRET)")
		}
		return stackkit.FetchToken(ctx, stackkit.TokenURL(suite.gateway), target.RelayClientID, secret, scopeEvents)
	}}
})

// tokensFor is the suite's token cache for a request to path: the relay's for the movie
// service's internal API, the demo client's for the rest.
func tokensFor(path string) *tokenCache {
	if strings.HasPrefix(path, "/internal/") {
		return suiteRelayTokens()
	}
	return suiteTokens
}
