// Package parity checks that the two ways of running the stack describe the same
// gateway: the Traefik routers and services declared as Docker labels in
// compose.yaml, and the file-provider configuration under traefik/dynamic used
// without Docker. It also validates compose.yaml against the Compose
// specification and checks its exposure and hardening rules.
//
// The package has tests only; it reads the repository's files relative to its
// own directory and needs neither Docker nor a running stack.
package parity
