package e2e

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
	"github.com/movies-microservices/e2e/target"
)

// The hostile tokens below are made here, from the stdlib alone: the point is that the services
// refuse them, so the tests must not share the services' JWT code.

// jwtPart is one base64url part of a JWT.
func jwtPart(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// forgeRS256 signs claims with a key of the test's own, which the provider never published.
func forgeRS256(t testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signing := jwtPart(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}) + "." + jwtPart(t, claims)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// tokenParts decodes the header and the claims of a real token.
func tokenParts(t testing.TB, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("the provider's access token has %d parts, want a JWT's 3", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("token part %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("token part %d: %v", i, err)
		}
	}
	return header, claims
}

// providerPublicKeyPEM is the PEM of an RSA key in the provider's JWKS, read through the gateway,
// for the classic attack: HS256 "signed" with the public key as the HMAC secret.
func providerPublicKeyPEM(t testing.TB) []byte {
	t.Helper()
	// Not through call: the provider's answers carry no X-Request-Id and no contract of ours.
	req, err := http.NewRequest(http.MethodGet, suite.gateway+"/.well-known/jwks.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := doRequest(req)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("GET /.well-known/jwks.json through the gateway: %d %v", r.Status, err)
	}
	var set struct {
		Keys []struct{ Kty, N, E string } `json:"keys"`
	}
	if err := json.Unmarshal(r.Body, &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			t.Fatalf("JWKS key: %v %v", err1, err2)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	t.Fatal("the provider's JWKS has no RSA key")
	return nil
}

// badToken is an Authorization header the services must refuse.
type badToken struct {
	name   string
	header string // "" sends none
	// forbidden: a valid token without the route's scope, 403 insufficient_scope; else 401.
	forbidden bool
}

// hostileTokens are the barrage's Authorization headers, from valid, a real token of the provider
// with both write scopes. The forged ones (expired, not yet valid, wrong issuer, wrong audience,
// unknown kid) are signed with a key of the test's own: the services refuse them for their
// signature before looking at a claim, so what they show is that no claim can be forged. The
// claim checks themselves are tested with a trusted key in each service's internal/api tests,
// and here with "no audience": a real token of the provider that names none.
func hostileTokens(t *testing.T, valid, noAudience string) []badToken {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	header, claims := tokenParts(t, valid)
	kid, _ := header["kid"].(string)
	now := time.Now().Unix()
	with := func(change map[string]any) map[string]any {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		for k, v := range change {
			c[k] = v
		}
		return c
	}
	parts := strings.Split(valid, ".")
	// One payload character changed: still base64url, no longer what was signed.
	payload := []byte(parts[1])
	i := len(payload) / 2
	if payload[i] == 'A' {
		payload[i] = 'B'
	} else {
		payload[i] = 'A'
	}
	tampered := parts[0] + "." + string(payload) + "." + parts[2]

	hs := jwtPart(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + jwtPart(t, claims)
	mac := hmac.New(sha256.New, providerPublicKeyPEM(t))
	mac.Write([]byte(hs))
	hs256 := hs + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	none := jwtPart(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." + jwtPart(t, claims) + "."

	return []badToken{
		{name: "no header"},
		{name: "Bearer with nothing", header: "Bearer"},
		{name: "Bearer and a space", header: "Bearer "},
		{name: "another scheme", header: "Basic " + base64.StdEncoding.EncodeToString([]byte(target.DemoClientID+":nope"))},
		{name: "the token without a scheme", header: valid},
		{name: "garbage", header: "Bearer not-a-token"},
		{name: "three garbage parts", header: "Bearer a.b.c"},
		{name: "16 KiB token", header: "Bearer " + strings.Repeat("A", 16<<10)},
		{name: "expired (forged)", header: bearer(forgeRS256(t, key, kid, with(map[string]any{"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200})))},
		{name: "not yet valid (forged)", header: bearer(forgeRS256(t, key, kid, with(map[string]any{"nbf": now + 3600, "iat": now + 3600, "exp": now + 7200})))},
		{name: "wrong issuer (forged)", header: bearer(forgeRS256(t, key, kid, with(map[string]any{"iss": "https://issuer.invalid/"})))},
		{name: "wrong audience (forged)", header: bearer(forgeRS256(t, key, kid, with(map[string]any{"aud": []string{"someone-else"}})))},
		{name: "a real token for no audience", header: bearer(noAudience)},
		{name: "alg none", header: bearer(none)},
		{name: "HS256 with the provider's public key", header: bearer(hs256)},
		{name: "one payload byte changed", header: bearer(tampered)},
		{name: "unknown kid", header: bearer(forgeRS256(t, key, "e2e-"+unique("kid")[4:], claims))},
	}
}

// checkRefused checks a refused write's answer: status, WWW-Authenticate and problem+json.
func checkRefused(t *testing.T, what string, bt badToken, r response) bool {
	t.Helper()
	want := http.StatusUnauthorized
	if bt.forbidden {
		want = http.StatusForbidden
	}
	var wrong []string
	if r.Status != want {
		wrong = append(wrong, fmt.Sprintf("status %d, want %d", r.Status, want))
	}
	challenge := r.Header.Get("WWW-Authenticate")
	switch {
	case !strings.HasPrefix(challenge, "Bearer realm="):
		wrong = append(wrong, fmt.Sprintf("WWW-Authenticate %q, want a Bearer challenge with a realm", challenge))
	case bt.forbidden && !strings.Contains(challenge, `error="insufficient_scope"`):
		wrong = append(wrong, fmt.Sprintf("WWW-Authenticate %q, want error=\"insufficient_scope\"", challenge))
	case bt.forbidden && !strings.Contains(challenge, `scope="`):
		wrong = append(wrong, fmt.Sprintf("WWW-Authenticate %q, want the scope needed", challenge))
	case bt.header == "" && strings.Contains(challenge, "error="):
		wrong = append(wrong, fmt.Sprintf("WWW-Authenticate %q: no error parameter when no credentials were sent (RFC 6750 3.1)", challenge))
	case !bt.forbidden && strings.HasPrefix(bt.header, "Bearer ") && strings.TrimSpace(bt.header) != "Bearer" &&
		!strings.Contains(challenge, `error="invalid_token"`):
		wrong = append(wrong, fmt.Sprintf("WWW-Authenticate %q, want error=\"invalid_token\"", challenge))
	}
	if r.Header.Get("Content-Type") != "application/problem+json" {
		wrong = append(wrong, fmt.Sprintf("Content-Type %q, want application/problem+json", r.Header.Get("Content-Type")))
	}
	if bt.header != "" && len(bt.header) > 12 && strings.Contains(string(r.Body), strings.TrimPrefix(bt.header, "Bearer ")) {
		wrong = append(wrong, "the body quotes the token")
	}
	if len(wrong) > 0 {
		t.Errorf("%s with %s: %s (body %.200s)", what, bt.name, strings.Join(wrong, "; "), r.Body)
		return false
	}
	return true
}

// TestWritesNeedToken: every write route, against a barrage of bad tokens, answers the documented
// 401 or 403 with its Bearer challenge, never a 5xx, and writes nothing, which is read back.
// Reads need no token.
func TestWritesNeedToken(t *testing.T) {
	t.Parallel()
	needTarget(t)
	valid := mustToken(t, target.DemoScopes)
	castsOnly := mustToken(t, scopeCasts)
	moviesOnly := mustToken(t, scopeMovies)
	tag := unique("Auth Barrage")
	c := createCast(t, tag+" cast")
	m := createMovie(t, movie{Name: tag + " movie", Plot: "p", Genres: []string{"drama"}, CastIDs: []int64{c.ID}})
	castBefore := call(t, "GET", "/api/v1/casts/"+itoa(c.ID), "", noToken...)
	movieBefore := call(t, "GET", "/api/v1/movies/"+itoa(m.ID), "", noToken...)

	routes := []struct {
		method, path, body string
		needs              string // the scope
	}{
		{"POST", "/api/v1/casts", jsonBody(t, map[string]any{"name": tag + " new cast"}), scopeCasts},
		{"PUT", "/api/v1/casts/" + itoa(c.ID), jsonBody(t, map[string]any{"name": tag + " replaced"}), scopeCasts},
		{"PATCH", "/api/v1/casts/" + itoa(c.ID), jsonBody(t, map[string]any{"name": tag + " patched"}), scopeCasts},
		{"DELETE", "/api/v1/casts/" + itoa(c.ID), "", scopeCasts},
		{"POST", "/api/v1/movies", jsonBody(t, map[string]any{"name": tag + " new movie", "plot": "p", "genres": []string{}, "cast_ids": []int64{}}), scopeMovies},
		{"PUT", "/api/v1/movies/" + itoa(m.ID), jsonBody(t, map[string]any{"name": tag + " replaced", "plot": "p", "genres": []string{}, "cast_ids": []int64{}}), scopeMovies},
		{"PATCH", "/api/v1/movies/" + itoa(m.ID), jsonBody(t, map[string]any{"name": tag + " patched"}), scopeMovies},
		{"DELETE", "/api/v1/movies/" + itoa(m.ID), "", scopeMovies},
	}
	tokens := hostileTokens(t, valid, tokenWithoutAudience(t))
	sent, refused := 0, 0
	for _, route := range routes {
		cases := tokens
		// A real token of the provider with the other service's scope only.
		if route.needs == scopeCasts {
			cases = append(slices.Clone(cases), badToken{name: "a token with movies:write only", header: bearer(moviesOnly), forbidden: true})
		} else {
			cases = append(slices.Clone(cases), badToken{name: "a token with casts:write only", header: bearer(castsOnly), forbidden: true})
		}
		for _, bt := range cases {
			headers := noToken
			if bt.header != "" {
				headers = []string{"Authorization", bt.header}
			}
			if route.method == "PATCH" {
				headers = append(slices.Clone(headers), "Content-Type", "application/merge-patch+json")
			}
			r := call(t, route.method, route.path, route.body, headers...)
			sent++
			if checkRefused(t, route.method+" "+route.path, bt, r) {
				refused++
			}
		}
	}
	t.Logf("%d bad-token writes sent, %d refused as documented", sent, refused)

	// Nothing was written: the cast and the movie are as they were, no new one exists.
	for _, before := range []struct {
		path string
		r    response
	}{{"/api/v1/casts/" + itoa(c.ID), castBefore}, {"/api/v1/movies/" + itoa(m.ID), movieBefore}} {
		after := call(t, "GET", before.path, "", noToken...)
		if after.Status != http.StatusOK || after.Header.Get("ETag") != before.r.Header.Get("ETag") || string(after.Body) != string(before.r.Body) {
			t.Errorf("%s after the barrage: %d ETag %s, want 200 ETag %s unchanged", before.path, after.Status, after.Header.Get("ETag"), before.r.Header.Get("ETag"))
		}
	}
	for _, list := range []string{"/api/v1/casts?name=", "/api/v1/movies?name="} {
		r := call(t, "GET", list+url.QueryEscape(tag+" new"), "", noToken...)
		mustStatus(t, "list", r, http.StatusOK)
		if strings.TrimSpace(string(r.Body)) != "[]" {
			t.Errorf("GET %s...: %s, want [] (a refused POST wrote)", list, r.Body)
		}
	}

	// A refused write leaves nothing under its idempotency key either: the same key with a
	// valid token then creates.
	key := "e2e-auth-" + unique("key")[5:]
	body := jsonBody(t, map[string]any{"name": tag + " idempotent"})
	mustStatus(t, "POST with a bad token and a key", call(t, "POST", "/api/v1/casts", body, "Authorization", "Bearer garbage", "Idempotency-Key", key), http.StatusUnauthorized)
	r := call(t, "POST", "/api/v1/casts", body, "Authorization", bearer(valid), "Idempotency-Key", key)
	mustStatus(t, "POST with a valid token and the same key", r, http.StatusCreated)
	if r.Header.Get("Idempotent-Replayed") == "true" {
		t.Error("the first accepted POST under the key was a replay: the refused one was stored")
	}
}

// TestEventsNeedRelayToken: the movie service's internal API takes events only with the relay's
// scope (movies:events): none, or the demo client's token, changes nothing.
func TestEventsNeedRelayToken(t *testing.T) {
	t.Parallel()
	needTarget(t)
	c := createCast(t, unique("Event Auth Cast"))
	m := createMovie(t, movie{Name: unique("Event Auth Movie"), Plot: "p", Genres: []string{}, CastIDs: []int64{c.ID}})
	for _, bt := range []badToken{
		{name: "no header"},
		{name: "garbage", header: "Bearer garbage"},
		{name: "the demo client's token", header: bearer(mustToken(t, target.DemoScopes)), forbidden: true},
	} {
		body := jsonBody(t, castDeletedEvent(t, c.ID))
		req, err := http.NewRequest("POST", meshURL(t)+eventsPath, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if bt.header != "" {
			req.Header.Set("Authorization", bt.header)
		}
		r, err := doRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		checkRefused(t, "POST "+eventsPath, bt, r)
	}
	got, _ := getMovie(t, m.ID)
	if !slices.Contains(got.CastIDs, c.ID) {
		t.Errorf("movie %d lost cast %d to a refused event: cast_ids %v", m.ID, c.ID, got.CastIDs)
	}
}

// TestProviderDown: with the provider stopped, a token obtained before keeps working for writes
// (the services verify it with the keys they fetched), a new token cannot be had, and reads never
// notice. Not parallel: other tests need new tokens.
func TestProviderDown(t *testing.T) {
	tg := needTarget(t)
	token := mustToken(t, target.DemoScopes)
	if err := tg.StopProvider(); err != nil {
		t.Fatal(err)
	}
	started := false
	t.Cleanup(func() {
		if !started {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := tg.StartProvider(ctx); err != nil {
				t.Errorf("start the provider again: %v", err)
			}
		}
	})

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := tg.Token(ctx, target.DemoScopes); err == nil {
		t.Error("a new token was issued with the provider stopped")
	} else {
		t.Logf("getting a new token fails, as it should: %v", err)
	}
	created := call(t, "POST", "/api/v1/casts", jsonBody(t, map[string]any{"name": unique("Provider Down")}), "Authorization", bearer(token))
	mustStatus(t, "POST cast with the earlier token", created, http.StatusCreated)
	c := decodeAs[cast](t, created)
	mustStatus(t, "PATCH with the earlier token", call(t, "PATCH", "/api/v1/casts/"+itoa(c.ID), `{"nationality":"Irish"}`,
		"Authorization", bearer(token), "Content-Type", "application/merge-patch+json"), http.StatusOK)
	mustStatus(t, "POST movie with the earlier token", call(t, "POST", "/api/v1/movies", jsonBody(t, map[string]any{
		"name": unique("Provider Down"), "plot": "p", "genres": []string{}, "cast_ids": []int64{c.ID}}), "Authorization", bearer(token)), http.StatusCreated)
	mustStatus(t, "read a cast", call(t, "GET", "/api/v1/casts/"+itoa(c.ID), ""), http.StatusOK)
	mustStatus(t, "list movies", call(t, "GET", "/api/v1/movies?limit=1", ""), http.StatusOK)

	ctx, cancel = context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := tg.StartProvider(ctx); err != nil {
		t.Fatal(err)
	}
	started = true
	mustStatus(t, "POST with a new token", call(t, "POST", "/api/v1/casts", jsonBody(t, map[string]any{"name": unique("Provider Back")}),
		"Authorization", bearer(mustToken(t, target.DemoScopes))), http.StatusCreated)
}

// TestSigningKeyRotation: a new signing key in the provider is picked up by both services
// without a restart (an unknown kid makes them fetch the JWKS again), and tokens signed with the
// earlier key stay valid while it is published. Not parallel: it changes the provider's keys.
func TestSigningKeyRotation(t *testing.T) {
	tg := needTarget(t)
	before := mustToken(t, target.DemoScopes)
	oldHeader, _ := tokenParts(t, before)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	kid, err := tg.RotateSigningKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := mustToken(t, target.DemoScopes)
	newHeader, _ := tokenParts(t, after)
	if newHeader["kid"] != kid || kid == oldHeader["kid"] {
		t.Fatalf("after the rotation the token's kid is %v (before %v), want the new key's %q", newHeader["kid"], oldHeader["kid"], kid)
	}
	// A service fetches the key set again on an unknown kid at most every 5 s; if it fetched it
	// just before (another test's forged kid), the new key's first tokens are refused until then.
	// So each service gets its first write with the new token again for a bounded while, and
	// the test ends only once both take it: later tests get tokens signed with the new key.
	var c response
	retryUnknownKey(t, "POST cast with the new key", func() response {
		c = call(t, "POST", "/api/v1/casts", jsonBody(t, map[string]any{"name": unique("Rotation")}), "Authorization", bearer(after))
		return c
	})
	castID := decodeAs[cast](t, c).ID
	retryUnknownKey(t, "POST movie with the new key", func() response {
		return call(t, "POST", "/api/v1/movies", jsonBody(t, map[string]any{
			"name": unique("Rotation"), "plot": "p", "genres": []string{}, "cast_ids": []int64{castID}}), "Authorization", bearer(after))
	})
	// The earlier key is still published: its tokens stay valid.
	c = call(t, "POST", "/api/v1/casts", jsonBody(t, map[string]any{"name": unique("Rotation")}), "Authorization", bearer(before))
	mustStatus(t, "POST cast with the earlier key", c, http.StatusCreated)
	mustStatus(t, "POST movie with the earlier key", call(t, "POST", "/api/v1/movies", jsonBody(t, map[string]any{
		"name": unique("Rotation"), "plot": "p", "genres": []string{}, "cast_ids": []int64{decodeAs[cast](t, c).ID}}),
		"Authorization", bearer(before)), http.StatusCreated)
}

// retryUnknownKey sends a write until it is no longer refused for an unknown signing key, for up
// to 15 s (three times the services' 5 s between key set fetches), and wants it to be 201.
func retryUnknownKey(t *testing.T, what string, send func() response) {
	t.Helper()
	var r response
	err := stackkit.Poll(t.Context(), 15*time.Second, 500*time.Millisecond, what+" accepted", func() error {
		r = send()
		switch {
		case r.Status == http.StatusCreated:
			return nil
		case r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), "unknown key"):
			return stackkit.Permanent(errors.New("refused for another reason than an unknown key"))
		}
		return errors.New("unknown key")
	})
	if err != nil {
		mustStatus(t, what, r, http.StatusCreated)
	}
}

// TestTokenClaims: the provider's tokens are JWTs for this API: the stack's issuer, the audience,
// the scopes asked for, and a lifetime of minutes.
func TestTokenClaims(t *testing.T) {
	t.Parallel()
	tg := needTarget(t)
	header, claims := tokenParts(t, mustToken(t, target.DemoScopes))
	if alg := header["alg"]; alg != "RS256" {
		t.Errorf("alg %v, want RS256", alg)
	}
	if iss := claims["iss"]; iss != tg.URLs().Issuer {
		t.Errorf("iss %v, want %q", iss, tg.URLs().Issuer)
	}
	aud, _ := claims["aud"].([]any)
	if !slices.Contains(aud, any(target.Audience)) {
		t.Errorf("aud %v, want %q in it", claims["aud"], target.Audience)
	}
	scp, _ := claims["scp"].([]any)
	if !slices.Contains(scp, any(scopeCasts)) || !slices.Contains(scp, any(scopeMovies)) {
		t.Errorf("scp %v, want %s and %s", claims["scp"], scopeCasts, scopeMovies)
	}
	// Hydra (fosite) sets exp when it handles the request, rounded to the nearest second, and iat
	// when it signs the token, in whole seconds: the two may differ from the TTL by one second.
	exp, _ := claims["exp"].(float64)
	iat, _ := claims["iat"].(float64)
	if life := time.Duration(exp-iat) * time.Second; (life - target.AccessTokenTTL).Abs() > time.Second {
		t.Errorf("lifetime %s, want %s give or take a second (TTL_ACCESS_TOKEN)", life, target.AccessTokenTTL)
	}
}

// tokenWithoutAudience gets a real token of the demo client from the suite's provider, asked for
// without an audience: the provider issues it with none, and the services must refuse it.
func tokenWithoutAudience(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	token, err := stackkit.FetchTokenFor(ctx, stackkit.TokenURL(suite.gateway), target.DemoClientID, demoClientSecret(t), target.DemoScopes, "")
	if err != nil {
		t.Fatalf("a token without an audience: %v", err)
	}
	if _, claims := tokenParts(t, token); claims["aud"] != nil && len(claims["aud"].([]any)) > 0 {
		t.Fatalf("the provider put aud %v in a token asked for without one", claims["aud"])
	}
	return token
}
