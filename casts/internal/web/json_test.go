package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// decodeTarget has a field of each kind the request types of both services have, so that this
// file can be the same in both.
type decodeTarget struct {
	Name  *string  `json:"name"`
	Note  *string  `json:"note,omitempty"`
	Tags  []string `json:"tags"`
	IDs   []int64  `json:"ids"`
	Small *int8    `json:"small"`
	Count *uint16  `json:"count"`
	Ratio *float32 `json:"ratio"`
	Flag  *bool    `json:"flag"`
	Extra any      `json:"extra"`
	Inner *struct {
		Labels []string `json:"labels"`
	} `json:"inner"`
	ByKey map[string]int64 `json:"by_key"`
	When  *time.Time       `json:"when"`
	Plain string           // no tag: matched by its Go name
	Skip  string           `json:"-"`
	hide  string           //nolint:unused // unexported fields are not decoded
}

// decoded is what a decode error becomes in a response, less what is the same for all.
type decoded struct {
	Status int
	Detail string
	Errors []FieldError
}

func decodeResult(err error) decoded {
	if err == nil {
		return decoded{}
	}
	var se *Error
	if !errors.As(err, &se) {
		return decoded{Status: http.StatusInternalServerError, Detail: err.Error()}
	}
	return decoded{Status: se.Status, Detail: se.Detail, Errors: se.Errors}
}

func TestDecodeStrict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       decoded
	}{
		{name: "valid", body: `{"name":"x","tags":["a"],"ids":[1,-2],"small":-128,"count":65535,"ratio":1.5e3,"flag":true,"extra":[{}],"inner":{"labels":["l"]},"by_key":{"a":1},"when":"2020-01-01T00:00:00Z","Plain":"p"}`},
		{name: "nulls everywhere", body: `{"name":null,"tags":[null],"ids":[null],"inner":null,"by_key":{"a":null},"when":null}`},
		{name: "null body", body: `null`},
		{name: "keys match without regard to case", body: `{"NAME":"x","Tags":["a"],"plain":"p"}`},
		{
			name: "string of the wrong type",
			body: `{"name":2}`,
			want: decoded{Status: 422, Detail: `field "name" must be a JSON string, not a JSON number`,
				Errors: []FieldError{{Field: "name", Message: "must be a JSON string, not a JSON number"}}},
		},
		{
			name: "the field named as the type spells it",
			body: `{"NAME":true}`,
			want: decoded{Status: 422, Detail: `field "name" must be a JSON string, not a JSON boolean`,
				Errors: []FieldError{{Field: "name", Message: "must be a JSON string, not a JSON boolean"}}},
		},
		{
			name: "every wrong value, array items by index, nested fields by path",
			body: `{"name":{"a":[1]},"tags":["a",2,"c",[]],"ids":"1","inner":{"labels":[true]},"by_key":{"k":"v"},"flag":"yes"}`,
			want: decoded{Status: 422, Detail: "the request has 7 values of the wrong type", Errors: []FieldError{
				{Field: "name", Message: "must be a JSON string, not a JSON object"},
				{Field: "tags[1]", Message: "must be a JSON string, not a JSON number"},
				{Field: "tags[3]", Message: "must be a JSON string, not a JSON array"},
				{Field: "ids", Message: "must be a JSON array of integers, not a JSON string"},
				{Field: "inner.labels[0]", Message: "must be a JSON string, not a JSON boolean"},
				{Field: "by_key.k", Message: "must be a JSON integer, not a JSON string"},
				{Field: "flag", Message: "must be a JSON boolean, not a JSON string"},
			}},
		},
		{
			name: "numbers that are not integers",
			body: `{"ids":[1e3,1.0,-0.0,1E2,2]}`,
			want: decoded{Status: 422, Detail: "the request has 4 values of the wrong type", Errors: []FieldError{
				{Field: "ids[0]", Message: "must be a JSON integer, written without a fraction or an exponent, not 1e3"},
				{Field: "ids[1]", Message: "must be a JSON integer, written without a fraction or an exponent, not 1.0"},
				{Field: "ids[2]", Message: "must be a JSON integer, written without a fraction or an exponent, not -0.0"},
				{Field: "ids[3]", Message: "must be a JSON integer, written without a fraction or an exponent, not 1E2"},
			}},
		},
		{
			name: "integers that do not fit",
			body: `{"ids":[99999999999999999999,-9223372036854775809,9223372036854775807],"small":128,"count":-1}`,
			want: decoded{Status: 422, Detail: "the request has 4 values of the wrong type", Errors: []FieldError{
				{Field: "ids[0]", Message: "must be a JSON integer of at most 9223372036854775807: 99999999999999999999 does not fit in 64 bits"},
				{Field: "ids[1]", Message: "must be a JSON integer of at least -9223372036854775808: -9223372036854775809 does not fit in 64 bits"},
				{Field: "small", Message: "must be a JSON integer of at most 127: 128 does not fit in 8 bits"},
				{Field: "count", Message: "must be a JSON integer of 0 or more, not -1"},
			}},
		},
		{
			name: "a number that does not fit its float",
			body: `{"ratio":1e39}`,
			want: decoded{Status: 422, Detail: `field "ratio" must be a number that fits in 32 bits: 1e39 does not`,
				Errors: []FieldError{{Field: "ratio", Message: "must be a number that fits in 32 bits: 1e39 does not"}}},
		},
		{
			name: "the list of wrong values is bounded",
			body: `{"tags":[` + strings.TrimSuffix(strings.Repeat("1,", 25), ",") + `]}`,
			want: decoded{Status: 422, Detail: "the request has 25 values of the wrong type; the first 20 are listed", Errors: func() []FieldError {
				var errs []FieldError
				for i := range maxTypeErrors {
					errs = append(errs, FieldError{Field: "tags[" + strconv.Itoa(i) + "]", Message: "must be a JSON string, not a JSON number"})
				}
				return errs
			}()},
		},
		{
			name: "an unknown field outweighs wrong types, wherever it is",
			body: `{"name":1,"inner":{"labels":[2],"colour":"red"}}`,
			want: decoded{Status: 400, Detail: `body has an unknown field "inner.colour"`,
				Errors: []FieldError{{Field: "inner.colour", Message: "unknown field"}}},
		},
		{
			name: "a field ignored by its tag is unknown",
			body: `{"Skip":"x"}`,
			want: decoded{Status: 400, Detail: `body has an unknown field "Skip"`, Errors: []FieldError{{Field: "Skip", Message: "unknown field"}}},
		},
		{
			name: "an unexported field is unknown",
			body: `{"hide":"x"}`,
			want: decoded{Status: 400, Detail: `body has an unknown field "hide"`, Errors: []FieldError{{Field: "hide", Message: "unknown field"}}},
		},
		{name: "not an object", body: `[{"name":"x"}]`, want: decoded{Status: 400, Detail: "body must be a JSON object, not a JSON array"}},
		{name: "a string body", body: `"x"`, want: decoded{Status: 400, Detail: "body must be a JSON object, not a JSON string"}},
		{name: "malformed", body: `{"name":}`, want: decoded{Status: 400, Detail: "body is not valid JSON (at byte 9): invalid character '}' looking for beginning of value"}},
		{name: "truncated", body: `{"name":"x"`, want: decoded{Status: 400, Detail: "body is truncated JSON"}},
		{name: "trailing data", body: `{"name":"x"} {}`, want: decoded{Status: 400, Detail: "body must contain a single JSON value"}},
		{name: "empty", body: ``, want: decoded{Status: 400, Detail: "body must not be empty"}},
		{
			name: "a wrong type deep inside a wrong value is one error",
			body: `{"name":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`,
			want: decoded{Status: 422, Detail: `field "name" must be a JSON string, not a JSON array`,
				Errors: []FieldError{{Field: "name", Message: "must be a JSON string, not a JSON array"}}},
		},
		{
			name: "a type that decodes itself is left to its own method",
			body: `{"when":5}`,
			want: decoded{Status: 400, Detail: "body could not be decoded: Time.UnmarshalJSON: input is not a JSON string"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var dst decodeTarget
			got := decodeResult(DecodeStrict(strings.NewReader(tc.body), &dst))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decodeStrict(%.100s) (-want +got):\n%s", tc.body, diff)
			}
		})
	}
}

