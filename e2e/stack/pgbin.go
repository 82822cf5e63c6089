package stack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNoPostgres means no PostgreSQL server binaries were found. Tests use it
// to tell "this machine lacks PostgreSQL" from a real failure.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries (initdb, postgres) found on PATH, via `pg_config --bindir`, or in /usr/lib/postgresql/*/bin: " +
	"install them (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; macOS: brew install postgresql)")

// PostgresBinaries is a directory holding the PostgreSQL server programs.
type PostgresBinaries struct {
	Dir string
}

func (b PostgresBinaries) Initdb() string   { return filepath.Join(b.Dir, "initdb") }
func (b PostgresBinaries) Postgres() string { return filepath.Join(b.Dir, "postgres") }

// Version is what `postgres --version` says, e.g. "postgres (PostgreSQL) 15.14".
func (b PostgresBinaries) Version() (string, error) {
	out, err := exec.Command(b.Postgres(), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("stack: %s --version: %w", b.Postgres(), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// FindPostgres looks for initdb and postgres side by side: on PATH first (so
// a person can choose a version), then where pg_config says, then in the
// newest Debian-style /usr/lib/postgresql/<major>/bin, where Debian installs
// them without putting them on PATH.
func FindPostgres() (PostgresBinaries, error) {
	for _, dir := range candidateBinDirs() {
		b := PostgresBinaries{Dir: dir}
		if isExecutable(b.Initdb()) && isExecutable(b.Postgres()) {
			return b, nil
		}
	}
	return PostgresBinaries{}, fmt.Errorf("stack: %w", ErrNoPostgres)
}

func candidateBinDirs() []string {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		// Debian links /usr/bin/initdb-like names to a wrapper or a versioned
		// directory; postgres sits beside the real file, not beside the link.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	if p, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(p, "--bindir").Output(); err == nil {
			dirs = append(dirs, strings.TrimSpace(string(out)))
		}
	}
	return append(dirs, debianBinDirs()...)
}

// debianBinDirs lists /usr/lib/postgresql/*/bin, newest major version first.
func debianBinDirs() []string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	sort.Slice(matches, func(i, j int) bool { return major(matches[i]) > major(matches[j]) })
	return matches
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0
}
