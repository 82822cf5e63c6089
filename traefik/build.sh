#!/usr/bin/env bash
# Builds bin/traefik, the pinned Traefik with its dashboard, for runs without Docker.
#
#   traefik/build.sh VERSION OUT      (the Makefile's bin/traefik target calls it)
#
# Traefik's Go module ships the dashboard's sources (webui/) but not the built web UI: its
# webui/static holds only a placeholder, so `go build` alone gives a Traefik whose
# /dashboard/ fails. This script builds the web UI from the module's own sources with the
# module's own lockfile (yarn through corepack, from the npm registry npm is set up with),
# puts it into a writable copy of the module, and builds Traefik from that copy through a
# build-only copy of traefik/go.mod that replaces the module by the copy. traefik/go.mod,
# the pin, is never changed. Everything is kept under ~/.cache/movies-microservices/traefik/VERSION/
# (MOVIES_MICROSERVICES_CACHE moves it), the binary too, keyed by traefik/go.mod, go.sum and this
# script: a fresh clone (CI) copies it in a second instead of building the web UI and relinking.
#
# Without Node.js or corepack it builds Traefik without the dashboard (the API, /ping and
# /metrics work) and says what to install; with CI=true that is an error instead.
set -euo pipefail

version=${1:?usage: traefik/build.sh VERSION OUT}
out=${2:?usage: traefik/build.sh VERSION OUT}
module=github.com/traefik/traefik/v3

here=$(cd "$(dirname "$0")" && pwd)
case $out in /*) ;; *) out=$PWD/$out ;; esac
work=${MOVIES_MICROSERVICES_CACHE:-$HOME/.cache/movies-microservices}/traefik/$version
mkdir -p "$work"
cd "$here"
export GOWORK=off CGO_ENABLED=0

step() { printf 'traefik: %s\n' "$*"; }

have_node() { command -v node >/dev/null 2>&1 && command -v corepack >/dev/null 2>&1; }

# A binary with its dashboard, built before from the same recipe (pin, replace lines, sums, this
# script), is reused; only such a build is kept (see the end).
cached=$work/traefik-$(cat go.mod go.sum "$here/build.sh" | sha256sum | cut -c1-16)
if have_node && [ -x "$cached" ] && "$cached" version | grep "Version: *$version\$" >/dev/null; then
	mkdir -p "$(dirname "$out")"
	cp "$cached" "$out.new"
	mv "$out.new" "$out"
	step "$out is Traefik $version with its dashboard, built before ($cached)"
	exit 0
fi

# The module as the Go module proxy serves it (read-only in the module cache).
moddir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$moddir/webui" ] || { echo "traefik: $module@$version has no webui/ in $moddir" >&2; exit 1; }

# build_webui writes $work/static: the dashboard built from $moddir/webui, once per pin.
build_webui() {
	if [ -f "$work/static/index.html" ]; then
		step "dashboard web UI of $version already built ($work/static)"
		return
	fi
	local registry src=$work/webui-src started=$SECONDS
	registry=$(npm config get registry 2>/dev/null || true)
	registry=${registry%/}
	[ -n "$registry" ] || { echo "traefik: npm has no registry configured (npm config get registry)" >&2; exit 1; }
	rm -rf "$src" "$work/static"
	cp -R "$moddir/webui" "$src"
	chmod -R u+w "$src"
	step "installing the dashboard's dependencies from its yarn.lock (about 1-2 minutes and 800 MB the first time)"
	(
		cd "$src"
		# corepack fetches the yarn release named by package.json's packageManager from the
		# npm registry rather than from its default site; yarn itself uses the same registry.
		export COREPACK_NPM_REGISTRY=$registry COREPACK_ENABLE_DOWNLOAD_PROMPT=0 \
			YARN_NPM_REGISTRY_SERVER=$registry YARN_ENABLE_IMMUTABLE_INSTALLS=true \
			YARN_ENABLE_TELEMETRY=0 YARN_ENABLE_PROGRESS_BARS=false
		corepack yarn workspaces focus --all --production >"$work/yarn-install.log" 2>&1 ||
			{ tail -20 "$work/yarn-install.log" >&2; echo "traefik: yarn install failed; log in $work/yarn-install.log" >&2; exit 1; }
		step "building the dashboard (vite, about 30-60 seconds)"
		# The same settings as Traefik's own image build: assets relative to /dashboard/,
		# API under /api on the same entrypoint.
		VITE_APP_BASE_URL= VITE_APP_BASE_API_URL=/api corepack yarn build >"$work/yarn-build.log" 2>&1 ||
			{ tail -20 "$work/yarn-build.log" >&2; echo "traefik: yarn build failed; log in $work/yarn-build.log" >&2; exit 1; }
	)
	[ -f "$src/static/index.html" ] || { echo "traefik: the dashboard build wrote no static/index.html" >&2; exit 1; }
	mv "$src/static" "$work/static"
	# node_modules is about 800 MB; yarn keeps its own cache, so a rebuild does not download again.
	rm -rf "$src"
	step "dashboard built in $((SECONDS - started)) s"
}

ldflags="-s -w -X $module/pkg/version.Version=$version -X $module/pkg/version.Codename=ramequin"
with_dashboard=false
if have_node; then
	with_dashboard=true
elif [ "${CI:-}" = true ]; then
	echo "traefik: Node.js and corepack are required in CI to build the dashboard (Node.js 20 ships corepack)" >&2
	exit 1
else
	step "Node.js or corepack not found: building Traefik WITHOUT its dashboard (the API, /ping and /metrics still work)."
	step "For the dashboard, install Node.js 20 or newer (it ships corepack), then: rm bin/traefik && make traefik"
fi

if $with_dashboard; then
	build_webui
	# A writable copy of the module with the built web UI in webui/static, which webui/embed.go
	# embeds. Go refuses -overlay for files in the module cache, hence the copy.
	copy=$work/module
	if [ ! -f "$copy/webui/static/index.html" ] || ! diff -rq "$work/static" "$copy/webui/static" >/dev/null; then
		rm -rf "$copy"
		cp -R "$moddir" "$copy"
		chmod -R u+w "$copy"
		rm -rf "$copy/webui/static"
		cp -R "$work/static" "$copy/webui/static"
	fi
	cp go.mod "$work/go.mod"
	printf '\n// Build-only: the module with its dashboard built (traefik/build.sh).\nreplace %s => %s\n' "$module" "$copy" >>"$work/go.mod"
	cp go.sum "$work/go.sum"
	step "building Traefik $version with its dashboard into $out (about 10 minutes the first time; cached after)"
	go build -modfile="$work/go.mod" -trimpath -ldflags "$ldflags" -o "$out" "$module/cmd/traefik"
else
	step "building Traefik $version into $out (about 10 minutes the first time; cached after)"
	go build -trimpath -ldflags "$ldflags" -o "$out" "$module/cmd/traefik"
fi

# The checks: the version the pin names, and the dashboard's own index.html inside the binary.
if ! "$out" version | grep "Version: *$version\$" >/dev/null; then
	echo "traefik: $out does not report $version" >&2
	rm -f "$out"
	exit 1
fi
if $with_dashboard; then
	entry=$(grep -o 'src="./assets/[^"]*\.js"' "$work/static/index.html" | head -1)
	if [ -z "$entry" ] || ! grep -aqF "$entry" "$out"; then
		echo "traefik: $out does not carry the dashboard built in $work/static" >&2
		rm -f "$out"
		exit 1
	fi
	step "$out is Traefik $version with its dashboard"
	cp "$out" "$cached.new" && mv "$cached.new" "$cached"
else
	step "$out is Traefik $version, without the dashboard"
fi
