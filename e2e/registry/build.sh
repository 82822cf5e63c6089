#!/usr/bin/env bash
# Builds bin/registry, the pinned CNCF Distribution registry (Docker's registry, `registry:3`),
# for the swarm tests: the images are pushed to it and every node of the swarm pulls them from
# it, as from a team's registry (machines here reach no image registry).
#
#   e2e/registry/build.sh OUT      (the Makefile's bin/registry target calls it)
#
# The pin is REGISTRY_VERSION below: module github.com/distribution/distribution/v3, ./cmd/registry,
# built once per pin from the Go module proxy and kept in
# ~/.cache/movies-microservices/registry/<pin>/ (override with MOVIES_MICROSERVICES_CACHE); OUT is
# a copy of it. The first build takes about a minute on 2 cores (66 s measured here).
# Its configuration is e2e/registry/config.yaml.
set -euo pipefail

REGISTRY_VERSION=v3.1.2
module=github.com/distribution/distribution/v3

out=${1:?usage: e2e/registry/build.sh OUT}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cache=${MOVIES_MICROSERVICES_CACHE:-$HOME/.cache/movies-microservices}/registry/$REGISTRY_VERSION
export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod

step() { printf 'registry: %s\n' "$*"; }

# check BIN: the binary reports the pin.
check() { "$1" --version 2>/dev/null | grep " $module $REGISTRY_VERSION\$" >/dev/null; }

if [ -x "$cache/registry" ] && check "$cache/registry"; then
	step "registry $REGISTRY_VERSION already built ($cache/registry)"
else
	started=$SECONDS
	mkdir -p "$cache"
	moddir=$(go mod download -json "$module@$REGISTRY_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -f "$moddir/go.mod" ] || { echo "registry: cannot download $module@$REGISTRY_VERSION" >&2; exit 1; }
	step "building registry $REGISTRY_VERSION into $cache (about a minute the first time; cached after)"
	# The module's own go.mod and go.sum, as its Makefile builds it; the version as its Makefile sets it.
	ldflags="-s -w -X $module/version.version=$REGISTRY_VERSION -X $module/version.mainpkg=$module"
	(cd "$moddir" && go build -trimpath -ldflags "$ldflags" -o "$cache/registry.new" ./cmd/registry)
	check "$cache/registry.new" || { echo "registry: the build does not report $REGISTRY_VERSION" >&2; exit 1; }
	mv "$cache/registry.new" "$cache/registry"
	step "built in $((SECONDS - started)) s"
fi
mkdir -p "$(dirname "$out")"
cp "$cache/registry" "$out.new"
mv "$out.new" "$out"
step "$out is registry $REGISTRY_VERSION"
