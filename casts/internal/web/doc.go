// Package web is the HTTP plumbing of the service, apart from its routes and handlers (package
// api), as ardanlabs/service keeps foundation/web apart from its app: request ids, the access
// log and recovery, the requests' spans and durations, deadlines, RFC 9457 problem pages and the
// mapping of errors to them, strict JSON decoding and buffered encoding, conditional requests,
// idempotent creates, bearer-token scopes, and the probes.
package web
