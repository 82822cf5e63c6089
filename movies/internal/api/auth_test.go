package api_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/movies-microservices/movies/internal/api"
	"github.com/movies-microservices/movies/internal/auth"
	"github.com/movies-microservices/movies/internal/auth/authtest"
	"github.com/movies-microservices/movies/internal/movie"
	"github.com/movies-microservices/movies/internal/postgres/pgtest"
	"github.com/rs/zerolog"
)

// authServer is a server that trusts iss and adds no token of its own.
func authServer(t *testing.T, iss *authtest.Issuer, logger zerolog.Logger) (http.Handler, *auth.Verifier) {
	t.Helper()
	v := auth.NewVerifier(iss.Config())
	return api.NewServer(api.Deps{
		Logger: logger,
		Store:  movie.NewStore(pgtest.Pool(t)),
		Casts:  newFakeCasts(),
		Auth:   v,
		Ready:  func(context.Context, bool) error { return nil },
	}), v
}

// refusal is what a refused write is answered.
type refusal struct {
	Status          int
	WWWAuthenticate string
	Problem         problemJSON
}

func refusalOf(t *testing.T, resp *http.Response) refusal {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	return refusal{Status: resp.StatusCode, WWWAuthenticate: resp.Header.Get("WWW-Authenticate"), Problem: decode[problemJSON](t, resp)}
}

func invalidToken(path, description string) refusal {
	return refusal{
		Status:          http.StatusUnauthorized,
		WWWAuthenticate: `Bearer realm="movies", error="invalid_token", error_description="` + description + `"`,
		Problem:         problemJSON{Type: "about:blank", Title: "Unauthorized", Status: 401, Detail: description, Instance: path},
	}
}

