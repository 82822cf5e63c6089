# movies-microservices — every target works on a bare machine with Go and the PostgreSQL server
# binaries (Debian package `postgresql`); only e2e-compose needs Docker (an engine and the Compose plugin).

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The pin lives once, in traefik/go.mod (lower case: Traefik reads TRAEFIK_* variables as configuration).
traefik_version := $(shell awk '{for (i = 1; i < NF; i++) if ($$i == "github.com/traefik/traefik/v3") {print $$(i+1); exit}}' traefik/go.mod)
GO_PACKAGES := ./casts/... ./movies/... ./e2e/...
# Runs a command with a throwaway PostgreSQL cluster; it exports TEST_DATABASE_URL.
WITH_POSTGRES := go run ./e2e/cmd/stack exec --

.PHONY: help build twins traefik hydra jaeger registry lint-tools run test vet e2e e2e-compose e2e-swarm fuzz bench clean

help: ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build the two services into bin/.
	go build -trimpath -o bin/casts ./casts
	go build -trimpath -o bin/movies ./movies

# casts holds the source of the plumbing both services carry (e2e/parity/twins.go lists it);
# movies' copies are generated from it, and e2e/parity fails while one is stale.
twins: ## Write movies' copies of the twin files from casts' (edit casts/<path>, then run this).
	go run ./e2e/cmd/twins

traefik: bin/traefik ## Build Traefik and its dashboard from the pinned module's sources into bin/traefik (once per pin).

# Rebuilt only when the pin in traefik/go.mod, go.sum or the recipe changes. The dashboard's web
# UI is built with Node.js (corepack, yarn) from the module's webui/; see traefik/build.sh.
bin/traefik: traefik/go.mod traefik/go.sum traefik/build.sh
	$(if $(traefik_version),,$(error cannot read the github.com/traefik/traefik/v3 pin from traefik/go.mod))
	traefik/build.sh $(traefik_version) bin/traefik
	@touch $@

hydra: bin/hydra ## Build the pinned Ory Hydra (the stacks' OpenID provider) into bin/hydra (once per pin, cached in ~/.cache/movies-microservices).

# The pin is HYDRA_VERSION in e2e/hydra/build.sh; the build is cached per pin outside the tree.
bin/hydra: e2e/hydra/build.sh
	e2e/hydra/build.sh bin/hydra
	@touch $@

jaeger: bin/jaeger ## Build the pinned Jaeger v2 (the stacks' trace backend) into bin/jaeger (once per pin, cached in ~/.cache/movies-microservices).

# The pins are in e2e/jaeger/build.sh; the build is cached per pin outside the tree.
bin/jaeger: e2e/jaeger/build.sh
	e2e/jaeger/build.sh bin/jaeger
	@touch $@

registry: bin/registry ## Build the pinned CNCF Distribution registry (the swarm tests' image registry) into bin/registry (once per pin, cached in ~/.cache/movies-microservices).

# The pin is REGISTRY_VERSION in e2e/registry/build.sh; the build is cached per pin outside the tree.
bin/registry: e2e/registry/build.sh
	e2e/registry/build.sh bin/registry
	@touch $@

lint-tools: e2e/node_modules/.package-lock.json ## Install the OpenAPI linters (Spectral, Redocly CLI) from the npm registry (once per lockfile).

# Reinstalled only when the pins in e2e/package.json or its lockfile change. npm ci installs
# exactly the lockfile, from the npm registry alone; --ignore-scripts: the linters need no install
# step, and the one install script among their dependencies only reports usage over the network.
e2e/node_modules/.package-lock.json: e2e/package.json e2e/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: the OpenAPI linters need Node.js 20.19 or later with npm (Debian: apt-get install nodejs npm)"; exit 1; }
	cd e2e && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

run: build traefik hydra jaeger ## Run the whole stack as local processes (PostgreSQL data kept in .run/).
	go run ./e2e/cmd/stack run

vet: ## go vet every module (the swarm tests, built with -tags swarm, included).
	go vet $(GO_PACKAGES)
	go vet -tags swarm ./e2e/

# The e2e suite's package runs alone, after the others: its fault tests (rolling restart under
# load) measure the stack, and on 2 cores another package's tests running beside them starve
# Traefik's health checks. The other packages build and run side by side (`go test -p 1` over
# all of them also compiled one package at a time).
E2E_SUITE := github.com/movies-microservices/e2e
test: vet build traefik hydra jaeger lint-tools ## Vet, then every test of every module against a throwaway PostgreSQL (OpenAPI lints and twin check included).
	$(WITH_POSTGRES) bash -c 'go test -count=1 $$(go list $(GO_PACKAGES) | grep -vx $(E2E_SUITE)) && go test -count=1 $(E2E_SUITE)'

e2e: build traefik hydra jaeger ## Only the black-box suite through the gateway.
	$(WITH_POSTGRES) go test -count=1 ./e2e/...

# The suite against a throwaway Compose project (images built, `up --wait`), always taken down with
# its volumes, also on failure or Ctrl-C. Official images where the engine can pull them, else
# stand-ins made offline (e2e/compose/standins.sh); it says which. Ports: 127.0.0.1, picked by the engine.
E2E_COMPOSE_TIMEOUT ?= 30m
e2e-compose: traefik hydra jaeger ## The e2e suite against the Docker Compose stack (needs Docker; see README "With Docker").
	E2E_NO_SKIP=1 go run ./e2e/cmd/stack compose -- go test -v -count=1 -timeout $(E2E_COMPOSE_TIMEOUT) ./e2e

# The e2e suite's tests of the deployment (e2e/scope_test.go; it prints the list), and its swarm
# tests (e2e/swarm_test.go, -tags swarm), against a throwaway
# swarm of three engines on this machine (each dockerd in a network namespace of its own; needs
# root and the host's engine to build the images), with the registry on its first node; always
# removed, also on failure or Ctrl-C. See README "More than one host".
E2E_SWARM_TIMEOUT ?= 60m
e2e-swarm: traefik hydra jaeger registry ## The e2e suite's deployment tests and the swarm tests on a three-node Docker Swarm (needs Docker and root; see README "More than one host").
	E2E_NO_SKIP=1 go run ./e2e/cmd/stack swarm -- go test -tags swarm -v -count=1 -timeout $(E2E_SWARM_TIMEOUT) ./e2e

FUZZTIME ?= 20s
FUZZ_TARGETS := \
	./casts/internal/api:FuzzDecodeCastRequest ./casts/internal/api:FuzzDecodeCastPatch ./casts/internal/api:FuzzParseCastListQuery \
	./movies/internal/api:FuzzDecodeMovieRequest ./movies/internal/api:FuzzDecodeMoviePatch ./movies/internal/api:FuzzParseMovieListQuery \
	./casts/internal/web:FuzzCheckTypes ./movies/internal/web:FuzzCheckTypes

fuzz: ## Fuzz each request decoder and query parser for FUZZTIME (20s) each; their seeds run in make test.
	@set -e; for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; name=$${target##*:}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		go test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

bench: build traefik hydra jaeger ## Benchmark each scenario direct, without token verification, via Traefik and via nginx, plus pgbench (needs wrk, nginx; ~10 min).
	go run ./e2e/cmd/bench

clean: ## Remove build output (bin/). Run data in .run/ is kept: rm -rf .run to reset it.
	rm -rf bin
