package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// hostile is one bad request of the barrage and what must come back.
type hostile struct {
	what    string // the kind of attack, for failure messages
	method  string
	path    string
	header  []string // name, value pairs; nothing is added, not even a Content-Type
	body    []byte
	chunked bool // send the body without a Content-Length
	// want is the exact status expected; 0 accepts any status below 500.
	want int
	// check, if set, looks further at the answer and says what is wrong with it.
	check func(response) string
}

// barrageWorkers bounds the barrage's concurrency: enough to interleave
// requests on both services, few enough not to turn it into a load test.
const barrageWorkers = 8

// sendHostile sends h through the gateway and returns what is wrong with the answer: everything
// call checks for (OpenAPI contract, X-Request-Id, problem+json on errors), no 5xx, and h's
// own expectations. It is safe for concurrent use; it never stops the test.
func sendHostile(ctx context.Context, h hostile) []string {
	var body io.Reader
	if h.body != nil {
		body = bytes.NewReader(h.body)
		if h.chunked {
			body = io.MultiReader(body) // hides the length: the client sends it chunked
		}
	}
	req, err := http.NewRequestWithContext(ctx, h.method, suite.gateway+h.path, body)
	if err != nil {
		return []string{"build request: " + err.Error()}
	}
	for i := 0; i+1 < len(h.header); i += 2 {
		req.Header.Set(h.header[i], h.header[i+1])
	}
	authorize(req, suiteTokens)
	got, err := doRequest(req)
	if err != nil {
		return []string{"no answer: " + err.Error()}
	}

	issues := answerIssues(h.method, h.path, req.Header, h.body, got)
	if got.Status >= 500 {
		issues = append(issues, fmt.Sprintf("status %d for bad input", got.Status))
	}
	if h.want != 0 && got.Status != h.want {
		issues = append(issues, fmt.Sprintf("status %d, want %d", got.Status, h.want))
	}
	if h.check != nil {
		if msg := h.check(got); msg != "" {
			issues = append(issues, msg)
		}
	}
	if len(issues) > 0 {
		issues = append(issues, fmt.Sprintf("(answer: %d %q %.200q)", got.Status, got.Header.Get("Content-Type"), got.Body))
	}
	return issues
}

// doRequest sends req and reads the whole answer.
func doRequest(req *http.Request) (response, error) {
	resp, err := plainClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	r := response{Status: resp.StatusCode, Header: resp.Header}
	if r.Body, err = io.ReadAll(resp.Body); err != nil {
		return response{}, fmt.Errorf("read body: %w", err)
	}
	return r, nil
}

// answerIssues is call's check of a response, returning what is wrong instead of failing a test.
// A 405 answers an operation the document does not describe, so it is not checked against it.
func answerIssues(method, path string, header http.Header, body []byte, r response) []string {
	var issues []string
	checkReq, err := http.NewRequest(method, "http://service"+path, bytes.NewReader(body))
	if err == nil && r.Status != http.StatusMethodNotAllowed {
		checkReq.Header = header.Clone()
		for prefix, c := range suite.contracts {
			if strings.HasPrefix(path, prefix) {
				for _, e := range c.check(checkReq, r.Status, r.Header, r.Body) {
					issues = append(issues, "does not match "+prefix+"/openapi.json: "+e)
				}
			}
		}
	}
	if r.Header.Get("X-Request-Id") == "" {
		issues = append(issues, "no X-Request-Id")
	}
	if r.Status >= 400 {
		if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
			issues = append(issues, fmt.Sprintf("Content-Type %q, want application/problem+json", ct))
		} else {
			var p problem
			if err := json.Unmarshal(r.Body, &p); err != nil || p.Type == "" || p.Title == "" || p.Status != r.Status {
				issues = append(issues, "not an RFC 9457 problem with type, title and the response's status")
			}
		}
	}
	return issues
}

// runBarrage sends every case with bounded concurrency and reports each failing one.
func runBarrage(t *testing.T, cases []hostile) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	type failure struct {
		h      hostile
		issues []string
	}
	var (
		mu       sync.Mutex
		failures []failure
		wg       sync.WaitGroup
	)
	work := make(chan hostile)
	for range barrageWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range work {
				if issues := sendHostile(ctx, h); len(issues) > 0 {
					mu.Lock()
					failures = append(failures, failure{h, issues})
					mu.Unlock()
				}
			}
		}()
	}
	for _, h := range cases {
		work <- h
	}
	close(work)
	wg.Wait()

	const shown = 40
	for i, f := range failures {
		if i == shown {
			t.Errorf("... and %d more failing requests", len(failures)-shown)
			break
		}
		t.Errorf("%s: %s %.120s (%d-byte body): %s", f.h.what, f.h.method, f.h.path, len(f.h.body), strings.Join(f.issues, "; "))
	}
	t.Logf("%d hostile requests, %d answered wrongly", len(cases), len(failures))
}

