package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
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

// decodeJSONTolerant is decodeJSON for messages of other services, such as events: fields dst does
// not know are ignored, so that a producer can add some without breaking its consumers.
func decodeJSONTolerant(w http.ResponseWriter, r *http.Request, dst any) error {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.EqualFold(mediaType, "application/json") {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
	}
	return decodeOne(http.MaxBytesReader(w, r.Body, maxBodyBytes), dst, false)
}

// decodeStrict decodes exactly one JSON value with no unknown fields from src into dst.
func decodeStrict(src io.Reader, dst any) error {
	return decodeOne(src, dst, true)
}

// decodeOne decodes exactly one JSON value from src into dst; strict rejects unknown fields.
func decodeOne(src io.Reader, dst any, strict bool) error {
	dec := json.NewDecoder(src)
	if strict {
		dec.DisallowUnknownFields()
	}
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, dst)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return jsonError(err, dst)
		}
		return errorf(http.StatusBadRequest, "body must contain a single JSON value")
	}
	return nil
}

// jsonError describes a decoding error of dst.
func jsonError(err error, dst any) error {
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
			want := jsonTypeName(fieldType(dst, typeErr.Field, typeErr.Type))
			return &statusError{
				status: http.StatusBadRequest,
				detail: fmt.Sprintf("field %q must be a JSON %s", typeErr.Field, want),
				errors: []FieldError{{Field: typeErr.Field, Message: "must be a JSON " + want}},
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

// fieldType is the Go type of the field of the struct dst points to whose JSON name is field, or
// fallback if there is none. A type error inside a list reports the element's type, but the
// message should name the type of the whole field: "must be a JSON array of integers".
func fieldType(dst any, field string, fallback reflect.Type) reflect.Type {
	t := reflect.TypeOf(dst)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return fallback
	}
	for i := range t.NumField() {
		if jsonFieldName(t.Field(i)) == field {
			return t.Field(i).Type
		}
	}
	return fallback
}

// jsonTypeName names the JSON type that decodes into t.
func jsonTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array of " + jsonTypeName(t.Elem()) + "s"
	case reflect.Bool:
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
