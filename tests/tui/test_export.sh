#!/usr/bin/env bash
# --export coupons|history FILE: the coupons in the upload format, the redemptions as CSV with
# a header. A round trip: export from one server, upload into a second, export again: the same
# file, the same STATS. The file appears whole or not at all, and the export streams.
. "$(dirname "$0")/lib.sh"

WEIRD='we,ird"user' # a user name may hold a comma and a quote: the history quotes it

start_server 0
KEY_A=$KEY
{
    printf 'code,type,discount,kind,expires,max_uses\n'
    printf 'EXP-FREE-1,FREE,10,PERCENT,2031-01-01,1\n'
    printf 'EXP-FREE-2,free,12.5,flat,2031-06-30T12:00:00+02:00,4\n'
    printf 'EXP-NONE-1,,3,FLAT,2031-01-01,2\n'
    printf 'EXP-OLD-1,MEGADEAL,50,PERCENT,2020-01-01,1\n'
    printf 'ST-1,STANDARD,20,FLAT,2031-12-31,3\n'
} >"$TMP/seed.csv"
ctl --upload "$TMP/seed.csv" >/dev/null || fail "the seed upload failed"
ctl --generate 4 MEGADEAL 7 FLAT 2032-01-01 2 --prefix GEN "$TMP/gen.csv" >/dev/null ||
    fail "--generate failed"
# ST-1 is the only STANDARD coupon: REQUEST gives it to the weird user; two uses, one undone.
raw "REQUEST $WEIRD STANDARD" "REDEEM $WEIRD ST-1" "REDEEM $WEIRD ST-1" "UNREDEEM $WEIRD 1" \
    >"$TMP/raw.out"
[ "$(grep -c '^OK code=ST-1 ' "$TMP/raw.out")" = 4 ] || fail "the uses of ST-1: $(cat "$TMP/raw.out")"

# ---- coupons ----

out=$(ctl --export coupons "$TMP/a.csv") || fail "--export coupons failed: $out"
[ "$out" = "exported 9 coupons to $TMP/a.csv (1 assigned, 1 with uses: the upload format keeps neither, so uploaded again they are new coupons, unassigned and unused)" ] ||
    fail "--export coupons said: $out"
[ "$(head -n 1 "$TMP/a.csv")" = "code,type,discount,kind,expires,max_uses" ] || fail "no header in the export"
[ "$(wc -l <"$TMP/a.csv")" = 10 ] || fail "not 9 rows and a header: $(cat "$TMP/a.csv")"
grep -qx 'EXP-FREE-2,FREE,12.50,FLAT,2031-06-30T10:00:00Z,4' "$TMP/a.csv" || fail "EXP-FREE-2 not normalised"
grep -qx 'EXP-NONE-1,,3.00,FLAT,2031-01-01T23:59:59Z,2' "$TMP/a.csv" || fail "the untyped coupon's type is not empty"
grep -qx 'ST-1,STANDARD,20.00,FLAT,2031-12-31T23:59:59Z,3' "$TMP/a.csv" || fail "ST-1 not with its max_uses"
[ "$(grep -c '^GEN[2-9A-HJ-NP-Z]\{12\},MEGADEAL,7.00,FLAT,2032-01-01T23:59:59Z,2$' "$TMP/a.csv")" = 4 ] ||
    fail "the generated codes are not in the export"
[ "$(stat -c %a "$TMP/a.csv")" = 600 ] || fail "the export is not readable by its owner only"
ok "--export coupons writes every coupon in the upload format, and counts what it leaves out"

start_other_server "$TMP/data-b"
KEY_B="$TMP/data-b/admin.key"
b_ctl() { "$COUPONCTL_BIN" -p "$OTHER_PORT" -k "$KEY_B" "$@"; }
out=$(b_ctl --upload "$TMP/a.csv") || fail "uploading the export into a second server failed: $out"
echo "$out" | grep -q '^uploaded 9 records in 1 batch: 1 uploaded, 0 replayed' || fail "upload of the export: $out"
b_ctl --export coupons "$TMP/b.csv" >/dev/null || fail "--export from the second server failed"
cmp -s "$TMP/a.csv" "$TMP/b.csv" || fail "the round trip changed the file: $(diff "$TMP/a.csv" "$TMP/b.csv")"
b_stats=$(b_ctl --stats)
b_stat() { echo "$b_stats" | awk -v n="$1" '$2 == n { print $3 }'; }
for t in NONE FREE STANDARD MEGADEAL; do
    [ "$(b_stat "created.$t")" = "$(stat_of "created.$t")" ] ||
        fail "created.$t: $(b_stat "created.$t") on the copy, $(stat_of "created.$t") on the original"
    [ "$(b_stat "assigned.$t")" = 0 ] && [ "$(b_stat "redeemed.$t")" = 0 ] ||
        fail "the copy has assignments or uses of $t"
done
[ "$(b_stat available.MEGADEAL)" = 4 ] || fail "available.MEGADEAL on the copy: the expired one counts"
[ "$(b_stat available.STANDARD)" = 1 ] || fail "ST-1 is not available again on the copy"
raw_to "$OTHER_PORT" "AUTH $(cat "$KEY_B")" "COUPON ST-1" | grep -q '^COUPON code=ST-1 .* uses=0 max_uses=3 user=- assigned=-$' ||
    fail "ST-1 on the copy is not new, unassigned and unused"
