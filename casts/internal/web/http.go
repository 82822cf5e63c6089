package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ErrPreconditionFailed answers a conditional write whose If-Match names no current version.
var ErrPreconditionFailed = NewError(http.StatusPreconditionFailed, "If-Match does not match the current ETag: the resource changed since you read it")

// PathID reads the {id} path value. Anything that is not a positive decimal id names no resource,
// so it is a 404 like any other missing resource.
func PathID(r *http.Request) (int64, error) {
	s := r.PathValue("id")
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, NewError(http.StatusNotFound, "no resource at "+r.URL.Path)
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, NewError(http.StatusNotFound, "no resource at "+r.URL.Path)
	}
	return id, nil
}

// ETag is the strong entity tag of a resource version.
func ETag(version int64) string {
	return `"` + strconv.FormatInt(version, 10) + `"`
}

// IfMatch is a parsed If-Match header (RFC 9110 section 13.1.1).
type IfMatch struct {
	Present  bool // the request has an If-Match header
	any      bool
	versions []int64
}

// ParseIfMatch reads the If-Match header of a request; a malformed one is a 400.
func ParseIfMatch(h http.Header) (IfMatch, error) {
	values := h.Values("If-Match")
	if len(values) == 0 {
		return IfMatch{}, nil
	}
	cond := IfMatch{Present: true}
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			switch {
			case tag == "*":
				cond.any = true
			case len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"':
				// Weak tags (W/"...") never match under the strong comparison If-Match uses.
				if n, err := strconv.ParseInt(tag[1:len(tag)-1], 10, 64); err == nil {
					cond.versions = append(cond.versions, n)
				}
			case strings.HasPrefix(tag, `W/"`):
			default:
				return IfMatch{}, NewError(http.StatusBadRequest, `If-Match must be "*" or a list of quoted entity tags such as "3"`)
			}
		}
	}
	return cond, nil
}

// Matches reports whether a resource at version satisfies the condition (true when there is none).
func (c IfMatch) Matches(version int64) bool {
	if !c.Present || c.any {
		return true
	}
	for _, v := range c.versions {
		if v == version {
			return true
		}
	}
	return false
}

// HandleLive answers /livez: the process is up and serving.
func HandleLive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// HandleReady answers /readyz: 200 when the service can take traffic, else 503 problem+json saying
// why. ?exclude=database leaves the database check out, so only shutting down fails it: that is
// the load balancer's probe (traefik/dynamic, compose.yaml), which keeps instances in rotation
// through a database outage, where each answers 503 problem+json at once, instead of taking
// them all out and leaving clients Traefik's plain-text "no available server". The trade-off: a
// replica that alone loses the database stays in rotation too (the databases are one per
// service, shared by its replicas, so that is the rarer failure).
func HandleReady(ready func(ctx context.Context, database bool) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		database := true
		for _, check := range r.URL.Query()["exclude"] {
			if check != "database" {
				WriteProblem(w, r, http.StatusBadRequest, fmt.Sprintf("exclude: no check named %q; the only one is \"database\"", check), nil)
				return
			}
			database = false
		}
		if err := ready(r.Context(), database); err != nil {
			WriteProblem(w, r, http.StatusServiceUnavailable, "not ready: "+err.Error(), nil)
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}
