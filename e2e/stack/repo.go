package stack

import (
	"fmt"
	"os"
	"path/filepath"
)

// FindRepoRoot walks up from dir to the first directory holding go.work: the
// root of the repository, where bin/, traefik/ and .run/ live.
func FindRepoRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("stack: find repository root from %s: %w", dir, err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("stack: no go.work in %s or any parent directory: run this from inside the repository", abs)
		}
	}
}
