package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/movies-microservices/casts/internal/idempotency"
)

const (
	// IdempotencyKeyHeader carries the key that makes a POST that creates safe to retry.
	IdempotencyKeyHeader = "Idempotency-Key"
	// IdempotentReplayedHeader marks a response that is the stored response of an earlier request
	// with the same Idempotency-Key.
	IdempotentReplayedHeader = "Idempotent-Replayed"
	// maxIdempotencyKey is the longest key accepted, in bytes.
	maxIdempotencyKey = 255
)

var errIdempotencyKey = &Error{
	Status: http.StatusBadRequest,
	Detail: "the Idempotency-Key header must be sent once, with 1 to 255 printable ASCII characters",
	Errors: []FieldError{{Field: IdempotencyKeyHeader, Message: "must be sent once, with 1 to 255 printable ASCII characters"}},
}

// ErrIdempotencyKeyReused answers a create whose key came with another request before.
var ErrIdempotencyKeyReused = &Error{
	Status: http.StatusUnprocessableEntity,
	Detail: "the Idempotency-Key was already used with another request (another path or body) in the last 24 hours; use a new key for a new request",
	Errors: []FieldError{{Field: IdempotencyKeyHeader, Message: "was already used with another request"}},
}

// IdempotencyKey returns the request's Idempotency-Key, or "" when it has none. It reaches the
// database, so it must be text PostgreSQL takes: printable ASCII, and bounded.
func IdempotencyKey(r *http.Request) (string, error) {
	values := r.Header.Values(IdempotencyKeyHeader)
	if len(values) == 0 {
		return "", nil
	}
	key := values[0]
	if len(values) > 1 || key == "" || len(key) > maxIdempotencyKey {
		return "", errIdempotencyKey
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return "", errIdempotencyKey
		}
	}
	return key, nil
}

// Fingerprint identifies what a request asks: its method, its path in the form without a trailing
// slash (both forms are the same request), and canonical, its decoded and normalised body in its
// wire form (JSON names), so that bodies differing only in spacing or key order are the same request.
func Fingerprint(r *http.Request, canonical any) ([]byte, error) {
	body, err := json.Marshal(canonical)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte(r.Method + "\n" + strings.TrimSuffix(r.URL.Path, "/") + "\n"))
	h.Write(body)
	return h.Sum(nil), nil
}

// JSONResponse is v as a complete JSON response, as WriteJSON would send it, with the headers in
// header; it is what an idempotent create stores and replays.
func JSONResponse(status int, header http.Header, v any) (idempotency.Response, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return idempotency.Response{}, err
	}
	header.Set("Content-Type", "application/json")
	return idempotency.Response{Status: status, Header: header, Body: buf.Bytes()}, nil
}

// WriteResponse sends resp, marked as a replay when it answers an earlier request.
func WriteResponse(w http.ResponseWriter, resp idempotency.Response, replayed bool) {
	for name, values := range resp.Header {
		w.Header()[name] = values
	}
	if replayed {
		w.Header().Set(IdempotentReplayedHeader, "true")
	}
	w.WriteHeader(resp.Status)
	w.Write(resp.Body) //nolint:errcheck // the client has gone; nothing left to tell it
}
