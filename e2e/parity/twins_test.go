package parity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// twins are the files that both services carry on purpose, one copy each (the design shares
// contracts between the services, not code): each path names casts/<path> and movies/<path>,
// which must be the same file but for the services' own names (see asMovies). A fix made in one
// must be made in the other. Files that differ on purpose (the domain, routes, configuration,
// the Dockerfiles' ports, the migrations of each schema, the lock key in postgres/lock.go, the
// validation rules in api/validate.go, and the tests of each) are not listed.
var twins = []string{
	// The program around run(): the entry point, the debug listener, the authenticator of
	// writes (verification on, or off for benchmarks), and the secrets read from files (*_FILE).
	"main.go",
	"debug.go",
	"auth.go",
	"secretfile.go",

	// HTTP plumbing: request ids, access log, recovery, the requests' spans, problem pages, JSON
	// decoding and encoding, conditional requests, idempotent creates, the embedded Swagger UI.
	"internal/api/middleware.go",
	"internal/api/telemetry_bench_test.go",
	"internal/api/telemetry_test.go",
	"internal/api/problem.go",
	"internal/api/gateway_problem_test.go",
	"internal/api/json.go",
	"internal/api/json_test.go",
	"internal/api/http.go",
	"internal/api/idempotency.go",
	"internal/api/auth.go",
	"internal/api/docs.go",
	"internal/api/.spectral.yaml",
	"internal/api/redocly.yaml",

	// Access tokens: their verification (keys from the identity provider's JWKS), and the
	// stand-in provider of the tests.
	"internal/auth/auth.go",
	"internal/auth/auth_test.go",
	"internal/auth/authtest/authtest.go",

	// The log buffer and the idempotency-key store.
	"internal/logbuf/logbuf.go",
	"internal/logbuf/logbuf_test.go",
	"internal/idempotency/idempotency.go",
	"internal/idempotency/idempotency_test.go",
	"internal/postgres/migrations/0003_create_idempotency_keys.sql",

	// The database: pool, migrations runner, outage detection, the statements' spans, and the
	// test databases.
	"internal/postgres/postgres.go",
	"internal/postgres/unavailable.go",
	"internal/postgres/trace.go",
	"internal/postgres/trace_test.go",
	"internal/postgres/pgtest/pgtest.go",

	// Traces and metrics: the OTEL_ variables, the exporters, /metrics.
	"internal/telemetry/telemetry.go",
	"internal/telemetry/exporter.go",
	"internal/telemetry/telemetry_test.go",
}

// serviceNames are the names by which the cast service's copy of a twin says what the movie
// service's says, longest first. Nothing else may differ.
var serviceNames = []struct{ casts, movies string }{
	{"github.com/movies-microservices/casts", "github.com/movies-microservices/movies"}, // module path
	{"CASTS", "MOVIES"}, // environment variables: CASTS_DEBUG_ADDR
	{"Casts", "Movies"}, // "Casts API"
	{"casts", "movies"}, // paths, program name: /api/v1/casts, template_casts_
	{"Cast", "Movie"},   // identifiers: CastRequest
	{"cast", "movie"},   // prose and identifiers: "the cast API", castRequest
}

