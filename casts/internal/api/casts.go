package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/movies-microservices/casts/internal/cast"
	"github.com/movies-microservices/casts/internal/idempotency"
	"github.com/movies-microservices/casts/internal/web"
)

// castRequest is the body of POST and PUT, and what a PATCH must produce once merged.
type castRequest struct {
	Name        *string `json:"name" validate:"required,nonul,min=1,max=100"`
	Nationality *string `json:"nationality" validate:"omitnil,nonul,max=100"`
}

// fields normalises the request: names are trimmed, and a blank nationality means none.
func (req *castRequest) normalize() {
	if req.Name != nil {
		*req.Name = strings.TrimSpace(*req.Name)
	}
	if req.Nationality != nil {
		if n := strings.TrimSpace(*req.Nationality); n == "" {
			req.Nationality = nil
		} else {
			req.Nationality = &n
		}
	}
}

func (req castRequest) fields() cast.Fields {
	return cast.Fields{Name: *req.Name, Nationality: req.Nationality}
}

type castResponse struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Nationality *string   `json:"nationality"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func newCastResponse(c cast.Cast) castResponse {
	return castResponse{
		ID:          c.ID,
		Name:        c.Name,
		Nationality: c.Nationality,
		CreatedAt:   c.CreatedAt.UTC(),
		UpdatedAt:   c.UpdatedAt.UTC(),
	}
}

func castLocation(id int64) string {
	return "/api/v1/casts/" + strconv.FormatInt(id, 10)
}

// writeCast sends one cast with its ETag.
func writeCast(w http.ResponseWriter, status int, c cast.Cast) {
	w.Header().Set("ETag", web.ETag(c.Version))
	web.WriteJSON(w, status, newCastResponse(c))
}

// castCreated is the response to a create: 201 with the cast, its Location and its ETag.
func castCreated(c cast.Cast) (idempotency.Response, error) {
	header := http.Header{}
	header.Set("Location", castLocation(c.ID))
	header.Set("ETag", web.ETag(c.Version))
	return web.JSONResponse(http.StatusCreated, header, newCastResponse(c))
}

// handleCastCreate creates a cast. With an Idempotency-Key, the response is stored with the cast,
// and a retry of the same request gets it again instead of creating another cast.
func handleCastCreate(store Store, v *validator.Validate) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := web.IdempotencyKey(r)
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		var req castRequest
		if err := web.DecodeJSON(w, r, &req, "application/json"); err != nil {
			web.RespondError(w, r, err)
			return
		}
		req.normalize()
		if err := validateRequest(v, req); err != nil {
			web.RespondError(w, r, err)
			return
		}
		var (
			resp     idempotency.Response
			replayed bool
		)
		if key == "" {
			var c cast.Cast
			if c, err = store.Create(r.Context(), req.fields()); err == nil {
				resp, err = castCreated(c)
			}
		} else {
			// The normalised request, in its wire form: bodies that differ only in spacing, key
			// order or blanks trimmed away are the same request.
			var sum []byte
			if sum, err = web.Fingerprint(r, req); err == nil {
				resp, replayed, err = store.CreateOnce(r.Context(), req.fields(), idempotency.Key{Value: key, Fingerprint: sum}, castCreated)
			}
		}
		if err != nil {
			web.RespondError(w, r, storeError(err))
			return
		}
		web.WriteResponse(w, resp, replayed)
	})
}

func handleCastGet(store Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := web.PathID(r)
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		c, err := store.Get(r.Context(), id)
		if err != nil {
			web.RespondError(w, r, storeError(err))
			return
		}
		writeCast(w, http.StatusOK, c)
	})
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

func handleCastList(store Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params, err := parseCastListQuery(r.URL.Query())
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		pageSize := params.Limit
		params.Limit++ // one more row tells whether a next page exists
		casts, err := store.List(r.Context(), params)
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		if len(casts) > pageSize {
			casts = casts[:pageSize]
			w.Header().Set("Link", nextLink(r.URL, casts[len(casts)-1].ID))
		}
		out := make([]castResponse, len(casts))
		for i, c := range casts {
			out[i] = newCastResponse(c)
		}
		web.WriteJSON(w, http.StatusOK, out)
	})
}

func parseCastListQuery(q url.Values) (cast.ListParams, error) {
	p := cast.ListParams{Limit: defaultPageSize}
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
				errs = append(errs, web.FieldError{Field: "after", Message: "must be a cast id (a whole number of 0 or more)"})
			}
			p.After = n
		case "id":
			if len(values) > maxPageSize {
				errs = append(errs, web.FieldError{Field: "id", Message: "must not be given more than " + strconv.Itoa(maxPageSize) + " times"})
				break
			}
			for _, v := range values {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 1 {
					errs = append(errs, web.FieldError{Field: "id", Message: strconv.Quote(v) + " is not a cast id (a whole number of 1 or more)"})
					continue
				}
				p.IDs = append(p.IDs, n)
			}
		case "name":
			if msg := badText(values[0]); msg != "" {
				errs = append(errs, web.FieldError{Field: "name", Message: msg})
			}
			p.Name = values[0]
		default:
			errs = append(errs, web.FieldError{Field: key, Message: "is not a known query parameter (known: limit, after, id, name)"})
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

func handleCastReplace(store Store, v *validator.Validate) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := web.PathID(r)
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		var req castRequest
		if err := web.DecodeJSON(w, r, &req, "application/json"); err != nil {
			web.RespondError(w, r, err)
			return
		}
		req.normalize()
		if err := validateRequest(v, req); err != nil {
			web.RespondError(w, r, err)
			return
		}
		c, err := updateCast(r, store, id, func(cast.Cast) (cast.Fields, error) { return req.fields(), nil })
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		writeCast(w, http.StatusOK, c)
	})
}

func handleCastPatch(store Store, v *validator.Validate) http.Handler {
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
		c, err := updateCast(r, store, id, func(cur cast.Cast) (cast.Fields, error) {
			req, err := applyMergePatch(castRequest{Name: &cur.Name, Nationality: cur.Nationality}, patch)
			if err != nil {
				return cast.Fields{}, err
			}
			req.normalize()
			if err := validateRequest(v, req); err != nil {
				return cast.Fields{}, err
			}
			return req.fields(), nil
		})
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		writeCast(w, http.StatusOK, c)
	})
}

// maxUpdateAttempts bounds how often a write without If-Match is retried when another write
// changes the cast between our read and our update.
const maxUpdateAttempts = 3

// updateCast reads the cast, lets change compute the new fields from it and writes them only if
// the cast is still the version read, so that no concurrent write is lost.
func updateCast(r *http.Request, store Store, id int64, change func(cast.Cast) (cast.Fields, error)) (cast.Cast, error) {
	cond, err := web.ParseIfMatch(r.Header)
	if err != nil {
		return cast.Cast{}, err
	}
	for range maxUpdateAttempts {
		cur, err := store.Get(r.Context(), id)
		if err != nil {
			return cast.Cast{}, storeError(err)
		}
		if !cond.Matches(cur.Version) {
			return cast.Cast{}, web.ErrPreconditionFailed
		}
		f, err := change(cur)
		if err != nil {
			return cast.Cast{}, err
		}
		c, err := store.Update(r.Context(), id, cur.Version, f)
		if errors.Is(err, cast.ErrVersionMismatch) && !cond.Present {
			continue
		}
		if err != nil {
			return cast.Cast{}, storeError(err)
		}
		return c, nil
	}
	return cast.Cast{}, web.NewError(http.StatusConflict, "the cast kept changing while this request tried to update it; retry")
}

func handleCastDelete(store Store) http.Handler {
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
	switch {
	case errors.Is(err, cast.ErrNotFound):
		return web.NewError(http.StatusNotFound, "no cast has this id")
	case errors.Is(err, cast.ErrVersionMismatch):
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
	var target any
	if err := json.Unmarshal(doc, &target); err != nil {
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
