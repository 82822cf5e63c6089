#!/usr/bin/env bash
# Builds bin/jaeger, the pinned Jaeger v2 (the stacks' trace backend), for runs without Docker.
#
#   e2e/jaeger/build.sh OUT      (the Makefile's bin/jaeger target calls it)
#
# Jaeger v2 is released from the module github.com/jaegertracing/jaeger under two tags at once:
# v1.N.0 (the module's version, which the Go module proxy serves) and v2.M.0 (the program's
# version, the official image's tag). The pins are below; compose.yaml runs the official image
# jaegertracing/jaeger:<JAEGER_RELEASE> (checked by e2e/parity). The binary is built once per pin
# from the module and kept in ~/.cache/movies-microservices/jaeger/<JAEGER_RELEASE>/ (override
# with MOVIES_MICROSERVICES_CACHE); OUT is a copy of it. A build takes about 3 minutes on 2 cores
# the first time (171 s measured here).
#
# The module zip holds no built web UI (cmd/query/app/ui/actual is empty: the jaeger-ui assets
# come from a git submodule and an npm build that the release does apart), so this binary serves a
# placeholder page on :16686 instead of the UI; its query API (/api/traces, /api/v3/...) is whole.
# The official image has the UI.
set -euo pipefail

JAEGER_MODULE_VERSION=v1.75.0
JAEGER_RELEASE=2.12.0
module=github.com/jaegertracing/jaeger

out=${1:?usage: e2e/jaeger/build.sh OUT}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cache=${MOVIES_MICROSERVICES_CACHE:-$HOME/.cache/movies-microservices}/jaeger/$JAEGER_RELEASE
export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod

step() { printf 'jaeger: %s\n' "$*"; }

# check BIN: the binary reports the pin.
check() { "$1" version 2>/dev/null | grep "\"gitVersion\": *\"v$JAEGER_RELEASE\"" >/dev/null; }

if [ -x "$cache/jaeger" ] && check "$cache/jaeger"; then
	step "Jaeger $JAEGER_RELEASE already built ($cache/jaeger)"
else
	started=$SECONDS
	mkdir -p "$cache"
	moddir=$(go mod download -json "$module@$JAEGER_MODULE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -f "$moddir/go.mod" ] || { echo "jaeger: cannot download $module@$JAEGER_MODULE_VERSION" >&2; exit 1; }
	# Its own main module, from a writable copy, so that its go.mod and go.sum apply as in
	# Jaeger's own build.
	src=$cache/src
	rm -rf "$src"
	cp -R "$moddir" "$src"
	chmod -R u+w "$src"
	step "building Jaeger $JAEGER_RELEASE ($module $JAEGER_MODULE_VERSION) into $cache (about 3 minutes the first time; cached after)"
	pkg=$module/internal/version
	ldflags="-s -w -X $pkg.latestVersion=v$JAEGER_RELEASE -X $pkg.commitSHA=$JAEGER_MODULE_VERSION -X $pkg.date=unknown"
	(cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$cache/jaeger.new" ./cmd/jaeger)
	check "$cache/jaeger.new" || { echo "jaeger: the build does not report v$JAEGER_RELEASE" >&2; exit 1; }
	mv "$cache/jaeger.new" "$cache/jaeger"
	rm -rf "$src"
	step "built in $((SECONDS - started)) s"
fi
mkdir -p "$(dirname "$out")"
cp "$cache/jaeger" "$out.new"
mv "$out.new" "$out"
step "$out is Jaeger $JAEGER_RELEASE"
