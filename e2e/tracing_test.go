package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/movies-microservices/e2e/stackkit"
)

// Traces: Traefik and both services export their spans to the stack's Jaeger, which the suite
// reads back through its query API (URLs.Jaeger): /api/traces?service=..&tags=.. finds a trace
// by a span's tag, /api/traces/{id} returns it whole.

// traceWait bounds the wait for a trace's spans to reach Jaeger: each exporter sends its spans
// in batches, every 5 s by default (OTEL_BSP_SCHEDULE_DELAY, and Traefik's own batcher).
const traceWait = 60 * time.Second

// jaegerTrace is a trace as Jaeger's query API returns it.
type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags      []jaegerTag `json:"tags"`
	ProcessID string      `json:"processID"`
}

type jaegerTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

type jaegerProcess struct {
	ServiceName string `json:"serviceName"`
}

// tag returns the value of the span's tag key as text, "" without it.
func (s jaegerSpan) tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// parent is the span's parent's id, "" for a root.
func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

func (tr jaegerTrace) service(s jaegerSpan) string { return tr.Processes[s.ProcessID].ServiceName }

// find returns the spans of service (any if "") for which match holds.
func (tr jaegerTrace) find(service string, match func(jaegerSpan) bool) []jaegerSpan {
	var out []jaegerSpan
	for _, s := range tr.Spans {
		if (service == "" || tr.service(s) == service) && match(s) {
			out = append(out, s)
		}
	}
	return out
}

// ancestors are the spans above s, nearest first, as far up as the trace holds them.
func (tr jaegerTrace) ancestors(s jaegerSpan) []jaegerSpan {
	byID := map[string]jaegerSpan{}
	for _, sp := range tr.Spans {
		byID[sp.SpanID] = sp
	}
	var out []jaegerSpan
	for p := s.parent(); p != ""; {
		up, ok := byID[p]
		if !ok || len(out) > len(tr.Spans) {
			break
		}
		out = append(out, up)
		p = up.parent()
	}
	return out
}

// describe lists the trace's spans, one per line, for failure messages.
func (tr jaegerTrace) describe() string {
	var b strings.Builder
	for _, s := range tr.Spans {
		fmt.Fprintf(&b, "  %s %q span %s parent %s kind %s status %s entry_point %s\n", tr.service(s), s.OperationName,
			s.SpanID, s.parent(), s.tag("span.kind"), s.tag("http.response.status_code"), s.tag("entry_point"))
	}
	return b.String()
}

func isServer(s jaegerSpan) bool { return s.tag("span.kind") == "server" }
func isClient(s jaegerSpan) bool { return s.tag("span.kind") == "client" }
func isSQL(s jaegerSpan) bool    { return s.tag("db.system.name") == "postgresql" }

func onEntryPoint(name string) func(jaegerSpan) bool {
	return func(s jaegerSpan) bool { return isServer(s) && s.tag("entry_point") == name }
}

func named(name string) func(jaegerSpan) bool {
	return func(s jaegerSpan) bool { return s.OperationName == name }
}

// descends reports whether one of s's ancestors is of service and matches.
func (tr jaegerTrace) descends(s jaegerSpan, service string, match func(jaegerSpan) bool) bool {
	return slices.ContainsFunc(tr.ancestors(s), func(a jaegerSpan) bool { return tr.service(a) == service && match(a) })
}

// jaegerURL is the stack's Jaeger query API; tests that read traces need it.
func jaegerURL(t *testing.T) string {
	t.Helper()
	tg := needTarget(t)
	u := tg.URLs().Jaeger
	if u == "" {
		t.Fatalf("the %s stack runs no trace backend (URLs.Jaeger is empty)", tg.Kind())
	}
	return u
}

