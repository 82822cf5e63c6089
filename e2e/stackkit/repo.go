package stackkit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FindRepoRoot walks up from dir to the first directory holding go.work: the
// root of the repository, where bin/, traefik/ and .run/ live.
func FindRepoRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find repository root from %s: %w", dir, err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.work in %s or any parent directory: run this from inside the repository", abs)
		}
	}
}

// FirstLine is s trimmed, up to its first line break: the gist of a command's error output.
func FirstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
