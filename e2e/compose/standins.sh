#!/usr/bin/env bash
# Makes the stand-in images for machines whose Docker engine cannot pull from a registry, offline,
# with `docker import`:
#
#   movies-microservices-standin/golang:1.26       for FROM golang:1.26 (the services' build stage):
#                                                  busybox-static from Debian, this machine's Go, its
#                                                  CA bundle, and a file-based module proxy holding the
#                                                  modules casts and movies need (containers here reach
#                                                  no module proxy).
#   movies-microservices-standin/static:nonroot    for gcr.io/distroless/static-debian12:nonroot: passwd
#                                                  and group with nonroot (65532), the CA bundle, /tmp.
#   movies-microservices-standin/postgres:17       for postgres:17-alpine: PostgreSQL 17 from Debian trixie
#                                                  (debootstrap --variant=minbase) and an entrypoint of
#                                                  our own honouring POSTGRES_USER/PASSWORD/DB.
#   movies-microservices-standin/traefik:v3.6.12   for traefik:v3.6.12: bin/traefik (make traefik).
#   movies-microservices-standin/hydra:v2.3.0      for oryd/hydra:v2.3.0 (the Alpine variant): bin/hydra
#                                                  (make hydra) as /usr/bin/hydra, busybox-static for its
#                                                  shell and wget, user nonroot (65532).
#   movies-microservices-standin/jaeger:2.12.0     for jaegertracing/jaeger:2.12.0 (Alpine based): bin/jaeger
#                                                  (make jaeger) as /cmd/jaeger/jaeger-linux, busybox-static
#                                                  for wget, user 10001, JAEGER_LISTEN_HOST=0.0.0.0.
#
# The names are never an official image's name, so a user's own images are never overwritten.
# e2e/compose/standins.yaml points compose.yaml at them. Each image carries a label with a digest of
# what it was made from and is remade only when that changes; `standins.sh --force` remakes them.
# Arguments name the images to make (runtime builder postgres traefik hydra jaeger); none means all six.
# Needs: docker, go, debootstrap (Debian package), apt-get (to download busybox-static), root.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
prefix=movies-microservices-standin
force=false
if [ "${1:-}" = --force ]; then
	force=true
	shift
fi
cache=${STANDIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movies-microservices/standins}
mkdir -p "$cache"
# One maker at a time (two stacks started at once on one machine): the second waits, then
# finds the images made.
exec 9>"$cache/.lock"
flock 9
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

hydra_version=$(sed -n 's/^HYDRA_VERSION=\(v[0-9.]*\).*/\1/p' "$repo/e2e/hydra/build.sh")
jaeger_release=$(sed -n 's/^JAEGER_RELEASE=\([0-9.]*\).*/\1/p' "$repo/e2e/jaeger/build.sh")
traefik_version=$(awk '{for (i = 1; i < NF; i++) if ($i == "github.com/traefik/traefik/v3") {print $(i+1); exit}}' "$repo/traefik/go.mod")

# current IMAGE DIGEST: true when IMAGE exists with label standin.digest=DIGEST.
current() {
	! $force && [ "$(docker image inspect --format '{{index .Config.Labels "standin.digest"}}' "$1" 2>/dev/null)" = "$2" ]
}

digest() { sha256sum | cut -c1-16; }

# import DIR IMAGE DIGEST [--change ...]: the directory's tree as a one-layer image.
import() {
	local dir=$1 image=$2 sum=$3
	shift 3
	tar --numeric-owner -C "$dir" -c . | docker import --change "LABEL standin.digest=$sum" "$@" - "$image" >/dev/null
	echo "standins: made $image"
}

ca_bundle=/etc/ssl/certs/ca-certificates.crt

# skeleton ROOT SHELL: the files every stand-in has: the CA bundle, a /tmp for everyone, and root
# in passwd and group with login shell SHELL.
skeleton() {
	local root=$1
	mkdir -p "$root/etc/ssl/certs" "$root/tmp"
	chmod 1777 "$root/tmp"
	cp "$ca_bundle" "$root/etc/ssl/certs/"
	echo "root:x:0:0:root:/root:$2" >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
}

# nonroot ROOT: the user and group nonroot (65532), as distroless names them, with a home.
nonroot() {
	local root=$1
	mkdir -p "$root/home/nonroot"
	printf 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >>"$root/etc/passwd"
	printf 'nonroot:x:65532:\n' >>"$root/etc/group"
	chown 65532:65532 "$root/home/nonroot"
}