// bodyTarget is an endpoint that takes a JSON body.
type bodyTarget struct {
	method, path, contentType string
}

func (bt bodyTarget) isPatch() bool { return bt.method == http.MethodPatch }

func (bt bodyTarget) send(what string, body []byte, wantReplace, wantPatch int) hostile {
	want := wantReplace
	if bt.isPatch() {
		want = wantPatch
	}
	return hostile{what: what, method: bt.method, path: bt.path, header: []string{"Content-Type", bt.contentType}, body: body, want: want}
}

func bodyTargets(collection, item string) []bodyTarget {
	return []bodyTarget{
		{http.MethodPost, collection, "application/json"},
		{http.MethodPut, item, "application/json"},
		{http.MethodPatch, item, "application/merge-patch+json"},
	}
}

// malformedJSON is not JSON, or not one JSON value: 400 on every endpoint that takes a body.
var malformedJSON = []string{
	"", " ", "\n", "{", "}", "[", "]", "{{", "{]", `{"name"`, `{"name":`, `{"name":"x"`, `{"name":"x",}`,
	`{name:"x"}`, `{'name':'x'}`, `{"name":"x"}}`, `{"name":"x"} {"name":"y"}`, `{"name":"x"}x`, `{"name":"x"}[]`,
	`nul`, `tru`, `fals`, `{"name":"x" "plot":"y"}`, `{"name":"x",,"plot":"y"}`, `{"name":"x"]`, `{"name":"\x"}`,
	`{"name":"\u12"}`, `{"name":"\uZZZZ"}`, "{\"name\":\"a\x00b\"}", "{\"name\":\"a\nb\"}", "{\"name\":\"a\tb\"}",
	"{\"name\":\"x\"}\x00", "\x00{\"name\":\"x\"}", "\xef\xbb\xbf{\"name\":\"x\"}", "\xff\xfe{\x00\"\x00n\x00\"\x00}\x00",
	`{"name":NaN}`, `{"name":Infinity}`, `{"name":-Infinity}`, `{"name":-}`, `{"name":01}`, `{"name":1.}`, `{"name":.5}`,
	`{"name":0x10}`, `{"name":+1}`, `{"name":1e}`, `{"name":"x"/*c*/}`, `/*c*/{"name":"x"}`, `//c` + "\n" + `{"name":"x"}`,
	`{"name":'x'}`, `{"name":"x"`, `{"name":undefined}`, `{"name":True}`, `{"name":NULL}`, `["name","x"`, `"x`,
	`{"a":[1,2}`, `{"a":{"b":1]}`, `<name>x</name>`, `name=x`, `--x`, `{"name":"x"},`, `,{"name":"x"}`,
}

// notAnObject is a JSON value that is not an object: 400, but null as a full body is an object
// with every field missing.
var notAnObject = []string{`"x"`, `1`, `-1.5e3`, `true`, `false`, `[]`, `[{"name":"x"}]`, `[[]]`, `""`}

// wrongType is an object with a value of the wrong JSON type, or a number its field cannot hold:
// 422 on every endpoint, naming field (an array item by its index) among its errors.
type wrongType struct{ body, field string }

var castWrongTypes = []wrongType{
	{`{"name":1}`, "name"}, {`{"name":1.5}`, "name"}, {`{"name":true}`, "name"}, {`{"name":false}`, "name"},
	{`{"name":[]}`, "name"}, {`{"name":["x"]}`, "name"}, {`{"name":{}}`, "name"}, {`{"name":{"a":1}}`, "name"},
	{`{"name":"x","nationality":1}`, "nationality"}, {`{"name":"x","nationality":true}`, "nationality"},
	{`{"name":"x","nationality":[]}`, "nationality"}, {`{"name":"x","nationality":{}}`, "nationality"},
	{`{"name":99999999999999999999}`, "name"}, {`{"name":1e400}`, "name"}, {`{"name":-0}`, "name"},
	{`{"name":"x","nationality":1e-400}`, "nationality"}, {`{"name":2,"nationality":"French"}`, "name"},
	{`{"name":"A","nationality":2}`, "nationality"}, {`{"NAME":2}`, "name"},
}

