#!/usr/bin/env bash
# tests/pg/replica.sh - a throwaway primary with a synchronous streaming standby, for the
# failover test (tests/ha/failover.sh). A sibling of cluster.sh, made the same way: initdb and
# pg_ctl run as the postgres user through runuser, everything in one temporary directory owned
# by it, each server on a free TCP port of 127.0.0.1, fsync on.
#
#   replica.sh run CMD [ARG...]   initdb + start the primary (synchronous_standby_names = '*',
#                                 so a COMMIT returns only once the standby has flushed it),
#                                 make the standby with `pg_basebackup -R` and start it, wait
#                                 until it streams as the synchronous standby, then run CMD with
#                                 the variables below exported; stop both servers and remove
#                                 everything afterwards, also when CMD fails or the script is
#                                 interrupted. Exits with CMD's status.
#   replica.sh kill-primary       inside CMD: stop the primary at once (-m immediate: no
#                                 shutdown checkpoint, as a crash would).
#   replica.sh promote            inside CMD: promote the standby (pg_ctl promote -w) and wait
#                                 until it accepts writes.
#
# Exported to CMD:
#   COUPOND_TEST_PG_URI        both hosts in one URI, primary first, with
#                              target_session_attrs=read-write: libpq connects to whichever of
#                              them accepts writes
#   COUPOND_TEST_PG_PRIMARY_PORT, COUPOND_TEST_PG_STANDBY_PORT, COUPOND_TEST_PG_DIR
#   COUPOND_TEST_PG_SCRIPT     this script, for kill-primary and promote
set -euo pipefail

# shellcheck source=tests/pg/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Tenths of a second to wait for the standby to stream synchronously, and for the promoted
# server to accept writes.
SYNC_WAIT_TENTHS=600

# pg_start NAME PORT: starts the server whose data directory is $COUPOND_TEST_PG_DIR/NAME.
pg_start() {
    as_pg "$PG_BIN/pg_ctl" -D "$COUPOND_TEST_PG_DIR/$1" -l "$COUPOND_TEST_PG_DIR/$1.log" \
        -w -t "$PG_CTL_WAIT" -o "-p $2" start >/dev/null
}

pg_stop() {
    as_pg "$PG_BIN/pg_ctl" -D "$COUPOND_TEST_PG_DIR/$1" -w -t "$PG_CTL_WAIT" \
        -m immediate stop >/dev/null
}

# psql_at PORT SQL: one value from the server on PORT.
psql_at() {
    as_pg "$PG_BIN/psql" -X -q -A -t -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"
}

cleanup() {
    local name
    if [ -n "${COUPOND_TEST_PG_DIR:-}" ] && [ -d "$COUPOND_TEST_PG_DIR" ]; then
        for name in standby primary; do
            if [ -f "$COUPOND_TEST_PG_DIR/$name/postmaster.pid" ]; then
                pg_stop "$name" 2>/dev/null || true
            fi
        done
        rm -rf "$COUPOND_TEST_PG_DIR"
    fi
}

# start_on_free_port NAME VAR: starts server NAME on a free port, which it puts in VAR.
start_on_free_port() {
    local i port
    for ((i = 0; i < PORT_TRIES; i++)); do
        port=$(random_port)
        port_free "$port" || continue
        if pg_start "$1" "$port"; then
            printf -v "$2" %s "$port"
            export "${2?}"
            return 0
        fi
    done
    echo "replica.sh: the $1 did not start; its log:" >&2
    cat "$COUPOND_TEST_PG_DIR/$1.log" >&2 || true
    exit 1
}

# wait_for PORT SQL WANT WHAT: polls until SQL on PORT returns WANT.
wait_for() {
    local i got=
    for ((i = 0; i < SYNC_WAIT_TENTHS; i++)); do
        got=$(psql_at "$1" "$2" 2>/dev/null || true)
        [ "$got" = "$3" ] && return 0
        sleep 0.1
    done
    echo "replica.sh: $4 (last: '$got')" >&2
    return 1
}

run() {
    [ -x "$PG_BIN/initdb" ] || { echo "replica.sh: no PostgreSQL in $PG_BIN" >&2; exit 1; }
    COUPOND_TEST_PG_DIR=$(mktemp -d /tmp/coupond-pgrep.XXXXXX)
    export COUPOND_TEST_PG_DIR
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    chmod 0755 "$COUPOND_TEST_PG_DIR"
    chown "$PG_USER": "$COUPOND_TEST_PG_DIR" 2>/dev/null || true
    as_pg "$PG_BIN/initdb" -D "$COUPOND_TEST_PG_DIR/primary" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C >"$COUPOND_TEST_PG_DIR/initdb.log"
    # Replication connections come over TCP from 127.0.0.1 (initdb's trust lines allow them).
    # The standby's application_name is what synchronous_standby_names matches; '*' is any.
    cat >>"$COUPOND_TEST_PG_DIR/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$COUPOND_TEST_PG_DIR'
fsync = on
synchronous_commit = on
synchronous_standby_names = '*'
wal_level = replica
max_wal_senders = 4
hot_standby = on
max_connections = 60
CONF
    start_on_free_port primary COUPOND_TEST_PG_PRIMARY_PORT
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$COUPOND_TEST_PG_PRIMARY_PORT" -U postgres \
        -D "$COUPOND_TEST_PG_DIR/standby" -R -X stream -c fast \
        >"$COUPOND_TEST_PG_DIR/basebackup.log" 2>&1
    # The standby got the primary's postgresql.conf. Once promoted it has no standby of its
    # own, and with synchronous_standby_names still '*' every COMMIT would wait for one for
    # ever: it commits alone (what Patroni does when the last synchronous standby is gone,
    # unless told to be strict).
    echo "synchronous_standby_names = ''" >>"$COUPOND_TEST_PG_DIR/standby/postgresql.conf"
    start_on_free_port standby COUPOND_TEST_PG_STANDBY_PORT
    wait_for "$COUPOND_TEST_PG_PRIMARY_PORT" \
        "SELECT sync_state FROM pg_stat_replication LIMIT 1" sync \
        "the standby does not stream as the synchronous standby"
    export COUPOND_TEST_PG_URI="postgresql://postgres@127.0.0.1:$COUPOND_TEST_PG_PRIMARY_PORT,127.0.0.1:$COUPOND_TEST_PG_STANDBY_PORT/postgres?target_session_attrs=read-write&connect_timeout=2"
    export COUPOND_TEST_PG_SCRIPT
    COUPOND_TEST_PG_SCRIPT=$(readlink -f "$0")
    export PATH="$PG_BIN:$PATH"
    local rc=0
    "$@" || rc=$?
    exit "$rc"
}

promote() {
    as_pg "$PG_BIN/pg_ctl" -D "$COUPOND_TEST_PG_DIR/standby" -w -t "$PG_CTL_WAIT" promote \
        >/dev/null
    wait_for "$COUPOND_TEST_PG_STANDBY_PORT" "SELECT pg_is_in_recovery()" f \
        "the promoted standby still is in recovery"
}

case "${1:-}" in
run)
    shift
    [ $# -gt 0 ] || { echo "usage: replica.sh run CMD [ARG...]" >&2; exit 2; }
    run "$@"
    ;;
kill-primary) pg_stop primary ;;
promote) promote ;;
*)
    echo "usage: replica.sh run CMD [ARG...] | kill-primary | promote" >&2
    exit 2
    ;;
esac
