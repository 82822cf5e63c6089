package outbox_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/casts/internal/outbox"
	"github.com/movies-microservices/casts/internal/postgres/pgtest"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// tokenEndpoint stands in for the identity provider's token endpoint: it issues "token-1",
// "token-2", ... to the relay's client, and fails the requests that status says should fail.
type tokenEndpoint struct {
	status func(n int) int

	mu       sync.Mutex
	requests []tokenRequest
}

// tokenRequest is what the relay sent the token endpoint.
type tokenRequest struct {
	ClientID, Secret, GrantType, Scope, Audience string
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, secret, _ := r.BasicAuth()
	r.ParseForm() //nolint:errcheck // checked through the form's values
	e.mu.Lock()
	e.requests = append(e.requests, tokenRequest{id, secret, r.PostForm.Get("grant_type"), r.PostForm.Get("scope"), r.PostForm.Get("audience")})
	n := len(e.requests)
	e.mu.Unlock()
	if status := e.status(n); status != http.StatusOK {
		http.Error(w, `{"error":"temporarily_unavailable"}`, status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": "token-" + strconv.Itoa(n), "token_type": "bearer", "expires_in": 3600}) //nolint:errcheck // the client has gone
}

func (e *tokenEndpoint) taken() []tokenRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]tokenRequest(nil), e.requests...)
}

// The relay sends its events with a token of its own client: a token endpoint that fails is a
// failed delivery, retried, and a 401 from the receiver makes the relay get a new token.
func TestRelaySendsItsToken(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	for _, id := range []int64{21, 22} {
		enqueue(t, pool, id)
	}
	tokens := &tokenEndpoint{status: func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}}
	tokenSrv := httptest.NewServer(tokens)
	t.Cleanup(tokenSrv.Close)
	// The receiver refuses token-2 as if it had been revoked.
	rcv, srv := newReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusUnauthorized
		}
		return http.StatusOK
	})
	stop := startRelay(t, pool, outbox.RelayConfig{
		Endpoint:     srv.URL + "/internal/v1/movies/events",
		MinBackoff:   10 * time.Millisecond,
		MaxBackoff:   50 * time.Millisecond,
		PollInterval: time.Hour,
		Credentials: &clientcredentials.Config{
			ClientID: "casts-relay", ClientSecret: "relay-secret", TokenURL: tokenSrv.URL + "/oauth2/token",
			Scopes: []string{"movies:events"}, EndpointParams: map[string][]string{"audience": {"movies-microservices"}},
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		Logger: zerolog.Nop(),
	})
	deliveries := rcv.waitAcked(t, 2, 10*time.Second)
	stop()

	var got []string
	for _, d := range deliveries {
		got = append(got, strconv.FormatInt(d.castID, 10)+" "+d.authorization)
	}
	want := []string{"21 Bearer token-2", "21 Bearer token-3", "22 Bearer token-3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("deliveries: cast id and Authorization (-want +got):\n%s", diff)
	}
	request := tokenRequest{ClientID: "casts-relay", Secret: "relay-secret", GrantType: "client_credentials", Scope: "movies:events", Audience: "movies-microservices"}
	if diff := cmp.Diff([]tokenRequest{request, request, request}, tokens.taken()); diff != "" {
		t.Errorf("token requests (-want +got):\n%s", diff)
	}
	if got := pending(t, pool); len(got) != 0 {
		t.Errorf("events still pending after they were acknowledged: %v", got)
	}
}
