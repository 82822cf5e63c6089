package cast_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/casts/internal/cast"
	"github.com/movies-microservices/casts/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func ptr[T any](v T) *T { return &v }

// ignoreTimes compares casts by their content; the database sets the timestamps.
var ignoreTimes = cmpopts.IgnoreFields(cast.Cast{}, "CreatedAt", "UpdatedAt")

func TestStoreCreateGetUpdateDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := cast.NewStore(pgtest.Pool(t))

	created, err := store.Create(ctx, cast.Fields{Name: "Meryl Streep", Nationality: ptr("American")})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	want := cast.Cast{ID: created.ID, Name: "Meryl Streep", Nationality: ptr("American"), Version: 1}
	if diff := cmp.Diff(want, created, ignoreTimes); diff != "" {
		t.Errorf("Create (-want +got):\n%s", diff)
	}

	got, err := store.Get(ctx, created.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}

	updated, err := store.Update(ctx, created.ID, 1, cast.Fields{Name: "M. Streep"})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	want = cast.Cast{ID: created.ID, Name: "M. Streep", Version: 2}
	if diff := cmp.Diff(want, updated, ignoreTimes); diff != "" {
		t.Errorf("Update (-want +got):\n%s", diff)
	}
	if !updated.UpdatedAt.After(created.UpdatedAt) {
		t.Errorf("UpdatedAt = %v, want after %v", updated.UpdatedAt, created.UpdatedAt)
	}

	if _, err := store.Update(ctx, created.ID, 1, cast.Fields{Name: "stale"}); !errors.Is(err, cast.ErrVersionMismatch) {
		t.Errorf("Update with stale version: err = %v, want ErrVersionMismatch", err)
	}
	if err := store.Delete(ctx, created.ID, ptr(int64(1))); !errors.Is(err, cast.ErrVersionMismatch) {
		t.Errorf("Delete with stale version: err = %v, want ErrVersionMismatch", err)
	}
	if err := store.Delete(ctx, created.ID, ptr(int64(2))); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := store.Get(ctx, created.ID); !errors.Is(err, cast.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if err := store.Delete(ctx, created.ID, nil); !errors.Is(err, cast.ErrNotFound) {
		t.Errorf("Delete twice: err = %v, want ErrNotFound", err)
	}
	if _, err := store.Update(ctx, created.ID, 2, cast.Fields{Name: "gone"}); !errors.Is(err, cast.ErrNotFound) {
		t.Errorf("Update after Delete: err = %v, want ErrNotFound", err)
	}
}

func TestStoreList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := cast.NewStore(pgtest.Pool(t))

	var ids []int64
	for _, name := range []string{"Anna Karina", "Jean-Paul Belmondo", "ANNE Parillaud", "Jeanne Moreau"} {
		c, err := store.Create(ctx, cast.Fields{Name: name})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		ids = append(ids, c.ID)
	}

	tests := []struct {
		name   string
		params cast.ListParams
		want   []int64
	}{
		{"all", cast.ListParams{Limit: 10}, ids},
		{"limit", cast.ListParams{Limit: 2}, ids[:2]},
		{"after", cast.ListParams{Limit: 10, After: ids[1]}, ids[2:]},
		{"ids", cast.ListParams{Limit: 10, IDs: []int64{ids[3], ids[0], 999999}}, []int64{ids[0], ids[3]}},
		{"name is a case-insensitive substring", cast.ListParams{Limit: 10, Name: "ann"}, []int64{ids[0], ids[2], ids[3]}},
		{"name with LIKE wildcards is literal", cast.ListParams{Limit: 10, Name: "%"}, nil},
		{"filters combine", cast.ListParams{Limit: 10, Name: "jean", After: ids[1]}, []int64{ids[3]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			casts, err := store.List(ctx, tt.params)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			var got []int64
			for _, c := range casts {
				got = append(got, c.ID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("List(%+v) ids (-want +got):\n%s", tt.params, diff)
			}
		})
	}
}

// outboxEvents returns the type and payload of every pending event.
func outboxEvents(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, _ := pool.Query(context.Background(), "SELECT type || ' ' || payload::text FROM outbox ORDER BY id")
	events, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// Deleting a cast writes its cast.deleted event in the same transaction: a delete that fails, for
// whatever reason, leaves no event, and an event that cannot be written undoes the delete.
func TestStoreDeleteWritesEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	store := cast.NewStore(pool)
	kept, err := store.Create(ctx, cast.Fields{Name: "Kept"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := store.Create(ctx, cast.Fields{Name: "Gone"})
	if err != nil {
		t.Fatal(err)
	}

	if err := store.Delete(ctx, kept.ID, ptr(int64(7))); !errors.Is(err, cast.ErrVersionMismatch) {
		t.Errorf("Delete with a stale version: err = %v, want ErrVersionMismatch", err)
	}
	if err := store.Delete(ctx, 999999, nil); !errors.Is(err, cast.ErrNotFound) {
		t.Errorf("Delete of a missing cast: err = %v, want ErrNotFound", err)
	}
	if got := outboxEvents(t, pool); len(got) != 0 {
		t.Errorf("failed deletes wrote events: %v", got)
	}

	if err := store.Delete(ctx, gone.ID, nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	want := []string{fmt.Sprintf(`cast.deleted {"cast_id": %d}`, gone.ID)}
	if diff := cmp.Diff(want, outboxEvents(t, pool)); diff != "" {
		t.Errorf("events after a delete (-want +got):\n%s", diff)
	}

	// From now on no event can be written: the delete must fail with it, and change nothing.
	if _, err := pool.Exec(ctx, "ALTER TABLE outbox ADD CONSTRAINT no_more_events CHECK (false) NOT VALID"); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, kept.ID, nil); err == nil {
		t.Fatal("Delete succeeded although its event could not be written")
	}
	if _, err := store.Get(ctx, kept.ID); err != nil {
		t.Errorf("the cast is gone although its event could not be written: %v", err)
	}
}