ok "export, upload into a second server, export again: the same file and the same created counts"

# ---- history ----

out=$(ctl --export history "$TMP/h.csv") || fail "--export history failed: $out"
[ "$out" = "exported 2 redemptions to $TMP/h.csv (1 undone)" ] || fail "--export history said: $out"
[ "$(sed -n 1p "$TMP/h.csv")" = "seq,time,code,type,user,undone" ] || fail "no history header"
T='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'
sed -n 2p "$TMP/h.csv" | grep -Eqx "1,$T,ST-1,STANDARD,\"we,ird\"\"user\",$T" || fail "row 1: $(sed -n 2p "$TMP/h.csv")"
sed -n 3p "$TMP/h.csv" | grep -Eqx "2,$T,ST-1,STANDARD,\"we,ird\"\"user\"," || fail "row 2: $(sed -n 3p "$TMP/h.csv")"
[ "$(wc -l <"$TMP/h.csv")" = 3 ] || fail "not 2 redemptions and a header"
ctl --export history - >"$TMP/h-stdout.csv" 2>"$TMP/h-stdout.err" || fail "--export history - failed"
cmp -s "$TMP/h.csv" "$TMP/h-stdout.csv" || fail "the export to standard output differs from the file"
grep -qx 'exported 2 redemptions to standard output (1 undone)' "$TMP/h-stdout.err" ||
    fail "the summary of an export to standard output is not on standard error"
b_ctl --export history "$TMP/hb.csv" >/dev/null || fail "--export history of the copy failed"
[ "$(cat "$TMP/hb.csv")" = "seq,time,code,type,user,undone" ] || fail "the copy has a history"
ok "--export history writes each redemption with its undo, quoting a user that needs it"

# ---- failures leave the file as it was ----

echo "old content" >"$TMP/keep.csv"
rc=0
ctl --export coupons "$TMP/no-such-dir/x.csv" 2>"$TMP/err" || rc=$?
[ "$rc" = 1 ] && grep -q "cannot write $TMP/no-such-dir/x.csv" "$TMP/err" ||
    fail "a file in a missing directory: exit $rc, $(cat "$TMP/err")"
rc=0
"$COUPONCTL_BIN" -p "$OTHER_PORT" -k "$KEY_A" --export coupons "$TMP/keep.csv" 2>"$TMP/err" || rc=$?
[ "$rc" = 4 ] || fail "a refused key exits $rc, not 4"
[ "$(cat "$TMP/keep.csv")" = "old content" ] || fail "a refused export changed the file"
grep -q "$TMP/keep.csv not written" "$TMP/err" || fail "no word that the file was not written: $(cat "$TMP/err")"
ls "$TMP" | grep -q '\.tmp-' && fail "a temporary file was left: $(ls "$TMP")"
ok "an export that fails leaves the file as it was, with no temporary file, and says so"

# ---- a big export streams, and a lost connection in the middle leaves the file ----

awk 'BEGIN { for (i = 1; i <= 200000; i++) printf "BIG-%06d,NONE,1,FLAT,2031-01-01,1\n", i }' |
    ctl --upload - >/dev/null || fail "the big upload failed"
/usr/bin/time -f '%M' -o "$TMP/rss" "$COUPONCTL_BIN" -p "$PORT" -k "$KEY" --export coupons "$TMP/big.csv" \
    >/dev/null || fail "the big export failed"
[ "$(wc -l <"$TMP/big.csv")" = 200010 ] || fail "the big export has $(wc -l <"$TMP/big.csv") lines"
rss=$(tail -n 1 "$TMP/rss")
size=$(($(stat -c %s "$TMP/big.csv") / 1024))
# The reply is about 160 bytes a coupon (30 MiB), the file 9 MiB: holding either would show.
# The bound leaves room for a sanitizer build's runtime.
[ "$rss" -lt $((size + 40000)) ] && [ "$rss" -lt 60000 ] ||
    fail "exporting $size KiB took $rss KiB of memory: not streamed"
ok "an export of 200009 coupons streams ($rss KiB of memory for $size KiB of CSV)"

"$COUPONCTL_BIN" -p "$PORT" -k "$KEY" --export coupons "$TMP/keep.csv" >"$TMP/cut.out" 2>"$TMP/cut.err" &
CTL_PID=$!
track "$CTL_PID"
tmp_growing() { [ -n "$(find "$TMP" -maxdepth 1 -name 'keep.csv.tmp-*' -size +100k)" ]; }
wait_for "the export to be under way" tmp_growing
kill -STOP "$CTL_PID"
kill_server
kill -CONT "$CTL_PID"
rc=0
wait "$CTL_PID" || rc=$?
[ "$rc" = 3 ] || fail "an export cut by the server's death exits $rc, not 3"
[ "$(cat "$TMP/keep.csv")" = "old content" ] || fail "a cut export changed the file"
grep -q "$TMP/keep.csv not written" "$TMP/cut.err" || fail "no word that the file was not written"
ls "$TMP" | grep -q '\.tmp-' && fail "a cut export left its temporary file"
ok "an export cut by the server's death leaves the file as it was"
