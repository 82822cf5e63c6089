// Package cast holds the cast domain: the Cast type, its errors and its PostgreSQL store.
package cast

import (
	"errors"
	"time"
)

// Cast is a person who plays in movies.
type Cast struct {
	ID          int64     `db:"id"`
	Name        string    `db:"name"`
	Nationality *string   `db:"nationality"`
	Version     int64     `db:"version"`
	CreatedAt   time.Time `db:"created_at"`
	UpdatedAt   time.Time `db:"updated_at"`
}

// Fields are the values a client sets on a cast.
type Fields struct {
	Name        string
	Nationality *string
}

// Fields returns the client-settable values of c.
func (c Cast) Fields() Fields {
	return Fields{Name: c.Name, Nationality: c.Nationality}
}

// ListParams selects a page of casts. Zero values mean "no filter".
type ListParams struct {
	Limit int     // page size, at least 1
	After int64   // keyset cursor: only ids greater than this
	IDs   []int64 // only these ids
	Name  string  // case-insensitive substring of the name
}

// EventDeleted is the type of the event that announces a deleted cast. Deletion is final: ids
// are never reused.
const EventDeleted = "cast.deleted"

// DeletedEvent is the payload of a cast.deleted event.
type DeletedEvent struct {
	CastID int64 `json:"cast_id"`
}

var (
	// ErrNotFound means no cast has the requested id.
	ErrNotFound = errors.New("cast not found")
	// ErrVersionMismatch means the cast changed since the version the caller based its write on.
	ErrVersionMismatch = errors.New("cast was modified concurrently")
)
