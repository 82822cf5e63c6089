// Package e2e drives the whole stack — Traefik, both services, their databases — as a black box
// through the gateway. It imports no service code: the wire structs in its tests are the contract.
//
// `go test ./e2e` starts a throwaway stack of local processes from bin/ (make build, make traefik).
// With E2E_COMPOSE_PROJECT (set by `go run ./e2e/cmd/stack compose`, which make e2e-compose runs)
// it drives a Compose project instead, acting on it through the Docker engine. The fault tests
// are written once, against one interface for the stack under test (target), and run on both.
// With only E2E_BASE_URL (and E2E_ADMIN_URL for Traefik's API) it drives a stack started
// elsewhere through its URLs; the tests that act on the stack are then skipped.
package e2e
