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
// MOVIES_DATABASE_PASSWORD_FILE is then to hold. A URL without one, such as that of a throwaway
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

// Docker Swarm hands secrets to a service as files under /run/secrets/: MOVIES_DATABASE_PASSWORD_FILE
// names the one with the database password.
func TestLoadConfigSecretFiles(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"MOVIES_DATABASE_URL": "postgres://movies@127.0.0.1:5432/movies?sslmode=disable", "MOVIES_CASTS_URL": "http://127.0.0.1:8082",
		"MOVIES_AUTH_ISSUER": "http://127.0.0.1:4444/", "MOVIES_AUTH_JWKS_URL": "http://127.0.0.1:4444/.well-known/jwks.json",
		"MOVIES_AUTH_AUDIENCE": "movies-microservices",
	}
	missing := filepath.Join(t.TempDir(), "missing")
	_, notExist := os.ReadFile(missing)
	empty, onlyNewline := secretFile(t, ""), secretFile(t, "\r\n")

	type database struct{ User, Password, Database string }
	tests := []struct {
		name string
		env  map[string]string // over base; "" unsets
		want database          // when wantErr is empty
		// wantErr must be in the error, notWant must not: the secrets.
		wantErr, notWant []string
	}{
		{
			name: "file used, one trailing newline removed",
			env:  map[string]string{"MOVIES_DATABASE_PASSWORD_FILE": secretFile(t, "p@ss:w/rd %?#\n")},
			want: database{User: "movies", Password: "p@ss:w/rd %?#", Database: "movies"},
		},
		{
			name: "one trailing CRLF removed, spaces kept",
			env:  map[string]string{"MOVIES_DATABASE_PASSWORD_FILE": secretFile(t, " pass word \r\n")},
			want: database{User: "movies", Password: " pass word ", Database: "movies"},
		},
		{
			name: "nothing trimmed but one newline",
			env:  map[string]string{"MOVIES_DATABASE_PASSWORD_FILE": secretFile(t, "pw\n\n")},
			want: database{User: "movies", Password: "pw\n", Database: "movies"},
		},
		{
			name: "a lone carriage return is kept",
			env:  map[string]string{"MOVIES_DATABASE_PASSWORD_FILE": secretFile(t, "pw\r")},
			want: database{User: "movies", Password: "pw\r", Database: "movies"},
		},
		{
			name:    "a password in the URL and the file",
			env:     map[string]string{"MOVIES_DATABASE_URL": "postgres://movies:url-s3cr3t@127.0.0.1:5432/movies", "MOVIES_DATABASE_PASSWORD_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"set the password in MOVIES_DATABASE_URL or MOVIES_DATABASE_PASSWORD_FILE, not both"},
			notWant: []string{"url-s3cr3t", "file-s3cr3t"},
		},
		{
			name:    "an empty password in the URL and the file",
			env:     map[string]string{"MOVIES_DATABASE_URL": "postgres://movies:@127.0.0.1:5432/movies", "MOVIES_DATABASE_PASSWORD_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"set the password in MOVIES_DATABASE_URL or MOVIES_DATABASE_PASSWORD_FILE, not both"},
			notWant: []string{"file-s3cr3t"},
		},
		{
			name:    "a URL without a user",
			env:     map[string]string{"MOVIES_DATABASE_URL": "postgres://127.0.0.1:5432/movies", "MOVIES_DATABASE_PASSWORD_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"MOVIES_DATABASE_PASSWORD_FILE needs a user name in MOVIES_DATABASE_URL"},
			notWant: []string{"file-s3cr3t"},
		},
		{
			name:    "keyword/value settings instead of a URL",
			env:     map[string]string{"MOVIES_DATABASE_URL": "host=127.0.0.1 user=movies password=url-s3cr3t", "MOVIES_DATABASE_PASSWORD_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"MOVIES_DATABASE_PASSWORD_FILE needs MOVIES_DATABASE_URL in the URL form"},
			notWant: []string{"url-s3cr3t", "file-s3cr3t"},
		},
		{
			name: "missing file",
			// The URL's problems are reported along with the file's.
			env: map[string]string{"MOVIES_DATABASE_URL": "postgres://movies:url-s3cr3t@127.0.0.1:5432/movies", "MOVIES_DATABASE_PASSWORD_FILE": missing},
			wantErr: []string{"MOVIES_DATABASE_PASSWORD_FILE: " + notExist.Error(),
				"set the password in MOVIES_DATABASE_URL or MOVIES_DATABASE_PASSWORD_FILE, not both"},
			notWant: []string{"url-s3cr3t"},
		},
		{
			name:    "empty file",
			env:     map[string]string{"MOVIES_DATABASE_PASSWORD_FILE": empty},
			wantErr: []string{"MOVIES_DATABASE_PASSWORD_FILE: the file " + empty + " is empty"},
		},
		{
			name:    "a file with only a newline",
			env:     map[string]string{"MOVIES_DATABASE_PASSWORD_FILE": onlyNewline},
			wantErr: []string{"MOVIES_DATABASE_PASSWORD_FILE: the file " + onlyNewline + " is empty"},
		},
		{
			name:    "a file for the database password, but no URL",
			env:     map[string]string{"MOVIES_DATABASE_URL": "", "MOVIES_DATABASE_PASSWORD_FILE": secretFile(t, "file-s3cr3t")},
			wantErr: []string{"MOVIES_DATABASE_URL is required"},
			notWant: []string{"file-s3cr3t", "MOVIES_DATABASE_PASSWORD_FILE"},
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
			got := database{User: pgCfg.ConnConfig.User, Password: pgCfg.ConnConfig.Password, Database: pgCfg.ConnConfig.Database}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("database (-want +got):\n%s", diff)
			}
		})
	}
}
