package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Docker Swarm hands secrets to a service as files under /run/secrets/ (README, "More than one
// host"): the *_FILE variables name them.

// setDatabasePassword returns the database URL rawURL with the password of its user set to
// password, which MOVIES_DATABASE_PASSWORD_FILE holds.
func setDatabasePassword(rawURL, password string) (string, error) {
	u, err := url.Parse(rawURL)
	// Neither rawURL nor err, which quotes it, is shown: the URL may carry a password.
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("MOVIES_DATABASE_PASSWORD_FILE needs MOVIES_DATABASE_URL in the URL form (example postgres://movies@localhost:5432/movies)")
	}
	// Which of two passwords is meant cannot be told; an empty one ("user:@") counts too.
	if _, ok := u.User.Password(); ok {
		return "", errors.New("set the password in MOVIES_DATABASE_URL or MOVIES_DATABASE_PASSWORD_FILE, not both")
	}
	if u.User.Username() == "" {
		return "", errors.New("MOVIES_DATABASE_PASSWORD_FILE needs a user name in MOVIES_DATABASE_URL (example postgres://movies@localhost:5432/movies)")
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String(), nil
}

// readSecretFile returns the secret held by the file at path, which the variable name names:
// how Docker Swarm hands secrets to a service, as files under /run/secrets/. One trailing
// newline (\n or \r\n), which editors and echo add, is not part of the secret; nothing else is
// trimmed, since a secret may end in a space. Errors never quote the content.
func readSecretFile(name, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		// The *fs.PathError says the path and the cause.
		return "", fmt.Errorf("%s: %w", name, err)
	}
	secret := string(b)
	if s, ok := strings.CutSuffix(secret, "\n"); ok {
		secret = strings.TrimSuffix(s, "\r")
	}
	if secret == "" {
		return "", fmt.Errorf("%s: the file %s is empty", name, path)
	}
	return secret, nil
}
