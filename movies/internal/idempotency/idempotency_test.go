package idempotency_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/movies-microservices/movies/internal/idempotency"
	"github.com/movies-microservices/movies/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func key(value, request string) idempotency.Key {
	sum := sha256.Sum256([]byte(request))
	return idempotency.Key{Value: value, Fingerprint: sum[:]}
}

func TestClaimSaveFind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	k := key("k", "POST /things {}")
	resp := idempotency.Response{Status: 201, Header: http.Header{"Location": {"/things/1"}}, Body: []byte("{\"id\":1}\n")}

	claim := func(k idempotency.Key, save bool) (idempotency.Response, bool, error) {
		var (
			stored idempotency.Response
			replay bool
		)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			stored, replay, err = idempotency.Claim(ctx, tx, k)
			if err != nil || replay || !save {
				return err
			}
			return idempotency.Save(ctx, tx, k, resp)
		})
		return stored, replay, err
	}

	if _, found, err := idempotency.Find(ctx, pool, k); err != nil || found {
		t.Fatalf("Find before any claim: found %v, err %v", found, err)
	}
	if _, replay, err := claim(k, true); err != nil || replay {
		t.Fatalf("first Claim: replay %v, err %v", replay, err)
	}
	stored, replay, err := claim(k, true)
	if err != nil || !replay {
		t.Fatalf("second Claim: replay %v, err %v; want the stored response", replay, err)
	}
	if diff := cmp.Diff(resp, stored); diff != "" {
		t.Errorf("replayed response (-want +got):\n%s", diff)
	}
	found, ok, err := idempotency.Find(ctx, pool, k)
	if err != nil || !ok {
		t.Fatalf("Find: found %v, err %v", ok, err)
	}
	if diff := cmp.Diff(resp, found); diff != "" {
		t.Errorf("found response (-want +got):\n%s", diff)
	}

	other := key("k", "POST /things {\"x\":1}")
	if _, _, err := claim(other, true); !errors.Is(err, idempotency.ErrKeyReused) {
		t.Errorf("Claim with another request: err %v, want ErrKeyReused", err)
	}
	if _, _, err := idempotency.Find(ctx, pool, other); !errors.Is(err, idempotency.ErrKeyReused) {
		t.Errorf("Find with another request: err %v, want ErrKeyReused", err)
	}

	// A claim whose transaction rolls back leaves nothing.
	rolledBack := key("rolled-back", "POST /things {}")
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, _, err := idempotency.Claim(ctx, tx, rolledBack); err != nil {
			return err
		}
		return errors.New("the write failed")
	}); err == nil {
		t.Fatal("the transaction did not fail")
	}
	if _, found, err := idempotency.Find(ctx, pool, rolledBack); err != nil || found {
		t.Errorf("Find after a rolled back claim: found %v, err %v; want nothing", found, err)
	}
}

func TestSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	for _, k := range []struct {
		key, age string
	}{
		{"fresh", "0 seconds"},
		{"almost expired", "23 hours 59 minutes"},
		{"just expired", "24 hours"},
		{"long expired", "30 days"},
	} {
		_, err := pool.Exec(ctx, `INSERT INTO idempotency_keys (key, fingerprint, status, header, body, created_at)
			VALUES ($1, sha256(''), 201, '{}', '', now() - $2::interval)`, k.key, k.age)
		if err != nil {
			t.Fatal(err)
		}
	}
	// More than one batch of them.
	_, err := pool.Exec(ctx, `INSERT INTO idempotency_keys (key, fingerprint, status, header, body, created_at)
		SELECT 'old ' || i, sha256(''), 201, '{}', '', now() - interval '2 days' FROM generate_series(1, 1500) AS i`)
	if err != nil {
		t.Fatal(err)
	}

	n, err := idempotency.Sweep(ctx, pool)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if n != 1502 {
		t.Errorf("Sweep deleted %d keys, want 1502", n)
	}
	rows, _ := pool.Query(ctx, "SELECT key FROM idempotency_keys ORDER BY key")
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"almost expired", "fresh"}, left); diff != "" {
		t.Errorf("keys left (-want +got):\n%s", diff)
	}
}
