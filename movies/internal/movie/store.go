package movie

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store keeps movies in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a store on pool.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

const movieColumns = `id, name, plot, genres, cast_ids, version, created_at, updated_at`

const sqlInsertMovie = `
INSERT INTO movies (name, plot, genres, cast_ids) VALUES ($1, $2, $3, $4)
RETURNING ` + movieColumns

// Create stores a new movie.
func (s *Store) Create(ctx context.Context, f Fields) (Movie, error) {
	return s.one(ctx, "create movie", sqlInsertMovie, f.Name, f.Plot, nonNil(f.Genres), nonNil(f.CastIDs))
}

const sqlSelectMovie = `SELECT ` + movieColumns + ` FROM movies WHERE id = $1`

// Get returns the movie with id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id int64) (Movie, error) {
	return s.one(ctx, "get movie", sqlSelectMovie, id)
}

// The filters are NULL when unused, so one static statement serves every combination. The genre
// and cast_id tests are written as containment (@>) so that the GIN indexes can answer them.
const sqlListMovies = `
SELECT ` + movieColumns + ` FROM movies
WHERE id > $1
  AND ($2::text IS NULL OR movie_genre_keys(genres) @> ARRAY[lower($2)])
  AND ($3::bigint IS NULL OR cast_ids @> ARRAY[$3::bigint])
  AND ($4::text IS NULL OR strpos(lower(name), lower($4)) > 0)
ORDER BY id
LIMIT $5`

// List returns up to p.Limit movies in id order.
func (s *Store) List(ctx context.Context, p ListParams) ([]Movie, error) {
	rows, err := s.pool.Query(ctx, sqlListMovies, p.After, nullIfZero(p.Genre), nullIfZero(p.CastID), nullIfZero(p.Name), p.Limit)
	if err != nil {
		return nil, fmt.Errorf("list movies: %w", err)
	}
	movies, err := pgx.CollectRows(rows, pgx.RowToStructByName[Movie])
	if err != nil {
		return nil, fmt.Errorf("list movies: %w", err)
	}
	return movies, nil
}

const sqlUpdateMovie = `
UPDATE movies SET name = $2, plot = $3, genres = $4, cast_ids = $5, version = version + 1, updated_at = now()
WHERE id = $1 AND version = $6
RETURNING ` + movieColumns

// Update replaces the fields of movie id if its version is still version.
// It returns ErrNotFound if the movie is gone and ErrVersionMismatch if it changed meanwhile.
func (s *Store) Update(ctx context.Context, id, version int64, f Fields) (Movie, error) {
	m, err := s.one(ctx, "update movie", sqlUpdateMovie, id, f.Name, f.Plot, nonNil(f.Genres), nonNil(f.CastIDs), version)
	if errors.Is(err, ErrNotFound) {
		return Movie{}, s.whyNoRow(ctx, id)
	}
	return m, err
}

const sqlDeleteMovie = `DELETE FROM movies WHERE id = $1 AND ($2::bigint IS NULL OR version = $2)`

// Delete removes movie id; with a non-nil version only if the movie still has that version.
func (s *Store) Delete(ctx context.Context, id int64, version *int64) error {
	tag, err := s.pool.Exec(ctx, sqlDeleteMovie, id, version)
	if err != nil {
		return fmt.Errorf("delete movie: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return s.whyNoRow(ctx, id)
	}
	return nil
}

// whyNoRow tells apart the two reasons a conditional write matched nothing.
func (s *Store) whyNoRow(ctx context.Context, id int64) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	return ErrVersionMismatch
}

func (s *Store) one(ctx context.Context, what, sql string, args ...any) (Movie, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return Movie{}, fmt.Errorf("%s: %w", what, err)
	}
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Movie])
	if errors.Is(err, pgx.ErrNoRows) {
		return Movie{}, ErrNotFound
	}
	if err != nil {
		return Movie{}, fmt.Errorf("%s: %w", what, err)
	}
	return m, nil
}

// nonNil turns a nil slice into an empty one: pgx sends nil as NULL, and the array columns are NOT NULL.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// nullIfZero sends an unused filter as NULL, which the list statement reads as "no filter".
func nullIfZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}
