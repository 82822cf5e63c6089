package e2e

import (
	"net/http"
	"testing"
)

// TestHostileQueryInvalidUTF8: a text filter that is not UTF-8 can match nothing stored (stored
// text is always UTF-8) and PostgreSQL refuses it as a parameter, so it must be a 400, never
// the 500 of a failed query.
func TestHostileQueryInvalidUTF8(t *testing.T) {
	t.Parallel()
	var cases []hostile
	for _, bad := range []string{"%ff", "%c3", "a%80b", "%ed%a0%80", "%c0%af", "%f4%90%80%80", "ok%fe"} {
		for _, path := range []string{
			"/api/v1/casts?name=" + bad,
			"/api/v1/casts/?limit=5&name=" + bad,
			"/api/v1/movies?name=" + bad,
			"/api/v1/movies?genre=" + bad,
			"/api/v1/movies/?cast_id=1&genre=" + bad,
		} {
			cases = append(cases, hostile{what: "invalid UTF-8 in a text filter", method: http.MethodGet, path: path, want: 400})
		}
	}
	runBarrage(t, cases)
	checkServicesHealthy(t)
}