var movieWrongTypes = []wrongType{
	{`{"name":1}`, "name"}, {`{"name":true}`, "name"}, {`{"name":[]}`, "name"}, {`{"name":{}}`, "name"},
	{`{"name":"x","plot":1}`, "plot"}, {`{"name":"x","plot":[]}`, "plot"}, {`{"name":"x","plot":{}}`, "plot"},
	{`{"name":"x","genres":"drama"}`, "genres"}, {`{"name":"x","genres":1}`, "genres"}, {`{"name":"x","genres":{}}`, "genres"},
	{`{"name":"x","genres":[1]}`, "genres[0]"}, {`{"name":"x","genres":[true]}`, "genres[0]"},
	{`{"name":"x","genres":["a",[]]}`, "genres[1]"}, {`{"name":"x","genres":["a","b",{}]}`, "genres[2]"},
	{`{"name":"x","cast_ids":"1"}`, "cast_ids"}, {`{"name":"x","cast_ids":1}`, "cast_ids"}, {`{"name":"x","cast_ids":{}}`, "cast_ids"},
	{`{"name":"x","cast_ids":["1"]}`, "cast_ids[0]"}, {`{"name":"x","cast_ids":[1.5]}`, "cast_ids[0]"},
	{`{"name":"x","cast_ids":[true]}`, "cast_ids[0]"}, {`{"name":"x","cast_ids":[[1]]}`, "cast_ids[0]"},
	{`{"name":"x","cast_ids":[1e3]}`, "cast_ids[0]"}, {`{"name":"x","cast_ids":[1E2]}`, "cast_ids[0]"},
	{`{"name":"x","cast_ids":[1.0]}`, "cast_ids[0]"}, {`{"name":"x","cast_ids":[1,99999999999999999999]}`, "cast_ids[1]"},
	{`{"name":"x","cast_ids":[9223372036854775808]}`, "cast_ids[0]"}, {`{"name":"x","cast_ids":[-9223372036854775809]}`, "cast_ids[0]"},
	{`{"name":"x","cast_ids":[1e400]}`, "cast_ids[0]"}, {`{"name":"x","cast_ids":[-0.0]}`, "cast_ids[0]"}, {`{"name":1e400}`, "name"},
}

// check says what is wrong with a 422 for w: its errors must name w's field.
func (w wrongType) check(r response) string {
	var p problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return "not a problem document: " + err.Error()
	}
	for _, fe := range p.Errors {
		if fe.Field == w.field && strings.HasPrefix(fe.Message, "must be a JSON ") {
			return ""
		}
	}
	return fmt.Sprintf("errors %+v do not say what JSON type %s must be", p.Errors, w.field)
}

// castUnknownFields and movieUnknownFields name fields the request does not have: 400, even
// where a value is of the wrong type too.
var castUnknownFields = []string{
	`{"name":"x","born":1}`, `{"name":"x","id":1}`, `{"name":"x","version":2}`, `{"name":1,"born":1}`,
	`{"name":"x","created_at":"2020-01-01T00:00:00Z"}`, `{"na\u0000me":"x"}`, `{"":"x"}`, `{"name ":"x"}`,
}

var movieUnknownFields = []string{
	`{"name":"x","id":1}`, `{"name":"x","casts":[1]}`, `{"name":"x","genre":"drama"}`, `{"name":"x","cast_ids":[1.5],"year":1}`,
}

// castInvalid are well-formed casts that break a rule: 422 on every endpoint.
var castInvalid = []string{
	`{"name":""}`, `{"name":"   "}`, "{\"name\":\"\\u0000\"}", "{\"name\":\"a\\u0000b\"}",
	"{\"name\":\"ok\",\"nationality\":\"\\u0000\"}", `{"name":"` + strings.Repeat("n", 101) + `"}`,
	`{"name":"` + strings.Repeat("é", 101) + `"}`, `{"name":"ok","nationality":"` + strings.Repeat("x", 101) + `"}`,
	`{"name":"` + strings.Repeat("n", 200_000) + `"}`,
}

// movieInvalid are well-formed movies that break a rule: 422 on every endpoint. (Valid ids of
// casts that do not exist are 422 too, from the cast check.)
var movieInvalid = []string{
	`{"name":""}`, "{\"name\":\"\\u0000\"}", "{\"name\":\"x\",\"plot\":\"\\u0000\"}", "{\"name\":\"x\",\"genres\":[\"a\\u0000\"]}",
	`{"name":"x","genres":[""]}`, `{"name":"x","genres":[null]}`, `{"name":"x","genres":["a","A"]}`,
	`{"name":"x","genres":["` + strings.Repeat("g", 51) + `"]}`, `{"name":"` + strings.Repeat("n", 201) + `"}`,
	`{"name":"x","plot":"` + strings.Repeat("p", 5001) + `"}`, `{"name":"x","cast_ids":[0]}`, `{"name":"x","cast_ids":[-1]}`,
	`{"name":"x","cast_ids":[null]}`, `{"name":"x","cast_ids":[1,1]}`, `{"name":"x","cast_ids":[9223372036854775807]}`,
	`{"name":"x","genres":` + jsonList(21, func(i int) string { return strconv.Quote("g" + strconv.Itoa(i)) }) + `}`,
	`{"name":"x","cast_ids":` + jsonList(101, func(i int) string { return strconv.Itoa(i + 1) }) + `}`,
	`{"name":"x","cast_ids":` + jsonList(100_000, func(i int) string { return strconv.Itoa(i + 1) }) + `}`,
}