# busybox ROOT: busybox-static from Debian (downloaded once into the cache) as ROOT/bin/busybox,
# with a link for each of its commands.
busybox() {
	local root=$1 deb
	deb=$(ls "$cache"/busybox-static_*.deb 2>/dev/null | head -1 || true)
	if [ -z "$deb" ]; then
		(cd "$cache" && apt-get download busybox-static >/dev/null 2>&1) || {
			echo "standins: apt-get download busybox-static failed" >&2
			exit 1
		}
		deb=$(ls "$cache"/busybox-static_*.deb | head -1)
	fi
	rm -rf "$work/busybox"
	dpkg-deb -x "$deb" "$work/busybox"
	mkdir -p "$root/bin"
	cp "$work/busybox/bin/busybox" "$root/bin/busybox"
	for cmd in $("$root/bin/busybox" --list); do
		[ -e "$root/bin/$cmd" ] || ln -s busybox "$root/bin/$cmd"
	done
}

# --- runtime base: distroless static nonroot -------------------------------------------------
make_runtime() {
	local image=$prefix/static:nonroot sum
	sum=$( (echo runtime-2; cat "$ca_bundle") | digest)
	current "$image" "$sum" && { echo "standins: $image is current"; return; }
	local root=$work/runtime
	skeleton "$root" /sbin/nologin
	printf 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >>"$root/etc/passwd"
	printf 'nobody:x:65534:\n' >>"$root/etc/group"
	nonroot "$root"
	import "$root" "$image" "$sum" --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
		--change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'
}

# --- Go builder ----------------------------------------------------------------------------
# The services' go.sum files pin every module; the builder gets exactly those, from this machine's
# module cache (filled from the Go module proxy), as a file-based GOPROXY.
make_builder() {
	local image=$prefix/golang:1.26 sum goroot
	goroot=$(go env GOROOT)
	sum=$( (echo builder-2; go version; cat "$repo"/casts/go.sum "$repo"/movies/go.sum) | digest)
	current "$image" "$sum" && { echo "standins: $image is current"; return; }
	local root=$work/builder
	skeleton "$root" /bin/sh
	mkdir -p "$root/usr/local" "$root/go/proxy" "$root/root"
	busybox "$root"
	cp -a "$goroot" "$root/usr/local/go"
	# Every module (and go.mod of every module in the graph) of both services, as the proxy serves them.
	local svc
	for svc in casts movies; do
		(cd "$repo/$svc" && GOWORK=off go mod download)
	done
	(cd "$repo/casts" && GOWORK=off go list -m -f '{{.Path}}@{{.Version}}' all) >"$work/modules"
	(cd "$repo/movies" && GOWORK=off go list -m -f '{{.Path}}@{{.Version}}' all) >>"$work/modules"
	local download
	download=$(go env GOMODCACHE)/cache/download
	# The whole download cache of the module graph: .info, .mod, .zip, list files and sumdb entries
	# for every path the graph names (go.mod files of modules pruned from the build included).
	(cd "$download" && find . -name '*.mod' -o -name '*.info' -o -name '*.zip' -o -name list) |
		grep -F -f <(sed 's/@.*//; s/[A-Z]/!\L&/g' "$work/modules" | sort -u | sed 's|^|./|; s|$|/@v/|') >"$work/files"
	tar -C "$download" -cf - -T "$work/files" | tar -C "$root/go/proxy" -xf -
	import "$root" "$image" "$sum" \
		--change 'ENV PATH=/usr/local/go/bin:/go/bin:/bin' --change 'ENV GOPATH=/go' \
		--change 'ENV GOTOOLCHAIN=local' --change 'ENV GOPROXY=file:///go/proxy' --change 'ENV GOSUMDB=off' \
		--change 'WORKDIR /go'
}

