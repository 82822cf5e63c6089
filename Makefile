# movies-microservices — every target works on a bare machine with Go and the PostgreSQL server
# binaries (Debian package `postgresql`); only e2e-compose needs Docker (an engine and the Compose plugin).

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The pin lives once, in traefik/go.mod (lower case: Traefik reads TRAEFIK_* variables as configuration).
traefik_version := $(shell awk '{for (i = 1; i < NF; i++) if ($$i == "github.com/traefik/traefik/v3") {print $$(i+1); exit}}' traefik/go.mod)
GO_PACKAGES := ./casts/... ./movies/... ./e2e/...
# Runs a command with a throwaway PostgreSQL cluster; it exports TEST_DATABASE_URL.
WITH_POSTGRES := go run ./e2e/cmd/stack exec --

.PHONY: help build traefik run test vet e2e e2e-compose fuzz bench clean

help: ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build the two services into bin/.
	go build -trimpath -o bin/casts ./casts
	go build -trimpath -o bin/movies ./movies

traefik: bin/traefik ## Build Traefik from the Go module proxy into bin/traefik (once per pin).

# Rebuilt only when the pin in traefik/go.mod or go.sum changes.
bin/traefik: traefik/go.mod traefik/go.sum
	$(if $(traefik_version),,$(error cannot read the github.com/traefik/traefik/v3 pin from traefik/go.mod))
	@echo "Building Traefik $(traefik_version) from the Go module proxy into bin/traefik."
	@echo "The first build takes about 10 minutes on 2 cores; later builds are cached."
	cd traefik && GOWORK=off CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$(traefik_version) -X github.com/traefik/traefik/v3/pkg/version.Codename=ramequin" \
		-o ../bin/traefik github.com/traefik/traefik/v3/cmd/traefik
	@bin/traefik version | grep -q 'Version: *$(traefik_version)$$' || { echo "bin/traefik does not report $(traefik_version)"; rm -f bin/traefik; exit 1; }
	@touch $@

run: build traefik ## Run the whole stack as local processes (PostgreSQL data kept in .run/).
	go run ./e2e/cmd/stack run

vet: ## go vet every module.
	go vet $(GO_PACKAGES)

# -p 1: one package at a time. The e2e fault tests (rolling restart under load) measure the stack,
# and on 2 cores another package's tests running beside them starve Traefik's health checks.
test: vet build traefik ## Vet, then every test of every module against a throwaway PostgreSQL.
	$(WITH_POSTGRES) go test -p 1 -count=1 $(GO_PACKAGES)

e2e: build traefik ## Only the black-box suite through the gateway.
	$(WITH_POSTGRES) go test -count=1 ./e2e/...

# The suite against a throwaway Compose project (images built, `up --wait`), always taken down with
# its volumes, also on failure or Ctrl-C. Official images where the engine can pull them, else
# stand-ins made offline (e2e/compose/standins.sh); it says which. Ports: 127.0.0.1, picked by the engine.
E2E_COMPOSE_TIMEOUT ?= 30m
e2e-compose: ## The e2e suite against the Docker Compose stack (needs Docker; see README "With Docker").
	E2E_NO_SKIP=1 go run ./e2e/cmd/stack compose -- go test -v -count=1 -timeout $(E2E_COMPOSE_TIMEOUT) ./e2e

FUZZTIME ?= 20s
FUZZ_TARGETS := \
	./casts/internal/api:FuzzDecodeCastRequest ./casts/internal/api:FuzzDecodeCastPatch ./casts/internal/api:FuzzParseCastListQuery \
	./movies/internal/api:FuzzDecodeMovieRequest ./movies/internal/api:FuzzDecodeMoviePatch ./movies/internal/api:FuzzParseMovieListQuery

fuzz: ## Fuzz each request decoder and query parser for FUZZTIME (20s) each; their seeds run in make test.
	@set -e; for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; name=$${target##*:}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		go test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

bench: build traefik ## Benchmark each scenario direct, via Traefik and via nginx, plus pgbench (needs wrk, nginx; ~7 min).
	go run ./e2e/cmd/bench

clean: ## Remove build output (bin/). Run data in .run/ is kept: rm -rf .run to reset it.
	rm -rf bin
