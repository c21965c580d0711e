# shellcheck shell=bash
# shellcheck disable=SC2034 # the values are for the scripts that source this file
# tests/pg/lib.sh - what cluster.sh and replica.sh share: where PostgreSQL's programs are, how
# they run as the postgres user, and the ports tried for a server. Sourced, not run.

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_USER=postgres
# runuser is util-linux's, in /usr/sbin: not on every root PATH (a CI runner's, say).
RUNUSER=$(command -v runuser || echo /usr/sbin/runuser)
# Ports tried for a server: above the registered range, below the ephemeral one.
PORT_FIRST=20000
PORT_SPAN=20000
PORT_TRIES=50
# Seconds pg_ctl waits for a server to start, stop or be promoted.
PG_CTL_WAIT=60

# as_pg CMD...: PostgreSQL refuses to run as root, so as root CMD runs as the postgres user.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        "$RUNUSER" -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# random_port: a port of the range to try.
random_port() {
    echo $((PORT_FIRST + (RANDOM * 32768 + RANDOM) % PORT_SPAN))
}
