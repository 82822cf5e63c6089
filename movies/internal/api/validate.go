package api

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
	"github.com/movies-microservices/movies/internal/web"
)

func noNUL(fl validator.FieldLevel) bool {
	return !strings.ContainsRune(fl.Field().String(), 0)
}

// badText says what is wrong with s as text for the database, or "" if nothing is. PostgreSQL
// refuses invalid UTF-8 and NUL in text with an error, which must not become a 500. (Strings in
// JSON bodies need no such check: encoding/json turns invalid UTF-8 into U+FFFD, and the nonul
// tag refuses NUL.)
func badText(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.ContainsRune(s, 0):
		return "must not contain NUL characters"
	default:
		return ""
	}
}

// uniqueFold rejects a list of strings that repeats one up to case: the genre filter ignores
// case, so "Drama" and "drama" are the same genre.
func uniqueFold(fl validator.FieldLevel) bool {
	list, ok := fl.Field().Interface().([]string)
	if !ok {
		return false
	}
	seen := make(map[string]bool, len(list))
	for _, s := range list {
		key := strings.ToLower(s)
		if seen[key] {
			return false
		}
		seen[key] = true
	}
	return true
}

// validateRequest runs the struct's validate tags and returns a 422 naming every bad field.
func validateRequest(v *validator.Validate, req any) error {
	err := v.Struct(req)
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return err
	}
	se := &web.Error{Status: http.StatusUnprocessableEntity, Detail: "the request has invalid fields"}
	for _, fe := range verrs {
		// Namespace is "movieRequest.genres[2]"; clients know only the part after the type.
		_, field, _ := strings.Cut(fe.Namespace(), ".")
		se.Errors = append(se.Errors, web.FieldError{Field: field, Message: fieldMessage(fe)})
	}
	return se
}

func fieldMessage(fe validator.FieldError) string {
	unit := "characters"
	if k := fe.Kind(); k == reflect.Slice || k == reflect.Array {
		unit = "items"
	}
	switch fe.Tag() {
	case "required":
		return "is required"
	case "min":
		if fe.Param() == "1" && unit == "characters" {
			return "must not be blank"
		}
		return fmt.Sprintf("must have at least %s %s", fe.Param(), unit)
	case "max":
		return fmt.Sprintf("must have at most %s %s", fe.Param(), unit)
	case "gt":
		return "must be greater than " + fe.Param()
	case "unique":
		return "must not contain duplicates"
	case "uniquefold":
		return "must not contain duplicates (compared without regard to case)"
	case "nonul":
		return "must not contain NUL characters"
	case "uuid":
		return "must be a UUID"
	default:
		return fmt.Sprintf("is invalid (%s)", fe.Tag())
	}
}