func jsonList(n int, item func(int) string) string {
	items := make([]string, n)
	for i := range items {
		items[i] = item(i)
	}
	return "[" + strings.Join(items, ",") + "]"
}

// deepJSON nests arrays or objects depth levels deep, inside a field of an object; past the JSON
// decoder's limit of 10000 levels it is a syntax error, below it a value of the wrong type.
func deepJSON(field string, depth int, object bool) string {
	if object {
		return `{"` + field + `":` + strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth) + "}"
	}
	return `{"` + field + `":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "}"
}

// deepBody is a deeply nested or very wide body and the status it must get.
type deepBody struct {
	body string
	want int
}

// deepBodies: nesting past the decoder's limit is malformed (400); below it, a nested value in
// the name is of the wrong type (422) and one in a field the request does not have is unknown (400).
func deepBodies() []deepBody {
	var bodies []deepBody
	for _, depth := range []int{64, 1000, 9990, 10001, 100_000} {
		inName := http.StatusUnprocessableEntity
		if depth > 9990 {
			inName = http.StatusBadRequest
		}
		bodies = append(bodies,
			deepBody{deepJSON("name", depth, false), inName},
			deepBody{deepJSON("name", depth, true), inName},
			deepBody{deepJSON("extra", depth, true), http.StatusBadRequest})
	}
	wide := make([]string, 10_000)
	for i := range wide {
		wide[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return append(bodies,
		deepBody{strings.Repeat("[", 50_000), http.StatusBadRequest},
		deepBody{strings.Repeat(`{"a":`, 50_000), http.StatusBadRequest},
		deepBody{`{"name":"x",` + strings.Join(wide, ",") + `}`, http.StatusBadRequest},
	)
}

// garbage is random bytes that are not valid JSON, from a fixed seed so that a failure repeats.
func garbage(n int) []string {
	const jsonish = `{}[]":,0123456789eE.-tfn\ `
	rng := rand.New(rand.NewPCG(6, 1000))
	var out []string
	for len(out) < n {
		b := make([]byte, 1+rng.IntN(96))
		for i := range b {
			b[i] = byte(rng.UintN(256))
			if rng.IntN(3) == 0 { // keep some JSON-looking bytes
				b[i] = jsonish[rng.IntN(len(jsonish))]
			}
		}
		if !json.Valid(b) {
			out = append(out, string(b))
		}
	}
	return out
}

// truncations are every proper prefix of body: all malformed.
func truncations(body string) []string {
	out := make([]string, len(body))
	for i := range out {
		out[i] = body[:i]
	}
	return out
}

// badIDs name no resource: every method on them is a 404, never a 400 or a 500.
var badIDs = []string{
	"-1", "0", "-0", "00", "1e3", "1E3", "1.0", "0x1", "+1", "1_0", "99999999999999999999", "9223372036854775808",
	"9223372036854775807", "-9223372036854775808", "%00", "%20", "%09", "1%0A", "%ff", "%EF%BC%91", "%D9%A1",
	"abc", "null", "1;2", "1%3B2", "1%2F2", "%27%20OR%20%271%27%3D%271", "1%20OR%201%3D1", "1%27--",
}

// unknownMethods are not served anywhere: 405 with Allow.
var unknownMethods = []string{"FOO", "PROPFIND", "MKCOL", "LOCK", "TRACE", "OPTIONS", "CONNECT", "PURGE", "get", "Post"}

// wrongContentTypes are never accepted for a JSON body: 415.
var wrongContentTypes = []string{
	"", "text/plain", "text/json", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
	"application/jsonx", "json", "application/json-patch+json", "application/problem+json", "application/json;;",
	"application/json; charset", "application/json,text/plain", "application/json; a=1; a=2", "*/*", "application/*",
}

func badQueries(service string) []string {
	common := []string{
		"limit=0", "limit=-1", "limit=1001", "limit=abc", "limit=1e3", "limit=99999999999999999999", "limit=", "limit=%201",
		"limit=1.5", "after=-1", "after=x", "after=99999999999999999999", "after=1.5", "after=", "LIMIT=10", "foo=1",
		"name=%00", "name=a%00b", "limit=10&bogus=", "%00=1", "id%00=1",
	}
	if service == "casts" {
		return append(common, "id=0", "id=-1", "id=x", "id=1e3", "id=", "id=99999999999999999999", "id=1&id=x",
			"cast_id=1", "genre=x", strings.Repeat("id=1&", 1000)+"id=1")
	}
	return append(common, "genre=%00", "genre=a%00", "cast_id=0", "cast_id=-1", "cast_id=x", "cast_id=", "cast_id=1e3",
		"cast_id=99999999999999999999", "cast_ids=1", "id=1", "genres=drama")
}

