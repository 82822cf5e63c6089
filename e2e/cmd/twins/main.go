// Command twins writes the movie service's copies of the twin files (parity.Twins) from the cast
// service's, which are the source: edit casts/<path>, then run `make twins` from the repository's
// root. It also removes the copies it once wrote that are twins no more (moved or dropped in
// casts), and says what it changed. e2e/parity's TestTwinsAreGenerated fails while a copy is stale.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/movies-microservices/e2e/parity"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "twins:", err)
		os.Exit(1)
	}
}

func run() error {
	for _, dir := range []string{"casts", "movies"} {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
			return fmt.Errorf("run from the repository's root (%s): %w", parity.TwinsCommand, err)
		}
	}
	var errs []error
	for _, twin := range parity.Twins {
		if err := write(twin); err != nil {
			errs = append(errs, err)
		}
	}
	orphans, err := parity.GeneratedOrphans("movies")
	if err != nil {
		errs = append(errs, err)
	}
	for _, orphan := range orphans {
		if err := os.Remove(filepath.Join("movies", orphan)); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Printf("removed movies/%s (no longer a twin)\n", orphan)
	}
	return errors.Join(errs...)
}

// write writes movies/<twin> from casts/<twin>, unless it is already up to date.
func write(twin string) error {
	castsCopy, err := os.ReadFile(filepath.Join("casts", twin))
	if err != nil {
		return err
	}
	want, err := parity.Twin(twin, castsCopy)
	if err != nil {
		return err
	}
	dst := filepath.Join("movies", twin)
	got, err := os.ReadFile(dst)
	if err == nil && bytes.Equal(got, want) {
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(dst, want, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote movies/%s\n", twin)
	return nil
}
