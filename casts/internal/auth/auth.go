// Package auth verifies the OAuth 2.0 access tokens that writes to the cast service carry: JWTs
// signed by the identity provider, checked here against its published keys (JWKS), so that no
// request reaches a store on the word of the network it came through.
package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/rs/zerolog"
)

const (
	// Leeway is how far the clocks of the provider and this service may disagree: a token is
	// taken this long after its exp and this long before its nbf.
	Leeway = 30 * time.Second
	// MinRefreshInterval is the least time between two fetches of the key set. A token signed by
	// a key the set does not have makes the service fetch it again (the provider may have rotated
	// its keys), but a stream of such tokens must not turn into a stream of fetches.
	MinRefreshInterval = 5 * time.Second
	// MaxTokenBytes bounds the tokens the service reads: a longer one is refused unread. Hydra's
	// access tokens are about 1 KiB.
	MaxTokenBytes = 8 << 10
	// fetchTimeout bounds one fetch of the key set.
	fetchTimeout = 5 * time.Second
	// VerifiedCacheSize bounds the tokens remembered as verified (see Authenticate): about 100
	// bytes each. A client keeps its token for minutes, so a few thousand cover many clients.
	VerifiedCacheSize = 4096
)

// allowedAlgorithms are the signature algorithms accepted: asymmetric ones only. "none" would
// accept any token, and an HMAC one would let whoever has the public key sign tokens with it.
var allowedAlgorithms = []jwa.SignatureAlgorithm{
	jwa.RS256(), jwa.RS384(), jwa.RS512(),
	jwa.PS256(), jwa.PS384(), jwa.PS512(),
	jwa.ES256(), jwa.ES384(), jwa.ES512(),
	jwa.EdDSA(),
}

// ErrNoToken means the request carries no credentials at all.
var ErrNoToken = errors.New("auth: no access token")

// InvalidTokenError means the request's credentials are refused. Description says why in a few
// fixed words, fit for the client: never the token itself.
type InvalidTokenError struct {
	Description string
	err         error
}

func (e *InvalidTokenError) Error() string {
	if e.err != nil {
		return "auth: " + e.Description + ": " + e.err.Error()
	}
	return "auth: " + e.Description
}

func (e *InvalidTokenError) Unwrap() error { return e.err }

func invalid(description string, err error) error {
	return &InvalidTokenError{Description: description, err: err}
}

// Reasons for refusing a token that the key provider finds; Verify turns them into descriptions.
var (
	errAlgorithm       = errors.New("signing algorithm not accepted")
	errUnknownKey      = errors.New("signed by a key the key set does not have")
	errKeysUnavailable = errors.New("the key set could not be fetched")
)

// Claims is what a verified token says about its bearer.
type Claims struct {
	// ClientID is the OAuth 2.0 client the token was issued to (its client_id claim, else its sub).
	ClientID string
	// Scopes are the scopes the token grants.
	Scopes []string
	// all is set by Unverified: every scope is granted.
	all bool
}

// HasScope reports whether the token grants scope.
func (c Claims) HasScope(scope string) bool {
	return c.all || slices.Contains(c.Scopes, scope)
}

// Config configures a Verifier.
type Config struct {
	// Issuer is the iss every token must carry, exactly as the provider writes it.
	Issuer string
	// JWKSURL is where the provider publishes its signing keys.
	JWKSURL string
	// Audience must be one of the token's aud.
	Audience string
	Logger   zerolog.Logger
	// HTTPClient fetches the key set. Nil means a client with a timeout of a few seconds.
	HTTPClient *http.Client
}

// Verifier verifies bearer access tokens. It is safe for concurrent use.
type Verifier struct {
	cfg Config
	// keys is the last key set fetched; nil until a fetch succeeds.
	keys atomic.Pointer[jwk.Set]
	// fetching is held during a fetch, and guards lastFetch: the time of the last attempt.
	fetching  sync.Mutex
	lastFetch time.Time

	// verified remembers tokens that passed verification, by the SHA-256 of the token, until
	// they expire; never a refused one, so only the provider's tokens can fill it.
	verifiedMu sync.RWMutex
	verified   map[[sha256.Size]byte]verifiedToken
}

