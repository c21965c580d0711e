#!/usr/bin/env bash
# q while an upload runs: a question on screen first ([y/N]); n goes on with the upload; y
# quits and prints the upload's result as --upload does (which batches were stored, the one
# in flight cut or of unknown outcome, the rest not sent), with exit status 1.
. "$(dirname "$0")/lib.sh"

start_server 0
awk 'BEGIN { for (i = 1; i <= 50000; i++) printf "Q-%05d,FREE,1,FLAT,2031-01-01,1\n", i }' \
    >"$TMP/many.csv"

# One record per batch: every batch is a commit of its own, slow enough to quit in between.
# Wide enough for the result lines printed at the end.
dash_start_args 200 24 "LANG=C LC_ALL=C NO_COLOR=1 TERM=tmux-256color" \
    -p "$PORT" -k "$KEY" -b 1 -i 200
wait_screen "127\\.0\\.0\\.1:$PORT  connected"
keys u
wait_screen 'File to upload:'
keys -l "$TMP/many.csv"
keys Enter
wait_screen 'Uploading .*many\.csv: batch [0-9]+ of 50000'
wait_screen 'stored ([2-9]|[1-9][0-9]+)$'

keys q
wait_screen 'Stop the upload and quit\? \[y/N\]'
keys n
wait_screen_gone 'Stop the upload and quit'
before=$(capture | sed -n 's/.*stored \([0-9]*\)$/\1/p')
more_stored() { [ "$(capture | sed -n 's/.*stored \([0-9]*\)$/\1/p')" -gt "$before" ]; }
wait_for "the upload to go on after n" more_stored
ok "q during an upload asks first; n goes on uploading"

keys q
wait_screen 'Stop the upload and quit\? \[y/N\]'
keys y
wait_screen '^EXITED=[0-9]+$'
screen_has '^EXITED=1$' || fail "quitting during an upload does not exit 1"
summary=$(capture | grep '^quit: uploaded ') || fail "no summary after quitting"
n=$(echo "$summary" | sed -n 's/^quit: uploaded \([0-9]*\) of 50000 records; batches 1-\([0-9]*\) of 50000 stored (.*/\1 \2/p')
[ -n "$n" ] && [ "${n% *}" = "${n#* }" ] || fail "the summary is not as --upload prints it: $summary"
n=${n% *}
m=$((n + 1))
capture | grep -q "^batches 1-$n of 50000, records 1-$n, lines 1-$n: stored\$" ||
    fail "no line for the stored batches"
capture | grep -Eq "^batch $m of 50000, records $m-$m, lines $m-$m: (outcome unknown: the connection ended before the reply|not stored: the connection ended while sending it) - couponctl quit\$" ||
    fail "no line for the batch in flight"
capture | grep -q "^batches $((m + 1))-50000 of 50000, records $((m + 1))-50000, lines $((m + 1))-50000: not sent\$" ||
    fail "no line for the batches not sent"
created=$(stat_of created.FREE)
[ "$created" = "$n" ] || [ "$created" = "$m" ] || fail "the summary says $n stored, the server has $created"
ok "y quits with the upload's result ($n of 50000 stored) and exit 1"
