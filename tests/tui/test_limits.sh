#!/usr/bin/env bash
# couponctl(1): "A file holds at most 5000000 records." In a file of 5000001 records the
# first 5000000 pass the check and the last one is refused, on its own line 5000001 (not
# on line 5000000, where the 5000000th record is). One run of the full-size file, since a
# sanitizer build checks 5 million records slowly; nothing is sent, so no server is needed.
. "$(dirname "$0")/lib.sh"

printf '%064d\n' 0 >"$TMP/any.key"
awk 'BEGIN { for (i = 1; i <= 5000001; i++) printf "L%d,,1,FLAT,2031-01-01,1\n", i }' \
    >"$TMP/over.csv"
set +e
out=$("$COUPONCTL_BIN" -p 1 -k "$TMP/any.key" --upload "$TMP/over.csv" 2>&1); rc=$?
set -e
[ "$rc" -eq 1 ] || fail "5000001 records exit $rc, not 1: $out"
[ "$out" = "line 5000001: more than 5000000 records: split the file
nothing sent: 1 bad record in $TMP/over.csv" ] || fail "5000001 records: $out"
ok "5000000 records pass the check; record 5000001 is refused on line 5000001"