// verifiedToken is what Authenticate keeps of a verified token: its claims and the time during
// which it stays valid, the leeway included.
type verifiedToken struct {
	claims    Claims
	notBefore time.Time // nbf minus Leeway; zero when the token has no nbf
	expires   time.Time // exp plus Leeway
}

// NewVerifier returns a verifier for cfg. It fetches no keys: the first token does, or Refresh.
func NewVerifier(cfg Config) *Verifier {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: fetchTimeout}
	}
	return &Verifier{cfg: cfg, verified: make(map[[sha256.Size]byte]verifiedToken)}
}

// Refresh fetches the key set now. A failure keeps the keys fetched before.
func (v *Verifier) Refresh(ctx context.Context) error {
	v.fetching.Lock()
	defer v.fetching.Unlock()
	return v.fetchLocked(ctx)
}

func (v *Verifier) fetchLocked(ctx context.Context) error {
	v.lastFetch = time.Now()
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	set, err := jwk.Fetch(ctx, v.cfg.JWKSURL, jwk.WithHTTPClient(v.cfg.HTTPClient))
	if err != nil {
		return errors.Join(errKeysUnavailable, err)
	}
	v.keys.Store(&set)
	return nil
}

// cached returns the key named kid in the last key set fetched.
func (v *Verifier) cached(kid string) (jwk.Key, bool) {
	set := v.keys.Load()
	if set == nil {
		return nil, false
	}
	return (*set).LookupKeyID(kid)
}

// key returns the key named kid, fetching the key set again if it lacks it and the last fetch is
// at least MinRefreshInterval old. Keys already fetched keep working while the provider is down.
func (v *Verifier) key(ctx context.Context, kid string) (jwk.Key, error) {
	if key, ok := v.cached(kid); ok {
		return key, nil
	}
	v.fetching.Lock()
	defer v.fetching.Unlock()
	// Another request may have fetched the key set while this one waited.
	if key, ok := v.cached(kid); ok {
		return key, nil
	}
	if time.Since(v.lastFetch) < MinRefreshInterval {
		if v.keys.Load() == nil {
			return nil, errKeysUnavailable
		}
		return nil, errUnknownKey
	}
	if err := v.fetchLocked(ctx); err != nil {
		v.cfg.Logger.Warn().Err(err).Msg("auth: cannot fetch the key set; tokens signed by keys not fetched before are refused")
		return nil, errKeysUnavailable
	}
	if key, ok := v.cached(kid); ok {
		return key, nil
	}
	return nil, errUnknownKey
}

// FetchKeys gives jwx the key to verify a signature with: the one the signature's kid names, if
// the algorithm is allowed and the key is meant for it.
func (v *Verifier) FetchKeys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	headers := sig.ProtectedHeaders()
	alg, ok := headers.Algorithm()
	if !ok || !slices.Contains(allowedAlgorithms, alg) {
		return errAlgorithm
	}
	kid, _ := headers.KeyID()
	key, err := v.key(ctx, kid)
	if err != nil {
		return err
	}
	if keyAlg, ok := key.Algorithm(); ok && keyAlg.String() != alg.String() {
		return errAlgorithm
	}
	sink.Key(alg, key)
	return nil
}

// Authenticate verifies the bearer token in h's Authorization header (RFC 6750) and returns what
// it says. The error is ErrNoToken when there is no such header, an *InvalidTokenError when the
// credentials are refused.
//
// A client sends the same token with every write until it expires, and checking its signature
// is most of what a small write costs (an RSA signature of the provider's 4096-bit key: make
// bench). So a token that passed is remembered by its SHA-256 until its exp (plus Leeway): the
// same bytes verify the same way, and only the time checks are repeated. The one difference:
// once a token has been seen, a key the provider withdraws keeps its tokens valid until they
// expire, minutes at most, as a verified JWT is valid until it expires anyway.
func (v *Verifier) Authenticate(ctx context.Context, h http.Header) (Claims, error) {
	token, err := bearerToken(h)
	if err != nil {
		return Claims{}, err
	}
	sum := sha256.Sum256([]byte(token))
	now := time.Now()
	if claims, ok := v.remembered(sum, now); ok {
		return claims, nil
	}
	parsed, err := jwt.ParseString(token,
		jwt.WithKeyProvider(v),
		jwt.WithContext(ctx),
		jwt.WithValidate(true),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithRequiredClaim("exp"),
		jwt.WithAcceptableSkew(Leeway),
	)
	if err != nil {
		return Claims{}, invalid(describe(err), err)
	}
	claims := claimsOf(parsed)
	v.remember(sum, parsed, claims, now)
	return claims, nil
}

