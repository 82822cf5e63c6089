package stackkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// SessionsQuery lists the client sessions on a PostgreSQL server other than the asker's own,
// as role@database, one a row.
const SessionsQuery = `SELECT DISTINCT usename::text || '@' || datname::text FROM pg_stat_activity
	WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY 1`

// Sessions are the rows of SessionsQuery from every server asked, sorted, each once, without
// those of the roles in skip (a superuser the driver asked as).
func Sessions(rows []string, skip ...string) []string {
	rows = slices.DeleteFunc(slices.Clone(rows), func(r string) bool {
		role, _, _ := strings.Cut(r, "@")
		return slices.Contains(skip, role)
	})
	slices.Sort(rows)
	return slices.Compact(rows)
}

// Docker runs the docker command with args on one engine and returns its output.
type Docker func(ctx context.Context, args ...string) (string, error)

// ReachPostgres tells whether container from can reach the PostgreSQL server of container db,
// by its service name host and by each of db's addresses: nil if either answers. It runs
// pg_isready, from db's own image, in a throwaway container in from's network namespace; on
// the container stacks only their networks keep a service from another's database. dbEngine
// runs docker where db runs, fromEngine where from runs (the same engine on Compose).
func ReachPostgres(ctx context.Context, host, db, from string, dbEngine, fromEngine Docker) error {
	image, err := dbEngine(ctx, "inspect", "--format", "{{.Config.Image}}", db)
	if err != nil {
		return err
	}
	addrs, err := dbEngine(ctx, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", db)
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range append([]string{host}, strings.Fields(addrs)...) {
		out, err := fromEngine(ctx, "run", "--rm", "--network", "container:"+from, "--entrypoint", "pg_isready",
			image, "--host", h, "--port", "5432", "--timeout", "3")
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %s", h, FirstLine(out+" "+err.Error())))
	}
	return errors.Join(errs...)
}
