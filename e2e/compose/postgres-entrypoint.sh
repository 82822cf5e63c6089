#!/bin/sh
# Entrypoint of the stand-in PostgreSQL image (standins.sh), doing the part of the official
# image's docker-entrypoint.sh that compose.yaml relies on: on the first start of an empty data
# directory, initdb with POSTGRES_USER as the superuser and POSTGRES_PASSWORD as its password,
# POSTGRES_DB created and owned by it, password authentication (scram-sha-256) for every TCP
# connection; then the server in the foreground, on every interface. POSTGRES_PASSWORD_FILE (a
# Swarm secret, e2e/swarm/stack.yaml) gives the password from a file, as in the official image. Like the official image, it
# prints no password, and during initialisation the server listens on the Unix socket only, so
# that a TCP health check does not count it ready early.
set -eu

if [ "${1:-}" != postgres ]; then
	exec "$@"
fi
shift

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
	if [ -n "${POSTGRES_PASSWORD:-}" ]; then
		echo "postgres-entrypoint: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, not both" >&2
		exit 1
	fi
	POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
fi
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
	echo "postgres-entrypoint: POSTGRES_PASSWORD is not set" >&2
	exit 1
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	echo "postgres-entrypoint: initialising $PGDATA for user $POSTGRES_USER, database $POSTGRES_DB"
	pwfile=$(mktemp)
	trap 'rm -f "$pwfile"' EXIT
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --no-instructions >/dev/null
	rm -f "$pwfile"
	# Any address, with a password: the networks compose.yaml attaches limit who gets here.
	echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
	pg_ctl --pgdata="$PGDATA" --wait --silent -o "-c listen_addresses=''" start
	if [ "$POSTGRES_DB" != postgres ]; then
		# The name is an identifier: double any double quote in it.
		db=$(printf '%s' "$POSTGRES_DB" | sed 's/"/""/g')
		psql --quiet --no-psqlrc --username="$POSTGRES_USER" --dbname=postgres \
			--set ON_ERROR_STOP=1 --command="CREATE DATABASE \"$db\"" >/dev/null
	fi
	pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
	echo "postgres-entrypoint: initialised"
fi

exec postgres -c listen_addresses='*' "$@"
