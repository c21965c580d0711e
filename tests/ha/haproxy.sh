#!/usr/bin/env bash
# tests/ha/haproxy.sh - three coupond nodes on one PostgreSQL (tests/pg/cluster.sh) behind
# HAProxy in TCP mode, with dist/haproxy.cfg itself: its addresses replaced by free ports of
# 127.0.0.1, its stats socket moved into the test's directory, and (when not run as root) its
# chroot, user and group left out. A REQUEST load runs through the gateway (tests/tools/haload:
# every OK is an acknowledged write, every error retried with the same request id, on a new
# connection through the gateway when the old one is gone). Mid-load one node is killed with
# kill -9. The clients must carry on through the gateway, and afterwards every acknowledged
# REQUEST's coupon must be assigned to its user, with STATS on the gateway and on both surviving
# nodes showing exactly the acknowledged writes. Prints what each client saw.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/ha/lib.sh
. "$HERE/lib.sh"

HAPROXY=${HAPROXY_BIN:-$(command -v haproxy || echo /usr/sbin/haproxy)}
CONFIG=$ROOT/dist/haproxy.cfg
COUPONS=200000 # uploaded before the load: more than it can take
CONNS=12       # load connections through the gateway, 4 per node
LOAD_S=12      # seconds of load
KILL_AFTER_S=4 # node2 is killed this far into the load
TYPE=FREE
# Ports tried for the gateway: above the registered range, below the ephemeral one.
PORT_FIRST=20000
PORT_SPAN=12000
# Tenths of a second for HAProxy to listen and pass a PING to a node.
GATEWAY_TENTHS=100

[ -x "$HAPROXY" ] || fail "no haproxy at $HAPROXY (tools/deps.sh installs it)"

node_start node1
node_start node2
node_start node3

# The gateway's port: free now (HAProxy fails at start, and the test with it, if taken since).
while :; do
    GW_PORT=$((PORT_FIRST + RANDOM % PORT_SPAN))
    (exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT") 2>/dev/null || break
done

# dist/haproxy.cfg with this test's addresses: each replacement must hit exactly once.
cp "$CONFIG" "$WORK/haproxy.cfg"
subst() { # FROM TO
    [ "$(grep -c -F -- "$1" "$WORK/haproxy.cfg")" -eq 1 ] ||
        fail "dist/haproxy.cfg does not have '$1' once"
    sed -i "s|$1|$2|" "$WORK/haproxy.cfg"
}
subst "bind 10.0.0.10:7070" "bind 127.0.0.1:$GW_PORT"
subst "10.0.0.11:7070" "127.0.0.1:${NODE_PORT[node1]}"
subst "10.0.0.12:7070" "127.0.0.1:${NODE_PORT[node2]}"
subst "10.0.0.13:7070" "127.0.0.1:${NODE_PORT[node3]}"
subst "stats socket /run/haproxy/admin.sock" "stats socket $WORK/haproxy.sock"
if [ "$(id -u)" -ne 0 ]; then
    sed -i -E '/^\s*(chroot|user|group) /d' "$WORK/haproxy.cfg"
fi
"$HAPROXY" -c -q -f "$WORK/haproxy.cfg" || fail "haproxy -c refuses the configuration"
# -db: in the foreground, whatever `daemon` says, so that the test holds its pid.
"$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
EXTRA_PIDS+=($!)
HAPROXY_PID=$!
for ((i = 0; i < GATEWAY_TENTHS; i++)); do
    if reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT" && printf 'PING\r\nQUIT\r\n' >&3 &&
        timeout 2 cat <&3) 2>/dev/null) && [[ $reply == "OK PONG"* ]]; then
        break
    fi
    kill -0 "$HAPROXY_PID" 2>/dev/null || { cat "$WORK/haproxy.log" >&2; fail "haproxy exited"; }
    sleep 0.1
done
[[ ${reply:-} == "OK PONG"* ]] || { cat "$WORK/haproxy.log" >&2; fail "no PONG through the gateway"; }

"$HALOAD_BIN" upload -p "$GW_PORT" -k "$WORK/admin.key" -t "$TYPE" -n "$COUPONS" -x GW \
    >/dev/null || fail "the upload through the gateway failed"
"$HALOAD_BIN" load -p "$GW_PORT" -t "$TYPE" -x gw -c "$CONNS" -s "$LOAD_S" \
    -o "$WORK/gw.acks" >"$WORK/gw.load" 2>&1 &
LOAD_PID=$!
EXTRA_PIDS+=($!)
sleep "$KILL_AFTER_S"
kill_at=$(now_ms)
node_kill node2
load_rc=0
wait "$LOAD_PID" || load_rc=1
say "== load through the gateway (node2 killed at +$((kill_at - $(result_field "$WORK/gw.load" start))) ms)"
cat "$WORK/gw.load"
[ "$load_rc" -eq 0 ] || fail "the load stopped on an error or left a request unresolved"

f=$WORK/gw.load
fe=$(result_field "$f" first_error)
sa=$(result_field "$f" served_all)
[ "$fe" -gt 0 ] || fail "no client saw the kill: were none of them on node2?"
# Clients that saw an error: any of "N unavailable, N connections lost, N connects refused".
saw=$(awk -F'errors: ' '/^client / { split($2, n, /[^0-9]+/); if (n[1] + n[2] + n[3] > 0) k++ }
    END { print k + 0 }' "$f")
after=$(awk -v t="$kill_at" '$3 > t' "$WORK/gw.acks" | wc -l)
[ "$after" -gt 0 ] || fail "nothing was acknowledged after the kill"
say "FIGURES clients=$CONNS clients_that_saw_errors=$saw acked=$(result_field "$f" acked)" \
    "acked_after_kill=$after replayed=$(result_field "$f" replayed)" \
    "errors_unavailable=$(result_field "$f" unavailable)" \
    "connections_lost=$(result_field "$f" lost) connects_refused=$(result_field "$f" refused)" \
    "first_error_after_kill_ms=$((fe - kill_at))" \
    "every_client_served_again_after_kill_ms=$((sa - kill_at))" \
    "longest_request_ms=$(result_field "$f" max_wait)"

"$HALOAD_BIN" verify -p "$GW_PORT,${NODE_PORT[node1]},${NODE_PORT[node3]}" \
    -k "$WORK/admin.key" -t "$TYPE" -n "$COUPONS" -a "$WORK/gw.acks" ||
    fail "an acknowledged write was lost"
node_stop node1
node_stop node3
say "PASS: $(result_field "$f" acked) acknowledged writes through the gateway, none lost"
