# shellcheck shell=bash
# tests/ha/lib.sh - sourced by the high-availability tests: coupond nodes on one store, each in
# a temporary data directory sharing the first node's admin.key and task.key, started on a free
# port (-p 0, the port read from its op=LISTEN line), and stopped by the EXIT trap whatever
# happens. Needs COUPOND_BIN, HALOAD_BIN and COUPOND_TEST_PG_URI; sets WORK.

: "${COUPOND_BIN:?COUPOND_BIN names the coupond to test}"
: "${HALOAD_BIN:?HALOAD_BIN names tests/tools/haload}"
: "${COUPOND_TEST_PG_URI:?run inside tests/pg/cluster.sh or tests/pg/replica.sh}"

# Tenths of a second a node may take to listen (an ASan build connects and prepares slowly).
NODE_START_TENTHS=300
# Seconds a node may take to stop on SIGTERM before it is killed.
NODE_STOP_S=20

WORK=$(mktemp -d /tmp/coupond-ha.XXXXXX)
declare -A NODE_PID=() NODE_PORT=() # NODE_PORT is the sourcing test's
EXTRA_PIDS=() # anything else started in the background (haproxy, load runs)

ha_cleanup() {
    local name pid
    for pid in "${EXTRA_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for name in "${!NODE_PID[@]}"; do
        kill -TERM "${NODE_PID[$name]}" 2>/dev/null || true
    done
    for pid in "${EXTRA_PIDS[@]}" "${NODE_PID[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap ha_cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }

say() { printf '%s\n' "$*"; }

fail() {
    say "FAIL: $*" >&2
    local name
    for name in "${!NODE_PID[@]}"; do
        say "--- $name stderr:" >&2
        tail -n 20 "$WORK/$name/stderr" >&2 2>/dev/null || true
    done
    exit 1
}

# node_start NAME: a coupond node on the store, named NAME; sets NODE_PID[NAME], NODE_PORT[NAME].
node_start() {
    local name=$1 dir=$WORK/$1 port='' i
    mkdir -p "$dir"
    chmod 0700 "$dir"
    if [ -f "$WORK/admin.key" ]; then
        install -m 0600 "$WORK/admin.key" "$WORK/task.key" "$dir/"
    fi
    "$COUPOND_BIN" -p 0 -d "$dir" --log "$dir/ops.log" --store "$COUPOND_TEST_PG_URI" \
        --node-name "$name" --purge-interval 0 >"$dir/stderr" 2>&1 &
    NODE_PID[$name]=$!
    for ((i = 0; i < NODE_START_TENTHS; i++)); do
        port=$(grep -o 'op=LISTEN addr=127.0.0.1 port=[0-9]*' "$dir/ops.log" 2>/dev/null |
            head -n 1 | sed 's/.*port=//') || true
        [ -n "$port" ] && break
        kill -0 "${NODE_PID[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || fail "node $name did not start"
    # shellcheck disable=SC2034 # read by the test that sources this
    NODE_PORT[$name]=$port
    # The first node made the keys every other node shares.
    if [ ! -f "$WORK/admin.key" ]; then
        install -m 0600 "$dir/admin.key" "$dir/task.key" "$WORK/"
    fi
}

# node_kill NAME: kill -9, as a crash would.
node_kill() {
    kill -KILL "${NODE_PID[$1]}"
    wait "${NODE_PID[$1]}" 2>/dev/null || true
    unset "NODE_PID[$1]"
}

# node_stop NAME: SIGTERM; fails the test unless the node exits with status 0 (a sanitizer's
# report makes it exit otherwise).
node_stop() {
    local pid=${NODE_PID[$1]} st=0 i
    kill -TERM "$pid"
    for ((i = 0; i < NODE_STOP_S * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    wait "$pid" || st=$?
    unset "NODE_PID[$1]"
    [ "$st" -eq 0 ] || { tail -n 40 "$WORK/$1/stderr" >&2; fail "node $1 exited with status $st"; }
}

# result_field FILE KEY: KEY=VALUE of the RESULT line of a haload load run.
result_field() {
    grep '^RESULT ' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
