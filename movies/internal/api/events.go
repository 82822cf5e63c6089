package api

import (
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/movies-microservices/movies/internal/movie"
	"github.com/movies-microservices/movies/internal/web"
	"github.com/rs/zerolog"
)

// eventRequest is an event of the cast service, as its outbox relay delivers it: one flat JSON
// object, such as {"id":"…","type":"cast.deleted","occurred_at":"…","cast_id":42}. Fields this
// service does not know are ignored (a tolerant reader), so that the producer can add some.
type eventRequest struct {
	ID         *string    `json:"id" validate:"required,uuid"`
	Type       *string    `json:"type" validate:"required,nonul,min=1,max=100"`
	OccurredAt *time.Time `json:"occurred_at" validate:"required"`
	CastID     *int64     `json:"cast_id" validate:"omitnil,gt=0"`
}

// decodeJSONTolerant is web.DecodeJSON for messages of other services, such as events: fields dst does
// not know are ignored, so that a producer can add some without breaking its consumers.
func decodeJSONTolerant(w http.ResponseWriter, r *http.Request, dst any) error {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.EqualFold(mediaType, "application/json") {
		return web.NewError(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
	}
	return web.DecodeTolerant(http.MaxBytesReader(w, r.Body, web.MaxBodyBytes), dst)
}

// Event outcomes, as eventResponse.Status says them.
const (
	eventApplied   = "applied"   // the event changed what it had to
	eventDuplicate = "duplicate" // the event had been applied before: nothing changed
	eventIgnored   = "ignored"   // this service has nothing to do for events of this type
)

type eventResponse struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	MoviesChanged int64  `json:"movies_changed"`
}

// handleEventReceive applies an event, once: every 2xx answer tells the sender it may forget the
// event, so a redelivery answers 200 too, without changing anything. An error answer makes the
// sender deliver the event again later.
func handleEventReceive(store Store, v *validator.Validate) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req eventRequest
		if err := decodeJSONTolerant(w, r, &req); err != nil {
			web.RespondError(w, r, err)
			return
		}
		if req.ID != nil {
			*req.ID = strings.ToLower(*req.ID)
		}
		if err := validateRequest(v, req); err != nil {
			web.RespondError(w, r, err)
			return
		}
		out := eventResponse{ID: *req.ID, Status: eventIgnored}
		switch *req.Type {
		case movie.EventCastDeleted:
			if req.CastID == nil {
				web.RespondError(w, r, &web.Error{
					Status: http.StatusUnprocessableEntity, Detail: "the request has invalid fields",
					Errors: []web.FieldError{{Field: "cast_id", Message: "is required for a " + movie.EventCastDeleted + " event"}},
				})
				return
			}
			applied, err := store.ApplyCastDeleted(r.Context(), movie.CastDeleted{EventID: *req.ID, CastID: *req.CastID, OccurredAt: *req.OccurredAt})
			if err != nil {
				web.RespondError(w, r, err)
				return
			}
			out.Status, out.MoviesChanged = eventApplied, applied.MoviesChanged
			if applied.Duplicate {
				out.Status = eventDuplicate
			}
		default:
			// Acknowledged all the same: refusing would only make the sender retry it forever.
		}
		zerolog.Ctx(r.Context()).Info().Str("event_id", out.ID).Str("event_type", *req.Type).
			Str("outcome", out.Status).Int64("movies_changed", out.MoviesChanged).Msg("event received")
		web.WriteJSON(w, http.StatusOK, out)
	})
}
