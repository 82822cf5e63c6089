package movie_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/movies/internal/movie"
	"github.com/movies-microservices/movies/internal/postgres/pgtest"
)

func TestStoreApplyCastDeleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := movie.NewStore(pgtest.Pool(t))
	create := func(castIDs ...int64) movie.Movie {
		t.Helper()
		m, err := store.Create(ctx, movie.Fields{Name: fmt.Sprint(castIDs), CastIDs: castIDs})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		return m
	}
	a, b, c := create(7, 8, 9), create(8), create(9)

	event := movie.CastDeleted{EventID: "6f1c3a52-8d0e-4b8a-9a57-0d6f3e2b7c11", CastID: 8, OccurredAt: time.Now()}
	applied, err := store.ApplyCastDeleted(ctx, event)
	if err != nil {
		t.Fatalf("ApplyCastDeleted: %v", err)
	}
	if diff := cmp.Diff(movie.Applied{MoviesChanged: 2}, applied); diff != "" {
		t.Errorf("first application (-want +got):\n%s", diff)
	}
	applied, err = store.ApplyCastDeleted(ctx, event)
	if err != nil {
		t.Fatalf("ApplyCastDeleted again: %v", err)
	}
	if diff := cmp.Diff(movie.Applied{Duplicate: true}, applied); diff != "" {
		t.Errorf("second application (-want +got):\n%s", diff)
	}

	for _, tt := range []struct {
		before      movie.Movie
		castIDs     []int64
		wantVersion int64
	}{
		{a, []int64{7, 9}, 2},
		{b, []int64{}, 2},
		{c, []int64{9}, 1},
	} {
		got, err := store.Get(ctx, tt.before.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.castIDs, got.CastIDs); diff != "" || got.Version != tt.wantVersion {
			t.Errorf("movie %v: version %d (want %d), cast_ids (-want +got):\n%s", tt.before.CastIDs, got.Version, tt.wantVersion, diff)
		}
		if tt.wantVersion > 1 && !got.UpdatedAt.After(tt.before.UpdatedAt) {
			t.Errorf("movie %v: updated_at not moved on", tt.before.CastIDs)
		}
	}

	// Writes naming the deleted cast are refused and change nothing; others go through.
	var deleted *movie.DeletedCastsError
	if _, err := store.Create(ctx, movie.Fields{Name: "late", CastIDs: []int64{9, 8}}); !errors.As(err, &deleted) || !cmp.Equal(deleted.IDs, []int64{8}) {
		t.Errorf("Create naming a deleted cast: err = %v, want a DeletedCastsError for 8", err)
	}
	// The insert went to PostgreSQL in the same batch as the check: the refusal must roll it back.
	if late, err := store.List(ctx, movie.ListParams{Limit: 10, Name: "late"}); err != nil || len(late) != 0 {
		t.Errorf("a refused Create left movies %+v (err %v)", late, err)
	}
	if _, err := store.Update(ctx, c.ID, c.Version, movie.Fields{Name: "c", CastIDs: []int64{8}}); !errors.As(err, &deleted) {
		t.Errorf("Update naming a deleted cast: err = %v, want a DeletedCastsError", err)
	}
	if got, _ := store.Get(ctx, c.ID); got.Version != 1 {
		t.Errorf("a refused Update changed the movie: %+v", got)
	}
	if _, err := store.Update(ctx, c.ID, c.Version, movie.Fields{Name: "c", CastIDs: []int64{9, 10}}); err != nil {
		t.Errorf("Update naming live casts: %v", err)
	}
}

// Movie writes racing with the deletion of a cast they name: whatever the interleaving, once both
// are done no movie names the cast. Each write either is refused or is seen by the removal.
func TestStoreDeletedCastRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := movie.NewStore(pgtest.Pool(t))
	const writers = 8
	for round := range int64(10) {
		castID := 1000 + round
		existing, err := store.Create(ctx, movie.Fields{Name: "existing", CastIDs: []int64{1}})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, writers+1)
		for i := range writers {
			wg.Go(func() {
				var err error
				if i%2 == 0 {
					_, err = store.Create(ctx, movie.Fields{Name: "racer", CastIDs: []int64{1, castID}})
				} else {
					_, err = store.Update(ctx, existing.ID, existing.Version, movie.Fields{Name: "existing", CastIDs: []int64{castID, 1}})
				}
				var deleted *movie.DeletedCastsError
				if err != nil && !errors.As(err, &deleted) && !errors.Is(err, movie.ErrVersionMismatch) {
					errs <- err
				}
			})
		}
		wg.Go(func() {
			_, err := store.ApplyCastDeleted(ctx, movie.CastDeleted{EventID: fmt.Sprintf("00000000-0000-4000-8000-%012d", castID), CastID: castID, OccurredAt: time.Now()})
			if err != nil {
				errs <- err
			}
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
		left, err := store.List(ctx, movie.ListParams{Limit: 1000, CastID: castID})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Fatalf("round %d: %d movies name cast %d after its deletion was applied", round, len(left), castID)
		}
	}
}
