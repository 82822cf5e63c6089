package stack

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Database is one service's database and the LOGIN role that owns it; they
// share Name.
type Database struct {
	Name     string
	Password string
}

// String keeps the password out of anything that prints a Database.
func (d Database) String() string {
	return "stack.Database{Name: " + d.Name + ", Password: <redacted>}"
}

// GoString does the same for %#v.
func (d Database) GoString() string { return d.String() }

// Provision makes each database and its owning role, sets the role's password,
// and lets each role connect only to its own database. It is idempotent:
// existing roles and databases are kept, data and all, and brought back to
// this state.
func Provision(ctx context.Context, superuserURL string, dbs ...Database) error {
	conn, err := pgx.Connect(ctx, superuserURL)
	if err != nil {
		return fmt.Errorf("stack: provision: connect as superuser: %w", err)
	}
	defer conn.Close(context.Background())

	if err := revokePublicConnect(ctx, conn, "postgres", "template1"); err != nil {
		return err
	}
	for _, db := range dbs {
		if err := ensureRole(ctx, conn, db.Name, db.Password); err != nil {
			return err
		}
		if err := ensureDatabase(ctx, conn, db.Name); err != nil {
			return err
		}
	}
	return nil
}

// Identifiers and the password cannot be query parameters of CREATE ROLE and
// friends, so the server quotes them with format(%I, %L) and we run the result.
const (
	sqlRoleExists     = `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`
	sqlCreateRole     = `SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)`
	sqlAlterRole      = `SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', $1::text, $2::text)`
	sqlDatabaseExists = `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`
	sqlCreateDatabase = `SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $1::text)`
	sqlAlterDatabase  = `SELECT format('ALTER DATABASE %I OWNER TO %I', $1::text, $1::text)`
	sqlRevokePublic   = `SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', $1::text)`
	sqlGrantOwner     = `SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', $1::text, $1::text)`
)

// ensureRole sends a SCRAM verifier, not the password: if the statement ever
// reached the server log (log_min_error_statement logs failing statements),
// the password itself still would not.
func ensureRole(ctx context.Context, conn *pgx.Conn, name, password string) error {
	if !printableASCII(password) {
		// Other passwords would need SASLprep first to match what clients send.
		return fmt.Errorf("stack: provision role %s: the password must be non-empty printable ASCII", name)
	}
	verifier, err := scramSHA256Verifier(password)
	if err != nil {
		return fmt.Errorf("stack: provision role %s: %w", name, err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, sqlRoleExists, name).Scan(&exists); err != nil {
		return fmt.Errorf("stack: provision role %s: %w", name, err)
	}
	stmt := sqlCreateRole
	if exists {
		stmt = sqlAlterRole
	}
	if err := execFormatted(ctx, conn, stmt, name, verifier); err != nil {
		return fmt.Errorf("stack: provision role %s: %w", name, err)
	}
	return nil
}

func ensureDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	var exists bool
	if err := conn.QueryRow(ctx, sqlDatabaseExists, name).Scan(&exists); err != nil {
		return fmt.Errorf("stack: provision database %s: %w", name, err)
	}
	stmt := sqlCreateDatabase
	if exists {
		stmt = sqlAlterDatabase
	}
	for _, s := range []string{stmt, sqlRevokePublic, sqlGrantOwner} {
		if err := execFormatted(ctx, conn, s, name); err != nil {
			return fmt.Errorf("stack: provision database %s: %w", name, err)
		}
	}
	return nil
}

// revokePublicConnect closes the databases every cluster has to PUBLIC, so a
// service role reaches nothing but its own database. The superuser, who
// bypasses privileges, is unaffected.
func revokePublicConnect(ctx context.Context, conn *pgx.Conn, names ...string) error {
	for _, name := range names {
		if err := execFormatted(ctx, conn, sqlRevokePublic, name); err != nil {
			return fmt.Errorf("stack: provision: close database %s to PUBLIC: %w", name, err)
		}
	}
	return nil
}

// execFormatted runs the statement that query (a SELECT format(...)) builds.
func execFormatted(ctx context.Context, conn *pgx.Conn, query string, args ...any) error {
	var stmt string
	if err := conn.QueryRow(ctx, query, args...).Scan(&stmt); err != nil {
		return err
	}
	_, err := conn.Exec(ctx, stmt)
	return err
}

// scramSHA256Verifier computes what PostgreSQL stores for a password under
// scram-sha-256 (RFC 5802/7677, as in PostgreSQL's pg_fe_scram_build_secret),
// with a random salt and PostgreSQL's default iteration count.
func scramSHA256Verifier(password string) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	return scramSHA256VerifierWith(password, salt, 4096)
}

func scramSHA256VerifierWith(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("derive SCRAM key: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
