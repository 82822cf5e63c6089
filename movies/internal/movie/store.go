package movie

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/movies-microservices/movies/internal/idempotency"
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

// Create stores a new movie, and returns once it is committed. It returns a *DeletedCastsError if
// f names casts the cast service has deleted.
func (s *Store) Create(ctx context.Context, f Fields) (Movie, error) {
	return s.write(ctx, "create movie", f.CastIDs, sqlInsertMovie, f.Name, f.Plot, nonNil(f.Genres), nonNil(f.CastIDs))
}

// CreateOnce is Create for a request that carries an idempotency key. One transaction claims the
// key, inserts the movie and stores the response that respond makes of it, so the stored response
// exists exactly when the movie does; it returns once both are committed. A retry of a request
// that completed creates nothing and gets the stored response, with replayed set; the key used with
// another request is idempotency.ErrKeyReused. A failure leaves the key unused.
func (s *Store) CreateOnce(ctx context.Context, f Fields, key idempotency.Key, respond func(Movie) (idempotency.Response, error)) (resp idempotency.Response, replayed bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		stored, replay, err := idempotency.Claim(ctx, tx, key)
		if err != nil || replay {
			resp, replayed = stored, replay
			return err
		}
		m, err := writeIn(ctx, tx, "create movie", f.CastIDs, sqlInsertMovie, f.Name, f.Plot, nonNil(f.Genres), nonNil(f.CastIDs))
		if err != nil {
			return err
		}
		if resp, err = respond(m); err != nil {
			return err
		}
		return idempotency.Save(ctx, tx, key, resp)
	})
	if err != nil {
		return idempotency.Response{}, false, err
	}
	return resp, replayed, nil
}

// FindResponse returns the response stored by CreateOnce for key, if a request with key completed;
// see idempotency.Find.
func (s *Store) FindResponse(ctx context.Context, key idempotency.Key) (idempotency.Response, bool, error) {
	return idempotency.Find(ctx, s.pool, key)
}

const sqlSelectMovie = `SELECT ` + movieColumns + ` FROM movies WHERE id = $1`

// Get returns the movie with id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id int64) (Movie, error) {
	return one(ctx, s.pool, "get movie", sqlSelectMovie, id)
}

// listMoviesSQL is the list statement for the filters p uses, and its arguments. Each combination
// of filters is a statement of its own, never "($n IS NULL OR ...)": pgx prepares every statement,
// and after a few runs PostgreSQL may switch a prepared statement to a generic plan, which cannot
// know that a NULL filter is off and so cannot pick the index for the filter that is on. The
// genre and cast tests are written as containment (@>) so that the GIN indexes can answer them.
func listMoviesSQL(p ListParams) (string, []any) {
	var b strings.Builder
	args := []any{p.After}
	b.WriteString("SELECT " + movieColumns + " FROM movies WHERE id > $1")
	if p.Genre != "" {
		args = append(args, p.Genre)
		fmt.Fprintf(&b, " AND movie_genre_keys(genres) @> ARRAY[lower($%d)]", len(args))
	}
	if p.CastID != 0 {
		args = append(args, p.CastID)
		fmt.Fprintf(&b, " AND cast_ids @> ARRAY[$%d::bigint]", len(args))
	}
	if p.Name != "" {
		args = append(args, p.Name)
		fmt.Fprintf(&b, " AND strpos(lower(name), lower($%d)) > 0", len(args))
	}
	args = append(args, p.Limit)
	fmt.Fprintf(&b, " ORDER BY id LIMIT $%d", len(args))
	return b.String(), args
}

