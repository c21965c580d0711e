#!/usr/bin/env bash
# couponctl(1): "A file holds at most 5000000 records." In a file of 5000001 records the
# first 5000000 pass the check and the last one is refused, on its own line 5000001 (not
# on line 5000000, where the 5000000th record is). Nothing is sent, so no server is needed.
# unit/test_tui_csvload tests the same boundary with a small limit, in every build.
. "$(dirname "$0")/lib.sh"

# A sanitizer build needs some 16 s of CPU for the five million records, which on a shared
# two-core machine can be more than CTest's 120 s of wall time.
if grep -q __asan_init "$COUPONCTL_BIN"; then
    echo "ok 1 # SKIP the full-size file in a sanitizer build; unit/test_tui_csvload runs"
    exit 0
fi

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
