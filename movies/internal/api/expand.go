package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/movies-microservices/movies/internal/castsclient"
	"github.com/movies-microservices/movies/internal/movie"
	"github.com/movies-microservices/movies/internal/web"
	"github.com/rs/zerolog"
)

// ExpansionUnavailableHeader answers a request with ?expand= that could not be fully served: it
// names what was not expanded ("casts"), because the service that holds it did not answer. The
// movies themselves are complete.
const ExpansionUnavailableHeader = "Expansion-Unavailable"

// expansion is what ?expand= asks to embed in movies.
type expansion struct {
	casts bool
}

// parseExpand reads the values of ?expand=: each a comma-separated list of what to expand.
func parseExpand(values []string) (expansion, []web.FieldError) {
	var exp expansion
	var errs []web.FieldError
	for _, v := range values {
		for name := range strings.SplitSeq(v, ",") {
			switch strings.TrimSpace(name) {
			case "casts":
				exp.casts = true
			default:
				errs = append(errs, web.FieldError{Field: "expand", Message: strconv.Quote(name) + " cannot be expanded (known: casts)"})
			}
		}
	}
	return exp, errs
}

// castResponse is a cast of the cast service, embedded in a movie by ?expand=casts.
type castResponse struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Nationality *string   `json:"nationality"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func newCastResponse(c castsclient.Cast) castResponse {
	return castResponse{ID: c.ID, Name: c.Name, Nationality: c.Nationality, CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC()}
}

// expandCasts sets the casts of each movie on its response, in cast_ids order, from one batch
// lookup in the cast service for all of them. An id the cast service does not know (a cast just
// deleted, whose event has not arrived yet) is left out. When the cast service cannot answer, the
// movies go out without casts and the ExpansionUnavailableHeader says so: a read never fails
// because of the cast service.
func expandCasts(w http.ResponseWriter, r *http.Request, casts Casts, movies []movie.Movie, out []movieResponse) {
	var ids []int64
	for _, m := range movies {
		ids = append(ids, m.CastIDs...)
	}
	found, err := casts.Lookup(r.Context(), ids)
	if err != nil {
		zerolog.Ctx(r.Context()).Warn().Err(err).Msg("cast expansion failed; answering without it")
		w.Header().Set(ExpansionUnavailableHeader, "casts")
		return
	}
	byID := make(map[int64]castResponse, len(found))
	for _, c := range found {
		byID[c.ID] = newCastResponse(c)
	}
	for i, m := range movies {
		list := make([]castResponse, 0, len(m.CastIDs))
		for _, id := range m.CastIDs {
			if c, ok := byID[id]; ok {
				list = append(list, c)
			}
		}
		out[i].Casts = &list
	}
}
