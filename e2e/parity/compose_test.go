package parity

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/e2e/stack"
	"go.yaml.in/yaml/v3"
)

var (
	composeFile = filepath.Join(repoRoot, "compose.yaml")
	envExample  = filepath.Join(repoRoot, ".env.example")
)

// loadProject loads compose.yaml (then any overrides, as -f files after it)
// the way `docker compose` does after `cp .env.example .env`, including
// validation against the Compose specification's JSON schema. The process
// environment is left out so that the result does not depend on the machine.
func loadProject(t *testing.T, overrides ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions(append([]string{composeFile}, overrides...),
		cli.WithWorkingDirectory(repoRoot),
		cli.WithEnvFiles(envExample),
		cli.WithDotEnv,
	)
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("%s is not a valid Compose file: %v", composeFile, err)
	}
	return project
}

func TestComposeValidAgainstSpec(t *testing.T) {
	t.Parallel()

	project := loadProject(t)
	want := []string{"casts", "casts-db", "hydra", "hydra-clients", "hydra-db", "hydra-migrate", "jaeger", "movies", "movies-db", "traefik"}
	if got := project.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Errorf("services = %v, want %v", sorted(got), want)
	}
}

// TestComposeVariablesDocumented checks that every variable compose.yaml
// interpolates is set (and so documented) in .env.example.
func TestComposeVariablesDocumented(t *testing.T) {
	t.Parallel()

	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var dict map[string]any
	if err := yaml.Unmarshal(raw, &dict); err != nil {
		t.Fatal(err)
	}
	documented, err := dotenv.GetEnvFromFile(map[string]string{}, []string{envExample})
	if err != nil {
		t.Fatal(err)
	}
	used := template.ExtractVariables(dict, template.DefaultPattern)
	if len(used) == 0 {
		t.Fatal("no variables found in compose.yaml; the extraction is broken")
	}
	for name := range used {
		if name == "COMPOSE_PROJECT_NAME" {
			continue // set by Compose itself, from the project's name
		}
		if _, ok := documented[name]; !ok {
			t.Errorf("compose.yaml uses ${%s}, which %s does not set", name, envExample)
		}
	}
}

// TestComposeExposure: only the public entrypoint is published on every
// interface; Traefik's API on loopback; the mesh, the services and the
// databases not at all.
func TestComposeExposure(t *testing.T) {
	t.Parallel()

	project := loadProject(t)
	type published struct {
		HostIP string
		Target uint32
	}
	tests := []struct {
		service string
		want    []published
	}{
		{"traefik", []published{{HostIP: "", Target: 8080}, {HostIP: "127.0.0.1", Target: 8081}}},
		{"casts", nil},
		{"movies", nil},
		{"casts-db", nil},
		{"movies-db", nil},
		// Its UI and query API, for a person on the machine; OTLP stays inside.
		{"jaeger", []published{{HostIP: "127.0.0.1", Target: 16686}}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			t.Parallel()
			svc, ok := project.Services[tt.service]
			if !ok {
				t.Fatalf("service %s missing", tt.service)
			}
			var got []published
			for _, p := range svc.Ports {
				got = append(got, published{HostIP: p.HostIP, Target: p.Target})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("published ports (-want +got):\n%s", diff)
			}
		})
	}
}

func TestComposeHardening(t *testing.T) {
	t.Parallel()

	project := loadProject(t)
	tests := []struct {
		service string
		// rootAllowed is true only for Traefik, which must read the Docker socket
		// (its group varies per host); it runs without capabilities instead.
		rootAllowed bool
		dependsOn   []string // services that must be healthy first
	}{
		{service: "traefik", rootAllowed: true},
		{service: "casts", dependsOn: []string{"casts-db"}},
		{service: "movies", dependsOn: []string{"movies-db", "traefik"}},
		{service: "jaeger"},
		{service: "casts-db"},
		{service: "movies-db"},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			t.Parallel()
			svc, ok := project.Services[tt.service]
			if !ok {
				t.Fatalf("service %s missing", tt.service)
			}
			if !svc.ReadOnly {
				t.Error("read_only is not true")
			}
			if !tt.rootAllowed && isRoot(svc.User) {
				t.Errorf("user = %q, want a non-root user", svc.User)
			}
			if svc.HealthCheck == nil || len(svc.HealthCheck.Test) == 0 {
				t.Error("no healthcheck")
			}
			for _, dep := range tt.dependsOn {
				if got := svc.DependsOn[dep].Condition; got != types.ServiceConditionHealthy {
					t.Errorf("depends_on %s: condition = %q, want %q", dep, got, types.ServiceConditionHealthy)
				}
			}
		})
	}
}

