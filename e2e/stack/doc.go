// Package stack starts the pieces of the system as local processes, without
// Docker: a PostgreSQL cluster made with initdb from the server binaries on the
// machine, the casts and movies services built into bin/, and Traefik built
// into bin/traefik with the file provider.
//
// It serves three callers: `make test` (a throwaway cluster for integration
// tests, see StartPostgres), `make run` (a persistent stack under .run/, see
// Start with Options.Dir) and the e2e suite, for which a Stack is the process
// driver of the stack under test (it implements target.Target, target.go).
//
// Fault tests drive a running Stack: StopReplica, KillReplica, StartReplica
// and RestartReplica act on one instance of a service (Options.Replicas,
// Options.ShutdownDelay), StopPostgres/StartPostgres and
// PausePostgres/ResumePostgres make the database refuse or hang, and WaitReady
// tells when everything serves again.
//
// Passwords are generated, stored with mode 0600 for persistent stacks, and
// never written to any log or progress output.
package stack
