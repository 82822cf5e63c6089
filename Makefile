# movies-microservices — every target works on a bare machine with Go and the PostgreSQL server
# binaries (Debian package `postgresql`); nothing here needs Docker.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The pin lives once, in traefik/go.mod (lower case: Traefik reads TRAEFIK_* variables as configuration).
traefik_version := $(shell awk '{for (i = 1; i < NF; i++) if ($$i == "github.com/traefik/traefik/v3") {print $$(i+1); exit}}' traefik/go.mod)
GO_PACKAGES := ./casts/... ./movies/... ./e2e/...
# Runs a command with a throwaway PostgreSQL cluster; it exports TEST_DATABASE_URL.
WITH_POSTGRES := go run ./e2e/cmd/stack exec --

.PHONY: help build traefik run test vet e2e fuzz bench clean

help: ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## Build the two services into bin/.
	go build -trimpath -o bin/casts ./casts
	go build -trimpath -o bin/movies ./movies

traefik: bin/traefik ## Build Traefik and its dashboard from the pinned module's sources into bin/traefik (once per pin).

# Rebuilt only when the pin in traefik/go.mod, go.sum or the recipe changes. The dashboard's web
# UI is built with Node.js (corepack, yarn) from the module's webui/; see traefik/build.sh.
bin/traefik: traefik/go.mod traefik/go.sum traefik/build.sh
	$(if $(traefik_version),,$(error cannot read the github.com/traefik/traefik/v3 pin from traefik/go.mod))
	traefik/build.sh $(traefik_version) bin/traefik
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
