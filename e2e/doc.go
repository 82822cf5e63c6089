// Package e2e drives the whole stack — Traefik, both services, their databases — as a black box
// through the gateway. It imports no service code: the wire structs in its tests are the contract.
//
// `go test ./e2e` starts a throwaway stack of local processes from bin/ (make build, make traefik).
// With E2E_BASE_URL (and E2E_ADMIN_URL for Traefik's API) it drives a running stack instead, such
// as one started with `docker compose up`; tests that must stop a service are then skipped.
package e2e
