// Package pgtest gives each integration test its own freshly migrated database on the PostgreSQL
// server named by TEST_DATABASE_URL (`make test` starts a throwaway one and sets it).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/movies/internal/postgres"
)

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
	// PostgreSQL refuses to copy a template that another CREATE DATABASE is copying at the same moment.
	createMu sync.Mutex
)

// Run runs the package's tests and then drops the template database they shared.
// Call it from TestMain: os.Exit(pgtest.Run(m)).
func Run(m *testing.M) int {
	code := m.Run()
	if templateName != "" {
		if err := dropDatabase(os.Getenv("TEST_DATABASE_URL"), templateName); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: drop template: %v\n", err)
		}
	}
	return code
}

// URL returns the URL of a new, migrated database that is dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	admin := adminURL(t)
	templateOnce.Do(func() { templateName, templateErr = createTemplate(admin) })
	if templateErr != nil {
		t.Fatalf("pgtest: create template database: %v", templateErr)
	}
	return newDatabase(t, admin, " TEMPLATE "+pgx.Identifier{templateName}.Sanitize())
}

// EmptyURL returns the URL of a new database without any schema, dropped when the test ends.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, adminURL(t), "")
}

func newDatabase(t testing.TB, admin, options string) string {
	t.Helper()
	name := "test_" + randomSuffix()
	createMu.Lock()
	err := exec(admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+options)
	createMu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(admin, name); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dbURL, err := databaseURL(admin, name)
	if err != nil {
		t.Fatalf("pgtest: TEST_DATABASE_URL: %v", err)
	}
	return dbURL
}

// Pool returns a pool on a new, migrated database; both are closed and dropped when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), URL(t))
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close) // registered after the drop, so it runs before it
	return pool
}

func adminURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("TEST_DATABASE_URL")
	if url != "" {
		return url
	}
	const how = "TEST_DATABASE_URL is not set: run `make test`, or `go run ./e2e/cmd/stack exec -- go test ./...` from the repository root"
	if os.Getenv("CI") == "true" {
		t.Fatal(how + " (in CI a missing database is a failure)")
	}
	t.Skip(how)
	return ""
}

func createTemplate(admin string) (string, error) {
	name := "template_movies_" + randomSuffix()
	if err := exec(admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	dbURL, err := databaseURL(admin, name)
	if err != nil {
		return name, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := postgres.Open(ctx, dbURL, 10*time.Second)
	if err != nil {
		return name, err
	}
	defer pool.Close()
	return name, postgres.Migrate(ctx, pool, postgres.Migrations)
}

// databaseURL is admin with its database replaced by name.
func databaseURL(admin, name string) (string, error) {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("must be a postgres:// URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

func dropDatabase(admin, name string) error {
	return exec(admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func exec(url, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	return hex.EncodeToString(b[:])
}