// outsidePaths are not under /api/v1/movies or /api/v1/casts: nothing answers them on the public
// entrypoint but the gateway's catch-all 404.
var outsidePaths = []string{
	"/", "/foo", "/api", "/api/", "/api/v1", "/api/v1/", "/api/v2/movies", "/API/V1/MOVIES", "/livez", "/readyz",
	"/readyz?exclude=database", "/problems/500", "/problems/404", "/internal/v1/movies/events", "/metrics", "/ping",
	"/dashboard/", "/api/rawdata", "/api/http/routers", "/.env", "/%2e%2e/etc/passwd", "/%00", "/index.html",
}

// maxBody is the request body limit of the gateway and of both services.
const maxBody = 1 << 20

// bodyOfSize is a well-formed JSON object of exactly n bytes whose name is far too long.
func bodyOfSize(n int) []byte {
	const open, end = `{"name":"`, `"}`
	b := make([]byte, 0, n)
	b = append(b, open...)
	b = append(b, bytes.Repeat([]byte("n"), n-len(open)-len(end))...)
	return append(b, end...)
}

// If-Match values that are malformed (400) or that match nothing (412).
var (
	malformedIfMatch = []string{"garbage", `"1`, `1"`, ",", "W/", `W/1`, `"1" x`, `'1'`}
	// None can match the targets, which are at version 1 or 2; a weak tag never matches.
	staleIfMatch = []string{`"abc"`, `W/"1"`, `"99999999999999999999"`, `"-1"`, `""`, `"998", "999"`}
)

// hostileRequestIDs are not acceptable request ids (too long, not printable ASCII): the service
// must answer with one of its own.
var hostileRequestIDs = []string{strings.Repeat("a", 129), strings.Repeat("x", 10_000), "a b", "ünïcode", "id\twith\ttabs"}

