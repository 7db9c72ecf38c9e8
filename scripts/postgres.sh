#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 16 with pgvector for the tests and prints its URL.
#
# Debian has no pgvector, so the server binaries come from the PyPI wheel `pgserver`
# (PostgreSQL 16.2 + pgvector 0.6.2) in a venv of their own (.venv-pg). initdb refuses
# root, so the server runs as the unprivileged user `lisapg` when started as root.
#   scripts/postgres.sh start   # prints postgres://postgres@127.0.0.1:PORT/postgres
#   scripts/postgres.sh createdb NAME   # a fresh database, prints its URL
#   LISA_PG_SSL_CERT=C LISA_PG_SSL_KEY=K scripts/postgres.sh start   # with TLS
#   scripts/postgres.sh restart   # fast restart: every session is dropped
#   scripts/postgres.sh stop
#   LISA_PG_PORT=55433 LISA_PG_DATA=/tmp/other scripts/postgres.sh start   # a second instance
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${LISA_PG_PORT:-55432}"
DATA="${LISA_PG_DATA:-/tmp/lisa-pg-$PORT}"
VENV=.venv-pg

if [ -n "${LISA_PG_SSL_CERT:-}" ]; then
    # The pgserver wheels are built without SSL: TLS tests use Debian's PostgreSQL (no
    # pgvector needed there).
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        (apt-get update -q && apt-get install -y -q --no-install-recommends postgresql) >&2
    fi
    BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
else
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV" >&2
    fi
    if ! "$VENV/bin/python" -c 'import pgserver' 2>/dev/null; then
        "$VENV/bin/pip" install -q --disable-pip-version-check 'pgserver==0.1.4' >&2
    fi
    BIN="$("$VENV/bin/python" -c 'import pgserver, os; print(os.path.join(os.path.dirname(pgserver.__file__), "pginstall", "bin"))' 2>/dev/null)"
fi

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        id lisapg >/dev/null 2>&1 || useradd -m lisapg
        runuser -u lisapg -- "$@"
    else
        "$@"
    fi
}

# A checkout lisapg cannot enter (a clone under `mktemp -d`, mode 0700): the server binaries
# are copied where it can.
if [ "$(id -u)" = 0 ] && [ -z "${LISA_PG_SSL_CERT:-}" ] && ! as_owner test -x "$BIN/pg_ctl"; then
    # The package and the libraries its binaries find through their rpath ($ORIGIN/../../../pgserver.libs).
    PACKAGES="$(dirname "$(dirname "$(dirname "$BIN")")")"
    COPY=/tmp/lisa-pgserver-$(id -u lisapg)
    if ! as_owner test -x "$COPY/pgserver/pginstall/bin/pg_ctl"; then
        rm -rf "$COPY.new" && mkdir -p "$COPY.new" && cp -a "$PACKAGES/pgserver" "$PACKAGES/pgserver.libs" "$COPY.new/"
        chmod -R a+rX "$COPY.new" && rm -rf "$COPY" && mv "$COPY.new" "$COPY"
    fi
    BIN="$COPY/pgserver/pginstall/bin"
fi

case "${1:-start}" in
start)
    if [ ! -f "$DATA/PG_VERSION" ]; then
        mkdir -p "$DATA"
        [ "$(id -u)" = 0 ] && { id lisapg >/dev/null 2>&1 || useradd -m lisapg; chown lisapg "$DATA"; }
        as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
    fi
    OPTIONS="-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300"
    if [ -n "${LISA_PG_SSL_CERT:-}" ]; then
        # TLS with the given certificate and key (copied in: the server wants to own the key).
        cp "$LISA_PG_SSL_CERT" "$DATA/server.crt"
        cp "$LISA_PG_SSL_KEY" "$DATA/server.key"
        chmod 600 "$DATA/server.key"
        [ "$(id -u)" = 0 ] && chown lisapg "$DATA/server.crt" "$DATA/server.key"
        OPTIONS="$OPTIONS -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c unix_socket_directories=/tmp"
    fi
    if ! as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -o "$OPTIONS" -l "$DATA/log" -w start >/dev/null
    fi
    echo "postgres://postgres@127.0.0.1:$PORT/postgres?sslmode=disable"
    ;;
createdb)
    # A fresh database for one test: scripts/postgres.sh createdb NAME (prints its URL).
    "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -q -c "CREATE DATABASE \"$2\"" >/dev/null
    echo "postgres://postgres@127.0.0.1:$PORT/$2?sslmode=disable"
    ;;
stop)
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
    ;;
restart)
    # A fast restart (every session dropped, as in a failover): the outage tests use it.
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DATA/log" -m fast -w restart >/dev/null
    ;;
*)
    echo "usage: $0 start|createdb NAME|restart|stop" >&2
    exit 2
    ;;
esac