// remembered returns the claims of a token verified before that is still within its validity;
// an entry past it is dropped, and the token then gets verified again (and refused, with the
// reason).
func (v *Verifier) remembered(sum [sha256.Size]byte, now time.Time) (Claims, bool) {
	v.verifiedMu.RLock()
	e, ok := v.verified[sum]
	v.verifiedMu.RUnlock()
	if !ok {
		return Claims{}, false
	}
	if now.After(e.expires) || now.Before(e.notBefore) {
		v.verifiedMu.Lock()
		delete(v.verified, sum)
		v.verifiedMu.Unlock()
		return Claims{}, false
	}
	return e.claims, true
}

// remember keeps a verified token until its exp. When the cache is full it first drops the
// expired entries, then, if that freed nothing, every entry: the next requests verify again.
func (v *Verifier) remember(sum [sha256.Size]byte, t jwt.Token, claims Claims, now time.Time) {
	exp, ok := t.Expiration()
	if !ok {
		return
	}
	e := verifiedToken{claims: claims, expires: exp.Add(Leeway)}
	if nbf, ok := t.NotBefore(); ok {
		e.notBefore = nbf.Add(-Leeway)
	}
	v.verifiedMu.Lock()
	defer v.verifiedMu.Unlock()
	if len(v.verified) >= VerifiedCacheSize {
		for k, old := range v.verified {
			if now.After(old.expires) {
				delete(v.verified, k)
			}
		}
		if len(v.verified) >= VerifiedCacheSize {
			clear(v.verified)
		}
	}
	v.verified[sum] = e
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header.
func bearerToken(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", ErrNoToken
	case len(values) > 1:
		return "", invalid("more than one Authorization header", nil)
	case len(values[0]) > len("Bearer ")+MaxTokenBytes:
		return "", invalid("the access token is too long", nil)
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", invalid("the Authorization header is not a Bearer token", nil)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", invalid("the Bearer token is empty", nil)
	}
	return token, nil
}

// describe says in fixed words why jwx refused a token.
func describe(err error) string {
	switch {
	case errors.Is(err, errKeysUnavailable):
		return "the keys that verify the access token are unavailable; retry later"
	case errors.Is(err, errUnknownKey):
		return "the access token is signed by an unknown key"
	case errors.Is(err, errAlgorithm):
		return "the access token's signing algorithm is not accepted"
	case errors.Is(err, jwt.TokenExpiredError()):
		return "the access token has expired"
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return "the access token is not valid yet"
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return "the access token is issued in the future"
	case errors.Is(err, jwt.InvalidIssuerError()):
		return "the access token is from another issuer"
	case errors.Is(err, jwt.InvalidAudienceError()):
		return "the access token is not meant for this service"
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return "the access token has no expiry"
	default:
		return "the access token is malformed or its signature does not verify"
	}
}

// claimsOf reads the claims of a verified token. Hydra writes the scopes as an array, scp; other
// providers as one space-separated string, scope (RFC 9068).
func claimsOf(t jwt.Token) Claims {
	var c Claims
	if err := t.Get("client_id", &c.ClientID); err != nil || c.ClientID == "" {
		c.ClientID, _ = t.Subject()
	}
	var scp []any
	if err := t.Get("scp", &scp); err == nil {
		for _, s := range scp {
			if s, ok := s.(string); ok {
				c.Scopes = append(c.Scopes, s)
			}
		}
		return c
	}
	var scope string
	if err := t.Get("scope", &scope); err == nil {
		c.Scopes = strings.Fields(scope)
	}
	return c
}

// Unverified lets every request through as if its token granted every scope, and verifies
// nothing: for benchmarks only (CASTS_AUTH_VERIFY=off).
type Unverified struct{}

// Authenticate grants every scope.
func (Unverified) Authenticate(context.Context, http.Header) (Claims, error) {
	return Claims{all: true}, nil
}
