package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/casts/internal/outbox"
	"github.com/movies-microservices/casts/internal/postgres/pgtest"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

type payload struct {
	CastID int64 `json:"cast_id"`
}

// enqueue writes one event in a transaction of its own and commits it.
func enqueue(t *testing.T, pool *pgxpool.Pool, castID int64) {
	t.Helper()
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		return outbox.Enqueue(context.Background(), tx, "cast.deleted", payload{CastID: castID})
	})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
}

func pending(t *testing.T, pool *pgxpool.Pool) []int64 {
	t.Helper()
	rows, _ := pool.Query(context.Background(), "SELECT (payload->>'cast_id')::bigint FROM outbox ORDER BY id")
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// delivery is one request the receiver got.
type delivery struct {
	at          time.Time
	contentType string
	requestID   string
	// authorization is the Authorization header.
	authorization string
	// traceparent is the W3C trace context header.
	traceparent string
	body        map[string]any
	castID      int64
}

// receiver stands in for the movie service: it records every delivery and answers with status(n),
// n being the number of the delivery from 1.
type receiver struct {
	status func(n int) int
	// hold, if set, is called before answering.
	hold func(n int)

	mu         sync.Mutex
	deliveries []delivery
	acked      map[string]bool
	changed    chan struct{}
}

func newReceiver(t *testing.T, status func(n int) int) (*receiver, *httptest.Server) {
	t.Helper()
	rcv := &receiver{status: status, acked: map[string]bool{}, changed: make(chan struct{}, 1)}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	return rcv, srv
}

func (rcv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/internal/v1/movies/events" {
		http.NotFound(w, r)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	d := delivery{at: time.Now(), contentType: r.Header.Get("Content-Type"), requestID: r.Header.Get("X-Request-Id"), authorization: r.Header.Get("Authorization"), traceparent: r.Header.Get("Traceparent")}
	json.Unmarshal(raw, &d.body) //nolint:errcheck // checked through d.body
	var wire struct {
		CastID int64 `json:"cast_id"`
	}
	json.Unmarshal(raw, &wire) //nolint:errcheck // ditto
	d.castID = wire.CastID

	rcv.mu.Lock()
	rcv.deliveries = append(rcv.deliveries, d)
	n := len(rcv.deliveries)
	rcv.mu.Unlock()
	if rcv.hold != nil {
		rcv.hold(n)
	}
	status := rcv.status(n)
	if status/100 == 2 {
		rcv.mu.Lock()
		rcv.acked[d.requestID] = true
		rcv.mu.Unlock()
	}
	select {
	case rcv.changed <- struct{}{}:
	default:
	}
	w.WriteHeader(status)
	io.WriteString(w, `{"detail":"status `+strconv.Itoa(status)+`"}`) //nolint:errcheck
}

func (rcv *receiver) snapshot() (deliveries []delivery, acked int) {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]delivery(nil), rcv.deliveries...), len(rcv.acked)
}

// waitAcked waits until n distinct events were acknowledged.
func (rcv *receiver) waitAcked(t *testing.T, n int, timeout time.Duration) []delivery {
	t.Helper()
	deadline := time.After(timeout)
	for {
		deliveries, acked := rcv.snapshot()
		if acked >= n {
			return deliveries
		}
		select {
		case <-rcv.changed:
		case <-deadline:
			t.Fatalf("%d of %d events acknowledged within %s; deliveries: %+v", acked, n, timeout, deliveries)
		}
	}
}

