#!/usr/bin/env bash
# couponctl(1): "A file holds at most 5000000 records." A file of exactly that many passes
# the check; one more record is refused, on the line of the 5000001st. No server listens on
# the port, so a file that passes the check ends in a connection error (exit 3), not a
# 5000000-record upload.
. "$(dirname "$0")/lib.sh"

# A port with nothing behind it: the one a stopped coupond had.
start_server 0
stop_server

awk 'BEGIN { for (i = 1; i <= 5000000; i++) printf "L%d,,1,FLAT,2031-01-01,1\n", i }' \
    >"$TMP/max.csv"
set +e
out=$(ctl --upload "$TMP/max.csv" 2>&1); rc=$?
set -e
echo "$out" | grep -q 'more than 5000000 records' && fail "5000000 records are refused: $out"
[ "$rc" -eq 3 ] || fail "5000000 records exit $rc, not 3 (the check passed, nobody listens): $out"
echo "$out" | grep -q "no batch of 100 stored - Connection refused" || fail "5000000 records: $out"
ok "a file of exactly 5000000 records passes the check"

echo 'L5000001,,1,FLAT,2031-01-01,1' >>"$TMP/max.csv"
set +e
out=$(ctl --upload "$TMP/max.csv" 2>&1); rc=$?
set -e
[ "$rc" -eq 1 ] || fail "5000001 records exit $rc, not 1: $out"
[ "$out" = "line 5000001: more than 5000000 records: split the file
nothing sent: 1 bad record in $TMP/max.csv" ] || fail "5000001 records: $out"
ok "a file of 5000001 records is refused on line 5000001"