# --- PostgreSQL 17 -------------------------------------------------------------------------------
make_postgres() {
	local image=$prefix/postgres:17 sum
	sum=$( (echo postgres-1; cat "$repo/e2e/compose/postgres-entrypoint.sh") | digest)
	current "$image" "$sum" && { echo "standins: $image is current"; return; }
	local root=$cache/postgres-root
	if [ ! -x "$root/usr/lib/postgresql/17/bin/postgres" ]; then
		echo "standins: debootstrap of Debian trixie with postgresql-17 into $root (about a minute, once)"
		rm -rf "$root"
		debootstrap --variant=minbase --include=postgresql-17 trixie "$root" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 || {
			echo "standins: debootstrap failed; see $cache/debootstrap.log" >&2
			rm -rf "$root"
			exit 1
		}
		rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale
	fi
	local pguid pggid
	pguid=$(awk -F: '$1 == "postgres" {print $3}' "$root/etc/passwd")
	pggid=$(awk -F: '$1 == "postgres" {print $4}' "$root/etc/passwd")
	install -m 0755 "$repo/e2e/compose/postgres-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
	# As the official image has them: the data directory owned by postgres (a new named volume takes
	# its owner from here), and the socket directory with mode 3777, which a tmpfs mounted there keeps.
	rm -rf "$root/var/lib/postgresql/data" "$root/run/postgresql"
	mkdir -p "$root/var/lib/postgresql/data" "$root/run/postgresql"
	chown "$pguid:$pggid" "$root/var/lib/postgresql/data" "$root/run/postgresql"
	chmod 0700 "$root/var/lib/postgresql/data"
	chmod 3777 "$root/run/postgresql"
	import "$root" "$image" "$sum" \
		--change 'ENV PATH=/usr/lib/postgresql/17/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV PGDATA=/var/lib/postgresql/data' --change 'ENV LANG=C.UTF-8' \
		--change 'ENTRYPOINT ["docker-entrypoint.sh"]' --change 'CMD ["postgres"]' --change 'EXPOSE 5432'
	# STOPSIGNAL cannot be set by docker import: standins.yaml sets stop_signal SIGINT instead.
}

# --- Traefik -------------------------------------------------------------------------------------
make_traefik() {
	local image=$prefix/traefik:$traefik_version sum bin=$repo/bin/traefik
	[ -x "$bin" ] || { echo "standins: $bin is missing: run make traefik first" >&2; exit 1; }
	sum=$( (echo traefik-1; cat "$bin") | digest)
	current "$image" "$sum" && { echo "standins: $image is current"; return; }
	local root=$work/traefik
	skeleton "$root" /sbin/nologin
	mkdir -p "$root/usr/local/bin"
	cp "$bin" "$root/usr/local/bin/traefik"
	import "$root" "$image" "$sum" --change 'ENV PATH=/usr/local/bin' \
		--change 'ENTRYPOINT ["traefik"]' --change 'EXPOSE 80'
}

# --- Hydra ---------------------------------------------------------------------------------------
make_hydra() {
	local image=$prefix/hydra:$hydra_version sum bin=$repo/bin/hydra
	[ -x "$bin" ] || { echo "standins: $bin is missing: run make hydra first" >&2; exit 1; }
	sum=$( (echo hydra-2; cat "$bin") | digest)
	current "$image" "$sum" && { echo "standins: $image is current"; return; }
	local root=$work/hydra
	skeleton "$root" /bin/sh
	busybox "$root"
	nonroot "$root"
	mkdir -p "$root/usr/bin"
	cp "$bin" "$root/usr/bin/hydra"
	import "$root" "$image" "$sum" --change 'ENV PATH=/usr/bin:/bin' --change 'USER nonroot' \
		--change 'ENTRYPOINT ["hydra"]' --change 'CMD ["serve", "all"]'
}

# --- Jaeger --------------------------------------------------------------------------------------
make_jaeger() {
	local image=$prefix/jaeger:$jaeger_release sum bin=$repo/bin/jaeger
	[ -x "$bin" ] || { echo "standins: $bin is missing: run make jaeger first" >&2; exit 1; }
	sum=$( (echo jaeger-1; cat "$bin") | digest)
	current "$image" "$sum" && { echo "standins: $image is current"; return; }
	local root=$work/jaeger
	skeleton "$root" /bin/sh
	busybox "$root"
	mkdir -p "$root/cmd/jaeger"
	cp "$bin" "$root/cmd/jaeger/jaeger-linux"
	import "$root" "$image" "$sum" --change 'ENV PATH=/usr/bin:/bin' --change 'ENV JAEGER_LISTEN_HOST=0.0.0.0' \
		--change 'USER 10001' --change 'ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]'
}

for part in "${@:-runtime builder postgres traefik hydra jaeger}"; do
	for p in $part; do
		"make_$p"
	done
done
