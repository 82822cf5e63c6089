package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxBodyBytes bounds every request body.
const maxBodyBytes = 1 << 20

// decodeJSON reads exactly one JSON value from the body into dst and turns every way that can
// fail into a 4xx that says what is wrong and where. contentTypes lists the accepted media types.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any, contentTypes ...string) error {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !containsFold(contentTypes, mediaType) {
		return errorf(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type must be %s", strings.Join(contentTypes, " or ")))
	}

	return decodeStrict(http.MaxBytesReader(w, r.Body, maxBodyBytes), dst)
}

// decodeStrict decodes exactly one JSON value with no unknown fields from src into dst.
func decodeStrict(src io.Reader, dst any) error {
	dec := json.NewDecoder(src)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return jsonError(err)
		}
		return errorf(http.StatusBadRequest, "body must contain a single JSON value")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		maxErr    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &syntaxErr):
		return errorf(http.StatusBadRequest, fmt.Sprintf("body is not valid JSON (at byte %d): %s", syntaxErr.Offset, syntaxErr.Error()))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "body is truncated JSON")
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return &statusError{
				status: http.StatusBadRequest,
				detail: fmt.Sprintf("field %q must be a JSON %s", typeErr.Field, jsonTypeName(typeErr.Type.Kind().String())),
				errors: []FieldError{{Field: typeErr.Field, Message: "must be a JSON " + jsonTypeName(typeErr.Type.Kind().String())}},
			}
		}
		return errorf(http.StatusBadRequest, fmt.Sprintf("body must be a JSON object, not a JSON %s", typeErr.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return &statusError{
			status: http.StatusBadRequest,
			detail: "body has an unknown field " + field,
			errors: []FieldError{{Field: strings.Trim(field, `"`), Message: "unknown field"}},
		}
	case errors.As(err, &maxErr):
		return errorf(http.StatusRequestEntityTooLarge, fmt.Sprintf("body must not be larger than %d bytes", maxErr.Limit))
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "body must not be empty")
	default:
		return errorf(http.StatusBadRequest, "body could not be decoded: "+err.Error())
	}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	default:
		return "object"
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// writeJSON sends v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONType(w, status, "application/json", v)
}

// writeJSONType encodes into a buffer first, so that an encoding failure can still become a 500.
func writeJSONType(w http.ResponseWriter, status int, contentType string, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"type":"about:blank","title":"Internal Server Error","status":500}`) //nolint:errcheck
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	w.Write(buf.Bytes()) //nolint:errcheck // the client has gone; nothing left to tell it
}
