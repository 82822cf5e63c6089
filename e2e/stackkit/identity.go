package stackkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/movies-microservices/e2e/target"
)

// TokenURL is the token endpoint of the provider whose public API (or the gateway in front of
// it) is at base.
func TokenURL(base string) string { return base + "/oauth2/token" }

// FetchToken gets an access token with the client credentials grant (RFC
// 6749 section 4.4) from tokenURL, for the stack's audience. The error says
// what the provider answered, without the secret.
func FetchToken(ctx context.Context, tokenURL, clientID, secret, scope string) (string, error) {
	return FetchTokenFor(ctx, tokenURL, clientID, secret, scope, target.Audience)
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
		return "", fmt.Errorf("token for %s: POST %s answered %d: %s", clientID, tokenURL, resp.StatusCode, OAuthError(data))
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

// OAuthError is the error and description of an OAuth 2.0 (or Hydra) error body.
func OAuthError(body []byte) string {
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

// DemoToken gets a token of the demo client with scope through the gateway at gateway: what
// every driver's Token is.
func DemoToken(ctx context.Context, gateway string, secrets target.Secrets, scope string) (string, error) {
	return FetchToken(ctx, TokenURL(gateway), target.DemoClientID, secrets.DemoClient, scope)
}

// WaitToken waits until id hands out a token of the demo client's scopes: the provider is back
// behind the gateway.
func WaitToken(ctx context.Context, timeout time.Duration, id interface {
	Token(ctx context.Context, scope string) (string, error)
}) error {
	return Poll(ctx, timeout, 300*time.Millisecond, "a token through the gateway", func() error {
		_, err := id.Token(ctx, target.DemoScopes)
		return err
	})
}

// RotateSigningKey has Hydra make a new key for its access tokens and sign with them from then
// on, with Hydra's own command (hydra create jwks) against its admin API at admin, and returns
// the new key's id. hydra runs the command where it can reach that API: bin/hydra for
// processes, inside Hydra's container on the container stacks (its admin API is on the
// container's loopback only).
func RotateSigningKey(ctx context.Context, admin string, hydra func(ctx context.Context, args ...string) ([]byte, error)) (string, error) {
	// --public: the answer holds the new key's public part only.
	out, err := hydra(ctx, "create", "jwks", target.AccessTokenKeySet,
		"--alg", "RS256", "--use", "sig", "--endpoint", admin, "--format", "json", "--public")
	if err != nil {
		return "", fmt.Errorf("hydra: new signing key: %w", err)
	}
	return FirstKeyID(out)
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
		return "", errors.New("hydra: the new key set names no key")
	}
	return keys.Keys[0].Kid, nil
}
