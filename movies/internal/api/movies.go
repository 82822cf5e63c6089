package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/movies-microservices/movies/internal/idempotency"
	"github.com/movies-microservices/movies/internal/movie"
	"github.com/movies-microservices/movies/internal/web"
	"github.com/rs/zerolog"
)

// movieRequest is the body of POST and PUT, and what a PATCH must produce once merged.
// Absent (or, in a merge patch, removed) plot, genres and cast_ids mean "" and [].
type movieRequest struct {
	Name    *string  `json:"name" validate:"required,nonul,min=1,max=200"`
	Plot    *string  `json:"plot" validate:"omitnil,nonul,max=5000"`
	Genres  []string `json:"genres" validate:"max=20,uniquefold,dive,nonul,min=1,max=50"`
	CastIDs []int64  `json:"cast_ids" validate:"max=100,unique,dive,gt=0"`
}

// normalize trims the name, the plot and each genre.
func (req *movieRequest) normalize() {
	if req.Name != nil {
		*req.Name = strings.TrimSpace(*req.Name)
	}
	if req.Plot != nil {
		*req.Plot = strings.TrimSpace(*req.Plot)
	}
	for i, g := range req.Genres {
		req.Genres[i] = strings.TrimSpace(g)
	}
}

func (req movieRequest) fields() movie.Fields {
	f := movie.Fields{Name: *req.Name, Genres: req.Genres, CastIDs: req.CastIDs}
	if req.Plot != nil {
		f.Plot = *req.Plot
	}
	return f
}

// patchBase is the request a merge patch applies to: the movie as it is.
func patchBase(m movie.Movie) movieRequest {
	return movieRequest{Name: &m.Name, Plot: &m.Plot, Genres: m.Genres, CastIDs: m.CastIDs}
}

