package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/movies/internal/castsclient"
	"github.com/rs/zerolog"
)

// stalledCasts is a cast service that answers nothing until the call is given up.
type stalledCasts struct{ asked chan struct{} }

func (s stalledCasts) Missing(ctx context.Context, _ []int64) ([]int64, error) {
	close(s.asked)
	<-ctx.Done()
	return nil, fmt.Errorf("casts: %w", ctx.Err())
}

func (s stalledCasts) Lookup(ctx context.Context, ids []int64) ([]castsclient.Cast, error) {
	_, err := s.Missing(ctx, ids)
	return nil, err
}

// A write whose client goes away during the cast check is the client's cancellation (499), not
// the cast service's failure: no 503 in the access log, and no error logged for the check.
func TestMovieCastCheckClientGone(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	casts := stalledCasts{asked: make(chan struct{})}
	h := newServer(t, casts, zerolog.New(&logs))
	var served sync.WaitGroup
	served.Add(1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer served.Done() // also when the request is aborted (a panic net/http recovers)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/v1/movies", strings.NewReader(`{"name":"Gone","cast_ids":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	go func() {
		<-casts.asked
		cancel()
	}()
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("the client got an answer: %s", resp.Status)
	}
	served.Wait()

	var got []string
	for _, line := range logs.lines(t) {
		if line["level"] != "debug" {
			got = append(got, fmt.Sprint(line["level"], " ", line["message"], " ", line["status"]))
		}
	}
	if diff := cmp.Diff([]string{"info request 499"}, got); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}