// startRelay runs a relay until the test ends; stop ends it early and waits for it.
func startRelay(t *testing.T, pool *pgxpool.Pool, cfg outbox.RelayConfig) (stop func()) {
	t.Helper()
	relay, err := outbox.NewRelay(pool, cfg)
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		relay.Run(ctx)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// The receiver fails the first deliveries: the relay retries the first event, waiting longer each
// time up to the cap, and delivers no later event before the first is acknowledged.
func TestRelayRetriesWithBackoffInOrder(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	for _, id := range []int64{11, 12, 13} {
		enqueue(t, pool, id)
	}
	const failures = 4
	rcv, srv := newReceiver(t, func(n int) int {
		if n <= failures {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	const minBackoff, maxBackoff = 40 * time.Millisecond, 120 * time.Millisecond
	stop := startRelay(t, pool, outbox.RelayConfig{
		Endpoint:     srv.URL + "/internal/v1/movies/events",
		MinBackoff:   minBackoff,
		MaxBackoff:   maxBackoff,
		PollInterval: time.Hour,
		Logger:       zerolog.Nop(),
	})
	deliveries := rcv.waitAcked(t, 3, 10*time.Second)
	stop()

	var order []int64
	for _, d := range deliveries {
		order = append(order, d.castID)
	}
	if diff := cmp.Diff([]int64{11, 11, 11, 11, 11, 12, 13}, order); diff != "" {
		t.Errorf("cast ids in delivery order (-want +got):\n%s", diff)
	}
	// The waits after failures 1..4: 40ms, 80ms, then capped at 120ms.
	for i, want := range []time.Duration{minBackoff, 2 * minBackoff, maxBackoff, maxBackoff} {
		if gap := deliveries[i+1].at.Sub(deliveries[i].at); gap < want-5*time.Millisecond || gap > want+time.Second {
			t.Errorf("wait after failure %d = %s, want about %s", i+1, gap, want)
		}
	}

	first := deliveries[0]
	if first.contentType != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", first.contentType)
	}
	id, _ := first.body["id"].(string)
	if !uuidPattern.MatchString(id) || first.requestID != id {
		t.Errorf("event id %q, X-Request-Id %q: want a UUID, sent as the request id too", id, first.requestID)
	}
	occurred, _ := first.body["occurred_at"].(string)
	if _, err := time.Parse(time.RFC3339Nano, occurred); err != nil {
		t.Errorf("occurred_at %q is not RFC 3339: %v", occurred, err)
	}
	want := map[string]any{"id": id, "type": "cast.deleted", "occurred_at": occurred, "cast_id": float64(11)}
	if diff := cmp.Diff(want, first.body); diff != "" {
		t.Errorf("event body (-want +got):\n%s", diff)
	}
	for _, d := range deliveries[1 : failures+1] {
		if d.body["id"] != id {
			t.Errorf("a retry carried event id %v, want the same id %s", d.body["id"], id)
		}
	}
	if got := pending(t, pool); len(got) != 0 {
		t.Errorf("events still pending after they were acknowledged: %v", got)
	}
}

// An idle relay is woken by the commit of a new event, long before its poll would find it.
func TestRelayWakesOnCommit(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	rcv, srv := newReceiver(t, func(int) int { return http.StatusAccepted })
	startRelay(t, pool, outbox.RelayConfig{Endpoint: srv.URL + "/internal/v1/movies/events", PollInterval: time.Hour, Logger: zerolog.Nop()})

	// Let the relay find the outbox empty and go idle first.
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	enqueue(t, pool, 21)
	rcv.waitAcked(t, 1, 5*time.Second)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("delivered %s after the commit, want it prompt", took)
	}
}

// Several relays on one database take turns: every event is delivered once, in order.
func TestRelayReplicasKeepOrder(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	rcv, srv := newReceiver(t, func(int) int { return http.StatusOK })
	rcv.hold = func(int) { time.Sleep(2 * time.Millisecond) }
	cfg := outbox.RelayConfig{Endpoint: srv.URL + "/internal/v1/movies/events", PollInterval: 50 * time.Millisecond, Logger: zerolog.Nop()}
	for range 3 {
		startRelay(t, pool, cfg)
	}

	var want []int64
	for i := range int64(40) {
		enqueue(t, pool, 100+i)
		want = append(want, 100+i)
		if i%10 == 9 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	deliveries := rcv.waitAcked(t, len(want), 20*time.Second)
	var got []int64
	for _, d := range deliveries {
		got = append(got, d.castID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cast ids in delivery order (-want +got):\n%s", diff)
	}
}

// Stopping the relay while it waits for an answer lets that delivery finish and records it, so the
// event is not delivered again.
func TestRelayFinishesDeliveryOnStop(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	rcv, srv := newReceiver(t, func(int) int { return http.StatusOK })
	rcv.hold = func(n int) {
		if n == 1 {
			close(arrived)
			<-release
		}
	}
	enqueue(t, pool, 31)
	stop := startRelay(t, pool, outbox.RelayConfig{Endpoint: srv.URL + "/internal/v1/movies/events", Logger: zerolog.Nop()})
	<-arrived
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("the relay stopped before the delivery in progress was answered")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-stopped
	if got := pending(t, pool); len(got) != 0 {
		t.Errorf("the acknowledged event is still pending: %v", got)
	}
}

// A receiver slower than the timeout has not acknowledged: the event stays and is retried.
func TestRelayTimeoutIsAFailure(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	rcv, srv := newReceiver(t, func(int) int { return http.StatusOK })
	rcv.hold = func(n int) {
		if n == 1 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	enqueue(t, pool, 41)
	startRelay(t, pool, outbox.RelayConfig{
		Endpoint: srv.URL + "/internal/v1/movies/events", Timeout: 100 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, Logger: zerolog.Nop(),
	})
	deliveries := rcv.waitAcked(t, 1, 10*time.Second)
	// The first answer came too late; the retry was acknowledged in time.
	if len(deliveries) < 2 {
		t.Fatalf("%d deliveries, want the timed-out one and a retry", len(deliveries))
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(pending(t, pool)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event is still pending after its retry was acknowledged")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An event is in the outbox only if its transaction commits.
func TestEnqueueIsTransactional(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	errRollback := errors.New("roll back")
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		if err := outbox.Enqueue(context.Background(), tx, "cast.deleted", payload{CastID: 1}); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("BeginFunc: %v", err)
	}
	enqueue(t, pool, 2)
	if diff := cmp.Diff([]int64{2}, pending(t, pool)); diff != "" {
		t.Errorf("pending events (-want +got):\n%s", diff)
	}
	err = pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		return outbox.Enqueue(context.Background(), tx, "cast.deleted", []int{1})
	})
	if err == nil {
		t.Error("Enqueue accepted a payload that is not a JSON object")
	}
}

func TestEventMarshalJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 5, 1, 12, 0, 0, 500, time.FixedZone("CEST", 2*3600))
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{
			name:    "fields side by side",
			payload: `{"cast_id": 42}`,
			want:    `{"cast_id":42,"id":"e1","occurred_at":"2024-05-01T10:00:00.0000005Z","type":"cast.deleted"}`,
		},
		{
			name:    "ids beyond 2^53 stay exact",
			payload: `{"cast_id": 9007199254740993}`,
			want:    `{"cast_id":9007199254740993,"id":"e1","occurred_at":"2024-05-01T10:00:00.0000005Z","type":"cast.deleted"}`,
		},
		{
			name:    "the envelope wins over payload fields of the same name",
			payload: `{"id": "other", "type": "other"}`,
			want:    `{"id":"e1","occurred_at":"2024-05-01T10:00:00.0000005Z","type":"cast.deleted"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := json.Marshal(outbox.Event{ID: "e1", Type: "cast.deleted", Payload: json.RawMessage(tt.payload), OccurredAt: at})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// lockedLog collects log lines written by the relay's goroutines.
type lockedLog struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *lockedLog) Write(p []byte) (int, error) {
	var line map[string]any
	if err := json.Unmarshal(p, &line); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	return len(p), nil
}

// retries returns the retry_in of each "delivery failed" line so far, in milliseconds.
func (l *lockedLog) retries() []float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var waits []float64
	for _, line := range l.lines {
		if line["message"] == "outbox: delivery failed; will retry" {
			waits = append(waits, line["retry_in"].(float64))
		}
	}
	return waits
}

// While the database is unreachable the relay does not spin: it backs off as it does for a
// failing receiver, doubling its wait up to the cap.
func TestRelayBacksOffWhileDatabaseDown(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: every connection attempt is refused at once.
	pool, err := pgxpool.New(context.Background(), "postgres://casts@127.0.0.1:1/casts?connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	_, srv := newReceiver(t, func(int) int { return http.StatusOK })
	var log lockedLog
	stop := startRelay(t, pool, outbox.RelayConfig{
		Endpoint:     srv.URL + "/internal/v1/movies/events",
		MinBackoff:   10 * time.Millisecond,
		MaxBackoff:   40 * time.Millisecond,
		PollInterval: time.Hour,
		Logger:       zerolog.New(&log),
	})
	for i := 0; len(log.retries()) < 5; i++ {
		if i == 1000 {
			t.Fatalf("the relay logged %d failed attempts, want 5", len(log.retries()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if diff := cmp.Diff([]float64{10, 20, 40, 40, 40}, log.retries()[:5]); diff != "" {
		t.Errorf("waits after each failure, in ms (-want +got):\n%s", diff)
	}
}
