package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/movies-microservices/casts/internal/postgres"
	"github.com/rs/zerolog"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// FieldError says what is wrong with one field of a request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is an error that maps to a problem response with its own status and detail (see
// RespondError).
type Error struct {
	Status int
	Detail string
	Errors []FieldError
}

func (e *Error) Error() string { return e.Detail }

// NewError returns an Error with status and detail.
func NewError(status int, detail string) error {
	return &Error{Status: status, Detail: detail}
}

// WriteProblem sends a problem+json response.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, detail string, fieldErrors []FieldError) {
	writeProblemAt(w, r.URL.Path, status, detail, fieldErrors)
}

// writeProblemAt is WriteProblem for a problem about another request than the one being answered.
func writeProblemAt(w http.ResponseWriter, instance string, status int, detail string, fieldErrors []FieldError) {
	p := Problem{
		Type:     "about:blank",
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: instance,
		Errors:   fieldErrors,
	}
	writeJSONType(w, status, "application/problem+json", p)
}

// gatewayDetails explain the errors that the gateway, not a service, finds with a request.
var gatewayDetails = map[int]string{
	http.StatusNotFound:              "no resource at this address; the API is under /api/v1/movies and /api/v1/casts",
	http.StatusRequestEntityTooLarge: fmt.Sprintf("body must not be larger than %d bytes", MaxBodyBytes),
	http.StatusTooManyRequests:       "too many requests from this address; slow down and retry later",
	http.StatusBadGateway:            "the service failed to answer the gateway; retry later",
	http.StatusGatewayTimeout:        "the service did not answer the gateway in time; retry later",
}

// HandleGatewayProblem renders, as problem+json, an error that Traefik itself produced: its errors
// middleware fetches GET /problems/{status}?url=<the failed request's URL> from a service and
// answers the client with that body under the original status. It is not routed publicly.
func HandleGatewayProblem() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, err := strconv.Atoi(r.PathValue("status"))
		if err != nil || status < 400 || status > 599 {
			WriteProblem(w, r, http.StatusNotFound, "no resource at "+r.URL.Path, nil)
			return
		}
		instance := r.URL.Path
		if u, err := url.Parse(r.URL.Query().Get("url")); err == nil && u.Path != "" {
			instance = u.Path
		}
		writeProblemAt(w, instance, status, gatewayDetails[status], nil)
	})
}

// retryAfter is the Retry-After of a 503, in seconds: a short wait, since an outage of the database,
// or of a service this one calls, that ends makes requests succeed again at once.
const retryAfter = "2"

// RespondError turns any error into a problem response. An error that says the database could not
// be reached or did not answer in time (the request's deadline included) is a 503 that invites a
// retry. Other errors it does not know are 500s. Both are logged once, with the request id, and the
// client gets a detail that leaks nothing. A request whose client has gone gets no answer at all:
// whatever the error (most often the cancelled query or call itself), it is the client's
// cancellation, StatusClientClosedRequest, never a 5xx.
func RespondError(w http.ResponseWriter, r *http.Request, err error) {
	if ClientGone(r.Context()) {
		zerolog.Ctx(r.Context()).Debug().Err(err).Msg("client gone before the answer")
		w.WriteHeader(StatusClientClosedRequest)
		return
	}
	var se *Error
	switch {
	case errors.As(err, &se):
	case postgres.Unavailable(err):
		zerolog.Ctx(r.Context()).Warn().Err(err).Msg("database unavailable")
		se = &Error{Status: http.StatusServiceUnavailable, Detail: "the database is unavailable or did not answer in time; retry later"}
	default:
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("internal error")
		se = &Error{Status: http.StatusInternalServerError, Detail: "The server failed to handle the request; it has been logged with the request id."}
	}
	if se.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	WriteProblem(w, r, se.Status, se.Detail, se.Errors)
}
