#!/usr/bin/env bash
# Resumable uploads: every batch carries a request id derived from its records, so the same
# upload run again after a failure gets the batches coupond stored the first time replayed and
# stores the rest, each record exactly once. The server killed with -9 in the middle of a big
# upload, Ctrl-C in the middle of one, and the dashboard's u, which uses the same ids.
. "$(dirname "$0")/lib.sh"

TOTAL=50000
BATCH=250
NBATCHES=$((TOTAL / BATCH))

start_server 0
awk -v n="$TOTAL" 'BEGIN { for (i = 1; i <= n; i++) printf "BIG-%06d,FREE,5,FLAT,2031-01-01,1\n", i }' \
    >"$TMP/big.csv"

# created_at_least N: for wait_for.
created_at_least() {
    local v
    v=$(stat_of "created.$1") || return 1
    [ -n "$v" ] && [ "$v" -ge "$2" ]
}

# ---- kill -9 of the server in the middle of a big upload ----

# Not through ctl, a function: $! must be couponctl itself, not a subshell, for the signals.
"$COUPONCTL_BIN" -p "$PORT" -k "$KEY" -b "$BATCH" --upload "$TMP/big.csv" >"$TMP/first.out" \
    2>"$TMP/first.err" &
CTL_PID=$!
track "$CTL_PID"
wait_for "two batches to be stored" created_at_least FREE $((2 * BATCH))
# couponctl stops where it is, so that the kill lands in the middle of the upload however fast
# the machine; it goes on only once the server is dead, and finds its connection gone.
kill -STOP "$CTL_PID"
before=$(stat_of created.FREE)
[ "$before" -lt "$TOTAL" ] || fail "the upload was over before the kill: use a bigger file"
kill_server
kill -CONT "$CTL_PID"
rc=0
wait "$CTL_PID" || rc=$?
[ "$rc" -eq 3 ] || fail "an upload cut by the server's death exits $rc, not 3"
grep -q "^connection lost: uploaded [0-9]* of $TOTAL records; batches 1-[0-9]* of $NBATCHES stored" \
    "$TMP/first.out" || fail "no summary of the cut upload: $(cat "$TMP/first.out")"
grep -q "the same command again resumes the upload" "$TMP/first.err" ||
    fail "no hint to resume: $(cat "$TMP/first.err")"
ok "an upload cut by kill -9 of the server says which batches were stored and how to resume"

start_server 0
stored=$(stat_of created.FREE)
[ $((stored % BATCH)) -eq 0 ] || fail "$stored records stored: not whole batches"
out=$(ctl -b "$BATCH" --upload "$TMP/big.csv") || fail "the same upload again failed: $out"
echo "$out" | grep -q "^uploaded $TOTAL records in $NBATCHES batches: [0-9]* uploaded, [0-9]* replayed" ||
    fail "no summary with the replayed batches: $out"
uploaded=$(echo "$out" | sed -n 's/.*batches: \([0-9]*\) uploaded, \([0-9]*\) replayed.*/\1/p')
replayed=$(echo "$out" | sed -n 's/.*batches: \([0-9]*\) uploaded, \([0-9]*\) replayed.*/\2/p')
[ "$((uploaded + replayed))" -eq "$NBATCHES" ] ||
    fail "$uploaded uploaded + $replayed replayed is not $NBATCHES batches"
[ "$replayed" -eq $((stored / BATCH)) ] ||
    fail "$replayed batches replayed, but $stored records (of $BATCH a batch) were stored before"
[ "$(stat_of created.FREE)" = "$TOTAL" ] || fail "created.FREE is $(stat_of created.FREE), not $TOTAL"
log_sync
[ "$(grep -c 'op=UPLOAD .*replayed=1' "$SERVER_LOG")" -eq "$replayed" ] ||
    fail "the server log does not show $replayed replayed UPLOADs"
ok "the same command again: $replayed batches replayed + $uploaded uploaded = $NBATCHES, each record stored once"