// TestHostileInputBarrage sends well over a thousand bad requests of every kind to both services
// through the gateway: each must get the right 4xx as problem+json (never a 5xx), nothing it
// targets may change, and both services must stay healthy. It holds cpuHeavy: no browser runs
// beside it.
func TestHostileInputBarrage(t *testing.T) {
	t.Parallel()
	holdCPU(t)
	c := createCast(t, unique("Barrage Target Cast"))
	castItem := "/api/v1/casts/" + itoa(c.ID)
	m := createMovie(t, movie{Name: unique("Barrage Target Movie"), Plot: "Unchanged.", Genres: []string{"noir"}, CastIDs: []int64{c.ID}})
	movieItem := "/api/v1/movies/" + itoa(m.ID)

	services := []struct {
		name, collection, item string
		validBody, valid2      string // a valid body, and a longer one for truncation
		wrongTypes             []wrongType
		unknownFields, invalid []string
	}{
		{"casts", "/api/v1/casts", castItem, `{"name":"Valid Name"}`, `{"name":"Truncated Name","nationality":"French"}`,
			castWrongTypes, castUnknownFields, castInvalid},
		{"movies", "/api/v1/movies", movieItem, `{"name":"Valid Name"}`,
			`{"name":"Truncated","plot":"A plot.","genres":["drama","noir"],"cast_ids":[` + itoa(c.ID) + `]}`,
			movieWrongTypes, movieUnknownFields, movieInvalid},
	}

	var cases []hostile
	for _, svc := range services {
		for _, bt := range bodyTargets(svc.collection, svc.item) {
			for _, b := range malformedJSON {
				cases = append(cases, bt.send("malformed JSON", []byte(b), 400, 400))
			}
			for _, b := range truncations(svc.valid2) {
				cases = append(cases, bt.send("truncated JSON", []byte(b), 400, 400))
			}
			for _, b := range garbage(25) {
				cases = append(cases, bt.send("random bytes", []byte(b), 400, 400))
			}
			for _, b := range notAnObject {
				cases = append(cases, bt.send("not an object", []byte(b), 400, 400))
			}
			// A full body of null has every field missing; a merge patch must be an object.
			cases = append(cases, bt.send("null body", []byte("null"), 422, 400))
			for _, w := range svc.wrongTypes {
				h := bt.send("wrong type or huge number", []byte(w.body), 422, 422)
				h.check = w.check
				cases = append(cases, h)
			}
			for _, b := range svc.unknownFields {
				cases = append(cases, bt.send("unknown field", []byte(b), 400, 400))
			}
			for _, b := range svc.invalid {
				cases = append(cases, bt.send("invalid field", []byte(b), 422, 422))
			}
			// Removing the required name with a merge patch leaves an invalid resource.
			if bt.isPatch() {
				cases = append(cases, bt.send("patch removes a required field", []byte(`{"name":null}`), 0, 422))
			}
			for _, b := range deepBodies() {
				cases = append(cases, bt.send("deep or wide nesting", []byte(b.body), b.want, b.want))
			}
			cases = append(cases, bt.send("chunked malformed body", []byte(`{"name":`), 400, 400))
			cases[len(cases)-1].chunked = true
			// The limit is 1 MiB, at the gateway and in each service: a body of exactly 1 MiB gets
			// through (and is refused for its over-long name), one byte more does not, whether its
			// length is announced or not.
			for _, size := range []int{maxBody, maxBody + 1, 2 * maxBody, 8 * maxBody} {
				want := http.StatusRequestEntityTooLarge
				if size <= maxBody {
					want = http.StatusUnprocessableEntity
				}
				cases = append(cases, bt.send(fmt.Sprintf("body of %d bytes", size), bodyOfSize(size), want, want))
				if size > maxBody {
					cases = append(cases, bt.send(fmt.Sprintf("chunked body of %d bytes", size), bodyOfSize(size), want, want))
					cases[len(cases)-1].chunked = true
				}
			}
			for _, ct := range wrongContentTypes {
				h := bt.send("wrong Content-Type", []byte(svc.validBody), 415, 415)
				h.header = []string{"Content-Type", ct}
				if ct == "" {
					h.header = nil
				}
				cases = append(cases, h)
			}
			for _, ct := range []string{"application/merge-patch+json", "text/plain"} {
				if bt.contentType != ct {
					h := bt.send("Content-Type of another method", []byte(svc.validBody), 415, 415)
					h.header = []string{"Content-Type", ct}
					cases = append(cases, h)
				}
			}
		}

		for _, id := range badIDs {
			for _, suffix := range []string{"", "/"} {
				path := svc.collection + "/" + id + suffix
				cases = append(cases,
					hostile{what: "bad id", method: http.MethodGet, path: path, want: 404},
					hostile{what: "bad id", method: http.MethodDelete, path: path, want: 404},
					hostile{what: "bad id", method: http.MethodPut, path: path, want: 404,
						header: []string{"Content-Type", "application/json"}, body: []byte(svc.validBody)},
					hostile{what: "bad id", method: http.MethodPatch, path: path, want: 404,
						header: []string{"Content-Type", "application/merge-patch+json"}, body: []byte(`{"name":"x"}`)},
				)
			}
		}
		// A GET's body has no meaning and the services never read one: the gateway streams it
		// through (public-read in traefik/dynamic/middlewares.yml) and the GET is answered 200,
		// however large the body, with or without a Content-Length.
		for _, path := range []string{svc.item, svc.collection} {
			for _, chunked := range []bool{false, true} {
				for _, size := range []int{12, 8 * maxBody} {
					cases = append(cases, hostile{what: fmt.Sprintf("GET with a %d-byte body", size), method: http.MethodGet,
						path: path, body: bodyOfSize(size), chunked: chunked, want: 200})
				}
			}
		}
		for _, path := range []string{svc.collection + "/1/deeper", svc.collection + "/" + itoa(c.ID) + "/x/",
			svc.collection + "x", svc.collection + "-old/1"} {
			cases = append(cases, hostile{what: "no such route", method: http.MethodGet, path: path, want: 404})
		}
		// Traefik cleans these paths (decoding %2F, merging slashes) into the collection's.
		for _, path := range []string{svc.collection + "//", svc.collection + "/%2F", svc.collection + "/./", svc.item + "/%2F"} {
			cases = append(cases, hostile{what: "path Traefik cleans", method: http.MethodGet, path: path})
		}

		allow := func(want string) func(response) string {
			return func(r response) string {
				if got := r.Header.Get("Allow"); got != want {
					return fmt.Sprintf("Allow %q, want %q", got, want)
				}
				return ""
			}
		}
		for _, path := range []string{svc.collection, svc.collection + "/"} {
			for _, method := range append(unknownMethods, http.MethodPut, http.MethodPatch, http.MethodDelete) {
				cases = append(cases, hostile{what: "method not allowed", method: method, path: path, want: 405, check: allow("GET, HEAD, POST")})
			}
		}
		for _, path := range []string{svc.item, svc.item + "/"} {
			for _, method := range append(unknownMethods, http.MethodPost) {
				cases = append(cases, hostile{what: "method not allowed", method: method, path: path, want: 405,
					check: allow("DELETE, GET, HEAD, PATCH, PUT")})
			}
		}

		for _, q := range badQueries(svc.name) {
			for _, path := range []string{svc.collection, svc.collection + "/"} {
				cases = append(cases, hostile{what: "bad query parameter", method: http.MethodGet, path: path + "?" + q, want: 400})
			}
		}

		patch := []string{"Content-Type", "application/merge-patch+json"}
		for _, tag := range malformedIfMatch {
			cases = append(cases,
				hostile{what: "malformed If-Match", method: http.MethodPatch, path: svc.item, header: append(patch, "If-Match", tag), body: []byte(`{"name":"x"}`), want: 400},
				hostile{what: "malformed If-Match", method: http.MethodDelete, path: svc.item, header: []string{"If-Match", tag}, want: 400},
			)
		}
		for _, tag := range staleIfMatch {
			cases = append(cases,
				hostile{what: "stale If-Match", method: http.MethodPatch, path: svc.item, header: append(patch, "If-Match", tag), body: []byte(`{"name":"x"}`), want: 412},
				hostile{what: "stale If-Match", method: http.MethodPut, path: svc.item, header: []string{"Content-Type", "application/json", "If-Match", tag}, body: []byte(svc.validBody), want: 412},
				hostile{what: "stale If-Match", method: http.MethodDelete, path: svc.item, header: []string{"If-Match", tag}, want: 412},
			)
		}

		for _, id := range hostileRequestIDs {
			sent := id
			cases = append(cases, hostile{what: "hostile X-Request-Id", method: http.MethodGet, path: svc.collection + "/0",
				header: []string{"X-Request-Id", sent}, want: 404, check: func(r response) string {
					got := r.Header.Get("X-Request-Id")
					if got == sent || len(got) > 128 || strings.ContainsFunc(got, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
						return fmt.Sprintf("X-Request-Id %q: want a fresh, printable id instead of the one sent", got)
					}
					return ""
				}})
		}
	}
	// Outside the two APIs the gateway has nothing: a 404 problem+json for every method, and the
	// services' own paths (probes, problem pages, the internal API) stay unreachable.
	for _, path := range outsidePaths {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete, "FOO"} {
			cases = append(cases, hostile{what: "path outside the API", method: method, path: path, want: 404})
		}
	}
	if len(cases) < 1000 {
		t.Fatalf("the barrage has only %d requests, want at least 1000", len(cases))
	}

	runBarrage(t, cases)

	// Every request against the targets was refused, so neither changed.
	if diff := cmp.Diff(c, decodeAs[cast](t, call(t, "GET", castItem, ""))); diff != "" {
		t.Errorf("target cast changed by refused requests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(m, decodeAs[movie](t, call(t, "GET", movieItem, ""))); diff != "" {
		t.Errorf("target movie changed by refused requests (-want +got):\n%s", diff)
	}
	checkServicesHealthy(t)
}

