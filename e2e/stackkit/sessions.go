package stackkit

import (
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
