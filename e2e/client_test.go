package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/paths"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// contract checks responses against the OpenAPI document a service serves.
type contract struct {
	mu        sync.Mutex // the validator keeps caches that are not safe for concurrent use
	model     *v3.Document
	validator validator.Validator
}

// loadContracts fetches both services' OpenAPI documents through the gateway.
func loadContracts(ctx context.Context, gateway string) (map[string]*contract, error) {
	contracts := map[string]*contract{}
	for _, prefix := range []string{"/api/v1/casts", "/api/v1/movies"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, gateway+prefix+"/openapi.json", nil)
		if err != nil {
			return nil, err
		}
		resp, err := plainClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch %s/openapi.json: %w", prefix, err)
		}
		spec, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetch %s/openapi.json: status %d, %v", prefix, resp.StatusCode, err)
		}
		doc, err := libopenapi.NewDocument(spec)
		if err != nil {
			return nil, fmt.Errorf("parse %s/openapi.json: %w", prefix, err)
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			return nil, fmt.Errorf("validator for %s/openapi.json: %v", prefix, errs)
		}
		if ok, verrs := v.ValidateDocument(); !ok {
			return nil, fmt.Errorf("%s/openapi.json is not a valid OpenAPI document: %v", prefix, describe(verrs))
		}
		model, err := doc.BuildV3Model()
		if err != nil {
			return nil, fmt.Errorf("model of %s/openapi.json: %w", prefix, err)
		}
		contracts[prefix] = &contract{model: &model.Model, validator: v}
	}
	return contracts, nil
}

// check returns what in resp disagrees with the document; routes the document does not describe
// (unknown paths, wrong methods) are not checked here.
func (c *contract) check(req *http.Request, status int, header http.Header, body []byte) []string {
	req = withoutTrailingSlash(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if item, errs, _ := paths.FindPath(req, c.model, nil); item == nil || len(errs) > 0 {
		return nil
	}
	resp := &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)), Request: req}
	if ok, verrs := c.validator.ValidateHttpResponse(req, resp); !ok {
		return describe(verrs)
	}
	return nil
}

// withoutTrailingSlash is req as the document describes it: each operation is listed once, by
// its path without the trailing slash that the services accept as well, for the same operation.
func withoutTrailingSlash(req *http.Request) *http.Request {
	if p := req.URL.Path; len(p) <= 1 || !strings.HasSuffix(p, "/") {
		return req
	}
	req = req.Clone(req.Context())
	req.URL.Path = strings.TrimSuffix(req.URL.Path, "/")
	req.URL.RawPath = strings.TrimSuffix(req.URL.RawPath, "/")
	return req
}

func describe[E interface{ Error() string }](errs []E) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// response is what the gateway answered.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// problem is an RFC 9457 problem details body as the services send it.
type problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail"`
	Instance string       `json:"instance"`
	Errors   []fieldError `json:"errors"`
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// call sends a request through the gateway and checks what every response must satisfy: it
// matches the service's OpenAPI document, carries a request id, and every error is problem+json.
// headers are name, value pairs; a body is sent as application/json unless they say otherwise.
// A write carries the suite's token unless headers set Authorization (noToken: none at all).
func call(t testing.TB, method, path, body string, headers ...string) response {
	t.Helper()
	var reqBody io.Reader
	if body != "" {
		reqBody = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, suite.gateway+path, reqBody)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	sendToken := true
	for i := 0; i+1 < len(headers); i += 2 {
		if http.CanonicalHeaderKey(headers[i]) == "Authorization" && headers[i+1] == "" {
			sendToken = false // noToken
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	if sendToken {
		authorize(req, suiteTokens)
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got := response{Status: resp.StatusCode, Header: resp.Header}
	if got.Body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}

	// The validator needs the request as the service saw it, with the gateway's path.
	checkReq, _ := http.NewRequest(method, "http://service"+path, strings.NewReader(body))
	checkReq.Header = req.Header.Clone()
	for prefix, c := range suite.contracts {
		if strings.HasPrefix(path, prefix) {
			for _, e := range c.check(checkReq, got.Status, got.Header, got.Body) {
				t.Errorf("%s %s -> %d does not match %s/openapi.json: %s", method, path, got.Status, prefix, e)
			}
		}
	}
	if got.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s -> %d: no X-Request-Id", method, path, got.Status)
	}
	if got.Status >= 400 {
		checkProblem(t, method+" "+path, got)
	}
	return got
}

func checkProblem(t testing.TB, what string, r response) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s -> %d: Content-Type %q, want application/problem+json (body %.200q)", what, r.Status, ct, r.Body)
		return
	}
	var p problem
	if err := json.Unmarshal(r.Body, &p); err != nil || p.Type == "" || p.Title == "" || p.Status != r.Status {
		t.Errorf("%s -> %d: not an RFC 9457 problem with type, title and status %d: %.300s", what, r.Status, r.Status, r.Body)
	}
}

// decodeAs decodes a response body, failing the test on error.
func decodeAs[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode %T from %.300q: %v", v, r.Body, err)
	}
	return v
}

func asProblem(t testing.TB, r response) problem { t.Helper(); return decodeAs[problem](t, r) }

// mustStatus fails the test unless r has status want.
func mustStatus(t testing.TB, what string, r response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: status %d, want %d; body %.500s", what, r.Status, want, r.Body)
	}
}

// jsonBody marshals v for a request body.
func jsonBody(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestContractChecksBothPathForms: the document lists each operation once, without the trailing
// slash, and the check must still hold a request sent with the slash to that operation's
// contract, rather than finding no operation and passing whatever came back.
func TestContractChecksBothPathForms(t *testing.T) {
	t.Parallel()
	castsDoc := suite.contracts["/api/v1/casts"]
	header := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"contract-check"}}
	for _, tc := range []struct {
		name, path string
		body       string
		wantIssues bool
	}{
		{"list, a page", "/api/v1/casts", `[]`, false},
		{"list with the slash, a page", "/api/v1/casts/", `[]`, false},
		{"list, not a page", "/api/v1/casts", `{"id":"x"}`, true},
		{"list with the slash, not a page", "/api/v1/casts/", `{"id":"x"}`, true},
		{"item with the slash, not a cast", "/api/v1/casts/1/", `[]`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(http.MethodGet, "http://service"+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			issues := castsDoc.check(req, http.StatusOK, header, []byte(tc.body))
			if got := len(issues) > 0; got != tc.wantIssues {
				t.Errorf("GET %s -> 200 %s: issues %q, want some: %v", tc.path, tc.body, issues, tc.wantIssues)
			}
		})
	}
}
