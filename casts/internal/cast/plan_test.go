package cast

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/movies-microservices/casts/internal/postgres/pgtest"
)

// PostgreSQL may run any prepared statement with a generic plan, made without the arguments
// (after five runs, when it guesses that plan is no worse). The list statement must stay fast
// under it: with an id filter, as the movie service's cast check sends, it looks the ids up
// instead of walking the casts from the cursor and filtering row by row.
func TestListByIDsUnderGenericPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	for _, sql := range []string{
		`INSERT INTO casts (name) SELECT 'Cast ' || g FROM generate_series(1, 2000) AS g`,
		`ANALYZE casts`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	var ids []int64
	if err := pool.QueryRow(ctx, `SELECT array_agg(id) FROM (SELECT id FROM casts ORDER BY id DESC LIMIT 3) AS last`).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	sql, args := listCastsSQL(ListParams{Limit: len(ids), IDs: ids})
	// EXECUTE takes the arguments as SQL literals.
	literals := make([]string, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case int, int64:
			literals[i] = fmt.Sprint(v)
		case []int64:
			literals[i] = "'{" + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(v)), ","), "[]") + "}'"
		case string:
			t.Fatalf("argument %d: name filter %q set, want none", i+1, v)
		default:
			t.Fatalf("argument %d: unexpected %T", i+1, a)
		}
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, sql := range []string{`SET plan_cache_mode = force_generic_plan`, `PREPARE list_casts AS ` + sql} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE list_casts("+strings.Join(literals, ", ")+")")
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if strings.Contains(text, "Rows Removed by Filter") || !strings.Contains(text, "(actual rows=3 loops=1)") {
		t.Errorf("the list of 3 ids under a generic plan reads rows it does not return (want an index lookup of the ids):\n%s", text)
	}
}