// TestDecodeTolerant: a reader that ignores unknown fields still checks the types of known ones.
func TestDecodeTolerant(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       decoded
	}{
		{name: "unknown fields ignored", body: `{"name":"x","colour":{"deep":[1,{"a":2}]},"inner":{"more":1}}`},
		{
			name: "known fields still checked",
			body: `{"colour":1,"ids":[1,"2"]}`,
			want: decoded{Status: 422, Detail: `field "ids[1]" must be a JSON integer, not a JSON string`,
				Errors: []FieldError{{Field: "ids[1]", Message: "must be a JSON integer, not a JSON string"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var dst decodeTarget
			got := decodeResult(DecodeTolerant(strings.NewReader(tc.body), &dst))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DecodeTolerant(%.100s) (-want +got):\n%s", tc.body, diff)
			}
		})
	}
}

// FuzzCheckTypes holds checkTypes to encoding/json: a well-formed body that checkTypes lets
// through must decode, and one that it refuses as a wrong type must fail to decode, so that no
// body gets a 500 or slips past with a message that names the wrong field.
func FuzzCheckTypes(f *testing.F) {
	for _, s := range []string{
		`{"name":"x","tags":["a"],"ids":[1]}`, `{"name":2}`, `{"NAME":"x"}`, `{"ids":[1e3]}`, `{"ids":[99999999999999999999]}`,
		`{"small":-129}`, `{"count":65536}`, `{"ratio":1e39}`, `{"ratio":1e-400}`, `{"flag":1}`, `{"inner":{"labels":[1]}}`,
		`{"by_key":{"a":"b"}}`, `{"extra":{"x":[1e400]}}`, `{"name":"x","name":1}`, `{"K":1}`, `{"ſkip":1}`, `null`, `[]`,
		`{"plain":1}`, `{"Plain":"x","PLAIN":2}`, `{"ids":null,"tags":{}}`, `{"ids":[-0]}`, `{"ids":[0.0]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return // the first step refuses it before any type is looked at
		}
		var dst decodeTarget
		checked := checkTypes(body, decodeTargetType, true)
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		decodeErr := dec.Decode(&dst)
		var timeErr *time.ParseError
		if errors.As(decodeErr, &timeErr) || decodeErr != nil && strings.Contains(decodeErr.Error(), "Time.UnmarshalJSON") {
			return // left to time.Time's own method on purpose
		}
		if (checked == nil) != (decodeErr == nil) {
			t.Fatalf("body %q: checkTypes says %v, encoding/json says %v", body, checked, decodeErr)
		}
		if checked != nil {
			if got := decodeResult(checked); got.Status != http.StatusBadRequest && got.Status != http.StatusUnprocessableEntity {
				t.Fatalf("body %q: checkTypes answered %d", body, got.Status)
			}
		}
	})
}

var decodeTargetType = reflect.TypeFor[*decodeTarget]()
