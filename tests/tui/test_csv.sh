#!/usr/bin/env bash
# The CSV loader's edges against a real coupond (issue 15): a field over 1 MiB is one bad
# line and the lines after it are read afresh; empty fields after the last column are
# ignored, past 32 fields and in the header too; an ignored column may be longer than the
# row limit; Ctrl-C while the file is checked says so and exits 1.
. "$(dirname "$0")/lib.sh"

start_server 0

# upload_bad FILE: runs --upload, expecting exit 1; its output goes to $TMP/out.
upload_bad() {
    local rc
    set +e
    ctl --upload "$1" >"$TMP/out" 2>&1
    rc=$?
    set -e
    [ "$rc" -eq 1 ] || fail "--upload $1 exits $rc, not 1: $(cat "$TMP/out")"
}

# ---- one quoted field over 1 MiB: only its line is bad ----

{
    printf 'BIG-1,FREE,1,FLAT,2031-01-01,1\n'
    printf 'BIG-2,"'
    head -c $((1024 * 1024 + 4096)) /dev/zero | tr '\0' x
    printf '",1,FLAT,2031-01-01,1\n'
    for i in 3 4 5 6 7; do printf 'BIG-%d,FREE,1,FLAT,2031-01-01,1\n' "$i"; done
} >"$TMP/big-field.csv"
upload_bad "$TMP/big-field.csv"
grep -qx 'line 2: a field longer than 1 MiB' "$TMP/out" || fail "line 2 is not reported: $(head -c 2000 "$TMP/out")"
[ "$(grep -c '^line ' "$TMP/out")" -eq 1 ] || fail "more than line 2 is reported bad: $(head -c 2000 "$TMP/out")"
grep -q 'never closed' "$TMP/out" && fail "a false unclosed quote is reported: $(cat "$TMP/out")"
grep -qx 'nothing sent: 1 bad record in .*big-field.csv' "$TMP/out" || fail "no summary of 1 bad record: $(cat "$TMP/out")"
ok "a quoted field over 1 MiB makes its line bad, and only that line"

# ---- empty fields after the last column: ignored, however many ----

commas=$(printf '%*s' 40 '' | tr ' ' ,)
{
    printf 'TRAIL-1,FREE,1,FLAT,2031-01-01,1%s\n' "$commas"
    printf 'TRAIL-2,FREE,1,FLAT,2031-01-01,1,,\n'
} >"$TMP/trailing.csv"
out=$(ctl --upload "$TMP/trailing.csv") || fail "40 trailing commas make a row bad: $out"
[ "$out" != "${out#uploaded 2 records in 1 batch: 1 uploaded, 0 replayed }" ] || fail "trailing commas: $out"
ok "40 empty fields after the last column are ignored"

# Something past field 32 is still too much, also when all else in the row is empty.
{
    printf 'FAR-1,FREE,1,FLAT,2031-01-01,1%sx\n' "$commas"
    printf ',,,,,,%sx\n' "$commas"
} >"$TMP/far.csv"
upload_bad "$TMP/far.csv"
grep -qx 'line 1: more than 32 fields' "$TMP/out" || fail "line 1 is not too many fields: $(cat "$TMP/out")"
grep -qx 'line 2: more than 32 fields' "$TMP/out" || fail "line 2 is not too many fields: $(cat "$TMP/out")"
ok "a value in field 47 is still more than 32 fields"

# ---- a header with trailing commas: they are no columns ----

{
    printf 'code,type,discount,kind,expires,max_uses,,\n'
    printf 'HEAD-1,FREE,1,FLAT,2031-01-01,1\n'
    printf 'HEAD-2,FREE,1,FLAT,2031-01-01,1,,\n'
} >"$TMP/header-commas.csv"
out=$(ctl --upload "$TMP/header-commas.csv") || fail "a header with trailing commas: $out"
[ "$out" != "${out#uploaded 2 records in 1 batch: 1 uploaded, 0 replayed }" ] || fail "a header with trailing commas: $out"
ok "trailing commas in the header are no columns"

# ---- an ignored column longer than the row limit ----

note=$(head -c 10000 /dev/zero | tr '\0' n)
{
    printf 'code,note,type,discount,kind,expires,max_uses\n'
    printf 'NOTE-1,%s,FREE,1,FLAT,2031-01-01,1\n' "$note"
    printf 'NOTE-2,"%s",FREE,1,FLAT,2031-01-01,1\n' "$note"
} >"$TMP/long-note.csv"
out=$(ctl --upload "$TMP/long-note.csv") || fail "a 10000-byte ignored column: $out"
[ "$out" != "${out#uploaded 2 records in 1 batch: 1 uploaded, 0 replayed }" ] || fail "a 10000-byte ignored column: $out"
ok "an ignored column may be longer than 8192 bytes"

# The values of the six columns together are still bounded.
printf 'code,type,discount,kind,expires,max_uses\n%s,FREE,1,FLAT,2031-01-01,1\n' "$note" \
    >"$TMP/long-code.csv"
upload_bad "$TMP/long-code.csv"
grep -qx 'line 2: values longer than 8192 bytes in all' "$TMP/out" || fail "a 10000-byte code: $(cat "$TMP/out")"
ok "values over 8192 bytes in the six columns make the row bad"

# ---- a stop signal while the file is checked ----

# A FIFO with a writer that never closes: couponctl is checking, waiting for more lines.
mkfifo "$TMP/slow.csv"
exec {writer}<>"$TMP/slow.csv"
printf 'SLOW-1,FREE,1,FLAT,2031-01-01,1\n' >&"$writer"
# Not through ctl: $! must be couponctl itself, not a subshell running the function.
"$COUPONCTL_BIN" -p "$PORT" -k "$KEY" --upload "$TMP/slow.csv" >"$TMP/int.out" 2>"$TMP/int.err" {writer}>&- &
pid=$!
track "$pid"
# couponctl opens the file after it installs its signal handlers.
has_open() { ls -l "/proc/$1/fd" 2>/dev/null | grep -q slow.csv; }
wait_for "couponctl to open the FIFO" has_open "$pid"
kill -INT "$pid"
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_for "couponctl to stop on SIGINT" gone "$pid"
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "SIGINT during the check exits $rc, not 1"
grep -qx "couponctl: interrupted while checking $TMP/slow.csv: nothing was sent" "$TMP/int.err" ||
    fail "no message for SIGINT during the check: '$(cat "$TMP/int.err")'"
exec {writer}>&-
ok "SIGINT while the file is checked: a message, nothing sent, exit 1"

[ "$(stat_of created.FREE)" = 6 ] || fail "created.FREE is $(stat_of created.FREE), not 6"
ok "the server holds exactly the records of the good files"
