package auth_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/movies-microservices/casts/internal/auth"
	"github.com/movies-microservices/casts/internal/auth/authtest"
)

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// Authenticate remembers a verified token, but its time checks are repeated on every use: a
// token within the leeway is taken again, and refused once past exp plus the leeway.
func TestRememberedTokenExpires(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	v := auth.NewVerifier(iss.Config())
	claims := iss.Claims(t, "casts:write")
	// Expired 1 s short of the leeway: valid for one more second.
	exp := time.Now().Add(-auth.Leeway + time.Second)
	if err := claims.Set("exp", exp); err != nil {
		t.Fatal(err)
	}
	if err := claims.Set("nbf", exp.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	token := authtest.Sign(t, iss.Key, claims)
	for i := range 2 {
		c, err := v.Authenticate(context.Background(), bearer(token))
		if err != nil || !c.HasScope("casts:write") || c.ClientID != authtest.ClientID {
			t.Fatalf("use %d within the leeway: %+v, %v; want the token's claims", i+1, c, err)
		}
	}
	time.Sleep(time.Until(exp.Add(auth.Leeway)) + 100*time.Millisecond)
	_, err := v.Authenticate(context.Background(), bearer(token))
	var invalid *auth.InvalidTokenError
	if !errors.As(err, &invalid) || invalid.Description != "the access token has expired" {
		t.Errorf("past exp + leeway: %v, want it refused as expired", err)
	}
}

// A refused token is never remembered: the same bytes are refused every time, for the same reason.
func TestRefusedTokenNotRemembered(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	v := auth.NewVerifier(iss.Config())
	claims := iss.Claims(t, "casts:write")
	if err := claims.Set("aud", []string{"someone-else"}); err != nil {
		t.Fatal(err)
	}
	token := authtest.Sign(t, iss.Key, claims)
	for i := range 3 {
		_, err := v.Authenticate(context.Background(), bearer(token))
		var invalid *auth.InvalidTokenError
		if !errors.As(err, &invalid) {
			t.Fatalf("use %d of a token for another audience: %v, want it refused", i+1, err)
		}
	}
}
