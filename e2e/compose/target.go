package compose

import (
	"context"
	"io"
	"os"

	"github.com/movies-microservices/e2e/target"
)

// A Compose project is a driver of the stack under test.
var (
	_ target.Target      = (*Project)(nil)
	_ target.Siblings    = (*Project)(nil)
	_ target.Persistence = (*Project)(nil)
	_ target.Persistent  = (*Project)(nil)
	_ target.Networks    = (*Project)(nil)
	_ target.Volumes     = (*Project)(nil)
)

// Kind names the driver.
func (p *Project) Kind() string { return "compose" }

// Provider is Traefik's docker provider: compose.yaml's labels.
func (p *Project) Provider() string { return "docker" }

// Stop takes the project down with its volumes.
func (p *Project) Stop() error { return p.Down(context.Background()) }

// Sibling brings up another project beside this one, named after it plus name, from the
// images this one built and with its overrides (replicas 0 takes Options' default).
func (p *Project) Sibling(ctx context.Context, name string, replicas int) (target.Target, error) {
	sib, err := p.upSibling(ctx, name, replicas, os.Stderr)
	if err != nil {
		return nil, err // not a nil *Project in a non-nil Target
	}
	return sib, nil
}

// Persistent is a sibling project: its databases live in named volumes, which Recreate keeps
// (down, up) or removes (down -v).
func (p *Project) Persistent(ctx context.Context, name string) (target.Persistent, error) {
	sib, err := p.upSibling(ctx, name, 0, nil)
	if err != nil {
		return nil, err
	}
	return sib, nil
}

// upSibling brings up a project named after p plus name from p's images and overrides (a nil
// progress writer takes Options' default).
func (p *Project) upSibling(ctx context.Context, name string, replicas int, progress io.Writer) (*Project, error) {
	return Up(ctx, Options{
		RepoRoot: p.opts.RepoRoot, Name: p.Name() + "-" + name, Overrides: p.Overrides(), Replicas: replicas,
		Images: p.Name(), LogLevel: "warn", Progress: progress,
	})
}
