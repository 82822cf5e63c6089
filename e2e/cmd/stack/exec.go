package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/movies-microservices/e2e/stack"
)

// runExec runs a command against a throwaway PostgreSQL cluster, which it
// always removes: after the command ends, and on SIGINT or SIGTERM, which it
// passes on to the command first.
func runExec(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pgLog := fs.String("pglog", "", "write the PostgreSQL server log to `file`")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	command := fs.Args()
	if len(command) == 0 {
		fmt.Fprint(stderr, "stack exec: no command given\n\n"+usage)
		return exitCode(2)
	}

	opts := stack.PostgresOptions{Progress: stderr}
	if *pgLog != "" {
		f, err := os.Create(*pgLog)
		if err != nil {
			return fmt.Errorf("stack exec: %w", err)
		}
		defer f.Close()
		opts.Log = f
	}
	return upRunDown(ctx, "exec", command, stderr,
		func(ctx context.Context) (*stack.Postgres, error) {
			pg, err := stack.StartPostgres(ctx, opts)
			if err != nil && pg != nil {
				pg.Stop()
			}
			return pg, err
		},
		func(pg *stack.Postgres) ([]string, error) {
			return []string{"TEST_DATABASE_URL=" + pg.SuperuserURL("postgres")}, nil
		},
		func(_ context.Context, pg *stack.Postgres) error { return pg.Stop() })
}

// upRunDown is every command of cmd/stack that runs a command against a stack: it brings the
// stack up, runs command with the environment that points at it (env), and takes it down:
// after the command ends, and on SIGINT or SIGTERM, which it passes on to the command first.
// A signal during up cancels it; up takes down whatever it had started when it fails. It
// returns the command's exit code, at least 1 if taking the stack down failed.
func upRunDown[T any](ctx context.Context, who string, command []string, stderr io.Writer,
	up func(context.Context) (T, error), env func(T) ([]string, error), down func(context.Context, T) error) error {
	// From here on a signal must not kill us before the stack is down.
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)

	s, err := startInterruptibly(ctx, signals, up)
	if err != nil {
		return err
	}
	code := 0
	vars, err := env(s)
	if err != nil {
		fmt.Fprintf(stderr, "stack %s: %v\n", who, err)
		code = 1
	} else {
		cmd := exec.Command(command[0], command[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), vars...)
		code = runChild(cmd, signals, stderr)
	}
	downCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if err := down(downCtx, s); err != nil {
		fmt.Fprintf(stderr, "stack %s: %v\n", who, err)
		code = max(code, 1)
	}
	return exitCode(code)
}

// startInterruptibly runs start, cancelling it on a signal. It returns what
// start returned even then, so the caller can stop a cluster (or project) that
// came up just as the signal arrived.
func startInterruptibly[T any](ctx context.Context, signals <-chan os.Signal, start func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		started T
		err     error
	}
	done := make(chan result, 1)
	go func() {
		started, err := start(ctx)
		done <- result{started, err}
	}()
	select {
	case r := <-done:
		return r.started, r.err
	case sig := <-signals:
		cancel()
		r := <-done
		return r.started, errors.Join(fmt.Errorf("stack: interrupted by %v", sig), r.err)
	}
}

// runChild runs cmd to its end, passing signals on, and returns its exit code
// (128+n when signal n killed it, as shells report it).
func runChild(cmd *exec.Cmd, signals <-chan os.Signal, stderr io.Writer) int {
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "stack exec: %v\n", err)
		return 127
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for {
		select {
		case sig := <-signals:
			// A Ctrl-C reaches the child from the terminal too; passing it
			// on matters when only we were signalled (kill, CI timeouts).
			cmd.Process.Signal(sig)
		case err := <-waited:
			return exitStatus(err, stderr)
		}
	}
}

func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		fmt.Fprintf(stderr, "stack exec: %v\n", err)
		return 1
	}
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return exitErr.ExitCode()
}