// tamper changes the token's client_id in its payload, keeping its signature.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	payload = bytes.Replace(payload, []byte(authtest.ClientID), []byte(authtest.ClientID[:len(authtest.ClientID)-1]+"X"), 1)
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// hmacWithPublicKey signs claims with HS256, the issuer's public key (PEM) as the secret, and
// its kid: the classic confusion attack on verifiers that let the token choose the algorithm.
func hmacWithPublicKey(t *testing.T, iss *authtest.Issuer, claims jwt.Token) string {
	t.Helper()
	public, err := iss.Key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	var raw any
	if err := jwk.Export(public, &raw); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	headers := jws.NewHeaders()
	headers.Set(jws.KeyIDKey, "key-1") //nolint:errcheck // a valid header
	signed, err := jwt.Sign(claims, jwt.WithKey(jwa.HS256(), secret, jws.WithProtectedHeaders(headers)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// Every write needs a valid token with movies:write; each way of failing that gets its own answer,
// and none reaches the store: no movie is written, no idempotency key taken.
func TestWritesNeedAToken(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	pool := pgtest.Pool(t)
	h := api.NewServer(api.Deps{
		Logger: zerolog.Nop(),
		Store:  movie.NewStore(pool),
		Casts:  newFakeCasts(),
		Auth:   auth.NewVerifier(iss.Config()),
		Ready:  func(context.Context, bool) error { return nil },
	})
	claims := func(edit func(jwt.Token)) jwt.Token {
		c := iss.Claims(t, "movies:write")
		edit(c)
		return c
	}
	set := func(name string, v any) func(jwt.Token) {
		return func(c jwt.Token) {
			if err := c.Set(name, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	none, err := jwt.Sign(iss.Claims(t, "movies:write"), jwt.WithInsecureNoSignature())
	if err != nil {
		t.Fatal(err)
	}
	const path = "/api/v1/movies"
	missing := refusal{
		Status:          http.StatusUnauthorized,
		WWWAuthenticate: `Bearer realm="movies"`,
		Problem:         problemJSON{Type: "about:blank", Title: "Unauthorized", Status: 401, Detail: "this request needs a bearer access token with scope movies:write", Instance: path},
	}

	tests := []struct {
		name          string
		authorization string // "" sends no header
		want          refusal
	}{
		{"no header", "", missing},
		{"Bearer and nothing", "Bearer", invalidToken(path, "the Bearer token is empty")},
		{"Bearer and spaces", "Bearer   ", invalidToken(path, "the Bearer token is empty")},
		{"another scheme", "Basic dXNlcjpwYXNz", invalidToken(path, "the Authorization header is not a Bearer token")},
		{"garbage", "Bearer not.a.jwt", invalidToken(path, "the access token is malformed or its signature does not verify")},
		{"16 KiB token", "Bearer " + strings.Repeat("a", 16<<10), invalidToken(path, "the access token is too long")},
		{"expired", "Bearer " + authtest.Sign(t, iss.Key, claims(set(jwt.ExpirationKey, time.Now().Add(-auth.Leeway-time.Minute)))), invalidToken(path, "the access token has expired")},
		{"not yet valid", "Bearer " + authtest.Sign(t, iss.Key, claims(set(jwt.NotBeforeKey, time.Now().Add(auth.Leeway+time.Minute)))), invalidToken(path, "the access token is not valid yet")},
		{"no expiry", "Bearer " + authtest.Sign(t, iss.Key, claims(func(c jwt.Token) { c.Remove(jwt.ExpirationKey) })), invalidToken(path, "the access token has no expiry")}, //nolint:errcheck // a known claim
		{"wrong issuer", "Bearer " + authtest.Sign(t, iss.Key, claims(set(jwt.IssuerKey, "http://127.0.0.1:1/"))), invalidToken(path, "the access token is from another issuer")},
		{"issuer without its trailing slash", "Bearer " + authtest.Sign(t, iss.Key, claims(set(jwt.IssuerKey, strings.TrimSuffix(iss.URL, "/")))), invalidToken(path, "the access token is from another issuer")},
		{"wrong audience", "Bearer " + authtest.Sign(t, iss.Key, claims(set(jwt.AudienceKey, []string{"another-api"}))), invalidToken(path, "the access token is not meant for this service")},
		{"alg none", "Bearer " + string(none), invalidToken(path, "the access token's signing algorithm is not accepted")},
		{"HS256 with the public key", "Bearer " + hmacWithPublicKey(t, iss, iss.Claims(t, "movies:write")), invalidToken(path, "the access token's signing algorithm is not accepted")},
		{"payload changed", "Bearer " + tamper(t, iss.Token(t, "movies:write")), invalidToken(path, "the access token is malformed or its signature does not verify")},
		{"unknown kid", "Bearer " + authtest.Sign(t, authtest.NewKey(t, "key-unpublished"), iss.Claims(t, "movies:write")), invalidToken(path, "the access token is signed by an unknown key")},
		{"without the scope", "Bearer " + iss.Token(t, "casts:write", "movies:events"), refusal{
			Status:          http.StatusForbidden,
			WWWAuthenticate: `Bearer realm="movies", error="insufficient_scope", scope="movies:write"`,
			Problem:         problemJSON{Type: "about:blank", Title: "Forbidden", Status: 403, Detail: "the access token does not grant scope movies:write", Instance: path},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			header := map[string]string{"Idempotency-Key": "auth-" + tt.name}
			if tt.authorization != "" {
				header["Authorization"] = tt.authorization
			}
			resp := do(t, h, request{method: "POST", path: path, body: `{"name":"Nobody"}`, header: header})
			if diff := cmp.Diff(tt.want, refusalOf(t, resp)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if len(tt.authorization) > 20 && strings.Contains(resp.Header.Get("WWW-Authenticate")+tt.want.Problem.Detail, strings.TrimPrefix(tt.authorization, "Bearer ")) {
				t.Error("the answer quotes the token")
			}
		})
	}
	t.Cleanup(func() {
		for table, want := range map[string]int{"movies": 0, "idempotency_keys": 0} {
			if got := count(t, pool, "SELECT count(*) FROM "+table); got != want {
				t.Errorf("%s has %d rows after refused writes, want %d", table, got, want)
			}
		}
	})
}

// Each write route needs the scope, and reads need no token.
func TestRoutesNeedingAToken(t *testing.T) {
	t.Parallel()
	h, _ := authServer(t, authtest.New(t), zerolog.Nop())
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/api/v1/movies", 401},
		{"POST", "/api/v1/movies/", 401},
		{"PUT", "/api/v1/movies/1", 401},
		{"PATCH", "/api/v1/movies/1/", 401},
		{"DELETE", "/api/v1/movies/1", 401},
		{"GET", "/api/v1/movies", 200},
		{"HEAD", "/api/v1/movies", 200},
		{"GET", "/api/v1/movies/1", 404},
		{"GET", "/api/v1/movies/openapi.json", 200},
		{"GET", "/api/v1/movies/docs/", 200},
		{"GET", "/livez", 200},
		{"GET", "/readyz", 200},
		{"GET", "/problems/404", 404},
		{"POST", "/internal/v1/movies/events", 401},
		{"POST", "/internal/v1/movies/events/", 401},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			if resp := do(t, h, request{method: tt.method, path: tt.path, body: `{"name":"x"}`}); resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// The cast service's events need movies:events, which movies:write does not grant, and the
// reverse.
func TestEventsNeedTheirOwnScope(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	h, _ := authServer(t, iss, zerolog.Nop())
	event := `{"id":"6f1c3a52-8d0e-4b8a-9a57-0d6f3e2b7c11","type":"cast.deleted","occurred_at":"2024-05-01T10:00:00Z","cast_id":1}`
	for _, tt := range []struct {
		name, path, body, scope string
		want                    refusal
	}{
		{"an event with movies:write", "/internal/v1/movies/events", event, "movies:write", refusal{
			Status:          http.StatusForbidden,
			WWWAuthenticate: `Bearer realm="movies", error="insufficient_scope", scope="movies:events"`,
			Problem:         problemJSON{Type: "about:blank", Title: "Forbidden", Status: 403, Detail: "the access token does not grant scope movies:events", Instance: "/internal/v1/movies/events"},
		}},
		{"a movie with movies:events", "/api/v1/movies", `{"name":"Nobody"}`, "movies:events", refusal{
			Status:          http.StatusForbidden,
			WWWAuthenticate: `Bearer realm="movies", error="insufficient_scope", scope="movies:write"`,
			Problem:         problemJSON{Type: "about:blank", Title: "Forbidden", Status: 403, Detail: "the access token does not grant scope movies:write", Instance: "/api/v1/movies"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := do(t, h, request{method: "POST", path: tt.path, body: tt.body, header: map[string]string{"Authorization": "Bearer " + iss.Token(t, tt.scope)}})
			if diff := cmp.Diff(tt.want, refusalOf(t, resp)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
	if resp := do(t, h, request{method: "POST", path: "/internal/v1/movies/events", body: event, header: map[string]string{"Authorization": "Bearer " + iss.Token(t, "movies:events")}}); resp.StatusCode != http.StatusOK {
		t.Errorf("an event with movies:events: status %d, want 200", resp.StatusCode)
	}
}

// Tokens that differ from Hydra's in ways the standards allow are taken; the request's log line
// names the client.
func TestAcceptedTokens(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	var logs bytes.Buffer
	h, _ := authServer(t, iss, zerolog.New(&logs))
	scopeString := iss.Claims(t)
	scopeString.Remove("scp")                       //nolint:errcheck // a known claim
	scopeString.Set("scope", "openid movies:write") //nolint:errcheck // a valid claim
	noClientID := iss.Claims(t, "movies:write")
	noClientID.Remove("client_id")                   //nolint:errcheck // a known claim
	noClientID.Set(jwt.SubjectKey, "subject-client") //nolint:errcheck // a valid claim
	expiredWithinLeeway := iss.Claims(t, "movies:write")
	expiredWithinLeeway.Set(jwt.ExpirationKey, time.Now().Add(-auth.Leeway/2)) //nolint:errcheck // a valid claim

	for _, tt := range []struct {
		name   string
		claims jwt.Token
		client string
	}{
		{"scopes in a scope string", scopeString, authtest.ClientID},
		{"no client_id: the subject", noClientID, "subject-client"},
		{"expired within the leeway", expiredWithinLeeway, authtest.ClientID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			token := authtest.Sign(t, iss.Key, tt.claims)
			resp := do(t, h, request{method: "POST", path: "/api/v1/movies", body: `{"name":"Somebody"}`, header: map[string]string{
				"Authorization": "Bearer " + token, "X-Request-Id": "accepted-" + tt.client,
			}})
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status %d, want 201", resp.StatusCode)
			}
			var line map[string]any
			for l := range strings.Lines(logs.String()) {
				if json.Unmarshal([]byte(l), &line) == nil && line["request_id"] == "accepted-"+tt.client {
					break
				}
			}
			if line["client_id"] != tt.client {
				t.Errorf("access log line %v: client_id %v, want %q", line, line["client_id"], tt.client)
			}
			if strings.Contains(logs.String(), token) {
				t.Error("the log contains the token")
			}
		})
	}
}

// The key set is fetched again when a token names a key it lacks, at most once per
// auth.MinRefreshInterval, and the keys fetched before keep working while the provider is down.
func TestKeyRotationAndOutage(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	h, v := authServer(t, iss, zerolog.Nop())
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	post := func(token string) int {
		return do(t, h, request{method: "POST", path: "/api/v1/movies", body: `{"name":"Rotated"}`, header: map[string]string{"Authorization": "Bearer " + token}}).StatusCode
	}
	rotated := authtest.NewKey(t, "key-2")
	if got := post(authtest.Sign(t, rotated, iss.Claims(t, "movies:write"))); got != http.StatusUnauthorized {
		t.Errorf("unpublished key: status %d, want 401", got)
	}
	iss.Publish(t, rotated)
	fetches := iss.Fetches()
	if got := post(authtest.Sign(t, rotated, iss.Claims(t, "movies:write"))); got != http.StatusUnauthorized || iss.Fetches() != fetches {
		t.Errorf("published key, right after a fetch: status %d after %d fetches, want 401 after none", got, iss.Fetches()-fetches)
	}
	time.Sleep(auth.MinRefreshInterval)
	if got := post(authtest.Sign(t, rotated, iss.Claims(t, "movies:write"))); got != http.StatusCreated || iss.Fetches() != fetches+1 {
		t.Errorf("published key, later: status %d after %d fetches, want 201 after one", got, iss.Fetches()-fetches)
	}

	iss.SetDown(true)
	if got := post(iss.Token(t, "movies:write")); got != http.StatusCreated {
		t.Errorf("provider down, known key: status %d, want 201", got)
	}
	resp := do(t, h, request{method: "POST", path: "/api/v1/movies", body: `{"name":"x"}`, header: map[string]string{
		"Authorization": "Bearer " + authtest.Sign(t, authtest.NewKey(t, "key-3"), iss.Claims(t, "movies:write")),
	}})
	if diff := cmp.Diff(invalidToken("/api/v1/movies", "the access token is signed by an unknown key"), refusalOf(t, resp)); diff != "" {
		t.Errorf("provider down, unknown key (-want +got):\n%s", diff)
	}
}

// A service started while the provider is down refuses writes until it can fetch the keys.
func TestProviderDownAtStart(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	iss.SetDown(true)
	h, v := authServer(t, iss, zerolog.Nop())
	if err := v.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh with the provider down: no error")
	}
	time.Sleep(auth.MinRefreshInterval)
	resp := do(t, h, request{method: "POST", path: "/api/v1/movies", body: `{"name":"x"}`, header: map[string]string{"Authorization": "Bearer " + iss.Token(t, "movies:write")}})
	if diff := cmp.Diff(invalidToken("/api/v1/movies", "the keys that verify the access token are unavailable; retry later"), refusalOf(t, resp)); diff != "" {
		t.Errorf("provider down (-want +got):\n%s", diff)
	}
	iss.SetDown(false)
	time.Sleep(auth.MinRefreshInterval)
	if resp := do(t, h, request{method: "POST", path: "/api/v1/movies", body: `{"name":"x"}`, header: map[string]string{"Authorization": "Bearer " + iss.Token(t, "movies:write")}}); resp.StatusCode != http.StatusCreated {
		t.Errorf("provider back: status %d, want 201", resp.StatusCode)
	}
}

// The document says what each operation needs: every write its scope, under either scheme, and
// its 401 and 403; reads nothing.
func TestDocumentedSecurity(t *testing.T) {
	t.Parallel()
	h := api.NewServer(api.Deps{Logger: zerolog.Nop(), Ready: func(context.Context, bool) error { return nil }})
	type operation struct {
		Security  []map[string][]string      `json:"security"`
		Responses map[string]json.RawMessage `json:"responses"`
	}
	doc := decode[struct {
		Security []map[string][]string                 `json:"security"`
		Paths    map[string]map[string]json.RawMessage `json:"paths"`
	}](t, do(t, h, request{method: "GET", path: "/api/v1/movies/openapi.json"}))
	if doc.Security == nil || len(doc.Security) != 0 {
		t.Errorf("top-level security = %v, want [] (reads are public)", doc.Security)
	}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op operation
			if json.Unmarshal(raw, &op) != nil || method == "servers" || method == "parameters" {
				continue
			}
			scope := "movies:write"
			if strings.HasPrefix(path, "/internal/") {
				scope = "movies:events"
			}
			var want []map[string][]string
			if method != "get" && method != "head" {
				want = []map[string][]string{{"oauth2": {scope}}, {"bearer": {}}}
				for _, status := range []string{"401", "403"} {
					if op.Responses[status] == nil {
						t.Errorf("%s %s documents no %s", method, path, status)
					}
				}
			}
			if diff := cmp.Diff(want, op.Security); diff != "" {
				t.Errorf("%s %s: security (-want +got):\n%s", method, path, diff)
			}
		}
	}
}
