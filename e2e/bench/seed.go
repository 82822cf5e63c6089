package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"

	"github.com/jackc/pgx/v5"
)

// idRange is what the scenarios draw ids from: movies 1..maxMovie and casts
// 1..maxCast exist (ids are identity columns of fresh tables).
type idRange struct {
	maxMovie, maxCast int64
}

// databaseURL is adminURL (the cluster's superuser URL) pointed at database.
func databaseURL(adminURL, database string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", fmt.Errorf("bench: parse the database admin URL: %w", err)
	}
	u.Path = "/" + database
	return u.String(), nil
}

var (
	seedNationalities = []string{"French", "American", "Japanese", "Indian", "Nigerian", "Brazilian", "Korean", "Italian"}
	seedGenres        = []string{"Drama", "Comedy", "Thriller", "Documentary", "Animation", "Crime", "Romance", "Horror"}
)

// seed writes casts and movies straight into the services' databases as the
// superuser, with COPY: through the API, 20,000 writes would take a minute of
// the run, and what the benchmark measures is reading and writing them after.
// The tables are the services' own (their migrations ran at start-up); rows
// get ids 1..n because the tables are new. Each movie has 1 to 10 distinct
// cast ids, all of seeded casts, and is valid by the API's rules, so that
// PATCH (which validates the merged movie) accepts it.
func seed(ctx context.Context, adminURL string, casts, movies int) (idRange, error) {
	rng := rand.New(rand.NewPCG(1, 2)) // the same data set every run

	castRows := make([][]any, casts)
	for i := range castRows {
		castRows[i] = []any{fmt.Sprintf("Seed cast %d", i+1), seedNationalities[rng.IntN(len(seedNationalities))]}
	}
	maxCast, err := copyRows(ctx, adminURL, "casts", "casts", []string{"name", "nationality"}, castRows)
	if err != nil {
		return idRange{}, err
	}
	if maxCast != int64(casts) {
		return idRange{}, fmt.Errorf("bench: seeded %d casts but the largest id is %d: the casts table was not new", casts, maxCast)
	}

	movieRows := make([][]any, movies)
	for i := range movieRows {
		ids := make([]int64, 0, 10)
		for n := 1 + rng.IntN(10); len(ids) < n; {
			id := 1 + rng.Int64N(maxCast)
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		first := rng.IntN(len(seedGenres))
		genres := []string{seedGenres[first], seedGenres[(first+1+rng.IntN(len(seedGenres)-1))%len(seedGenres)]}
		movieRows[i] = []any{
			fmt.Sprintf("Seed movie %d", i+1),
			fmt.Sprintf("Plot of seed movie %d, made up for the benchmark.", i+1),
			genres, ids,
		}
	}
	maxMovie, err := copyRows(ctx, adminURL, "movies", "movies", []string{"name", "plot", "genres", "cast_ids"}, movieRows)
	if err != nil {
		return idRange{}, err
	}
	if maxMovie != int64(movies) {
		return idRange{}, fmt.Errorf("bench: seeded %d movies but the largest id is %d: the movies table was not new", movies, maxMovie)
	}
	return idRange{maxMovie: maxMovie, maxCast: maxCast}, nil
}

// copyRows copies rows into table of database, analyses it so that the
// planner knows its size, and returns its largest id.
func copyRows(ctx context.Context, adminURL, database, table string, columns []string, rows [][]any) (int64, error) {
	dbURL, err := databaseURL(adminURL, database)
	if err != nil {
		return 0, err
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, fmt.Errorf("bench: seed %s: connect: %w", database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromRows(rows)); err != nil {
		return 0, fmt.Errorf("bench: seed %s: copy: %w", table, err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE "+pgx.Identifier{table}.Sanitize()); err != nil {
		return 0, fmt.Errorf("bench: seed %s: analyze: %w", table, err)
	}
	var maxID int64
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&maxID); err != nil {
		return 0, fmt.Errorf("bench: seed %s: %w", table, err)
	}
	return maxID, nil
}
