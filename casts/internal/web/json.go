package web

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// maxTypeErrors bounds the errors listed for values of the wrong type: a 1 MiB list of them
// would otherwise become a problem document larger than the body.
const maxTypeErrors = 20

// DecodeJSON reads exactly one JSON value from the body into dst and turns every way that can
// fail into a 4xx that says what is wrong and where. contentTypes lists the accepted media types.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any, contentTypes ...string) error {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !containsFold(contentTypes, mediaType) {
		return NewError(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type must be %s", strings.Join(contentTypes, " or ")))
	}

	return DecodeStrict(http.MaxBytesReader(w, r.Body, MaxBodyBytes), dst)
}

// DecodeStrict decodes exactly one JSON value with no unknown fields from src into dst.
func DecodeStrict(src io.Reader, dst any) error {
	return decodeOne(src, dst, true)
}

// DecodeTolerant decodes exactly one JSON value from src into dst, ignoring the fields dst does
// not know: for messages of other services, so that a producer can add fields without breaking
// its consumers.
func DecodeTolerant(src io.Reader, dst any) error {
	return decodeOne(src, dst, false)
}

// decodeOne decodes exactly one JSON value from src into dst; strict rejects unknown fields.
// (Requests are decoded strictly; a consumer of another service's messages may ignore fields.)
//
// It goes in three steps, so that each kind of problem gets its own status: the body must be
// one well-formed JSON value (400 otherwise, 413 when too large); its shape must be an object
// with known fields (400); and each value must have the JSON type of its field (422, naming
// every one, array items by index). encoding/json alone reports only the first wrong type, and
// without the index of the array item that holds it.
func decodeOne(src io.Reader, dst any, strict bool) error {
	dec := json.NewDecoder(src)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return jsonError(err)
		}
		return NewError(http.StatusBadRequest, "body must contain a single JSON value")
	}
	if err := checkTypes(raw, reflect.TypeOf(dst), strict); err != nil {
		return err
	}
	dec = json.NewDecoder(bytes.NewReader(raw))
	if strict {
		dec.DisallowUnknownFields()
	}
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		// checkTypes lets through only what decodes; this is for the types it leaves to
		// their own UnmarshalJSON (time.Time, for one).
		return jsonError(err)
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
		return NewError(http.StatusBadRequest, fmt.Sprintf("body is not valid JSON (at byte %d): %s", syntaxErr.Offset, syntaxErr.Error()))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return NewError(http.StatusBadRequest, "body is truncated JSON")
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return NewError(http.StatusBadRequest, fmt.Sprintf("body must be a JSON object, not a JSON %s", typeErr.Value))
	case errors.As(err, &typeErr):
		want := jsonTypeName(typeErr.Type)
		return &Error{
			Status: http.StatusUnprocessableEntity,
			Detail: fmt.Sprintf("field %q must be a JSON %s", typeErr.Field, want),
			Errors: []FieldError{{Field: typeErr.Field, Message: "must be a JSON " + want}},
		}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return unknownFieldError(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
	case errors.As(err, &maxErr):
		return NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("body must not be larger than %d bytes", maxErr.Limit))
	case errors.Is(err, io.EOF):
		return NewError(http.StatusBadRequest, "body must not be empty")
	default:
		return NewError(http.StatusBadRequest, "body could not be decoded: "+err.Error())
	}
}

func unknownFieldError(field string) error {
	return &Error{
		Status: http.StatusBadRequest,
		Detail: fmt.Sprintf("body has an unknown field %q", field),
		Errors: []FieldError{{Field: field, Message: "unknown field"}},
	}
}

