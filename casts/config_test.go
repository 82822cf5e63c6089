package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
)

// secretFile writes content to a new file, as Docker Swarm mounts a secret, and returns its path.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "secret")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// passwordInFile returns rawURL without its password, and the password, which a file named by
// CASTS_DATABASE_PASSWORD_FILE is then to hold. A URL without one, such as that of a throwaway
// cluster that trusts local connections, gets a password that the server does not ask for.
func passwordInFile(t *testing.T, rawURL string) (urlWithoutPassword, password string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal("the database URL does not parse")
	}
	password, ok := u.User.Password()
	if !ok {
		password = "unasked-for password"
	}
	u.User = url.User(u.User.Username())
	return u.String(), password
}

// Docker Swarm hands secrets to a service as files under /run/secrets/: each _FILE variable
// names one, and its content counts as the variable without _FILE would.
func TestLoadConfigSecretFiles(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"CASTS_DATABASE_URL": "postgres://casts@127.0.0.1:5432/casts?sslmode=disable", "CASTS_MOVIES_URL": "http://127.0.0.1:8082",
		"CASTS_AUTH_ISSUER": "http://127.0.0.1:4444/", "CASTS_AUTH_JWKS_URL": "http://127.0.0.1:4444/.well-known/jwks.json",
		"CASTS_AUTH_AUDIENCE": "movies-microservices", "CASTS_AUTH_TOKEN_URL": "http://127.0.0.1:4444/oauth2/token",
		"CASTS_RELAY_CLIENT_ID": "casts-relay",
	}
	missing := filepath.Join(t.TempDir(), "missing")
	_, notExist := os.ReadFile(missing)
	empty, onlyNewline := secretFile(t, ""), secretFile(t, "\r\n")

	type secrets struct{ DatabaseUser, DatabasePassword, Database, RelayClientSecret string }
	tests := []struct {
		name string
		env  map[string]string // over base; "" unsets
		want secrets           // when wantErr is empty
		// wantErr must be in the error, notWant must not: the secrets.
		wantErr, notWant []string
	}{
		{
			name: "files used, one trailing newline removed",
			env: map[string]string{
				"CASTS_DATABASE_PASSWORD_FILE":   secretFile(t, "p@ss:w/rd %?#\n"),
				"CASTS_RELAY_CLIENT_SECRET_FILE": secretFile(t, " relay secret \r\n"),
			},
			want: secrets{DatabaseUser: "casts", DatabasePassword: "p@ss:w/rd %?#", Database: "casts", RelayClientSecret: " relay secret "},
		},
		{
			name: "nothing trimmed but one newline",
			env: map[string]string{
				"CASTS_DATABASE_PASSWORD_FILE":   secretFile(t, "pw\n\n"),
				"CASTS_RELAY_CLIENT_SECRET_FILE": secretFile(t, "\tsecret\r"),
			},
			want: secrets{DatabaseUser: "casts", DatabasePassword: "pw\n", Database: "casts", RelayClientSecret: "\tsecret\r"},
		},
		{
			name:    "a password in the URL and the file",
			env:     map[string]string{"CASTS_DATABASE_URL": "postgres://casts:url-s3cr3t@127.0.0.1:5432/casts", "CASTS_DATABASE_PASSWORD_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"set the password in CASTS_DATABASE_URL or CASTS_DATABASE_PASSWORD_FILE, not both"},
			notWant: []string{"url-s3cr3t", "file-s3cr3t"},
		},
		{
			name:    "an empty password in the URL and the file",
			env:     map[string]string{"CASTS_DATABASE_URL": "postgres://casts:@127.0.0.1:5432/casts", "CASTS_DATABASE_PASSWORD_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"set the password in CASTS_DATABASE_URL or CASTS_DATABASE_PASSWORD_FILE, not both"},
			notWant: []string{"file-s3cr3t"},
		},
		{
			name:    "a URL without a user",
			env:     map[string]string{"CASTS_DATABASE_URL": "postgres://127.0.0.1:5432/casts", "CASTS_DATABASE_PASSWORD_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"CASTS_DATABASE_PASSWORD_FILE needs a user name in CASTS_DATABASE_URL"},
			notWant: []string{"file-s3cr3t"},
		},
		{
			name:    "keyword/value settings instead of a URL",
			env:     map[string]string{"CASTS_DATABASE_URL": "host=127.0.0.1 user=casts password=url-s3cr3t", "CASTS_DATABASE_PASSWORD_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"CASTS_DATABASE_PASSWORD_FILE needs CASTS_DATABASE_URL in the URL form"},
			notWant: []string{"url-s3cr3t", "file-s3cr3t"},
		},
		{
			name:    "the relay's secret in the variable and the file",
			env:     map[string]string{"CASTS_RELAY_CLIENT_SECRET": "env-s3cr3t", "CASTS_RELAY_CLIENT_SECRET_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"set CASTS_RELAY_CLIENT_SECRET or CASTS_RELAY_CLIENT_SECRET_FILE, not both"},
			notWant: []string{"env-s3cr3t", "file-s3cr3t"},
		},
		{
			name: "missing files",
			env: map[string]string{
				// The URL's problems are reported along with the file's.
				"CASTS_DATABASE_URL": "postgres://casts:url-s3cr3t@127.0.0.1:5432/casts", "CASTS_DATABASE_PASSWORD_FILE": missing,
				"CASTS_RELAY_CLIENT_SECRET_FILE": missing,
			},
			wantErr: []string{"CASTS_DATABASE_PASSWORD_FILE: " + notExist.Error(), "CASTS_RELAY_CLIENT_SECRET_FILE: " + notExist.Error(),
				"set the password in CASTS_DATABASE_URL or CASTS_DATABASE_PASSWORD_FILE, not both"},
			notWant: []string{"url-s3cr3t", "CASTS_RELAY_CLIENT_SECRET (or CASTS_RELAY_CLIENT_SECRET_FILE) is required"},
		},
		{
			name:    "empty files",
			env:     map[string]string{"CASTS_DATABASE_PASSWORD_FILE": empty, "CASTS_RELAY_CLIENT_SECRET_FILE": onlyNewline},
			wantErr: []string{"CASTS_DATABASE_PASSWORD_FILE: the file " + empty + " is empty", "CASTS_RELAY_CLIENT_SECRET_FILE: the file " + onlyNewline + " is empty"},
			notWant: []string{"CASTS_RELAY_CLIENT_SECRET (or CASTS_RELAY_CLIENT_SECRET_FILE) is required"},
		},
		{
			name: "the relay's secret from a file still comes with the rest of its credentials",
			env: map[string]string{"CASTS_AUTH_VERIFY": "off", "CASTS_AUTH_TOKEN_URL": "", "CASTS_RELAY_CLIENT_ID": "",
				"CASTS_RELAY_CLIENT_SECRET_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"CASTS_AUTH_TOKEN_URL is required with CASTS_RELAY_CLIENT_ID and CASTS_RELAY_CLIENT_SECRET", "CASTS_RELAY_CLIENT_ID is required"},
			notWant: []string{"file-s3cr3t", "CASTS_RELAY_CLIENT_SECRET (or CASTS_RELAY_CLIENT_SECRET_FILE) is required"},
		},
		{
			name:    "a file for the database password, but no URL",
			env:     map[string]string{"CASTS_DATABASE_URL": "", "CASTS_DATABASE_PASSWORD_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"CASTS_DATABASE_URL is required"},
			notWant: []string{"file-s3cr3t", "CASTS_DATABASE_PASSWORD_FILE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadConfig(func(k string) string {
				if v, ok := tt.env[k]; ok {
					return v
				}
				return base[k]
			})
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("loadConfig succeeded, want an error")
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error does not say %s:\n%v", s, err)
					}
				}
				for _, s := range tt.notWant {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error says %s:\n%v", s, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// As pgx, which connects with it, reads the URL.
			pgCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
			if err != nil {
				t.Fatalf("pgx cannot parse the database URL: %v", err)
			}
			got := secrets{DatabaseUser: pgCfg.ConnConfig.User, DatabasePassword: pgCfg.ConnConfig.Password, Database: pgCfg.ConnConfig.Database, RelayClientSecret: cfg.RelayClientSecret}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("secrets (-want +got):\n%s", diff)
			}
		})
	}
}