// searchTraces returns the traces that hold a span of service with the tag key=value.
func searchTraces(ctx context.Context, base, service, key, value string) ([]jaegerTrace, error) {
	tags, err := json.Marshal(map[string]string{key: value})
	if err != nil {
		return nil, err
	}
	q := url.Values{"service": {service}, "tags": {string(tags)}, "limit": {"20"}, "lookback": {"1h"}}
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := stackkit.GetJSON(ctx, plainClient, base+"/api/traces?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// fetchTrace returns the trace whole.
func fetchTrace(ctx context.Context, base, traceID string) (jaegerTrace, error) {
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := stackkit.GetJSON(ctx, plainClient, base+"/api/traces/"+traceID, &out); err != nil {
		return jaegerTrace{}, err
	}
	if len(out.Data) != 1 {
		return jaegerTrace{}, fmt.Errorf("jaeger: %d traces for id %s", len(out.Data), traceID)
	}
	return out.Data[0], nil
}

// waitTrace finds the one trace holding a span of service tagged request_id=requestID, and
// waits until complete says it has every span the test expects (spans arrive in batches from
// each exporter), failing with the last complaint and the spans seen.
func waitTrace(t *testing.T, service, requestID string, complete func(jaegerTrace) error) jaegerTrace {
	t.Helper()
	base := jaegerURL(t)
	ctx := t.Context()
	var tr jaegerTrace
	err := stackkit.Poll(ctx, traceWait, 500*time.Millisecond, "the trace of request "+requestID+" complete", func() error {
		found, err := searchTraces(ctx, base, service, "request_id", requestID)
		switch {
		case err != nil:
			return err
		case len(found) > 1:
			t.Fatalf("%d traces hold a %s span with request_id %s; want one", len(found), service, requestID)
		case len(found) == 0:
			return fmt.Errorf("no trace holds a %s span with request_id %s yet", service, requestID)
		}
		if tr, err = fetchTrace(ctx, base, found[0].TraceID); err != nil {
			return err
		}
		return complete(tr)
	})
	if err != nil {
		t.Fatalf("trace of request %s: %v\nspans:\n%s", requestID, err, tr.describe())
	}
	return tr
}

// checkParentage fails t unless the trace is one tree: one root, Traefik's span on web, and
// every other span's parent in the trace.
func checkParentage(t *testing.T, tr jaegerTrace) {
	t.Helper()
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
	}
	var roots []jaegerSpan
	for _, s := range tr.Spans {
		if p := s.parent(); p == "" || !ids[p] {
			roots = append(roots, s)
		}
	}
	if len(roots) != 1 || tr.service(roots[0]) != "traefik" || roots[0].tag("entry_point") != "web" {
		t.Errorf("want one root, Traefik's span on entry point web; roots: %d\n%s", len(roots), tr.describe())
	}
}

// need returns an error naming what unless the trace holds at least one such span.
func need(tr jaegerTrace, what, service string, match func(jaegerSpan) bool) error {
	if len(tr.find(service, match)) == 0 {
		return fmt.Errorf("no %s span: %s", service, what)
	}
	return nil
}

// TestTraceAcrossTheMesh: a POST /api/v1/movies that names a cast is one trace, from Traefik's
// web entrypoint through movies, its check of the cast ids (a client span, Traefik's mesh
// entrypoint, casts) down to each service's SQL, every span under its caller, the request id on
// the services' spans.
func TestTraceAcrossTheMesh(t *testing.T) {
	t.Parallel()
	c := createCast(t, unique("Traced Cast"))
	rid := "trace-" + newEventID(t)
	r := call(t, "POST", "/api/v1/movies", movie{Name: unique("Traced Movie"), Plot: "p", Genres: []string{}, CastIDs: []int64{c.ID}}.writable(t),
		"X-Request-Id", rid)
	mustStatus(t, "create movie", r, http.StatusCreated)

	const moviesRoute, castsRoute = "POST /api/v1/movies", "GET /api/v1/casts"
	tr := waitTrace(t, "movies", rid, func(tr jaegerTrace) error {
		for _, n := range []struct {
			what, service string
			match         func(jaegerSpan) bool
		}{
			{"entry point web", "traefik", onEntryPoint("web")},
			{"entry point mesh", "traefik", onEntryPoint("mesh")},
			{moviesRoute, "movies", named(moviesRoute)},
			{"cast check (client)", "movies", isClient},
			{"SQL", "movies", isSQL},
			{castsRoute, "casts", named(castsRoute)},
			{"SQL", "casts", isSQL},
		} {
			if err := need(tr, n.what, n.service, n.match); err != nil {
				return err
			}
		}
		return nil
	})
	checkParentage(t, tr)

	// Traefik records the request id too (--tracing.capturedRequestHeaders), as a list of values.
	if web := tr.find("traefik", onEntryPoint("web"))[0]; !strings.Contains(web.tag("http.request.header.x-request-id"), rid) {
		t.Errorf("Traefik's web span: http.request.header.x-request-id %q, want it to hold %q", web.tag("http.request.header.x-request-id"), rid)
	}
	server := tr.find("movies", named(moviesRoute))[0]
	if !tr.descends(server, "traefik", onEntryPoint("web")) {
		t.Errorf("%s is not under Traefik's web span\n%s", moviesRoute, tr.describe())
	}
	if got := server.tag("request_id"); got != rid {
		t.Errorf("%s: request_id %q, want %q", moviesRoute, got, rid)
	}
	if got := server.tag("http.response.status_code"); got != "201" {
		t.Errorf("%s: http.response.status_code %q, want 201", moviesRoute, got)
	}
	for _, s := range tr.find("movies", isSQL) {
		if !tr.descends(s, "movies", named(moviesRoute)) {
			t.Errorf("movies SQL span %q is not under %s", s.OperationName, moviesRoute)
		}
		// A batch's span holds one span per statement, each with its text.
		if s.OperationName != "BATCH" && s.tag("db.query.text") == "" {
			t.Errorf("movies SQL span %q has no db.query.text", s.OperationName)
		}
	}
	castsServer := tr.find("casts", named(castsRoute))[0]
	// casts <- Traefik mesh <- movies' client span <- movies' server span.
	mesh := tr.ancestors(castsServer)
	if len(mesh) == 0 || !slices.ContainsFunc(mesh, onEntryPoint("mesh")) {
		t.Errorf("%s is not under Traefik's mesh span\n%s", castsRoute, tr.describe())
	}
	if !tr.descends(castsServer, "movies", isClient) || !tr.descends(castsServer, "movies", named(moviesRoute)) {
		t.Errorf("%s is not under movies' cast check and %s\n%s", castsRoute, moviesRoute, tr.describe())
	}
	if got := castsServer.tag("request_id"); got != rid {
		t.Errorf("%s: request_id %q, want the caller's %q (movies passes it on)", castsRoute, got, rid)
	}
	for _, s := range tr.find("casts", isSQL) {
		if !tr.descends(s, "casts", named(castsRoute)) {
			t.Errorf("casts SQL span %q is not under %s", s.OperationName, castsRoute)
		}
	}
	t.Logf("trace %s: %d spans (traefik %d, movies %d, casts %d)", tr.TraceID, len(tr.Spans),
		len(tr.find("traefik", func(jaegerSpan) bool { return true })), len(tr.find("movies", func(jaegerSpan) bool { return true })),
		len(tr.find("casts", func(jaegerSpan) bool { return true })))
}

// TestTraceFollowsTheOutbox: deleting a cast, the outbox's delivery of its event and the movie
// service's change are one trace: the event's row carries the DELETE's trace context, and the
// relay's delivery span continues it.
func TestTraceFollowsTheOutbox(t *testing.T) {
	t.Parallel()
	c := createCast(t, unique("Outbox Traced Cast"))
	m := createMovie(t, movie{Name: unique("Outbox Traced Movie"), Plot: "p", Genres: []string{}, CastIDs: []int64{c.ID}})
	rid := "trace-" + newEventID(t)
	mustStatus(t, "delete cast", call(t, "DELETE", "/api/v1/casts/"+itoa(c.ID), "", "X-Request-Id", rid), http.StatusNoContent)
	waitCastGone(t, c.ID, 30*time.Second)

	const deleteRoute, eventsRoute = "DELETE /api/v1/casts/{id}", "POST " + eventsPath
	tr := waitTrace(t, "casts", rid, func(tr jaegerTrace) error {
		for _, n := range []struct {
			what, service string
			match         func(jaegerSpan) bool
		}{
			{deleteRoute, "casts", named(deleteRoute)},
			{"outbox delivery (producer)", "casts", func(s jaegerSpan) bool { return s.tag("span.kind") == "producer" }},
			{"entry point mesh", "traefik", onEntryPoint("mesh")},
			{eventsRoute, "movies", named(eventsRoute)},
			{"SQL", "movies", isSQL},
		} {
			if err := need(tr, n.what, n.service, n.match); err != nil {
				return err
			}
		}
		return nil
	})
	checkParentage(t, tr)
	events := tr.find("movies", named(eventsRoute))[0]
	if !tr.descends(events, "casts", func(s jaegerSpan) bool { return s.tag("span.kind") == "producer" }) ||
		!tr.descends(events, "casts", named(deleteRoute)) {
		t.Errorf("%s is not under the outbox delivery and %s\n%s", eventsRoute, deleteRoute, tr.describe())
	}
	if !tr.descends(events, "traefik", onEntryPoint("mesh")) {
		t.Errorf("%s did not come through Traefik's mesh span\n%s", eventsRoute, tr.describe())
	}
	if got, _ := getMovie(t, m.ID); slices.Contains(got.CastIDs, c.ID) {
		t.Errorf("movie %d still names cast %d", m.ID, c.ID)
	}
}
