#!/usr/bin/env bash
# tests/clients/with_server.sh CMD [ARGS...] - runs CMD against a real coupond: a fresh data dir,
# a free port, the operation log to a file (reads too: INFO and STATS are what clients poll). CMD finds the server in the environment:
#   COUPOND_PORT   the port on 127.0.0.1
#   COUPOND_KEY    the admin key (hex)
#   COUPOND_DATA   the data dir
#   COUPOND_OPLOG  the operation log, one logfmt line per command (op=VERB, sub=SUBCOMMAND)
# Then the server is stopped with SIGTERM. Exits non-zero when CMD failed or the server did not
# exit 0 (a crash, or a sanitizer's report); prints the log's tail then. Needs COUPOND_BIN.
set -u
: "${COUPOND_BIN:?COUPOND_BIN must name the coupond binary}"
WAIT_S=${CLIENT_TEST_WAIT_S:-20}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/coupond-clients.XXXXXX")
export COUPOND_DATA="$TMP/data" COUPOND_OPLOG="$TMP/ops.log"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

"$COUPOND_BIN" -p 0 -d "$COUPOND_DATA" --log "$COUPOND_OPLOG" --log-reads 2>"$TMP/stderr.log" &
SERVER_PID=$!
for _ in $(seq $((WAIT_S * 20))); do
    grep -q 'op=LISTEN' "$COUPOND_OPLOG" 2>/dev/null && [ -s "$COUPOND_DATA/admin.key" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
done
COUPOND_PORT=$(grep -m1 'op=LISTEN' "$COUPOND_OPLOG" 2>/dev/null | sed 's/.* port=\([0-9]*\).*/\1/')
if [ -z "$COUPOND_PORT" ]; then
    echo "with_server: coupond did not start:" >&2
    cat "$TMP/stderr.log" >&2
    exit 1
fi
COUPOND_KEY=$(cat "$COUPOND_DATA/admin.key")
export COUPOND_PORT COUPOND_KEY

rc=0
"$@" || rc=$?
kill -TERM "$SERVER_PID"
src=0
wait "$SERVER_PID" || src=$?
SERVER_PID=""
if [ "$rc" != 0 ] || [ "$src" != 0 ]; then
    echo "with_server: $1 exited $rc, coupond exited $src; the server's stderr and log tail:" >&2
    tail -n 20 "$TMP/stderr.log" >&2
    tail -n 10 "$COUPOND_OPLOG" >&2
    [ "$rc" != 0 ] && exit "$rc"
    exit 1
fi