// TestHostileInvalidUTF8Body: JSON strings with invalid UTF-8 never reach the database as such;
// the JSON decoder replaces each bad byte with U+FFFD, so the request either succeeds with the
// replacement or is refused, and never fails with a 5xx.
func TestHostileInvalidUTF8Body(t *testing.T) {
	t.Parallel()
	tag := unique("utf8")
	validUTF8 := func(field string) func(response) string {
		return func(r response) string {
			if r.Status >= 300 {
				return ""
			}
			var v map[string]any
			if err := json.Unmarshal(r.Body, &v); err != nil {
				return "body is not JSON: " + err.Error()
			}
			s, _ := v[field].(string)
			if !utf8.ValidString(s) || !strings.ContainsRune(s, utf8.RuneError) {
				return fmt.Sprintf("%s %q: want valid UTF-8 with U+FFFD for the bad bytes", field, s)
			}
			return ""
		}
	}
	var cases []hostile
	for _, bad := range []string{"\xff", "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "a\x80b", "\xfe\xff", `\ud800`, `\udfff\ud800`} {
		body := func(format string) []byte { return []byte(fmt.Sprintf(format, tag+" "+bad)) }
		cases = append(cases,
			hostile{what: "invalid UTF-8 in a cast name", method: http.MethodPost, path: "/api/v1/casts",
				header: []string{"Content-Type", "application/json"}, body: body(`{"name":"%s"}`), check: validUTF8("name")},
			hostile{what: "invalid UTF-8 in a nationality", method: http.MethodPost, path: "/api/v1/casts",
				header: []string{"Content-Type", "application/json"}, body: body(`{"name":"n","nationality":"%s"}`), check: validUTF8("nationality")},
			hostile{what: "invalid UTF-8 in a movie name", method: http.MethodPost, path: "/api/v1/movies",
				header: []string{"Content-Type", "application/json"}, body: body(`{"name":"%s"}`), check: validUTF8("name")},
			hostile{what: "invalid UTF-8 in a plot", method: http.MethodPost, path: "/api/v1/movies",
				header: []string{"Content-Type", "application/json"}, body: body(`{"name":"n","plot":"%s"}`), check: validUTF8("plot")},
			hostile{what: "invalid UTF-8 in a field name", method: http.MethodPost, path: "/api/v1/movies",
				header: []string{"Content-Type", "application/json"}, body: body(`{"name":"n","%s":1}`), want: 400},
		)
	}
	runBarrage(t, cases)
	checkServicesHealthy(t)
}

