#!/usr/bin/env bash
# Builds bin/hydra, the pinned Ory Hydra (the stack's OpenID provider), for runs without Docker.
#
#   e2e/hydra/build.sh OUT      (the Makefile's bin/hydra target calls it)
#
# The pin is HYDRA_VERSION below; compose.yaml runs the official image of the same version
# (oryd/hydra:<pin>, checked by e2e/parity). The binary is built once per pin from the module
# the Go module proxy serves and kept in ~/.cache/movies-microservices/hydra/<pin>/ (override
# with MOVIES_MICROSERVICES_CACHE); OUT is a copy of it. A build takes 1 to 2 minutes on
# 2 cores the first time (61 s and 2m02s measured here).
#
# Hydra is built as its own main module, from a writable copy of the module with its own go.mod
# and go.sum, so that its replace directives apply exactly as in Ory's own build. One of them
# cannot: `github.com/ory/hydra-client-go/v2 => ./internal/httpclient` names a directory that is
# a module of its own and therefore not in the module zip. That replace is dropped, and the
# client is the published github.com/ory/hydra-client-go/v2 that Hydra's go.mod requires
# (v2.2.1); only the CLI's admin subcommands use it, and the server does not.
set -euo pipefail

HYDRA_VERSION=v2.3.0
module=github.com/ory/hydra/v2

out=${1:?usage: e2e/hydra/build.sh OUT}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cache=${MOVIES_MICROSERVICES_CACHE:-$HOME/.cache/movies-microservices}/hydra/$HYDRA_VERSION
export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod

step() { printf 'hydra: %s\n' "$*"; }

# check BIN: the binary reports the pin.
check() { "$1" version 2>/dev/null | grep "^Version: *$HYDRA_VERSION\$" >/dev/null; }

if [ -x "$cache/hydra" ] && check "$cache/hydra"; then
	step "Hydra $HYDRA_VERSION already built ($cache/hydra)"
else
	started=$SECONDS
	mkdir -p "$cache"
	moddir=$(go mod download -json "$module@$HYDRA_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -f "$moddir/go.mod" ] || { echo "hydra: cannot download $module@$HYDRA_VERSION" >&2; exit 1; }
	src=$cache/src
	rm -rf "$src"
	cp -R "$moddir" "$src"
	chmod -R u+w "$src"
	sed -i '\#^replace github.com/ory/hydra-client-go/v2 => ./internal/httpclient#d' "$src/go.mod"
	step "building Hydra $HYDRA_VERSION into $cache (1 to 2 minutes the first time; cached after)"
	ldflags="-s -w -X $module/driver/config.Version=$HYDRA_VERSION"
	(cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$cache/hydra.new" .)
	check "$cache/hydra.new" || { echo "hydra: the build does not report $HYDRA_VERSION" >&2; exit 1; }
	mv "$cache/hydra.new" "$cache/hydra"
	rm -rf "$src"
	step "built in $((SECONDS - started)) s"
fi
mkdir -p "$(dirname "$out")"
cp "$cache/hydra" "$out.new"
mv "$out.new" "$out"
step "$out is Hydra $HYDRA_VERSION"