type movieResponse struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Plot      string    `json:"plot"`
	Genres    []string  `json:"genres"`
	CastIDs   []int64   `json:"cast_ids"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Casts is set only when ?expand=casts asked for it and the cast service answered.
	Casts *[]castResponse `json:"casts,omitempty"`
}

func newMovieResponse(m movie.Movie) movieResponse {
	r := movieResponse{
		ID:        m.ID,
		Name:      m.Name,
		Plot:      m.Plot,
		Genres:    m.Genres,
		CastIDs:   m.CastIDs,
		CreatedAt: m.CreatedAt.UTC(),
		UpdatedAt: m.UpdatedAt.UTC(),
	}
	// The contract has lists, never null.
	if r.Genres == nil {
		r.Genres = []string{}
	}
	if r.CastIDs == nil {
		r.CastIDs = []int64{}
	}
	return r
}

func movieLocation(id int64) string {
	return "/api/v1/movies/" + strconv.FormatInt(id, 10)
}

// writeMovie sends one movie with its ETag.
func writeMovie(w http.ResponseWriter, status int, m movie.Movie) {
	w.Header().Set("ETag", web.ETag(m.Version))
	web.WriteJSON(w, status, newMovieResponse(m))
}

var errCastsUnavailable = web.NewError(http.StatusServiceUnavailable,
	"the cast service is unavailable, so the cast ids could not be checked; nothing was written, retry later")

// checkCasts makes sure every id in ids names a cast of the cast service: it answers 422 naming
// each one that does not, and 503 if the cast service cannot tell. An empty list needs no call.
func checkCasts(ctx context.Context, casts Casts, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	missing, err := casts.Missing(ctx, ids)
	if err != nil && web.ClientGone(ctx) {
		// Nothing failed: the call was given up with the request (web.RespondError records it).
		return err
	}
	if err != nil {
		// The client gets only the 503; the cause is for the operator, logged once with the request id.
		zerolog.Ctx(ctx).Error().Err(err).Msg("cast check failed")
		return errCastsUnavailable
	}
	if len(missing) == 0 {
		return nil
	}
	return missingCastsError(missing)
}

// missingCastsError is the 422 for a write that names casts that do not exist (any more).
func missingCastsError(ids []int64) error {
	se := &web.Error{Status: http.StatusUnprocessableEntity}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = strconv.FormatInt(id, 10)
		se.Errors = append(se.Errors, web.FieldError{Field: "cast_ids", Message: fmt.Sprintf("cast %d does not exist", id)})
	}
	se.Detail = "cast_ids names casts that do not exist: " + strings.Join(names, ", ")
	return se
}

// sameIDs reports whether a and b hold the same ids, in any order.
func sameIDs(a, b []int64) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// movieCreated is the response to a create: 201 with the movie, its Location and its ETag.
func movieCreated(m movie.Movie) (idempotency.Response, error) {
	header := http.Header{}
	header.Set("Location", movieLocation(m.ID))
	header.Set("ETag", web.ETag(m.Version))
	return web.JSONResponse(http.StatusCreated, header, newMovieResponse(m))
}

// canonical is the normalised request as the fingerprint of an idempotent create sees it: an
// absent plot or list and an empty one are the same request.
func (req movieRequest) canonical() movieRequest {
	f := req.fields()
	c := movieRequest{Name: &f.Name, Plot: &f.Plot, Genres: f.Genres, CastIDs: f.CastIDs}
	if c.Genres == nil {
		c.Genres = []string{}
	}
	if c.CastIDs == nil {
		c.CastIDs = []int64{}
	}
	return c
}

// handleMovieCreate creates a movie. With an Idempotency-Key, the response is stored with the
// movie, and a retry of the same request gets it again instead of creating another movie. The cast
// check runs before the transaction: no transaction waits on a call to the cast service.
func handleMovieCreate(store Store, casts Casts, v *validator.Validate) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := web.IdempotencyKey(r)
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		var req movieRequest
		if err := web.DecodeJSON(w, r, &req, "application/json"); err != nil {
			web.RespondError(w, r, err)
			return
		}
		req.normalize()
		if err := validateRequest(v, req); err != nil {
			web.RespondError(w, r, err)
			return
		}
		var once idempotency.Key
		if key != "" {
			sum, err := web.Fingerprint(r, req.canonical())
			if err != nil {
				web.RespondError(w, r, err)
				return
			}
			once = idempotency.Key{Value: key, Fingerprint: sum}
			// A retry of a request that completed needs no cast check, and gets its response even
			// while the cast service is down.
			resp, found, err := store.FindResponse(r.Context(), once)
			if err != nil {
				web.RespondError(w, r, storeError(err))
				return
			}
			if found {
				web.WriteResponse(w, resp, true)
				return
			}
		}
		if err := checkCasts(r.Context(), casts, req.CastIDs); err != nil {
			web.RespondError(w, r, err)
			return
		}
		var (
			resp     idempotency.Response
			replayed bool
		)
		if key == "" {
			var m movie.Movie
			if m, err = store.Create(r.Context(), req.fields()); err == nil {
				resp, err = movieCreated(m)
			}
		} else {
			resp, replayed, err = store.CreateOnce(r.Context(), req.fields(), once, movieCreated)
		}
		if err != nil {
			web.RespondError(w, r, storeError(err))
			return
		}
		web.WriteResponse(w, resp, replayed)
	})
}

func handleMovieGet(store Store, casts Casts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := web.PathID(r)
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		// Other query parameters are ignored here, as they always were; only expand has a meaning.
		exp, errs := parseExpand(r.URL.Query()["expand"])
		if len(errs) > 0 {
			web.RespondError(w, r, &web.Error{Status: http.StatusBadRequest, Detail: "the query string has invalid parameters", Errors: errs})
			return
		}
		m, err := store.Get(r.Context(), id)
		if err != nil {
			web.RespondError(w, r, storeError(err))
			return
		}
		out := []movieResponse{newMovieResponse(m)}
		if exp.casts {
			expandCasts(w, r, casts, []movie.Movie{m}, out)
		}
		// The ETag is the movie's version, expanded or not: If-Match compares versions.
		w.Header().Set("ETag", web.ETag(m.Version))
		web.WriteJSON(w, http.StatusOK, out[0])
	})
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

func handleMovieList(store Store, casts Casts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params, err := parseMovieListQuery(r.URL.Query())
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		// Valid: parseMovieListQuery has checked it.
		exp, _ := parseExpand(r.URL.Query()["expand"])
		pageSize := params.Limit
		params.Limit++ // one more row tells whether a next page exists
		movies, err := store.List(r.Context(), params)
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		if len(movies) > pageSize {
			movies = movies[:pageSize]
			w.Header().Set("Link", nextLink(r.URL, movies[len(movies)-1].ID))
		}
		out := make([]movieResponse, len(movies))
		for i, m := range movies {
			out[i] = newMovieResponse(m)
		}
		if exp.casts {
			expandCasts(w, r, casts, movies, out)
		}
		web.WriteJSON(w, http.StatusOK, out)
	})
}

func parseMovieListQuery(q url.Values) (movie.ListParams, error) {
	p := movie.ListParams{Limit: defaultPageSize}
	var errs []web.FieldError
	for key, values := range q {
		switch key {
		case "limit":
			n, err := strconv.Atoi(values[0])
			if err != nil || n < 1 || n > maxPageSize {
				errs = append(errs, web.FieldError{Field: "limit", Message: "must be a whole number from 1 to " + strconv.Itoa(maxPageSize)})
			}
			p.Limit = n
		case "after":
			n, err := strconv.ParseInt(values[0], 10, 64)
			if err != nil || n < 0 {
				errs = append(errs, web.FieldError{Field: "after", Message: "must be a movie id (a whole number of 0 or more)"})
			}
			p.After = n
		case "genre":
			if msg := badText(values[0]); msg != "" {
				errs = append(errs, web.FieldError{Field: "genre", Message: msg})
			}
			// Genres are stored trimmed, so a filter with stray spaces still means the genre.
			p.Genre = strings.TrimSpace(values[0])
		case "cast_id":
			n, err := strconv.ParseInt(values[0], 10, 64)
			if err != nil || n < 1 {
				errs = append(errs, web.FieldError{Field: "cast_id", Message: "must be a cast id (a whole number of 1 or more)"})
			}
			p.CastID = n
		case "name":
			if msg := badText(values[0]); msg != "" {
				errs = append(errs, web.FieldError{Field: "name", Message: msg})
			}
			p.Name = values[0]
		case "expand":
			// What to expand is the handler's business, not the store's: only checked here.
			_, expandErrs := parseExpand(values)
			errs = append(errs, expandErrs...)
		default:
			errs = append(errs, web.FieldError{Field: key, Message: "is not a known query parameter (known: limit, after, genre, cast_id, name, expand)"})
		}
	}
	if len(errs) > 0 {
		return p, &web.Error{Status: http.StatusBadRequest, Detail: "the query string has invalid parameters", Errors: errs}
	}
	return p, nil
}

// nextLink points at the page after lastID, keeping the other query parameters.
func nextLink(u *url.URL, lastID int64) string {
	q := u.Query()
	q.Set("after", strconv.FormatInt(lastID, 10))
	next := url.URL{Path: u.Path, RawQuery: q.Encode()}
	return "<" + next.String() + `>; rel="next"`
}

func handleMovieReplace(store Store, casts Casts, v *validator.Validate) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := web.PathID(r)
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		var req movieRequest
		if err := web.DecodeJSON(w, r, &req, "application/json"); err != nil {
			web.RespondError(w, r, err)
			return
		}
		req.normalize()
		if err := validateRequest(v, req); err != nil {
			web.RespondError(w, r, err)
			return
		}
		// The cast check runs after the movie is found and If-Match holds, so that a request that
		// fails anyway does not cost the cast service a call.
		m, err := updateMovie(r, store, id, func(movie.Movie) (movie.Fields, error) {
			if err := checkCasts(r.Context(), casts, req.CastIDs); err != nil {
				return movie.Fields{}, err
			}
			return req.fields(), nil
		})
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		writeMovie(w, http.StatusOK, m)
	})
}

func handleMoviePatch(store Store, casts Casts, v *validator.Validate) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := web.PathID(r)
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		var patch any
		if err := web.DecodeJSON(w, r, &patch, "application/merge-patch+json", "application/json"); err != nil {
			web.RespondError(w, r, err)
			return
		}
		if _, ok := patch.(map[string]any); !ok {
			web.RespondError(w, r, web.NewError(http.StatusBadRequest, "a merge patch must be a JSON object"))
			return
		}
		m, err := updateMovie(r, store, id, func(cur movie.Movie) (movie.Fields, error) {
			req, err := applyMergePatch(patchBase(cur), patch)
			if err != nil {
				return movie.Fields{}, err
			}
			req.normalize()
			if err := validateRequest(v, req); err != nil {
				return movie.Fields{}, err
			}
			// Only a change of the cast list needs the cast service; edits of the other fields
			// keep working while it is down.
			if !sameIDs(cur.CastIDs, req.CastIDs) {
				if err := checkCasts(r.Context(), casts, req.CastIDs); err != nil {
					return movie.Fields{}, err
				}
			}
			return req.fields(), nil
		})
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		writeMovie(w, http.StatusOK, m)
	})
}

// maxUpdateAttempts bounds how often a write without If-Match is retried when another write
// changes the movie between our read and our update.
const maxUpdateAttempts = 3

// updateMovie reads the movie, lets change compute the new fields from it and writes them only if
// the movie is still the version read, so that no concurrent write is lost.
func updateMovie(r *http.Request, store Store, id int64, change func(movie.Movie) (movie.Fields, error)) (movie.Movie, error) {
	cond, err := web.ParseIfMatch(r.Header)
	if err != nil {
		return movie.Movie{}, err
	}
	for range maxUpdateAttempts {
		cur, err := store.Get(r.Context(), id)
		if err != nil {
			return movie.Movie{}, storeError(err)
		}
		if !cond.Matches(cur.Version) {
			return movie.Movie{}, web.ErrPreconditionFailed
		}
		f, err := change(cur)
		if err != nil {
			return movie.Movie{}, err
		}
		m, err := store.Update(r.Context(), id, cur.Version, f)
		if errors.Is(err, movie.ErrVersionMismatch) && !cond.Present {
			continue
		}
		if err != nil {
			return movie.Movie{}, storeError(err)
		}
		return m, nil
	}
	return movie.Movie{}, web.NewError(http.StatusConflict, "the movie kept changing while this request tried to update it; retry")
}

func handleMovieDelete(store Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := web.PathID(r)
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		cond, err := web.ParseIfMatch(r.Header)
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		var version *int64
		if cond.Present {
			cur, err := store.Get(r.Context(), id)
			if err != nil {
				web.RespondError(w, r, storeError(err))
				return
			}
			if !cond.Matches(cur.Version) {
				web.RespondError(w, r, web.ErrPreconditionFailed)
				return
			}
			version = &cur.Version
		}
		if err := store.Delete(r.Context(), id, version); err != nil {
			web.RespondError(w, r, storeError(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// storeError maps the store's sentinel errors to responses.
func storeError(err error) error {
	var deleted *movie.DeletedCastsError
	switch {
	case errors.As(err, &deleted):
		// To the client a deleted cast is one that does not exist, as the cast service says too.
		return missingCastsError(deleted.IDs)
	case errors.Is(err, movie.ErrNotFound):
		return web.NewError(http.StatusNotFound, "no movie has this id")
	case errors.Is(err, movie.ErrVersionMismatch):
		return web.ErrPreconditionFailed
	case errors.Is(err, idempotency.ErrKeyReused):
		return web.ErrIdempotencyKeyReused
	default:
		return err
	}
}

// applyMergePatch applies an RFC 7396 merge patch to current and decodes the result strictly into a
// fresh value, so that unknown fields and wrong types in the patch are reported like those of a full body.
func applyMergePatch[T any](current T, patch any) (T, error) {
	var out T
	doc, err := json.Marshal(current)
	if err != nil {
		return out, err
	}
	// Numbers stay json.Number: through float64, cast ids above 2^53 would change.
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var target any
	if err := dec.Decode(&target); err != nil {
		return out, err
	}
	merged, err := json.Marshal(mergePatch(target, patch))
	if err != nil {
		return out, err
	}
	err = web.DecodeStrict(bytes.NewReader(merged), &out)
	return out, err
}

func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = mergePatch(t[k], v)
		}
	}
	return t
}
