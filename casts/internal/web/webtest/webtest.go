// Package webtest holds what the tests of the service's handlers check of package web's errors.
package webtest

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/movies-microservices/casts/internal/web"
)

// RequireKnownFields fails unless every field a 422 names is a field of T (an array item is
// named by its field and index): a client must be able to find what it named.
func RequireKnownFields[T any](t *testing.T, err error) {
	t.Helper()
	var se *web.Error
	if !errors.As(err, &se) || se.Status != http.StatusUnprocessableEntity {
		return
	}
	rt := reflect.TypeFor[T]()
	for _, fe := range se.Errors {
		name, _, _ := strings.Cut(fe.Field, "[")
		if _, ok := rt.FieldByNameFunc(func(goName string) bool {
			f, _ := rt.FieldByName(goName)
			return web.JSONFieldName(f) == name
		}); !ok {
			t.Fatalf("error %q names field %q, which %s does not have", err, fe.Field, rt.Name())
		}
	}
}
