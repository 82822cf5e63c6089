package api

import (
	"errors"
	"net/http"

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

// statusError is an error that maps to a problem response with its own status and detail.
type statusError struct {
	status int
	detail string
	errors []FieldError
}

func (e *statusError) Error() string { return e.detail }

func errorf(status int, detail string) error {
	return &statusError{status: status, detail: detail}
}

// writeProblem sends a problem+json response.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string, fieldErrors []FieldError) {
	p := Problem{
		Type:     "about:blank",
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: r.URL.Path,
		Errors:   fieldErrors,
	}
	writeJSONType(w, status, "application/problem+json", p)
}

// respondError turns any error into a problem response. Errors it does not know are 500s: they are
// logged once, with the request id, and the client gets a generic detail that leaks nothing.
func respondError(w http.ResponseWriter, r *http.Request, err error) {
	var se *statusError
	if errors.As(err, &se) {
		writeProblem(w, r, se.status, se.detail, se.errors)
		return
	}
	zerolog.Ctx(r.Context()).Error().Err(err).Msg("internal error")
	writeProblem(w, r, http.StatusInternalServerError, "The server failed to handle the request; it has been logged with the request id.", nil)
}
