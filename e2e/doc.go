// Package e2e drives the whole stack — Traefik, both services, their databases — as a black box
// through the gateway. It imports no service code: the wire structs in its tests are the contract.
//
// The tests are written once against the stack under test, a target.Target, which package
// drivers hands them: a throwaway stack of local processes from bin/ (make build, make traefik)
// when `go test ./e2e` runs alone, or the stack a `go run ./e2e/cmd/stack <driver>` command
// started (make e2e-compose, make e2e-swarm), named by the variables it sets. Each test says in
// scope_test.go which stacks it must hold on and why; TestMain runs exactly those, and prints
// them. With only E2E_BASE_URL (and E2E_ADMIN_URL for Traefik's API) it drives a stack started
// elsewhere through its URLs; the tests that act on the stack are then skipped.
package e2e
