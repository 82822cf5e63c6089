package stack

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/movies-microservices/e2e/target"
)

// Keys of the secrets file.
const (
	secretSuperuser = "PG_SUPERUSER_PASSWORD"
	secretCasts     = "CASTS_DB_PASSWORD"
	secretMovies    = "MOVIES_DB_PASSWORD"
	secretHydra     = "HYDRA_DB_PASSWORD"
	secretSystem    = "HYDRA_SECRETS_SYSTEM"
	secretDemo      = "HYDRA_DEMO_CLIENT_SECRET"
	secretRelay     = "HYDRA_RELAY_CLIENT_SECRET"
)

// newSecret is 26 random characters (130 bits); the provider's system secret
// gets two, as Hydra wants at least 32.
func newSecret(key string) string {
	if key == secretSystem {
		return rand.Text() + rand.Text()
	}
	return rand.Text()
}

// LoadOrCreateSecrets reads the passwords kept in path (KEY=value lines),
// generating and saving any that are missing, so they are made once and then
// reused. The file is kept at mode 0600.
func LoadOrCreateSecrets(path string) (target.Secrets, error) {
	values, err := readSecretsFile(path)
	if err != nil {
		return target.Secrets{}, err
	}
	changed := false
	get := func(key string) string {
		if values[key] == "" {
			values[key] = newSecret(key)
			changed = true
		}
		return values[key]
	}
	s := target.Secrets{Superuser: get(secretSuperuser), Casts: get(secretCasts), Movies: get(secretMovies), Hydra: get(secretHydra),
		HydraSystem: get(secretSystem), DemoClient: get(secretDemo), RelayClient: get(secretRelay)}
	if changed {
		return s, writeSecretsFile(path, s)
	}
	// Tighten a file someone loosened: it holds passwords.
	if err := os.Chmod(path, 0o600); err != nil {
		return target.Secrets{}, fmt.Errorf("stack: restrict %s to its owner: %w", path, err)
	}
	return s, nil
}

func readSecretsFile(path string) (map[string]string, error) {
	values := make(map[string]string)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return values, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stack: read secrets: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			// The line is not echoed: it may be a password.
			return nil, fmt.Errorf("stack: %s: a line is not KEY=value; fix it or delete the file (with .run/postgres, which needs these passwords)", path)
		}
		values[strings.TrimSpace(key)] = strings.TrimSpace(value)
	}
	return values, nil
}

// writeSecretsFile writes through a temp file and a rename, so a crash never
// leaves half a file and the passwords are never readable by others.
func writeSecretsFile(path string, s target.Secrets) error {
	content := fmt.Sprintf(`# Passwords of the local PostgreSQL cluster and secrets of the OpenID provider
# (Hydra) and its clients, generated once by the e2e stack.
# Deleting this file without deleting the cluster makes the cluster unusable.
%s=%s
%s=%s
%s=%s
%s=%s
%s=%s
%s=%s
%s=%s
`, secretSuperuser, s.Superuser, secretCasts, s.Casts, secretMovies, s.Movies, secretHydra, s.Hydra,
		secretSystem, s.HydraSystem, secretDemo, s.DemoClient, secretRelay, s.RelayClient)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secrets-*")
	if err != nil {
		return fmt.Errorf("stack: write secrets: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return fmt.Errorf("stack: write secrets: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("stack: write secrets: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("stack: write secrets: %w", err)
	}
	return nil
}
