#!/usr/bin/env bash
# tests/ha/failover.sh - PostgreSQL fails over under a write load, and no acknowledged write is
# lost. Runs inside tests/pg/replica.sh (a primary with a synchronous standby). Two coupond
# nodes are given both servers in one URI with target_session_attrs=read-write; a REQUEST load
# runs against each (tests/tools/haload: every OK is an acknowledged write, every error is
# retried with the same request id). Mid-load the primary is killed (-m immediate), and after
# FAILOVER_PROMOTE_DELAY_MS (the time a failover manager takes to decide; default 1000) the
# standby is promoted. The nodes must reconnect to it by themselves, the load must be served
# again, and afterwards every acknowledged REQUEST's coupon must be assigned to its user on the
# new primary, with STATS on both nodes showing exactly the acknowledged writes.
#
# A node rides out a short failover without an error: the batch whose COMMIT was cut off waits
# up to 2 s to learn its outcome, asks the promoted standby (which has every acknowledged commit:
# it was synchronous), and the writes behind it wait in the next batch. A longer one shows as
# ERR UNAVAILABLE until the standby is promoted, each retried with its request id. Either way
# the clients must have felt it (an error, or a request that waited for the promotion).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/ha/lib.sh
. "$HERE/lib.sh"

COUPONS=250000       # uploaded before the load: more than it can take
CONNS=8              # load connections per node
LOAD_S=14            # seconds of load
KILL_AFTER_S=4       # the primary is killed this far into the load
PROMOTE_DELAY_MS=${FAILOVER_PROMOTE_DELAY_MS:-1000} # then the standby is promoted
TYPE=FREE

: "${COUPOND_TEST_PG_SCRIPT:?run inside tests/pg/replica.sh}"
node_start alpha
node_start beta
"$HALOAD_BIN" upload -p "${NODE_PORT[alpha]}" -k "$WORK/admin.key" -t "$TYPE" -n "$COUPONS" \
    -x FO >/dev/null || fail "the upload failed"

for name in alpha beta; do
    "$HALOAD_BIN" load -p "${NODE_PORT[$name]}" -t "$TYPE" -x "$name" -c "$CONNS" -s "$LOAD_S" \
        -o "$WORK/$name.acks" >"$WORK/$name.load" 2>&1 &
    EXTRA_PIDS+=($!)
done
sleep "$KILL_AFTER_S"
kill_at=$(now_ms)
bash "$COUPOND_TEST_PG_SCRIPT" kill-primary
sleep "$(awk -v ms="$PROMOTE_DELAY_MS" 'BEGIN { print ms / 1000 }')"
promote_at=$(now_ms)
bash "$COUPOND_TEST_PG_SCRIPT" promote
promoted_at=$(now_ms)
load_rc=0
for pid in "${EXTRA_PIDS[@]}"; do
    wait "$pid" || load_rc=1
done
EXTRA_PIDS=()
for name in alpha beta; do
    say "== load on node $name"
    cat "$WORK/$name.load"
done
[ "$load_rc" -eq 0 ] || fail "a load run stopped on an error or left a request unresolved"

# The figures: counts, and times relative to the kill and to the promotion.
acked=0 after=0 unavail=0 lost=0 refused=0 first_error=0 served_first=0 served_all=0 stall=0
stall_end=0
for name in alpha beta; do
    f=$WORK/$name.load
    acked=$((acked + $(result_field "$f" acked)))
    after=$((after + $(result_field "$f" after)))
    unavail=$((unavail + $(result_field "$f" unavailable)))
    lost=$((lost + $(result_field "$f" lost)))
    refused=$((refused + $(result_field "$f" refused)))
    fe=$(result_field "$f" first_error)
    sf=$(result_field "$f" served_first)
    sa=$(result_field "$f" served_all)
    mw=$(result_field "$f" max_wait)
    mwe=$(result_field "$f" max_wait_end)
    # Felt: an error, or a request that waited from before the kill until after the promotion.
    if [ "$fe" -eq 0 ] && [ "$mw" -lt $((promote_at - kill_at)) ]; then
        fail "node $name's clients did not notice the failover: the kill did not reach them"
    fi
    if [ "$fe" -gt 0 ] && { [ "$first_error" -eq 0 ] || [ "$fe" -lt "$first_error" ]; }; then
        first_error=$fe
    fi
    if [ "$sf" -gt 0 ] && { [ "$served_first" -eq 0 ] || [ "$sf" -lt "$served_first" ]; }; then
        served_first=$sf
    fi
    if [ "$sa" -gt "$served_all" ]; then served_all=$sa; fi
    if [ "$mw" -gt "$stall" ]; then stall=$mw stall_end=$mwe; fi
done
# Served again: the first OK after an error, or the end of the longest wait, whichever is later.
[ "$stall_end" -gt "$served_all" ] && served_all=$stall_end
[ "$served_first" -eq 0 ] && served_first=$stall_end
done_after=0
for name in alpha beta; do
    done_after=$((done_after + $(awk -v t="$promoted_at" '$3 > t' "$WORK/$name.acks" | wc -l)))
done
[ "$done_after" -gt 0 ] || fail "nothing was acknowledged after the promotion"
# Batches whose cut-off COMMIT the promoted standby did not have although a transaction of the
# same id had committed there (store/pg/pg_writer.c): answered ERR UNAVAILABLE, never OK.
reused=$(cat "$WORK/alpha/ops.log" "$WORK/beta/ops.log" | grep -c 'a failover lost it' || true)
say "FIGURES promote_delay_ms=$PROMOTE_DELAY_MS acked=$acked batches_lost_in_failover=$reused" \
    "acked_after_promotion=$done_after errors_unavailable=$unavail" \
    "connections_lost=$lost connects_refused=$refused" \
    "first_error_after_kill_ms=$([ "$first_error" -gt 0 ] && echo $((first_error - kill_at)) || echo none)" \
    "promote_took_ms=$((promoted_at - promote_at))" \
    "longest_request_ms=$stall" \
    "served_again_after_promote_ms=$((served_first - promote_at))" \
    "every_client_served_after_promote_ms=$((served_all - promote_at))" \
    "outage_from_kill_ms=$((served_all - kill_at))"

cat "$WORK/alpha.acks" "$WORK/beta.acks" >"$WORK/all.acks"
"$HALOAD_BIN" verify -p "${NODE_PORT[alpha]},${NODE_PORT[beta]}" -k "$WORK/admin.key" \
    -t "$TYPE" -n "$COUPONS" -a "$WORK/all.acks" || fail "an acknowledged write was lost"
node_stop alpha
node_stop beta
say "PASS: $acked acknowledged writes, none lost across the failover"
