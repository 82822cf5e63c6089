// Package authtest stands in for the identity provider in tests: it signs access tokens the way
// Ory Hydra does (RS256 JWTs with a kid, scopes in scp) and serves their keys as a JWKS.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/movies-microservices/movies/internal/auth"
	"github.com/rs/zerolog"
)

const (
	// Audience is the audience the tokens are issued for, and the verifiers expect.
	Audience = "movies-microservices"
	// ClientID is the client the tokens are issued to.
	ClientID = "test-client"
)

// rsaKey is generated once per test binary: generating one per test would cost more than the
// tests themselves.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return key
})

// Issuer is a stand-in identity provider.
type Issuer struct {
	// URL is the issuer, as the tokens' iss says it.
	URL string
	// JWKSURL is where the published keys are served.
	JWKSURL string
	// Key is the key tokens are signed with by Sign.
	Key jwk.Key

	mu        sync.Mutex
	published []jwk.Key
	down      bool
	fetches   int
}

// New starts an issuer that publishes Key, with kid "key-1", until the test ends.
func New(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{Key: NewKey(t, "key-1")}
	iss.Publish(t, iss.Key)
	srv := httptest.NewServer(http.HandlerFunc(iss.serveJWKS))
	t.Cleanup(srv.Close)
	iss.URL = srv.URL + "/"
	iss.JWKSURL = srv.URL + "/.well-known/jwks.json"
	return iss
}

// NewKey returns an RS256 signing key named kid.
func NewKey(t testing.TB, kid string) jwk.Key {
	t.Helper()
	key, err := jwk.Import(rsaKey())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.RS256(), jwk.KeyUsageKey: "sig"} {
		if err := key.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	return key
}

// Publish adds key's public form to the JWKS.
func (iss *Issuer) Publish(t testing.TB, key jwk.Key) {
	t.Helper()
	public, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.published = append(iss.published, public)
}

// SetDown makes the JWKS answer 503 (down true) or the keys again.
func (iss *Issuer) SetDown(down bool) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.down = down
}

// Fetches is how many times the JWKS was asked for.
func (iss *Issuer) Fetches() int {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.fetches
}

func (iss *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.fetches++
	if iss.down || r.URL.Path != "/.well-known/jwks.json" {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	set := jwk.NewSet()
	for _, k := range iss.published {
		set.AddKey(k) //nolint:errcheck // fails only on a duplicate
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(set) //nolint:errcheck // the client has gone
}

// Config is the verifier configuration that trusts this issuer.
func (iss *Issuer) Config() auth.Config {
	return auth.Config{Issuer: iss.URL, JWKSURL: iss.JWKSURL, Audience: Audience, Logger: zerolog.Nop()}
}

// Claims returns the claims of a valid token granting scopes, as Hydra issues it to ClientID.
func (iss *Issuer) Claims(t testing.TB, scopes ...string) jwt.Token {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewBuilder().
		Issuer(iss.URL).
		Subject(ClientID).
		Audience([]string{Audience}).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(time.Hour)).
		JwtID(rand.Text()).
		Claim("client_id", ClientID).
		Claim("scp", scopes).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Sign signs claims with key (RS256).
func Sign(t testing.TB, key jwk.Key, claims jwt.Token) string {
	t.Helper()
	signed, err := jwt.Sign(claims, jwt.WithKey(jwa.RS256(), key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// Token returns a valid token granting scopes.
func (iss *Issuer) Token(t testing.TB, scopes ...string) string {
	t.Helper()
	return Sign(t, iss.Key, iss.Claims(t, scopes...))
}

// WithToken sends every request that carries no Authorization header to next with
// "Authorization: Bearer token", so that tests written before writes needed a token keep their
// shape.
func WithToken(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		next.ServeHTTP(w, r)
	})
}
