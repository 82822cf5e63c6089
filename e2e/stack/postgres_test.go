package stack

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/movies-microservices/e2e/target"
)

func TestProvisionIsolatesRoles(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	ctx := testContext(t)
	var serverLog, progress syncBuffer
	pg := startTestPostgres(t, PostgresOptions{Log: &serverLog, Progress: &progress})
	dir := pg.Dir()

	secrets := target.NewSecrets()
	dbs := []Database{{Name: "casts", Password: secrets.Casts}, {Name: "movies", Password: secrets.Movies}}
	if err := Provision(ctx, pg.SuperuserURL("postgres"), dbs...); err != nil {
		t.Fatalf("Provision: %v", err)
	}

	// What the casts service's migrations do: the owner creates tables.
	casts := connect(t, pg.URL("casts", secrets.Casts, "casts"))
	if _, err := casts.Exec(ctx, `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')`); err != nil {
		t.Fatalf("casts creates a table in its own database: %v", err)
	}
	if err := Provision(ctx, pg.SuperuserURL("postgres"), dbs...); err != nil {
		t.Fatalf("Provision again: %v", err)
	}
	var kept string
	if err := casts.QueryRow(ctx, `SELECT v FROM kept`).Scan(&kept); err != nil || kept != "before" {
		t.Errorf("after a second Provision: got %q, %v; want the row kept", kept, err)
	}

	t.Run("connect", func(t *testing.T) {
		const (
			ok               = ""
			permissionDenied = "42501" // insufficient_privilege: no CONNECT on the database
			wrongPassword    = "28P01" // invalid_password
		)
		tests := []struct {
			name, user, password, database string
			want                           string
		}{
			{"casts to casts", "casts", secrets.Casts, "casts", ok},
			{"movies to movies", "movies", secrets.Movies, "movies", ok},
			{"casts to movies", "casts", secrets.Casts, "movies", permissionDenied},
			{"movies to casts", "movies", secrets.Movies, "casts", permissionDenied},
			{"casts to postgres", "casts", secrets.Casts, "postgres", permissionDenied},
			{"movies to template1", "movies", secrets.Movies, "template1", permissionDenied},
			{"casts with the movies password", "casts", secrets.Movies, "casts", wrongPassword},
			{"casts without a password", "casts", "", "casts", wrongPassword},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				conn, err := pgx.Connect(ctx, pg.URL(tc.user, tc.password, tc.database))
				if err == nil {
					conn.Close(ctx)
				}
				if diff := cmp.Diff(tc.want, sqlState(err)); diff != "" {
					t.Errorf("SQLSTATE (-want +got):\n%s", diff)
				}
			})
		}
	})

	// Each service's role owns its database and nothing else: no administrative power.
	t.Run("no administrative power", func(t *testing.T) {
		for _, db := range dbs {
			conn := connect(t, pg.URL(db.Name, db.Password, db.Name))
			var super, createRole, createDB bool
			err := conn.QueryRow(ctx, `SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user`).
				Scan(&super, &createRole, &createDB)
			if err != nil {
				t.Fatal(err)
			}
			if super || createRole || createDB {
				t.Errorf("role %s: superuser %t, createrole %t, createdb %t; want none", db.Name, super, createRole, createDB)
			}
		}
	})

	t.Run("verifier matches the server's", func(t *testing.T) {
		// Let the server hash a password, then compute the same verifier
		// from its salt and iteration count.
		admin := connect(t, pg.SuperuserURL("postgres"))
		const password = "Correct-Horse-Battery-Staple-7"
		if _, err := admin.Exec(ctx, `CREATE ROLE scram_check LOGIN PASSWORD '`+password+`'`); err != nil {
			t.Fatal(err)
		}
		var stored string
		if err := admin.QueryRow(ctx, `SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_check'`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		salt, iterations := parseSCRAMVerifier(t, stored)
		got, err := scramSHA256VerifierWith(password, salt, iterations)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(stored, got); diff != "" {
			t.Errorf("verifier (-server +ours):\n%s", diff)
		}
	})

	if err := pg.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("throwaway cluster directory %s still exists after Stop (stat: %v)", dir, err)
	}
	if !strings.Contains(serverLog.String(), "database system is ready to accept connections") {
		t.Errorf("server log lacks the ready line; got:\n%s", serverLog.String())
	}
	assertNoSecrets(t, "server log", serverLog.String(), secrets.Casts, secrets.Movies)
	assertNoSecrets(t, "progress", progress.String(), secrets.Casts, secrets.Movies)
}

// parseSCRAMVerifier reads SCRAM-SHA-256$<iterations>:<salt>$<stored>:<server>.
func parseSCRAMVerifier(t *testing.T, v string) ([]byte, int) {
	t.Helper()
	parts := strings.Split(v, "$")
	if len(parts) != 3 || parts[0] != "SCRAM-SHA-256" {
		t.Fatalf("not a SCRAM-SHA-256 verifier: %q", v)
	}
	iter, salt64, _ := strings.Cut(parts[1], ":")
	iterations, err := strconv.Atoi(iter)
	if err != nil {
		t.Fatal(err)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		t.Fatal(err)
	}
	return salt, iterations
}

func TestPersistentClusterKeepsDataAndNeedsItsPassword(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	ctx := testContext(t)
	dir := filepath.Join(traversableTempDir(t), "postgres")
	password := rand.Text()
	var serverLog syncBuffer
	opts := PostgresOptions{Dir: dir, SuperuserPassword: password, Log: &serverLog}

	// What an initdb killed half-way leaves behind: it must be remade.
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	first := startTestPostgres(t, opts)
	db := Database{Name: "casts", Password: rand.Text()}
	if err := Provision(ctx, first.SuperuserURL("postgres"), db); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	conn := connect(t, first.URL("casts", db.Password, "casts"))
	if _, err := conn.Exec(ctx, `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before restart')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	_, err := pgx.Connect(ctx, first.URL(Superuser, "", "postgres"))
	if diff := cmp.Diff("28P01", sqlState(err)); diff != "" {
		t.Errorf("superuser without a password on a persistent cluster: SQLSTATE (-want +got):\n%s", diff)
	}
	if err := first.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	second := startTestPostgres(t, opts)
	if err := Provision(ctx, second.SuperuserURL("postgres"), db); err != nil {
		t.Fatalf("Provision after restart: %v", err)
	}
	var kept string
	err = connect(t, second.URL("casts", db.Password, "casts")).QueryRow(ctx, `SELECT v FROM kept`).Scan(&kept)
	if err != nil || kept != "before restart" {
		t.Errorf("after restart: got %q, %v; want the row kept", kept, err)
	}
	if err := second.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	opts.SuperuserPassword = "not-the-password"
	if pg, err := StartPostgres(ctx, opts); err == nil {
		pg.Stop()
		t.Error("StartPostgres with the wrong superuser password succeeded")
	} else if !strings.Contains(err.Error(), "rejects the superuser password") {
		t.Errorf("StartPostgres with the wrong password: got %v, want it to say the password is rejected", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		t.Errorf("persistent cluster gone after Stop: %v", err)
	}
	assertNoSecrets(t, "server log", serverLog.String(), password, db.Password)
}

func TestStartPostgresPortInUse(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	pg := startTestPostgres(t, PostgresOptions{})
	_, err := StartPostgres(testContext(t), PostgresOptions{Port: pg.Port()})
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(pg.Port())) || !strings.Contains(err.Error(), EnvPostgresPort) {
		t.Errorf("StartPostgres on a used port: got %v, want an error naming port %d and %s", err, pg.Port(), EnvPostgresPort)
	}
}