// asMovies rewrites the cast service's copy of a twin in the movie service's names. A name is
// rewritten only where it is not part of a longer word: "cast" in "broadcast" or "castle" stays,
// "cast" in "castRequest", "template_casts_" or "/casts/" does not.
func asMovies(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		replaced := false
		for _, n := range serviceNames {
			if end := i + len(n.casts); strings.HasPrefix(s[i:], n.casts) && standsAlone(s, i, end) {
				b.WriteString(n.movies)
				i, replaced = end, true
				break
			}
		}
		if !replaced {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

// standsAlone reports whether the name s[start:end] is a word of its own: no letter of its own
// case continues it ("castle", "CASTSX"), and, unless it is capitalised, none precedes it
// ("broadcast"). A capitalised name may follow any letter: that is how identifiers join words
// (newCastResponse).
func standsAlone(s string, start, end int) bool {
	lower := func(c byte) bool { return 'a' <= c && c <= 'z' }
	upper := func(c byte) bool { return 'A' <= c && c <= 'Z' }
	continues := lower
	if name := s[start:end]; strings.ToUpper(name) == name {
		continues = upper
	}
	if end < len(s) && continues(s[end]) {
		return false
	}
	return start == 0 || upper(s[start]) && !upper(s[start+1]) || !continues(s[start-1])
}

// inMovieNames returns the lines of the cast service's copy of a twin as the movie service's
// copy should have them, and the lines of that copy. A line that is already the same in both
// stays as it is: text that names both services, such as the gateway's "the API is under
// /api/v1/movies and /api/v1/casts", says the same in each.
func inMovieNames(castsCopy, moviesCopy string) (want, got []string) {
	want, got = strings.Split(castsCopy, "\n"), strings.Split(moviesCopy, "\n")
	for i, line := range want {
		if i >= len(got) || line != got[i] {
			want[i] = asMovies(line)
		}
	}
	return want, got
}

func TestTwinsDifferOnlyInServiceNames(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	for _, path := range twins {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			castsCopy, err := os.ReadFile(filepath.Join(root, "casts", path))
			if err != nil {
				t.Fatal(err)
			}
			moviesCopy, err := os.ReadFile(filepath.Join(root, "movies", path))
			if err != nil {
				t.Fatal(err)
			}
			want, got := inMovieNames(string(castsCopy), string(moviesCopy))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("casts/%s and movies/%s differ beyond the services' names: change both, or take the file off the list of twins if it is to differ on purpose (-casts, in the movie service's names, +movies):\n%s", path, path, diff)
			}
		})
	}
}

func TestAsMovies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`import "github.com/movies-microservices/casts/internal/logbuf"`, `import "github.com/movies-microservices/movies/internal/logbuf"`},
		{"CASTS_DEBUG_ADDR", "MOVIES_DEBUG_ADDR"},
		{`v5emb.New("Casts API", "/api/v1/casts/openapi.json", "/api/v1/casts/docs/")`, `v5emb.New("Movies API", "/api/v1/movies/openapi.json", "/api/v1/movies/docs/")`},
		{`"template_casts_" + suffix`, `"template_movies_" + suffix`},
		{"%2Fapi%2Fv1%2Fcasts%3Fx", "%2Fapi%2Fv1%2Fmovies%3Fx"},
		{"// Command casts serves the cast API.", "// Command movies serves the movie API."},
		{"castRequest, newCastResponse, CastID", "movieRequest, newMovieResponse, MovieID"},
		{"broadcast, castle, Castle, forecasts, BROADCASTS, CASTSX", "broadcast, castle, Castle, forecasts, BROADCASTS, CASTSX"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, asMovies(tc.in)); diff != "" {
				t.Errorf("asMovies(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestInMovieNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, castsCopy, moviesCopy string
		same                        bool
	}{
		{"names differ", "serve the cast API\non /api/v1/casts", "serve the movie API\non /api/v1/movies", true},
		{"a line naming both services the same in each", "under /api/v1/movies and /api/v1/casts", "under /api/v1/movies and /api/v1/casts", true},
		{"a fix made in one copy only", "limit := 1 << 20\n/api/v1/casts", "limit := 1 << 21\n/api/v1/movies", false},
		{"a line added to one copy only", "a\nb", "a\nb\nc", false},
		{"names of the other service where its own belong", "serve the cast API", "serve the cast API too", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want, got := inMovieNames(tc.castsCopy, tc.moviesCopy)
			if same := cmp.Equal(want, got); same != tc.same {
				t.Errorf("inMovieNames(%q, %q): same %v, want %v (%q vs %q)", tc.castsCopy, tc.moviesCopy, same, tc.same, want, got)
			}
		})
	}
}