// errUnknownField stops a typeChecker: a field the request type does not have is a 400, whatever
// else the body holds.
var errUnknownField = errors.New("unknown field")

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkTypes compares a well-formed JSON value with the Go type t it is to be decoded into, the
// way encoding/json will decode it: null fits anything, object keys match field names without
// regard to case (exact matches first), and numbers must fit the field's Go type. It returns a
// 400 for a body that is not an object or has an unknown field (when strict), a 422 listing the
// values of the wrong JSON type, or nil.
func checkTypes(raw json.RawMessage, t reflect.Type, strict bool) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && !decodesItself(t) {
		if kind := jsonKind(raw); kind != "object" && kind != "null" {
			return NewError(http.StatusBadRequest, "body must be a JSON object, not a JSON "+kind)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	c := &typeChecker{dec: dec, strict: strict}
	switch err := c.value(t, ""); {
	case errors.Is(err, errUnknownField):
		return unknownFieldError(c.unknown)
	case err != nil:
		// The value was well-formed a moment ago; let encoding/json say what it finds.
		return nil
	}
	switch len(c.errs) {
	case 0:
		return nil
	case 1:
		return &Error{
			Status: http.StatusUnprocessableEntity,
			Detail: fmt.Sprintf("field %q %s", c.errs[0].Field, c.errs[0].Message),
			Errors: c.errs,
		}
	default:
		detail := fmt.Sprintf("the request has %d values of the wrong type", c.count)
		if c.count > len(c.errs) {
			detail += fmt.Sprintf("; the first %d are listed", len(c.errs))
		}
		return &Error{Status: http.StatusUnprocessableEntity, Detail: detail, Errors: c.errs}
	}
}

// typeChecker walks the tokens of one JSON value beside the Go type it is to be decoded into.
type typeChecker struct {
	dec     *json.Decoder
	strict  bool
	errs    []FieldError // the first maxTypeErrors values of the wrong type
	count   int          // all of them
	unknown string       // the unknown field that stopped the walk
}

// wrong records that the value at path is of the wrong type, and skips the rest of it.
func (c *typeChecker) wrong(path, message string, tok json.Token) error {
	c.count++
	if len(c.errs) < maxTypeErrors {
		c.errs = append(c.errs, FieldError{Field: path, Message: message})
	}
	return c.skipRest(tok)
}

// skipRest skips what is left of a value whose first token was tok.
func (c *typeChecker) skipRest(tok json.Token) error {
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	for c.dec.More() {
		if delim == '{' {
			if _, err := c.dec.Token(); err != nil { // the key
				return err
			}
		}
		var skipped json.RawMessage
		if err := c.dec.Decode(&skipped); err != nil {
			return err
		}
	}
	_, err := c.dec.Token() // the closing ']' or '}'
	return err
}

// value checks the next value of the stream against t; path is its name in error messages.
func (c *typeChecker) value(t reflect.Type, path string) error {
	tok, err := c.dec.Token()
	if err != nil {
		return err
	}
	if tok == nil { // null decodes into anything, leaving it unset
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if decodesItself(t) || t.Kind() == reflect.Interface {
		return c.skipRest(tok)
	}
	want := "must be a JSON " + jsonTypeName(t)
	switch t.Kind() {
	case reflect.String:
		if _, ok := tok.(string); !ok {
			return c.wrong(path, want+", not "+tokenKind(tok), tok)
		}
	case reflect.Bool:
		if _, ok := tok.(bool); !ok {
			return c.wrong(path, want+", not "+tokenKind(tok), tok)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		n, ok := tok.(json.Number)
		if !ok {
			return c.wrong(path, want+", not "+tokenKind(tok), tok)
		}
		if msg := numberMisfit(t, string(n)); msg != "" {
			return c.wrong(path, msg, tok)
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 { // []byte is base64 text; leave it to encoding/json
			return c.skipRest(tok)
		}
		if tok != json.Delim('[') {
			return c.wrong(path, want+", not "+tokenKind(tok), tok)
		}
		for i := 0; c.dec.More(); i++ {
			if err := c.value(t.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		_, err := c.dec.Token()
		return err
	case reflect.Map:
		if tok != json.Delim('{') {
			return c.wrong(path, want+", not "+tokenKind(tok), tok)
		}
		for c.dec.More() {
			key, err := c.dec.Token()
			if err != nil {
				return err
			}
			if err := c.value(t.Elem(), joinPath(path, fmt.Sprint(key))); err != nil {
				return err
			}
		}
		_, err := c.dec.Token()
		return err
	case reflect.Struct:
		if tok != json.Delim('{') {
			return c.wrong(path, want+", not "+tokenKind(tok), tok)
		}
		return c.object(t, path)
	default:
		return c.skipRest(tok)
	}
	return nil
}

// object checks the members of an object, after its '{', against the fields of struct type t.
func (c *typeChecker) object(t reflect.Type, path string) error {
	for c.dec.More() {
		tok, err := c.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		f, name, ok := structField(t, key)
		switch {
		case ok:
			if err := c.value(f.Type, joinPath(path, name)); err != nil {
				return err
			}
		case c.strict:
			c.unknown = joinPath(path, key)
			return errUnknownField
		default:
			var skipped json.RawMessage
			if err := c.dec.Decode(&skipped); err != nil {
				return err
			}
		}
	}
	_, err := c.dec.Token()
	return err
}

// structField finds the field of t that encoding/json decodes key into, and its JSON name: the
// exact name first, then one equal to it under Unicode case folding, as encoding/json does.
func structField(t reflect.Type, key string) (reflect.StructField, string, bool) {
	var (
		folded     reflect.StructField
		foldedName string
	)
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f, name, true
		}
		if foldedName == "" && strings.EqualFold(name, key) {
			folded, foldedName = f, name
		}
	}
	return folded, foldedName, foldedName != ""
}

// decodesItself reports whether values of t are decoded by their own methods (time.Time, for
// one), or are structs that checkTypes does not model (embedded fields, the ",string" option):
// encoding/json decides about those alone.
func decodesItself(t reflect.Type) bool {
	if t.Implements(jsonUnmarshalerType) || reflect.PointerTo(t).Implements(jsonUnmarshalerType) ||
		t.Implements(textUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if _, opts, _ := strings.Cut(f.Tag.Get("json"), ","); f.Anonymous || strings.Contains(","+opts+",", ",string,") {
			return true
		}
	}
	return false
}

// numberMisfit says why the JSON number n does not fit a value of type t, or "" if it does, by
// the rules of encoding/json: an integer must be written as one, without fraction or exponent.
func numberMisfit(t reflect.Type, n string) string {
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		if _, err := strconv.ParseFloat(n, t.Bits()); err != nil {
			return fmt.Sprintf("must be a number that fits in %d bits: %s does not", t.Bits(), n)
		}
		return ""
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, err := strconv.ParseUint(n, 10, t.Bits()); err == nil {
			return ""
		}
	default:
		if _, err := strconv.ParseInt(n, 10, t.Bits()); err == nil {
			return ""
		}
	}
	switch {
	case strings.ContainsAny(n, ".eE"):
		return "must be a JSON integer, written without a fraction or an exponent, not " + n
	case strings.HasPrefix(n, "-") && (t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64):
		return "must be a JSON integer of 0 or more, not " + n
	case strings.HasPrefix(n, "-"):
		return fmt.Sprintf("must be a JSON integer of at least %d: %s does not fit in %d bits", int64(-1)<<(t.Bits()-1), n, t.Bits())
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return fmt.Sprintf("must be a JSON integer of at most %d: %s does not fit in %d bits", uint64(1)<<t.Bits()-1, n, t.Bits())
	default:
		return fmt.Sprintf("must be a JSON integer of at most %d: %s does not fit in %d bits", uint64(1)<<(t.Bits()-1)-1, n, t.Bits())
	}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// jsonKind names the JSON type of a well-formed value by its first byte.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "value"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// tokenKind names the JSON type of a value by its first token, as in "not a JSON number".
func tokenKind(tok json.Token) string {
	switch tok.(type) {
	case string:
		return "a JSON string"
	case json.Number:
		return "a JSON number"
	case bool:
		return "a JSON boolean"
	case json.Delim:
		if tok == json.Delim('[') {
			return "a JSON array"
		}
		return "a JSON object"
	default:
		return "JSON null"
	}
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

// JSONFieldName is the name by which encoding/json knows the struct field f, for messages that
// name fields as the client wrote them (see validator's RegisterTagNameFunc); "" when f is not
// in JSON.
func JSONFieldName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// WriteJSON sends v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
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
