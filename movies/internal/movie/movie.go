// Package movie holds the movie domain: the Movie type, its errors and its PostgreSQL store.
package movie

import (
	"errors"
	"fmt"
	"time"
)

// Movie is a film with the casts who play in it.
type Movie struct {
	ID     int64    `db:"id"`
	Name   string   `db:"name"`
	Plot   string   `db:"plot"`
	Genres []string `db:"genres"`
	// CastIDs are ids of the cast service; this service checks them there when they are written.
	CastIDs   []int64   `db:"cast_ids"`
	Version   int64     `db:"version"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

// Fields are the values a client sets on a movie.
type Fields struct {
	Name    string
	Plot    string
	Genres  []string
	CastIDs []int64
}

// Fields returns the client-settable values of m.
func (m Movie) Fields() Fields {
	return Fields{Name: m.Name, Plot: m.Plot, Genres: m.Genres, CastIDs: m.CastIDs}
}

// ListParams selects a page of movies. Zero values mean "no filter".
type ListParams struct {
	Limit  int    // page size, at least 1
	After  int64  // keyset cursor: only ids greater than this
	Genre  string // only movies with this genre, compared case-insensitively
	CastID int64  // only movies whose cast includes this cast id
	Name   string // case-insensitive substring of the name
}

var (
	// ErrNotFound means no movie has the requested id.
	ErrNotFound = errors.New("movie not found")
	// ErrVersionMismatch means the movie changed since the version the caller based its write on.
	ErrVersionMismatch = errors.New("movie was modified concurrently")
)

// DeletedCastsError means a write named casts that the cast service has deleted.
type DeletedCastsError struct {
	IDs []int64 // ascending
}

func (e *DeletedCastsError) Error() string {
	return fmt.Sprintf("the cast service deleted casts %v", e.IDs)
}

// EventCastDeleted is the type of the cast service's event that announces a deleted cast.
const EventCastDeleted = "cast.deleted"

// CastDeleted is the content of a cast.deleted event: the cast service deleted cast CastID for
// good (it never reuses ids).
type CastDeleted struct {
	EventID    string // a UUID, the same on every delivery of the event
	CastID     int64
	OccurredAt time.Time
}

// Applied says what applying an event changed.
type Applied struct {
	// Duplicate means the event had been applied before, so nothing changed this time.
	Duplicate bool
	// MoviesChanged counts the movies the event changed.
	MoviesChanged int64
}
