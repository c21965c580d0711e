#!/usr/bin/env bash
# tests/pg/cluster.sh - a throwaway PostgreSQL cluster for the store's PostgreSQL tests.
#
#   cluster.sh run CMD [ARG...]   initdb + start a private cluster, run CMD with
#                                 COUPOND_TEST_PG_URI (and the variables below) exported,
#                                 then stop and remove the cluster, also when CMD fails or
#                                 the script is interrupted; exits with CMD's status.
#   cluster.sh stop | start       inside CMD: stop (immediately, as a crash would) or start
#                                 the running cluster again, for the outage tests.
#
# PostgreSQL refuses to run as root, so initdb and pg_ctl run as the `postgres` user (created
# by Debian's postgresql package) through runuser, in a temporary directory owned by it: data
# directory, socket directory and log. The server listens on a free TCP port on 127.0.0.1 and
# on its private socket; the URI uses the socket. fsync stays on, as in production.
set -euo pipefail

# shellcheck source=tests/pg/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pg_start() {
    as_pg "$PG_BIN/pg_ctl" -D "$COUPOND_TEST_PG_DIR/data" -l "$COUPOND_TEST_PG_DIR/log" \
        -w -t "$PG_CTL_WAIT" -o "-p $COUPOND_TEST_PG_PORT" start >/dev/null
}

pg_stop() {
    as_pg "$PG_BIN/pg_ctl" -D "$COUPOND_TEST_PG_DIR/data" -w -t "$PG_CTL_WAIT" \
        -m immediate stop >/dev/null
}

cleanup() {
    if [ -n "${COUPOND_TEST_PG_DIR:-}" ] && [ -d "$COUPOND_TEST_PG_DIR" ]; then
        [ -f "$COUPOND_TEST_PG_DIR/data/postmaster.pid" ] && pg_stop 2>/dev/null || true
        rm -rf "$COUPOND_TEST_PG_DIR"
    fi
}

run() {
    [ -x "$PG_BIN/initdb" ] || { echo "cluster.sh: no PostgreSQL in $PG_BIN" >&2; exit 1; }
    COUPOND_TEST_PG_DIR=$(mktemp -d /tmp/coupond-pg.XXXXXX)
    export COUPOND_TEST_PG_DIR
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    chmod 0755 "$COUPOND_TEST_PG_DIR"
    chown "$PG_USER": "$COUPOND_TEST_PG_DIR" 2>/dev/null || true
    as_pg "$PG_BIN/initdb" -D "$COUPOND_TEST_PG_DIR/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C >"$COUPOND_TEST_PG_DIR/initdb.log"
    cat >>"$COUPOND_TEST_PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$COUPOND_TEST_PG_DIR'
fsync = on
synchronous_commit = on
max_connections = 60
CONF
    local i started=0
    for ((i = 0; i < PORT_TRIES; i++)); do
        COUPOND_TEST_PG_PORT=$(random_port)
        port_free "$COUPOND_TEST_PG_PORT" || continue
        export COUPOND_TEST_PG_PORT
        if pg_start; then
            started=1
            break
        fi
    done
    if [ "$started" -ne 1 ]; then
        echo "cluster.sh: the cluster did not start; its log:" >&2
        cat "$COUPOND_TEST_PG_DIR/log" >&2 || true
        exit 1
    fi
    export COUPOND_TEST_PG_URI="postgresql:///postgres?host=$COUPOND_TEST_PG_DIR&port=$COUPOND_TEST_PG_PORT&user=postgres"
    export COUPOND_TEST_PG_SCRIPT
    COUPOND_TEST_PG_SCRIPT=$(readlink -f "$0")
    export PATH="$PG_BIN:$PATH"
    local rc=0
    "$@" || rc=$?
    exit "$rc"
}

case "${1:-}" in
run)
    shift
    [ $# -gt 0 ] || { echo "usage: cluster.sh run CMD [ARG...]" >&2; exit 2; }
    run "$@"
    ;;
stop) pg_stop ;;
start) pg_start ;;
*)
    echo "usage: cluster.sh run CMD [ARG...] | stop | start" >&2
    exit 2
    ;;
esac
