package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startDebug serves Go's profiles (net/http/pprof) on addr, a listener of its own so that the
// API never exposes them. It is for measuring (make bench BENCH_PROFILE=1) and is off unless
// MOVIES_DEBUG_ADDR is set, to a loopback address (loadConfig refuses others). The returned
// function closes it.
func startDebug(addr string) (stop func(), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s (MOVIES_DEBUG_ADDR): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or trace answers only after the seconds it was asked for.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	go srv.Serve(ln)
	return func() { srv.Close() }, ln.Addr().String(), nil
}