// List returns up to p.Limit movies in id order.
func (s *Store) List(ctx context.Context, p ListParams) ([]Movie, error) {
	sql, args := listMoviesSQL(p)
	rows, err := s.pool.Query(ctx, sql, args...)
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
// It returns ErrNotFound if the movie is gone, ErrVersionMismatch if it changed meanwhile, and a
// *DeletedCastsError if f names casts the cast service has deleted.
func (s *Store) Update(ctx context.Context, id, version int64, f Fields) (Movie, error) {
	m, err := s.write(ctx, "update movie", f.CastIDs, sqlUpdateMovie, id, f.Name, f.Plot, nonNil(f.Genres), nonNil(f.CastIDs), version)
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

// castLockSpace is the first key of the advisory locks taken per cast id; the second is a hash of
// the id. A movie write takes them shared for the casts it names, the removal of a deleted cast
// exclusively for that cast, so that one of the two always sees the other: either the write finds
// the cast deleted, or the removal finds the written movie. (Two ids with the same hash only make
// one wait for the other.)
const castLockSpace = 0x63617374 // "cast"

const (
	sqlLockCastsShared = `SELECT count(pg_advisory_xact_lock_shared($1, hashint8(id))) FROM unnest($2::bigint[]) AS id`
	sqlDeletedAmong    = `SELECT cast_id FROM deleted_casts WHERE cast_id = ANY ($1) ORDER BY cast_id`
)

// write runs sql, which writes one movie naming castIDs and returns it, unless one of castIDs was
// deleted: see writeIn. Without cast ids it needs no transaction of its own. With them, the
// transaction's begin travels in the same batch as the rest, so the write takes two round trips
// (the batch, then the commit) instead of five (begin, lock, check, write, commit).
func (s *Store) write(ctx context.Context, what string, castIDs []int64, sql string, args ...any) (Movie, error) {
	if len(castIDs) == 0 {
		return one(ctx, s.pool, what, sql, args...)
	}
	batch := &pgx.Batch{}
	batch.BeginTx(pgx.TxOptions{})
	queueWrite(batch, castIDs, sql, args...)
	results := s.pool.SendBatch(ctx, batch)
	tx := results.Tx()
	var m Movie
	_, err := results.Exec() // the begin; it fails too when no connection could be had
	if err != nil {
		err = fmt.Errorf("%s: begin transaction: %w", what, err)
	} else {
		m, err = readWrite(results, what)
	}
	if closeErr := results.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("%s: finish batch: %w", what, closeErr)
	}
	if err == nil {
		if err = tx.Commit(ctx); err == nil {
			return m, nil
		}
		err = fmt.Errorf("%s: commit: %w", what, err)
	}
	// As pgx.BeginFunc does: with ctx done, pgx closes the connection instead, which ends the
	// transaction as well.
	tx.Rollback(ctx)
	return Movie{}, err
}

// writeIn runs sql in tx, which writes one movie naming castIDs and returns it, unless one of
// castIDs was deleted: the check and the write share the transaction and the casts' locks.
func writeIn(ctx context.Context, tx pgx.Tx, what string, castIDs []int64, sql string, args ...any) (Movie, error) {
	if len(castIDs) == 0 {
		return one(ctx, tx, what, sql, args...)
	}
	batch := &pgx.Batch{}
	queueWrite(batch, castIDs, sql, args...)
	results := tx.SendBatch(ctx, batch)
	defer results.Close()
	m, err := readWrite(results, what)
	if err != nil {
		return Movie{}, err
	}
	return m, results.Close()
}

// queueWrite queues the casts' shared locks, the deleted-cast check and the write, which
// PostgreSQL runs one after the other: the check reads after the locks are held, so a removal that
// held one has committed by then, and the check (READ COMMITTED) sees it. They go in one round
// trip, so when a cast was deleted the write has run as well: readWrite's error makes the caller
// roll it back. Such a refused insert still uses up a movie id (ids have gaps anyway) and, for an
// update, holds the row's lock until the rollback; refusals are rare, the round trips saved are on
// every write.
func queueWrite(batch *pgx.Batch, castIDs []int64, sql string, args ...any) {
	batch.Queue(sqlLockCastsShared, castLockSpace, castIDs)
	batch.Queue(sqlDeletedAmong, castIDs)
	batch.Queue(sql, args...)
}

// readWrite reads the results of queueWrite's statements: the movie written, or a
// *DeletedCastsError, ErrNotFound (the write matched no row) or another error.
func readWrite(results pgx.BatchResults, what string) (Movie, error) {
	if _, err := results.Exec(); err != nil {
		return Movie{}, fmt.Errorf("%s: lock casts: %w", what, err)
	}
	rows, _ := results.Query()
	deleted, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return Movie{}, fmt.Errorf("%s: check deleted casts: %w", what, err)
	}
	if len(deleted) > 0 {
		return Movie{}, &DeletedCastsError{IDs: deleted}
	}
	rows, _ = results.Query()
	return collectMovie(rows, what)
}

const (
	sqlRecordEvent       = `INSERT INTO processed_events (event_id, type) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING`
	sqlLockCastExclusive = `SELECT pg_advisory_xact_lock($1, hashint8($2::bigint))`
	sqlRecordDeletedCast = `INSERT INTO deleted_casts (cast_id, deleted_at) VALUES ($1, $2) ON CONFLICT (cast_id) DO NOTHING`
	sqlRemoveCast        = `
UPDATE movies SET cast_ids = array_remove(cast_ids, $1), version = version + 1, updated_at = now()
WHERE cast_ids @> ARRAY[$1::bigint]`
)

// ApplyCastDeleted applies a cast.deleted event, in one transaction: it removes the cast from
// every movie (each changed movie gets a new version) and remembers it as deleted, so that later
// writes naming it fail. An event applied before changes nothing and reports Duplicate; events of
// several deleted casts may come in any order.
func (s *Store) ApplyCastDeleted(ctx context.Context, e CastDeleted) (Applied, error) {
	var applied Applied
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A concurrent delivery of the same event waits here for this one to end, then finds it.
		tag, err := tx.Exec(ctx, sqlRecordEvent, e.EventID, EventCastDeleted)
		if err != nil {
			return fmt.Errorf("record event %s: %w", e.EventID, err)
		}
		if tag.RowsAffected() == 0 {
			applied.Duplicate = true
			return nil
		}
		if _, err := tx.Exec(ctx, sqlLockCastExclusive, castLockSpace, e.CastID); err != nil {
			return fmt.Errorf("lock cast %d: %w", e.CastID, err)
		}
		if _, err := tx.Exec(ctx, sqlRecordDeletedCast, e.CastID, e.OccurredAt); err != nil {
			return fmt.Errorf("record deleted cast %d: %w", e.CastID, err)
		}
		tag, err = tx.Exec(ctx, sqlRemoveCast, e.CastID)
		if err != nil {
			return fmt.Errorf("remove cast %d from movies: %w", e.CastID, err)
		}
		applied.MoviesChanged = tag.RowsAffected()
		return nil
	})
	return applied, err
}

// querier is what one needs: a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func one(ctx context.Context, q querier, what, sql string, args ...any) (Movie, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return Movie{}, fmt.Errorf("%s: %w", what, err)
	}
	return collectMovie(rows, what)
}

// collectMovie reads the one movie rows hold; none is ErrNotFound.
func collectMovie(rows pgx.Rows, what string) (Movie, error) {
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
