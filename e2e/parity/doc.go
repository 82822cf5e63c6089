// Package parity checks that what is written twice says the same. The two ways of running the
// stack describe the same gateway: the Traefik routers and services declared as Docker labels in
// compose.yaml, and the file-provider configuration under traefik/dynamic used without Docker.
// It also validates compose.yaml against the Compose specification and checks its exposure and
// hardening rules. The movie service's copies of the plumbing files that both services carry
// (Twins, in twins.go) are what `make twins` (e2e/cmd/twins, with Twin) writes from the cast
// service's. And each service's OpenAPI document passes the linters its users run (Spectral and
// Redocly CLI, from e2e/node_modules, which make test installs).
//
// Apart from Twin and what it needs, which the generator shares, the package has tests only; it
// reads the repository's files relative to its own directory and needs neither Docker nor a
// running stack.
package parity