// isRoot reports whether a compose `user` runs as root; empty means the
// image's default, which for the images here is checked as root.
func isRoot(user string) bool {
	u, _, _ := strings.Cut(user, ":")
	return u == "" || u == "root" || u == "0"
}

// TestComposeAddressesMatchLabels: the port each service listens on is the
// port its labels send traffic to, and each service reaches the other through
// the mesh entrypoint.
func TestComposeAddressesMatchLabels(t *testing.T) {
	t.Parallel()

	project := loadProject(t)
	meshPort := entryPointPort(t, project.Services["traefik"].Command, "mesh")
	if meshPort == "" {
		t.Fatal("traefik command has no --entryPoints.mesh.address")
	}
	if got, want := env(project, "movies", "MOVIES_CASTS_URL"), "http://traefik:"+meshPort; got != want {
		t.Errorf("MOVIES_CASTS_URL = %q, want %q (casts only through the mesh entrypoint)", got, want)
	}
	if got, want := env(project, "casts", "CASTS_MOVIES_URL"), "http://traefik:"+meshPort; got != want {
		t.Errorf("CASTS_MOVIES_URL = %q, want %q (events to movies only through the mesh entrypoint)", got, want)
	}

	tests := []struct{ service, addrVar string }{
		{"casts", "CASTS_ADDR"},
		{"movies", "MOVIES_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			t.Parallel()
			_, port, err := net.SplitHostPort(env(project, tt.service, tt.addrVar))
			if err != nil {
				t.Fatalf("%s: %v", tt.addrVar, err)
			}
			label := "traefik.http.services." + tt.service + ".loadbalancer.server.port"
			if got := project.Services[tt.service].Labels[label]; got != port {
				t.Errorf("%s = %q, but %s listens on %s", label, got, tt.addrVar, port)
			}
		})
	}
}

func env(project *types.Project, service, name string) string {
	if v := project.Services[service].Environment[name]; v != nil {
		return *v
	}
	return ""
}

// entryPointPort returns the port of an entrypoint given as a Traefik flag.
// Traefik's flag names are case-insensitive.
func entryPointPort(t *testing.T, command []string, entryPoint string) string {
	t.Helper()
	prefix := "--entrypoints." + entryPoint + ".address="
	for _, arg := range command {
		if len(arg) > len(prefix) && strings.EqualFold(arg[:len(prefix)], prefix) {
			_, port, err := net.SplitHostPort(arg[len(prefix):])
			if err != nil {
				t.Errorf("%s: %v", arg, err)
			}
			return port
		}
	}
	return ""
}

// TestTraefikTuningSameInBothModes: Traefik's access-log filters, metrics and
// GOGC are those the local stack gives it (e2e/stack), which make bench
// measures; compose.yaml sets no --experimental.* flag, as the stack sets none.
func TestTraefikTuningSameInBothModes(t *testing.T) {
	t.Parallel()

	project := loadProject(t)
	traefik := project.Services["traefik"]
	// Traefik's flag names are case-insensitive; their values are not.
	normalize := func(flag string) string {
		name, value, _ := strings.Cut(flag, "=")
		return strings.ToLower(name) + "=" + value
	}
	var got []string
	for _, arg := range traefik.Command {
		lower := strings.ToLower(arg)
		// The OTLP endpoint differs (a container's name, a local port), the rest not.
		if strings.HasPrefix(lower, "--tracing.otlp.") {
			continue
		}
		for _, prefix := range []string{"--accesslog.filters.", "--accesslog.addinternals", "--metrics.", "--experimental.", "--tracing"} {
			if strings.HasPrefix(lower, prefix) {
				got = append(got, normalize(arg))
			}
		}
	}
	var want []string
	for _, flag := range slices.Concat(stack.TraefikAccessLogFilters, stack.TraefikMetrics, stack.TraefikTracing) {
		want = append(want, normalize(flag))
	}
	if diff := cmp.Diff(sorted(want), sorted(got)); diff != "" {
		t.Errorf("traefik's --accessLog.filters.*, addInternals, --metrics.*, --experimental.* and --tracing* in compose.yaml differ from e2e/stack's (-stack +compose):\n%s", diff)
	}
	if got := env(project, "traefik", "GOGC"); got != stack.TraefikGOGC {
		t.Errorf("traefik's GOGC in compose.yaml = %q, e2e/stack gives %q", got, stack.TraefikGOGC)
	}
}

