#!/usr/bin/env bash
# couponctl's batch mode against a real coupond: --stats, --upload (a messy CSV, bad rows,
# 120000 records in 3 batches, rejects by the server, standard input), --purge, exit codes.
. "$(dirname "$0")/lib.sh"

start_server 0

# ---- usage, key and connection errors ----

set +e
out=$("$COUPONCTL_BIN" --no-such-flag 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] || fail "an unknown flag exits $rc, not 2"
echo "$out" | grep -q -- "--no-such-flag" || fail "the usage error does not name the flag: $out"
set +e
"$COUPONCTL_BIN" --stats --purge >/dev/null 2>&1; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "--stats --purge exits $rc, not 2"
ok "usage errors exit 2"

set +e
out=$(ctl -k "$TMP/missing.key" --stats 2>&1); rc=$?
set -e
[ "$rc" -eq 4 ] || fail "a missing key file exits $rc, not 4"
echo "$out" | grep -q "$TMP/missing.key" || fail "the message does not name the key file: $out"
printf '%064d\n' 0 >"$TMP/wrong.key"
set +e
out=$(ctl -k "$TMP/wrong.key" --stats 2>&1); rc=$?
set -e
[ "$rc" -eq 4 ] || fail "a wrong key exits $rc, not 4"
echo "$out" | grep -q "refused the admin key from $TMP/wrong.key" ||
    fail "the message does not name the refused key file: $out"
ok "a missing or wrong key exits 4 and names the file"

# ---- --stats ----

ctl --stats >"$TMP/stats.out"
grep -qx 'STAT created.FREE 0' "$TMP/stats.out" || fail "--stats lacks created.FREE: $(cat "$TMP/stats.out")"
grep -qx 'STAT megadeal.timed_out 0' "$TMP/stats.out" || fail "--stats lacks megadeal.timed_out"
grep -qx 'STAT store lmdb' "$TMP/stats.out" || fail "--stats lacks the store's kind (STAT store lmdb)"
grep -q '^STAT node [!-~]*$' "$TMP/stats.out" || fail "--stats lacks the node's name (STAT node NAME)"
# Every line is a STAT line: a number, or one word for the text stats (node, store).
grep -v '^STAT [a-z_.A-Z]* [0-9]*$' "$TMP/stats.out" | grep -qvE '^STAT (node|store) [!-~]+$' &&
    fail "--stats printed a line that is not a STAT line"
[ "$(wc -l <"$TMP/stats.out")" -ge 32 ] || fail "--stats printed fewer than the 32 documented counters"
ok "--stats prints the STAT lines"

ctl --stats --json >"$TMP/stats.json"
python3 - "$TMP/stats.json" <<'PY' || fail "--stats --json: $(cat "$TMP/stats.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["created"]["FREE"] == 0 and set(d["created"]) == {"NONE", "FREE", "STANDARD", "MEGADEAL"}
assert d["store"] == "lmdb" and isinstance(d["node"], str)
assert d["megadeal.timed_out"] == 0
PY
set +e
out=$(ctl --purge --json 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] || fail "--purge --json exits $rc, not 2"
echo "$out" | grep -q -- "--json goes with --stats" || fail "the usage error does not say why: $out"
ok "--stats --json prints one JSON object; --json without --stats is a usage error"

# ---- --upload of a messy CSV: BOM, CRLF, quotes, a header in another order, blank lines ----

{
    printf '\xEF\xBB\xBF'
    printf 'Max_Uses,CODE,type,discount,kind,expires\r\n'
    printf '\r\n'
    printf '3,"messy-1","STANDARD","12.5",flat,2030-12-31\r\n'
    printf '  1 , messy-2 , FREE , 10 , PERCENT , 2030-06-30T12:00:00+02:00 \r\n'
    printf '\r\n\r\n'
    printf '2,"MESSY-3","","7",FLAT,"2031-01-01T00:00:00Z"\r\n'
    printf ',,,,,\r\n'
    printf '5,"messy-4",-,"100",percent,2030-01-01'
} >"$TMP/messy.csv"
out=$(ctl --upload "$TMP/messy.csv")
[ "$out" != "${out#uploaded 4 records in 1 batch: 1 uploaded, 0 replayed }" ] || fail "messy upload: $out"
[ "$(stat_of created.STANDARD)" = 1 ] || fail "created.STANDARD is not 1"
[ "$(stat_of created.FREE)" = 1 ] || fail "created.FREE is not 1"
[ "$(stat_of created.NONE)" = 2 ] || fail "created.NONE is not 2"
reply=$(raw "REQUEST alice STANDARD")
echo "$reply" | grep -q 'OK code=MESSY-1 type=STANDARD discount=12.50 kind=FLAT expires=2030-12-31T23:59:59Z uses=0 max_uses=3' ||
    fail "the header's column order was not followed: $reply"
reply=$(raw "REQUEST bob FREE")
echo "$reply" | grep -q 'OK code=MESSY-2 type=FREE discount=10.00 kind=PERCENT expires=2030-06-30T10:00:00Z' ||
    fail "blanks or the UTC offset were mishandled: $reply"
ok "--upload reads a messy CSV (BOM, CRLF, quotes, header, blank lines)"

# ---- --upload of a file with bad rows: nothing is sent ----

