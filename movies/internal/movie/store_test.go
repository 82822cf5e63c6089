package movie_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/movies-microservices/movies/internal/movie"
	"github.com/movies-microservices/movies/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func ptr[T any](v T) *T { return &v }

// ignoreTimes compares movies by their content; the database sets the timestamps.
var ignoreTimes = cmpopts.IgnoreFields(movie.Movie{}, "CreatedAt", "UpdatedAt")

func TestStoreCreateGetUpdateDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := movie.NewStore(pgtest.Pool(t))

	created, err := store.Create(ctx, movie.Fields{Name: "Parasite", Plot: "Two families.", Genres: []string{"Thriller", "Drama"}, CastIDs: []int64{7, 3}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	want := movie.Movie{ID: created.ID, Name: "Parasite", Plot: "Two families.", Genres: []string{"Thriller", "Drama"}, CastIDs: []int64{7, 3}, Version: 1}
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

	// Nil lists are stored as empty ones, not NULL.
	updated, err := store.Update(ctx, created.ID, 1, movie.Fields{Name: "Gisaengchung"})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	want = movie.Movie{ID: created.ID, Name: "Gisaengchung", Genres: []string{}, CastIDs: []int64{}, Version: 2}
	if diff := cmp.Diff(want, updated, ignoreTimes); diff != "" {
		t.Errorf("Update (-want +got):\n%s", diff)
	}
	if !updated.UpdatedAt.After(created.UpdatedAt) || !updated.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("timestamps after Update = %v/%v, want created_at kept and updated_at after %v", updated.CreatedAt, updated.UpdatedAt, created.UpdatedAt)
	}

	if _, err := store.Update(ctx, created.ID, 1, movie.Fields{Name: "stale"}); !errors.Is(err, movie.ErrVersionMismatch) {
		t.Errorf("Update with stale version: err = %v, want ErrVersionMismatch", err)
	}
	if err := store.Delete(ctx, created.ID, ptr(int64(1))); !errors.Is(err, movie.ErrVersionMismatch) {
		t.Errorf("Delete with stale version: err = %v, want ErrVersionMismatch", err)
	}
	if err := store.Delete(ctx, created.ID, ptr(int64(2))); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := store.Get(ctx, created.ID); !errors.Is(err, movie.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if err := store.Delete(ctx, created.ID, nil); !errors.Is(err, movie.ErrNotFound) {
		t.Errorf("Delete twice: err = %v, want ErrNotFound", err)
	}
	if _, err := store.Update(ctx, created.ID, 2, movie.Fields{Name: "gone"}); !errors.Is(err, movie.ErrNotFound) {
		t.Errorf("Update after Delete: err = %v, want ErrNotFound", err)
	}
}

func TestStoreList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := movie.NewStore(pgtest.Pool(t))

	var ids []int64
	for _, f := range []movie.Fields{
		{Name: "Alien", Genres: []string{"Horror", "Science Fiction"}, CastIDs: []int64{1, 2}},
		{Name: "Aliens", Genres: []string{"Action", "science fiction"}, CastIDs: []int64{1}},
		{Name: "The Thing", Genres: []string{"Horror"}, CastIDs: []int64{3}},
		{Name: "Alien³", Genres: []string{"SCIENCE FICTION"}},
	} {
		m, err := store.Create(ctx, f)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		ids = append(ids, m.ID)
	}

	tests := []struct {
		name   string
		params movie.ListParams
		want   []int64
	}{
		{"all", movie.ListParams{Limit: 10}, ids},
		{"limit", movie.ListParams{Limit: 2}, ids[:2]},
		{"after", movie.ListParams{Limit: 10, After: ids[1]}, ids[2:]},
		{"genre is case-insensitive", movie.ListParams{Limit: 10, Genre: "Science fiction"}, []int64{ids[0], ids[1], ids[3]}},
		{"genre is a whole genre, not a substring", movie.ListParams{Limit: 10, Genre: "science"}, nil},
		{"cast_id", movie.ListParams{Limit: 10, CastID: 1}, ids[:2]},
		{"cast_id nobody has", movie.ListParams{Limit: 10, CastID: 99}, nil},
		{"name is a case-insensitive substring", movie.ListParams{Limit: 10, Name: "ALIEN"}, []int64{ids[0], ids[1], ids[3]}},
		{"name with LIKE wildcards is literal", movie.ListParams{Limit: 10, Name: "%"}, nil},
		{"filters combine", movie.ListParams{Limit: 10, Name: "alien", Genre: "horror", CastID: 2}, []int64{ids[0]}},
		{"filters combine with the cursor", movie.ListParams{Limit: 1, Genre: "horror", After: ids[0]}, []int64{ids[2]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			movies, err := store.List(ctx, tt.params)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			var got []int64
			for _, m := range movies {
				got = append(got, m.ID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("List(%+v) ids (-want +got):\n%s", tt.params, diff)
			}
		})
	}
}
