// Package stackkit holds the mechanics that every driver of the stack under test (package
// target) and the e2e suite share, written once: waiting for a condition until a deadline
// (Poll), reading Traefik's API (ServerStatus, ServersUp, CheckDashboard), getting a token
// from the stack's OpenID provider and waiting until one comes (FetchToken, WaitToken),
// rotating the provider's signing key (RotateSigningKey), the query that lists the services'
// database sessions (SessionsQuery), and asking whether a container reaches a database
// (ReachPostgres).
package stackkit
