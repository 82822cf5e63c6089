package stack

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/e2e/stackkit"
)

func TestFindRepoRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	deep := filepath.Join(root, "e2e", "cmd", "stack")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.work"), []byte("go 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := stackkit.FindRepoRoot(deep)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(root, got); diff != "" {
		t.Errorf("root (-want +got):\n%s", diff)
	}
	if _, err := stackkit.FindRepoRoot("/"); err == nil {
		t.Error("stackkit.FindRepoRoot(/) found a go.work")
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    Options
		wantErr []string
	}{
		{
			name: "defaults",
			want: Options{Ports: DefaultPorts(), Replicas: 1, LogLevel: "info"},
		},
		{
			name: "every variable",
			env: map[string]string{"WEB_PORT": "9080", "ADMIN_PORT": "9081", "MESH_PORT": "9082", "MOVIES_PORT": "9000",
				"CASTS_PORT": "9001", "PG_PORT": "0", "HYDRA_PUBLIC_PORT": "9444", "HYDRA_ADMIN_PORT": "0", "REPLICAS": "2", "SHUTDOWN_DELAY": "3500ms", "LOG_LEVEL": "debug",
				"JAEGER_OTLP_GRPC_PORT": "0", "JAEGER_OTLP_HTTP_PORT": "9318", "JAEGER_QUERY_PORT": "9686", "JAEGER_QUERY_GRPC_PORT": "0", "JAEGER_HEALTH_PORT": "0"},
			want: Options{Ports: Ports{Web: 9080, Admin: 9081, Mesh: 9082, Movies: 9000, Casts: 9001, HydraPublic: 9444,
				JaegerOTLPHTTP: 9318, JaegerQuery: 9686}, Replicas: 2,
				ShutdownDelay: 3500 * time.Millisecond, LogLevel: "debug"},
		},
		{
			name:    "bad values are all reported",
			env:     map[string]string{"WEB_PORT": "http", "PG_PORT": "70000", "REPLICAS": "0", "SHUTDOWN_DELAY": "4"},
			wantErr: []string{`WEB_PORT="http"`, `PG_PORT="70000"`, `REPLICAS="0"`, `SHUTDOWN_DELAY="4"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := OptionsFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != nil {
				for _, want := range tc.wantErr {
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("error %v lacks %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolvePorts(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", hostPort(0))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	t.Run("port in use names it and its variable", func(t *testing.T) {
		port := busyPort
		err := resolvePorts([]portClaim{{&port, "Traefik entrypoint web", EnvWebPort}})
		if err == nil || !strings.Contains(err.Error(), strconv.Itoa(busyPort)) || !strings.Contains(err.Error(), EnvWebPort) {
			t.Errorf("got %v, want an error naming port %d and %s", err, busyPort, EnvWebPort)
		}
	})
	t.Run("same port twice", func(t *testing.T) {
		a, b := 1, 1
		err := resolvePorts([]portClaim{{&a, "web", EnvWebPort}, {&b, "mesh", EnvMeshPort}})
		if err == nil || !strings.Contains(err.Error(), "wanted twice") || !strings.Contains(err.Error(), EnvMeshPort) {
			t.Errorf("got %v, want a clash naming %s", err, EnvMeshPort)
		}
	})
	t.Run("zero ports get distinct free ports", func(t *testing.T) {
		ports := make([]int, 6)
		var claims []portClaim
		for i := range ports {
			claims = append(claims, portClaim{&ports[i], fmt.Sprint("port ", i), "X"})
		}
		if err := resolvePorts(claims); err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for _, p := range ports {
			if p == 0 || seen[p] {
				t.Errorf("ports %v: want distinct non-zero ports", ports)
			}
			seen[p] = true
		}
	})
}

func TestReplicaPorts(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff([]int{8001, 8011, 8021}, replicaPorts(8001, 3)); diff != "" {
		t.Errorf("fixed base (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{0, 0}, replicaPorts(0, 2)); diff != "" {
		t.Errorf("free ports (-want +got):\n%s", diff)
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "secrets.env")
	first, err := LoadOrCreateSecrets(path)
	if err != nil {
		t.Fatal(err)
	}
	if first.Superuser == "" || first.Casts == "" || first.Movies == "" || first.Casts == first.Movies {
		t.Fatal("want three distinct non-empty passwords")
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("mode %v, want 0600", got)
	}
	again, err := LoadOrCreateSecrets(path)
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Error("a second load generated new passwords")
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		assertNoSecrets(t, "fmt "+format, fmt.Sprintf(format, first), first.Superuser, first.Casts, first.Movies)
	}
	db := Database{Name: "casts", Password: first.Casts}
	assertNoSecrets(t, "fmt Database", fmt.Sprintf("%v %+v %#v", db, db, db), first.Casts)
}

func TestTailBufferLastLines(t *testing.T) {
	t.Parallel()
	b := newTailBuffer(32)
	fmt.Fprint(b, "line one is long enough to be cut\nline two\nline three\n")
	if diff := cmp.Diff("    line two\n    line three", b.lastLines(2)); diff != "" {
		t.Errorf("lastLines (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("    (no output)", newTailBuffer(8).lastLines(3)); diff != "" {
		t.Errorf("empty (-want +got):\n%s", diff)
	}
}

func TestPrefixWriterWritesWholeLines(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	w := &prefixWriter{prefix: "[casts] ", w: &out}
	fmt.Fprint(w, "first ")
	fmt.Fprint(w, "line\nsecond line\npartial")
	if diff := cmp.Diff("[casts] first line\n[casts] second line\n", out.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

func TestTraefikArgsAndEnv(t *testing.T) {
	t.Setenv("TRAEFIK_LOG_LEVEL", "DEBUG")
	cfg := traefikConfig{
		dynamicDir: "/repo/traefik/dynamic",
		accessLog:  "/repo/.run/logs/traefik-access.log",
		ports:      DefaultPorts(),
		casts:      []string{"http://127.0.0.1:8001", "http://127.0.0.1:8011"},
		movies:     []string{"http://127.0.0.1:8000"},
		hydra:      "http://127.0.0.1:4444",
	}
	want := []string{
		"--entrypoints.web.address=127.0.0.1:8080",
		"--entrypoints.traefik.address=127.0.0.1:8081",
		"--entrypoints.mesh.address=127.0.0.1:8082",
		"--api.insecure=true",
		"--api.dashboard=true",
		"--ping=true",
		"--accesslog=true",
		"--accesslog.format=json",
		"--accesslog.filepath=/repo/.run/logs/traefik-access.log",
		"--log.level=INFO",
		"--log.nocolor=true",
		"--providers.file.directory=/repo/traefik/dynamic",
		"--providers.file.watch=true",
		"--global.checknewversion=false",
		"--global.sendanonymoususage=false",
		"--metrics.prometheus=true",
		"--metrics.prometheus.addServicesLabels=false",
		"--metrics.addinternals=true",
		"--accesslog.filters.statuscodes=400-599",
		"--accesslog.filters.retryattempts=true",
		"--accesslog.filters.minduration=1s",
		"--accesslog.addinternals=true",
	}
	if diff := cmp.Diff(want, cfg.args()); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	// Every request logged, and profiles served: the filters go, --api.debug comes.
	all := cfg
	all.accessAll, all.profiling = true, true
	wantAll := append(slices.Clone(want[:len(want)-4]), "--api.debug=true")
	if diff := cmp.Diff(wantAll, all.args()); diff != "" {
		t.Errorf("args with accessAll and profiling (-want +got):\n%s", diff)
	}
	env := strings.Join(cfg.env(), "\n")
	for _, want := range []string{"STACK_CASTS_URLS=http://127.0.0.1:8001,http://127.0.0.1:8011", "STACK_MOVIES_URLS=http://127.0.0.1:8000",
		"STACK_HYDRA_URLS=http://127.0.0.1:4444", "GOGC=200"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %s", want)
		}
	}
	if strings.Contains(env, "TRAEFIK_") {
		t.Error("env passes a TRAEFIK_ variable on")
	}
}

func TestCheckTraefik(t *testing.T) {
	t.Parallel()
	allRouters := `[{"name":"movies@file","status":"enabled"},{"name":"casts@file","status":"enabled"},
		{"name":"movies-read@file","status":"enabled"},{"name":"casts-read@file","status":"enabled"},
		{"name":"movies-mesh@file","status":"enabled"},{"name":"casts-mesh@file","status":"enabled"},
		{"name":"hydra@file","status":"enabled"},{"name":"api@internal","status":"enabled"}]`
	upServices := `[{"name":"casts@file","serverStatus":{"http://127.0.0.1:8001":"UP"}},
		{"name":"movies@file","serverStatus":{"http://127.0.0.1:8000/":"UP"}}]`
	servers := []string{"http://127.0.0.1:8001", "http://127.0.0.1:8000"}
	tests := []struct {
		name     string
		routers  string
		services string
		wantErr  string // "" for ready
	}{
		{"ready", allRouters, upServices, ""},
		{"missing router", `[{"name":"movies@file","status":"enabled"},{"name":"casts@file","status":"enabled"},
			{"name":"movies-read@file","status":"enabled"},{"name":"casts-read@file","status":"enabled"},
			{"name":"movies-mesh@file","status":"enabled"}]`, upServices, "router casts-mesh@file missing"},
		{"disabled router", strings.Replace(allRouters, `"casts@file","status":"enabled"`,
			`"casts@file","status":"disabled","error":["middleware \"nope@file\" does not exist"]`, 1), upServices,
			`router casts@file is disabled: middleware "nope@file" does not exist`},
		{"server down", allRouters, strings.Replace(upServices, `8001":"UP"`, `8001":"DOWN"`, 1), "server http://127.0.0.1:8001 is not UP: casts@file has it DOWN"},
		// The problem pages' service health-checks the casts replicas on /livez: its UP must not
		// hide casts@file's DOWN, whichever comes first.
		{"server down in one of two services", allRouters, `[{"name":"casts@file","serverStatus":{"http://127.0.0.1:8001":"DOWN"}},
			{"name":"movies@file","serverStatus":{"http://127.0.0.1:8000":"UP"}},
			{"name":"problems@file","serverStatus":{"http://127.0.0.1:8001":"UP"}}]`,
			"server http://127.0.0.1:8001 is not UP: casts@file has it DOWN"},
		{"server down in one of two services, listed last", allRouters, `[{"name":"problems@file","serverStatus":{"http://127.0.0.1:8001":"UP"}},
			{"name":"movies@file","serverStatus":{"http://127.0.0.1:8000":"UP"}},
			{"name":"casts@file","serverStatus":{"http://127.0.0.1:8001":"DOWN"}}]`,
			"server http://127.0.0.1:8001 is not UP: casts@file has it DOWN"},
		{"server unknown", allRouters, `[{"name":"movies@file","serverStatus":{"http://127.0.0.1:8000":"UP"}}]`,
			"server http://127.0.0.1:8001 not in any service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "OK") })
			mux.HandleFunc("GET /api/http/routers", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, tc.routers) })
			mux.HandleFunc("GET /api/http/services", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, tc.services) })
			srv := httptest.NewServer(mux)
			defer srv.Close()

			err := checkTraefik(context.Background(), srv.Client(), srv.URL, servers)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got %v, want ready", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
