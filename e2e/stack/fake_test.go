package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The test binary doubles as fake casts, movies, traefik and hydra programs, so
// the orchestration of Start can be tested before the real binaries exist.
const (
	envFake     = "STACK_TEST_FAKE"      // set: this process is a fake
	envFakeFail = "STACK_TEST_FAKE_FAIL" // name of a fake that must fail at start
)

func TestMain(m *testing.M) {
	// Hydra and Jaeger get environments of their own (hydraConfig.env, jaegerEnv),
	// without envFake: their arguments tell the fakes apart.
	if os.Getenv(envFake) != "" || (len(os.Args) > 1 && (os.Args[1] == "migrate" || os.Args[1] == "serve" || os.Args[1] == "--config")) {
		os.Exit(runFake())
	}
	os.Exit(m.Run())
}

func runFake() int {
	switch {
	case len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "--entrypoints."):
		return fakeTraefik()
	case len(os.Args) > 1 && os.Args[1] == "migrate":
		fmt.Println("fake hydra: migrated")
		return 0
	case len(os.Args) > 1 && os.Args[1] == "serve":
		return fakeHydra()
	case len(os.Args) > 1 && os.Args[1] == "--config":
		return fakeJaeger()
	case os.Getenv("CASTS_ADDR") != "":
		return fakeService("casts", os.Getenv("CASTS_ADDR"), os.Getenv("CASTS_DATABASE_URL"))
	case os.Getenv("MOVIES_ADDR") != "":
		if os.Getenv("MOVIES_CASTS_URL") == "" {
			fmt.Println("fake movies: MOVIES_CASTS_URL is not set")
			return 2
		}
		return fakeService("movies", os.Getenv("MOVIES_ADDR"), os.Getenv("MOVIES_DATABASE_URL"))
	}
	fmt.Println("fake: cannot tell which program to be")
	return 2
}

// fakeService is ready when its database URL lets it in.
func fakeService(name, addr, dbURL string) int {
	if os.Getenv(envFakeFail) == name {
		fmt.Printf("fake %s: failing on purpose\n", name)
		return 3
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		conn, err := pgx.Connect(r.Context(), dbURL)
		if err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		conn.Close(r.Context())
	})
	// Everything else tells who answered, to check Traefik's routing.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Fake-Service", name)
		fmt.Fprintf(w, "fake %s: %s %s\n", name, r.Method, r.URL.Path)
	})
	return serveUntilSignal(name, addr, mux)
}

// fakeTraefik serves the parts of Traefik's API that Start reads, checking
// each server's /readyz as Traefik's health check would.
func fakeTraefik() int {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TRAEFIK_") {
			fmt.Println("fake traefik: got a TRAEFIK_ variable")
			return 2
		}
	}
	var admin string
	for _, arg := range os.Args[1:] {
		if v, ok := strings.CutPrefix(arg, "--entrypoints.traefik.address="); ok {
			admin = v
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "OK") })
	mux.HandleFunc("GET /api/http/routers", func(w http.ResponseWriter, r *http.Request) {
		var routers []traefikRouter
		for _, name := range wantRouters {
			routers = append(routers, traefikRouter{Name: name, Status: "enabled"})
		}
		json.NewEncoder(w).Encode(routers)
	})
	mux.HandleFunc("GET /api/http/services", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]traefikService{
			{Name: "casts@file", ServerStatus: fakeHealth(os.Getenv(envStackCastsURLs), "/readyz")},
			{Name: "movies@file", ServerStatus: fakeHealth(os.Getenv(envStackMoviesURLs), "/readyz")},
			{Name: "hydra@file", ServerStatus: fakeHealth(os.Getenv(envStackHydraURLs), "/health/ready")},
		})
	})
	return serveUntilSignal("traefik", admin, mux)
}

// fakeHydra answers what Start asks of Hydra: readiness on both APIs, the
// clients it creates, and a key set.
func fakeHydra() int {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/ready", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"status":"ok"}`) })
	mux.HandleFunc("POST /admin/clients", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"keys":[]}`) })
	errc := make(chan int, 1)
	go func() {
		errc <- serveUntilSignal("hydra admin", net.JoinHostPort(os.Getenv("SERVE_ADMIN_HOST"), os.Getenv("SERVE_ADMIN_PORT")), mux)
	}()
	code := serveUntilSignal("hydra", net.JoinHostPort(os.Getenv("SERVE_PUBLIC_HOST"), os.Getenv("SERVE_PUBLIC_PORT")), mux)
	return max(code, <-errc)
}

// fakeJaeger answers what Start asks of Jaeger: its health check and its query API.
func fakeJaeger() int {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"healthy":true}`) })
	mux.HandleFunc("GET /api/services", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"data":null}`) })
	host := os.Getenv("JAEGER_LISTEN_HOST")
	errc := make(chan int, 1)
	go func() {
		errc <- serveUntilSignal("jaeger health", net.JoinHostPort(host, os.Getenv("JAEGER_HEALTH_PORT")), mux)
	}()
	code := serveUntilSignal("jaeger", net.JoinHostPort(host, os.Getenv("JAEGER_QUERY_PORT")), mux)
	return max(code, <-errc)
}

func fakeHealth(urls, path string) map[string]string {
	status := make(map[string]string)
	client := &http.Client{Timeout: time.Second}
	for _, url := range strings.Split(urls, ",") {
		status[url] = "DOWN"
		if code, err := httpStatus(context.Background(), client, url+path); err == nil && code == http.StatusOK {
			status[url] = "UP"
		}
	}
	return status
}

func serveUntilSignal(name, addr string, h http.Handler) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Printf("fake %s: listening on %s\n", name, addr)
	select {
	case err := <-errc:
		fmt.Printf("fake %s: %v\n", name, err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	fmt.Printf("fake %s: stopped\n", name)
	return 0
}
