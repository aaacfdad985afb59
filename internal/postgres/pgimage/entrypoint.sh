#!/bin/sh
# aidb's PostgreSQL entrypoint for images built from Debian's packages.
#
# It honours the contract of the official postgres image, so a compose file
# written for postgres:<major> runs unchanged on aidb.local/postgres:<major>:
#   POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
#   POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default: the user),
#   POSTGRES_INITDB_ARGS, PGDATA (default /var/lib/postgresql/data), and the
#   *.sh / *.sql / *.sql.gz scripts in /docker-entrypoint-initdb.d, run once
#   when the data directory is first initialised.
# Password (scram-sha-256) over TCP, trust over the local socket, as there.
set -eu

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

# "docker run image -c foo=bar" means "postgres -c foo=bar", as in the official image.
if [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
	# Root only prepares directories, then runs everything else as postgres.
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA"
	chmod 03775 /var/run/postgresql
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
	chown postgres:postgres /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	user="${POSTGRES_USER:-postgres}"
	db="${POSTGRES_DB:-$user}"
	auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
		echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
		echo "       set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
		exit 1
	fi

	# The password goes through a private file, never through argv.
	pwfile="$(mktemp)"
	printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words by contract
	initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
		--encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
	rm -f "$pwfile"
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

	# A temporary server on the socket only: clients polling over TCP see the
	# database only once it is fully initialised.
	pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start
	export PGUSER="$user" PGHOST=/var/run/postgresql
	if [ "$db" != postgres ]; then
		psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname postgres --set db="$db" <<-'SQL'
			CREATE DATABASE :"db";
		SQL
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sh)
			if [ -x "$f" ]; then "$f"; else . "$f"; fi
			;;
		*.sql) psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname "$db" -f "$f" ;;
		*.sql.gz) gunzip -c "$f" | psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname "$db" ;;
		*) ;;
		esac
	done
	unset PGUSER PGHOST
	pg_ctl -D "$PGDATA" -m fast -w stop
	echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