cat >"$TMP/bad.csv" <<'CSV'
GOOD-1,FREE,10,PERCENT,2030-12-31,1
GOOD-2,FREE,10.123,PERCENT,2030-12-31,1
GOOD-3,FREE,10,PERCENT,2030-02-30,1

BAD CODE,FREE,10,PERCENT,2030-12-31,1
GOOD-4,FREE,10,PERCENT,2030-12-31,1
good-1,FREE,10,PERCENT,2030-12-31,1
"GOOD-5,FREE,10,PERCENT,2030-12-31,1
CSV
log_sync
uploads=$(log_count UPLOAD)
connects=$(log_count CONNECT)
set +e
out=$(ctl --upload "$TMP/bad.csv"); rc=$?
set -e
log_sync
[ "$rc" -eq 1 ] || fail "a file with bad rows exits $rc, not 1"
for want in "line 2: bad discount" "line 3: bad expires" "line 5: bad code" \
    "line 7: code GOOD-1 repeats the record on line 1" "line 8: " "nothing sent: 5 bad records"; do
    echo "$out" | grep -q "$want" || fail "the bad rows report lacks '$want': $out"
done
echo "$out" | grep -q "line 1:" && fail "a good row was reported bad: $out"
# log_sync's own PING is the one connection since the count.
[ "$(log_count UPLOAD)" = "$uploads" ] || fail "an UPLOAD was sent for a file with bad rows"
[ "$(log_count CONNECT)" = $((connects + 1)) ] || fail "couponctl connected for a file with bad rows"
[ "$(stat_of created.FREE)" = 1 ] || fail "records were created from a file with bad rows"
ok "--upload of bad rows reports each one and sends nothing"

# ---- 120000 records go in 3 batches ----

awk 'BEGIN { print "code,type,discount,kind,expires,max_uses"
             for (i = 1; i <= 120000; i++) printf "BULK-%06d,STANDARD,5,FLAT,2032-01-01,1\n", i }' \
    >"$TMP/bulk.csv"
log_sync
uploads=$(grep -c 'op=UPLOAD result=OK' "$SERVER_LOG" || true)
out=$(ctl --upload "$TMP/bulk.csv" 2>"$TMP/bulk.err")
log_sync
[ "$out" != "${out#uploaded 120000 records in 3 batches: 3 uploaded, 0 replayed }" ] || fail "120000 records: $out"
[ "$(grep -c 'op=UPLOAD result=OK' "$SERVER_LOG")" = $((uploads + 3)) ] ||
    fail "the server did not store exactly 3 more batches"
grep -c 'stored=50000' "$SERVER_LOG" | grep -qx 2 || fail "the first two batches were not 50000 each"
[ -s "$TMP/bulk.err" ] && fail "progress went to a stderr that is not a terminal: $(cat "$TMP/bulk.err")"
[ "$(stat_of created.STANDARD)" = 120001 ] || fail "created.STANDARD is not 120001"
ok "--upload of 120000 records goes in 3 batches"

# ---- the server rejects a batch: the result says which batches were stored ----

awk 'BEGIN { for (i = 1; i <= 2500; i++) printf "SMALL-%04d,FREE,1,FLAT,2032-01-01,1\n", i
             print "BULK-000007,FREE,1,FLAT,2032-01-01,1" }' >"$TMP/clash.csv"
set +e
out=$(ctl -b 1000 --upload "$TMP/clash.csv"); rc=$?
set -e
[ "$rc" -eq 1 ] || fail "a rejected batch exits $rc, not 1"
for want in "batches 1-2 of 3, records 1-2000, lines 1-2000: stored" \
    "batch 3 of 3, records 2001-2501, lines 2001-2501: rejected" \
    "line 2501 (batch 3, record 501): code BULK-000007 already exists" \
    "stopped: uploaded 2000 of 2501 records; batches 1-2 of 3 stored"; do
    echo "$out" | grep -qF "$want" || fail "the rejected upload lacks '$want': $out"
done
[ "$(stat_of created.FREE)" = 2001 ] || fail "created.FREE is not 1 + 2000 after the rejected batch"
ok "--upload stops at a rejected batch and says exactly which were stored"

# ---- standard input ----

printf 'STDIN-1,MEGADEAL,50,PERCENT,2031-12-31,1\n' | ctl --upload - | grep -q '^uploaded 1 records' ||
    fail "--upload - did not read standard input"
ok "--upload - reads standard input"

# ---- --purge ----

printf 'OLD-1,FREE,5,FLAT,2020-01-01,1\nOLD-2,,5,FLAT,2021-06-30,1\nOLD-3,STANDARD,5,FLAT,2019-01-01,1\n' |
    ctl --upload - >/dev/null
out=$(ctl --purge)
[ "$out" = "purged 3" ] || fail "--purge printed '$out', not 'purged 3'"
for t in FREE NONE STANDARD; do
    [ "$(stat_of "purged.$t")" = 1 ] || fail "purged.$t is not 1"
done
[ "$(ctl --purge)" = "purged 0" ] || fail "a second --purge purged something"
ok "--purge purges and prints the count"

# ---- the server gone ----

stop_server
set +e
out=$(ctl --stats 2>&1); rc=$?
set -e
[ "$rc" -eq 3 ] || fail "no server exits $rc, not 3"
echo "$out" | grep -q "cannot connect to 127.0.0.1:$PORT" || fail "no server: $out"
ok "no server exits 3"