// sqlInjections are valid names: the services must store and return them byte for byte, and find
// them by substring like any other name.
var sqlInjections = []string{
	`Robert'); DROP TABLE casts;--`,
	`' OR '1'='1`,
	`' OR 1=1 --`,
	`"; DROP TABLE movies; --`,
	`1; DELETE FROM movies WHERE 1=1`,
	`' UNION SELECT id, name FROM casts --`,
	`admin'--`,
	`%' OR name LIKE '%`,
	`_%\`,
	`'; SELECT pg_sleep(10); --`,
	`$1 $$ $body$ $$`,
	`E'\x27' || chr(39)`,
	`' || (SELECT current_user) || '`,
	`/* comment */ SELECT 1`,
	`'; COPY casts TO PROGRAM 'id'; --`,
	`\'; \\; \"`,
	`<script>alert(1)</script>`,
	`${jndi:ldap://127.0.0.1/a} {{7*7}}`,
	`Ω≈ç√∫ 😀 ‮ reversed`,
	`null`,
}

// TestHostileInjectionStoredVerbatim: SQL (and other) injection strings are ordinary data.
func TestHostileInjectionStoredVerbatim(t *testing.T) {
	t.Parallel()
	tag := strings.ReplaceAll(unique("inj"), " ", "-")
	for i, inj := range sqlInjections {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			name := inj + " " + tag
			r := call(t, "POST", "/api/v1/casts", jsonBody(t, map[string]any{"name": name, "nationality": inj}))
			mustStatus(t, "create cast", r, http.StatusCreated)
			created := decodeAs[cast](t, r)
			if created.Name != name || created.Nationality == nil || *created.Nationality != inj {
				t.Errorf("created cast %q / %v, want %q / %q verbatim", created.Name, created.Nationality, name, inj)
			}
			got := decodeAs[cast](t, call(t, "GET", "/api/v1/casts/"+itoa(created.ID), ""))
			if diff := cmp.Diff(created, got); diff != "" {
				t.Errorf("read back (-want +got):\n%s", diff)
			}
			found := decodeAs[[]cast](t, call(t, "GET", "/api/v1/casts?limit=1000&name="+url.QueryEscape(name), ""))
			if diff := cmp.Diff([]cast{created}, found); diff != "" {
				t.Errorf("name filter with the injection string (-want +got):\n%s", diff)
			}

			genre := inj
			if utf8.RuneCountInString(genre) > 50 {
				genre = string([]rune(genre)[:50])
			}
			want := movie{Name: name, Plot: inj, Genres: []string{genre}, CastIDs: []int64{created.ID}}
			mv := createMovie(t, want)
			if diff := cmp.Diff(want, mv, ignoreMovieTimes); diff != "" {
				t.Errorf("created movie (-want +got):\n%s", diff)
			}
			found2 := decodeAs[[]movie](t, call(t, "GET", "/api/v1/movies?limit=1000&cast_id="+itoa(created.ID)+"&genre="+url.QueryEscape(genre)+"&name="+url.QueryEscape(name), ""))
			if diff := cmp.Diff([]movie{mv}, found2); diff != "" {
				t.Errorf("filters with the injection string (-want +got):\n%s", diff)
			}

			patched := inj + " patched " + tag
			r = call(t, "PATCH", "/api/v1/movies/"+itoa(mv.ID), jsonBody(t, map[string]any{"name": patched}), "Content-Type", "application/merge-patch+json")
			mustStatus(t, "patch movie", r, http.StatusOK)
			if got := decodeAs[movie](t, r).Name; got != patched {
				t.Errorf("patched name %q, want %q", got, patched)
			}
		})
	}
	t.Cleanup(func() {
		// The tables the strings try to drop are still there and still answer.
		mustStatus(t, "list casts afterwards", call(t, "GET", "/api/v1/casts?limit=1", ""), http.StatusOK)
		mustStatus(t, "list movies afterwards", call(t, "GET", "/api/v1/movies?limit=1", ""), http.StatusOK)
	})
}

// checkServicesHealthy checks that every replica still answers /livez and /readyz, directly
// when the suite runs its own stack, and that both routes still work through the gateway.
func checkServicesHealthy(t *testing.T) {
	t.Helper()
	mustStatus(t, "list casts through the gateway", call(t, "GET", "/api/v1/casts?limit=1", ""), http.StatusOK)
	mustStatus(t, "list movies through the gateway", call(t, "GET", "/api/v1/movies?limit=1", ""), http.StatusOK)
	if suite.target == nil {
		return
	}
	u := suite.target.URLs()
	for _, base := range append(u.Casts, u.Movies...) {
		for _, path := range []string{"/livez", "/readyz"} {
			resp, err := plainClient.Get(base + path)
			if err != nil {
				t.Errorf("GET %s%s: %v", base, path, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s%s: %d, want 200", base, path, resp.StatusCode)
			}
		}
	}
}
