// Package parity checks that what is written twice says the same. The two ways of running the
// stack describe the same gateway: the Traefik routers and services declared as Docker labels in
// compose.yaml, and the file-provider configuration under traefik/dynamic used without Docker.
// It also validates compose.yaml against the Compose specification and checks its exposure and
// hardening rules. The plumbing files that both services carry (twins_test.go lists them) differ
// only in the services' names. And each service's OpenAPI document passes the linters its users
// run (Spectral and Redocly CLI, from e2e/node_modules, which make test installs).
//
// The package has tests only; it reads the repository's files relative to its
// own directory and needs neither Docker nor a running stack.
package parity