// TestTraefikVersionSameInBothModes: the image used with Docker and the
// binary built from traefik/go.mod without Docker are the same release.
func TestTraefikVersionSameInBothModes(t *testing.T) {
	t.Parallel()

	gomod, err := os.ReadFile(filepath.Join(repoRoot, "traefik", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?github\.com/traefik/traefik/v3\s+(v\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("traefik/go.mod does not require github.com/traefik/traefik/v3")
	}
	built := string(m[1])

	image := loadProject(t).Services["traefik"].Image
	_, tag, _ := strings.Cut(image, ":")
	if tag != built {
		t.Errorf("compose.yaml runs %s, traefik/go.mod builds %s; pin the same version", image, built)
	}
	if _, err := strconv.Atoi(strings.Split(strings.TrimPrefix(built, "v"), ".")[0]); err != nil {
		t.Errorf("unexpected version %q in traefik/go.mod", built)
	}
}

// TestHydraVersionSameInBothModes: the images of Hydra's three services with Docker and the
// binary e2e/hydra/build.sh builds without Docker (and the stand-in image is made from) are the
// same release.
func TestHydraVersionSameInBothModes(t *testing.T) {
	t.Parallel()

	script, err := os.ReadFile(filepath.Join(repoRoot, "e2e", "hydra", "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^HYDRA_VERSION=(v[0-9]+\.[0-9]+\.[0-9]+)\b`).FindSubmatch(script)
	if m == nil {
		t.Fatal("e2e/hydra/build.sh sets no HYDRA_VERSION=vX.Y.Z")
	}
	built := string(m[1])
	project := loadProject(t)
	for _, name := range []string{"hydra", "hydra-migrate", "hydra-clients"} {
		image := project.Services[name].Image
		if want := "oryd/hydra:" + built; image != want {
			t.Errorf("compose.yaml's %s runs %q, e2e/hydra/build.sh builds %s; want %q", name, image, built, want)
		}
	}
}

// TestJaegerVersionSameInBothModes: the image of the trace backend with Docker and the binary
// e2e/jaeger/build.sh builds without Docker (and the stand-in image is made from) are the same
// release, and both read the same configuration file.
func TestJaegerVersionSameInBothModes(t *testing.T) {
	t.Parallel()

	script, err := os.ReadFile(filepath.Join(repoRoot, "e2e", "jaeger", "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^JAEGER_RELEASE=([0-9]+\.[0-9]+\.[0-9]+)\b`).FindSubmatch(script)
	if m == nil {
		t.Fatal("e2e/jaeger/build.sh sets no JAEGER_RELEASE=X.Y.Z")
	}
	jaeger := loadProject(t).Services["jaeger"]
	if want := "jaegertracing/jaeger:" + string(m[1]); jaeger.Image != want {
		t.Errorf("compose.yaml's jaeger runs %q, e2e/jaeger/build.sh builds %s; want %q", jaeger.Image, m[1], want)
	}
	mounted := false
	for _, v := range jaeger.Volumes {
		if strings.HasSuffix(v.Source, "/e2e/jaeger/config.yaml") && v.Target == "/etc/jaeger/config.yaml" && v.ReadOnly {
			mounted = true
		}
	}
	if !mounted || !slices.Equal(jaeger.Command, []string{"--config", "/etc/jaeger/config.yaml"}) {
		t.Errorf("compose.yaml's jaeger must run with e2e/jaeger/config.yaml mounted read-only as /etc/jaeger/config.yaml (volumes %v, command %v)",
			jaeger.Volumes, jaeger.Command)
	}
}
