package cast_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