# The same again, once more: everything is replayed, nothing is stored twice.
out=$(ctl -b "$BATCH" --upload "$TMP/big.csv") || fail "a third run failed: $out"
echo "$out" | grep -q "^uploaded $TOTAL records in $NBATCHES batches: 0 uploaded, $NBATCHES replayed" ||
    fail "a third run did not replay every batch: $out"
[ "$(stat_of created.FREE)" = "$TOTAL" ] || fail "a third run changed created.FREE"
ok "a complete upload run again replays every batch and stores nothing"

stop_server
"$COUPOND_BIN" --check -d "$DATA" >/dev/null 2>"$TMP/check.err" ||
    fail "coupond --check after the resumed upload: $(cat "$TMP/check.err")"
start_server 0
ok "coupond --check passes on the store after the resumed upload"

# ---- Ctrl-C in the middle of an upload ----

sed 's/^BIG-/INT-/; s/,FREE,/,STANDARD,/' "$TMP/big.csv" >"$TMP/int.csv"
"$COUPONCTL_BIN" -p "$PORT" -k "$KEY" -b "$BATCH" --upload "$TMP/int.csv" >"$TMP/int.out" \
    2>"$TMP/int.err" &
CTL_PID=$!
track "$CTL_PID"
wait_for "a batch to be stored" created_at_least STANDARD "$BATCH"
kill -STOP "$CTL_PID" # as above: the signal lands in the middle of the upload
[ "$(stat_of created.STANDARD)" -lt "$TOTAL" ] || fail "the upload was over before SIGINT"
kill -INT "$CTL_PID"
kill -CONT "$CTL_PID"
rc=0
wait "$CTL_PID" || rc=$?
[ "$rc" -eq 1 ] || fail "an upload cancelled by SIGINT exits $rc, not 1"
grep -q "^cancelled: uploaded " "$TMP/int.out" || fail "no cancelled summary: $(cat "$TMP/int.out")"
grep -q "the same command again resumes the upload" "$TMP/int.err" || fail "no hint to resume after SIGINT"
stored=$(stat_of created.STANDARD)
out=$(ctl -b "$BATCH" --upload "$TMP/int.csv") || fail "the upload after SIGINT failed: $out"
echo "$out" | grep -q "^uploaded $TOTAL records in $NBATCHES batches: $((NBATCHES - stored / BATCH)) uploaded, $((stored / BATCH)) replayed" ||
    fail "after SIGINT with $stored stored, not the right split: $out"
[ "$(stat_of created.STANDARD)" = "$TOTAL" ] || fail "created.STANDARD is not $TOTAL"
ok "Ctrl-C, then the same command: the stored batches replayed, the rest uploaded"

# ---- the dashboard's u uses the same ids ----

awk 'BEGIN { for (i = 1; i <= 10; i++) printf "DASH-%02d,MEGADEAL,5,FLAT,2031-01-01,1\n", i }' >"$TMP/ten.csv"
head -n 8 "$TMP/ten.csv" | ctl -b 4 --upload - >/dev/null || fail "uploading the first 8 records failed"
dash_start_args 100 30 "LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color" -p "$PORT" -k "$KEY" -b 4
wait_screen "127\\.0\\.0\\.1:$PORT  connected"
keys u
wait_screen 'File to upload:'
keys -l "$TMP/ten.csv"
keys Enter
wait_screen 'uploaded 10 records in 3 batches: 1 uploaded, 2 replayed'
screen_has 'batches 1-2 of 3, records 1-8, lines 1-8: stored by an earlier run \(replayed\)' ||
    fail "no line for the replayed batches"
[ "$(stat_of created.MEGADEAL)" = 10 ] || fail "created.MEGADEAL is not 10"
keys Escape
keys q
wait_screen '^EXITED=0$'
ok "the dashboard's upload replays the batches a batch-mode upload stored"
