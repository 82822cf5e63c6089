// Package idempotency makes a create request safe to retry. The client sends a key with the
// request (the Idempotency-Key header); the request that first completes with the key stores its
// response in the same transaction as the row it creates, so the response exists exactly when the
// row does. A retry with the same key and the same request gets the stored response again and
// creates nothing; the same key with another request is refused. Keys expire after TTL.
package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
)

// TTL is how long a key is remembered: past it, a request with the key is a new request.
const TTL = 24 * time.Hour

// Key identifies a request: the key the client chose, and a fingerprint of what it asked.
type Key struct {
	// Value is the client's key, 1 to 255 bytes.
	Value string
	// Fingerprint is the SHA-256 of the request (method, path, canonical body).
	Fingerprint []byte
}

// Response is what a request answered, kept to be replayed.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// ErrKeyReused means that the key was used, less than TTL ago, with another request.
var ErrKeyReused = errors.New("idempotency: the key was used with another request")

// DB is what Find and Sweep need: a pool or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const (
	// A key older than TTL is taken over as if it were new. ON CONFLICT DO UPDATE locks the row it
	// conflicts with even when its WHERE is false, so Claim then reads the response under that lock.
	sqlClaim = `
INSERT INTO idempotency_keys (key, fingerprint) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, status = NULL, header = NULL, body = NULL, created_at = now()
    WHERE idempotency_keys.created_at <= now() - $3::interval`
	sqlStored = `
SELECT fingerprint, status, header, body FROM idempotency_keys
WHERE key = $1 AND created_at > now() - $2::interval`
	sqlSave  = `UPDATE idempotency_keys SET status = $2, header = $3, body = $4 WHERE key = $1`
	sqlSweep = `
DELETE FROM idempotency_keys WHERE key IN (
    SELECT key FROM idempotency_keys WHERE created_at <= now() - $1::interval
    ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`
)

// Claim reserves key, in tx, for the request it identifies: the caller then makes its write and
// calls Save in the same transaction, and if tx rolls back the key is free again. If a transaction
// that claimed the key is still open, Claim waits for it to end. If a request with the key
// completed less than TTL ago, Claim reserves nothing and returns that request's response with
// replay set, or ErrKeyReused if it was another request.
func Claim(ctx context.Context, tx pgx.Tx, key Key) (stored Response, replay bool, err error) {
	tag, err := tx.Exec(ctx, sqlClaim, key.Value, key.Fingerprint, TTL)
	if err != nil {
		return Response{}, false, fmt.Errorf("idempotency: claim key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return Response{}, false, nil
	}
	stored, found, err := Find(ctx, tx, key)
	if err != nil {
		return Response{}, false, err
	}
	if !found {
		// The row was locked by the insert above and is younger than TTL: it cannot be missing.
		return Response{}, false, errors.New("idempotency: a claimed key vanished")
	}
	return stored, true, nil
}

// Find returns the response stored for key less than TTL ago, if any, or ErrKeyReused if it was
// stored for another request. It does not wait for a request with the key still in progress: use
// it to skip work a retry does not need, and Claim to decide.
func Find(ctx context.Context, db DB, key Key) (stored Response, found bool, err error) {
	var (
		fingerprint []byte
		status      *int
		header      http.Header
		body        []byte
	)
	err = db.QueryRow(ctx, sqlStored, key.Value, TTL).Scan(&fingerprint, &status, &header, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return Response{}, false, nil
	}
	if err != nil {
		return Response{}, false, fmt.Errorf("idempotency: read stored response: %w", err)
	}
	if string(fingerprint) != string(key.Fingerprint) {
		return Response{}, false, ErrKeyReused
	}
	if status == nil {
		return Response{}, false, errors.New("idempotency: a key was committed without its response")
	}
	return Response{Status: *status, Header: header, Body: body}, true, nil
}

// Save records resp as the response of the request that claimed key, in the transaction that
// claimed it.
func Save(ctx context.Context, tx pgx.Tx, key Key, resp Response) error {
	header, err := json.Marshal(resp.Header)
	if err != nil {
		return fmt.Errorf("idempotency: encode the response header: %w", err)
	}
	if _, err := tx.Exec(ctx, sqlSave, key.Value, resp.Status, header, resp.Body); err != nil {
		return fmt.Errorf("idempotency: save the response: %w", err)
	}
	return nil
}

// sweepBatch is how many expired keys one statement of Sweep deletes at most, so that no
// statement holds many locks or runs long.
const sweepBatch = 1000

// Sweep deletes the expired keys and returns how many it deleted. Expired keys are already
// ignored; deleting them only keeps the table small. Keys locked by a request are left for later.
func Sweep(ctx context.Context, db DB) (int64, error) {
	var total int64
	for {
		tag, err := db.Exec(ctx, sqlSweep, TTL, sweepBatch)
		if err != nil {
			return total, fmt.Errorf("idempotency: delete expired keys: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < sweepBatch {
			return total, nil
		}
	}
}

// SweepEvery runs Sweep now and then every interval until ctx ends. A failed sweep (the database
// unavailable) is logged and waits for the next turn.
func SweepEvery(ctx context.Context, db DB, interval time.Duration, logger zerolog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		n, err := Sweep(ctx, db)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			logger.Warn().Err(err).Dur("retry_in", interval).Msg("idempotency: sweep failed")
		case n > 0:
			logger.Info().Int64("deleted", n).Msg("idempotency: expired keys deleted")
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
