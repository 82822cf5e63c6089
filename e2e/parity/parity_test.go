package parity

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wantRouterNames are the routers ARCHITECTURE.md fixes, with each service's
// public router split in two (GET and HEAD without the body limit, the other
// methods with it): each service on the public entrypoint and on the mesh, plus the movie service's internal
// API on the mesh only, and the OpenID provider's public documents and token endpoint (hydra).
// Checked so that two empty sources do not pass as equal.
var wantRouterNames = []string{"casts", "casts-mesh", "casts-read", "hydra", "movies", "movies-internal", "movies-mesh", "movies-read"}

func TestRoutersSameInComposeLabelsAndFileProvider(t *testing.T) {
	t.Parallel()

	project := loadProject(t)
	labels := make(map[string]map[string]string)
	for name, svc := range project.Services {
		labels[name] = svc.Labels
	}
	fromLabels := routersFromLabels(t, labels)

	// With STACK_*_URLS unset the template falls back to the services' default
	// addresses, which are the ports the labels must name.
	fromFile := routersFromFile(t, loadFileConfig(t, routersFile, nil))

	if diff := cmp.Diff(fromFile, fromLabels); diff != "" {
		t.Errorf("compose.yaml labels and %s describe different routers (-file +labels):\n%s", routersFile, diff)
	}
	if got := slices.Sorted(maps.Keys(fromFile)); !slices.Equal(got, wantRouterNames) {
		t.Errorf("%s routers = %v, want %v", routersFile, got, wantRouterNames)
	}
}

func TestRoutersFileRendersEveryReplica(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		env  map[string]string
		want map[string][]string // service -> server URLs
	}{
		{
			name: "defaults",
			env:  nil,
			want: map[string][]string{
				"casts":  {"http://127.0.0.1:8001"},
				"movies": {"http://127.0.0.1:8000"},
				"hydra":  {"http://127.0.0.1:4444"},
			},
		},
		{
			name: "one instance each",
			env: map[string]string{
				"STACK_CASTS_URLS":  "http://127.0.0.1:18001",
				"STACK_MOVIES_URLS": "http://127.0.0.1:18000",
				"STACK_HYDRA_URLS":  "http://127.0.0.1:14444",
			},
			want: map[string][]string{
				"casts":  {"http://127.0.0.1:18001"},
				"movies": {"http://127.0.0.1:18000"},
				"hydra":  {"http://127.0.0.1:14444"},
			},
		},
		{
			name: "several replicas with spaces",
			env: map[string]string{
				"STACK_CASTS_URLS":  "http://127.0.0.1:18001, http://127.0.0.1:18011",
				"STACK_MOVIES_URLS": "http://127.0.0.1:18000,http://127.0.0.1:18010,http://127.0.0.1:18020",
			},
			want: map[string][]string{
				"casts":  {"http://127.0.0.1:18001", "http://127.0.0.1:18011"},
				"movies": {"http://127.0.0.1:18000", "http://127.0.0.1:18010", "http://127.0.0.1:18020"},
				"hydra":  {"http://127.0.0.1:4444"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := loadFileConfig(t, routersFile, tt.env)
			got := make(map[string][]string)
			for name, svc := range cfg.HTTP.Services {
				for _, s := range svc.LoadBalancer.Servers {
					got[name] = append(got[name], s.URL)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("servers (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFileReferencesResolve checks the split between the two dynamic files:
// compose mounts only middlewares.yml, so everything the routers reference with
// @file must be defined there, and routers to our services must live only in
// routers.yml and the labels (or they would exist in one mode and not the
// other). The shared file may hold routers that Traefik answers itself (an
// @internal service) and the services of its error pages.
func TestFileReferencesResolve(t *testing.T) {
	t.Parallel()

	shared := loadFileConfig(t, middlewaresFile, nil)
	local := loadFileConfig(t, routersFile, nil)

	// A router may live in the shared file only when Traefik itself answers it (an @internal
	// service, like the catch-all 404): then it is the same in both modes and has no backend
	// that the labels would have to name.
	for name, r := range shared.HTTP.Routers {
		if !strings.HasSuffix(r.Service, "@internal") {
			t.Errorf("%s defines router %s for service %q; routers to services belong in %s and in compose.yaml labels", middlewaresFile, name, r.Service, routersFile)
		}
	}
	// A service may live in the shared file only to serve its middlewares (error pages): then it is
	// the same in both modes. The routers' services belong with the routers.
	errorPages := map[string]bool{}
	for _, m := range shared.HTTP.Middlewares {
		if m.Errors != nil {
			errorPages[strings.TrimSuffix(m.Errors.Service, "@file")] = true
		}
	}
	for name := range shared.HTTP.Services {
		if !errorPages[name] {
			t.Errorf("%s defines service %s, which no middleware there uses; it belongs in %s and in compose.yaml labels", middlewaresFile, name, routersFile)
		}
	}
	if len(local.HTTP.Middlewares) > 0 || len(local.HTTP.ServersTransports) > 0 {
		t.Errorf("%s defines middlewares or servers transports; compose does not load it, move them to %s", routersFile, middlewaresFile)
	}

	project := loadProject(t)
	labels := make(map[string]map[string]string)
	for name, svc := range project.Services {
		labels[name] = svc.Labels
	}
	sources := map[string]map[string]router{
		routersFile:    routersFromFile(t, local),
		"compose.yaml": routersFromLabels(t, labels),
	}

	resolve := func(where, ref string, defined func(string) bool) {
		name, ok := strings.CutSuffix(ref, "@file")
		if !ok {
			t.Errorf("%s: %q: reference shared objects with the @file suffix so both modes name them alike", where, ref)
			return
		}
		if !defined(name) {
			t.Errorf("%s: %q is not defined in %s", where, ref, middlewaresFile)
		}
	}
	isMiddleware := func(name string) bool { _, ok := shared.HTTP.Middlewares[name]; return ok }
	isTransport := func(name string) bool { _, ok := shared.HTTP.ServersTransports[name]; return ok }

	for name, r := range shared.HTTP.Routers {
		for _, m := range r.Middlewares {
			resolve(middlewaresFile+": router "+name, m, isMiddleware)
		}
	}
	for source, routers := range sources {
		for name, r := range routers {
			where := source + ": router " + name
			for _, m := range r.Middlewares {
				resolve(where, m, isMiddleware)
			}
			resolve(where, r.ServersTransport, isTransport)
		}
	}
	for name, m := range shared.HTTP.Middlewares {
		if m.Chain == nil {
			continue
		}
		for _, ref := range m.Chain.Middlewares {
			resolve(middlewaresFile+": chain "+name, ref, isMiddleware)
		}
	}
}
