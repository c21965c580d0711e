#!/usr/bin/env bash
# The dashboard in the C locale with NO_COLOR: ASCII only, no colours; an upload's progress
# bar and its cancellation with Esc, whose result must say exactly which batches were stored;
# and batch mode's progress line on a terminal.
. "$(dirname "$0")/lib.sh"

start_server 0
awk 'BEGIN { for (i = 1; i <= 50000; i++) printf "ONE-%05d,FREE,1,FLAT,2031-01-01,1\n", i }' \
    >"$TMP/many.csv"

# One record per batch: every batch is a commit of its own, slow enough to watch.
dash_start_args 80 24 "LANG=C LC_ALL=C NO_COLOR=1 TERM=tmux-256color" \
    -p "$PORT" -k "$KEY" -b 1 -i 200
wait_screen "127\\.0\\.0\\.1:$PORT  connected"
wait_screen '^  FREE +0 +0 +0 +0 +0 +0 +0$'
LC_ALL=C grep -q $'[\x80-\xff]' <(capture) && fail "non-ASCII bytes on screen in the C locale"
capture | grep -q '^  \.\.\.\.\.\.\.\.\.\.' || fail "no ASCII chart baseline"
capture_escapes | grep -Eq $'\e\\[([0-9;]*;)?(3[0-7]|4[0-7]|38;|48;)' &&
    fail "colour escapes despite NO_COLOR"
ok "the C locale draws ASCII only, and NO_COLOR means no colour"

keys u
wait_screen 'File to upload:'
keys -l "$TMP/many.csv"
keys Enter
wait_screen 'Uploading .*many\.csv: batch [0-9]+ of 50000'
wait_screen '^  \[#+\.+\] +[0-9]+%$'
wait_screen '[0-9]+ of 50000 records sent +[0-9]+ records/s +ETA [0-9]+:[0-9][0-9] +stored [0-9]+'
capture | grep -q 'Esc cancel upload' || fail "the footer does not offer Esc while uploading"
wait_screen '^  FREE +[1-9][0-9]* '
ok "the progress bar shows records sent, records per second and ETA while the table updates"

keys Escape
wait_screen 'cancelled: uploaded [0-9]+ of 50000 records; batch(es 1-[0-9]+)? (1 )?of 50000 stored'
n=$(capture | sed -n 's/.*cancelled: uploaded \([0-9]*\) of 50000.*/\1/p')
if [ "$n" -eq 0 ] || [ "$n" -ge 50000 ]; then fail "cancelled with $n of 50000 uploaded"; fi
[ "$(stat_of created.FREE)" = "$n" ] || fail "the result says $n stored, the server has $(stat_of created.FREE)"
capture | grep -Eq "^  batch(es 1-$n)? (1 )?of 50000, records 1-$n, lines 1-$n: stored" ||
    fail "no line for the stored batches"
capture | grep -q "^  batches $((n + 1))-50000 of 50000, records $((n + 1))-50000, lines $((n + 1))-50000: not sent" ||
    fail "no line for the batches not sent"
ok "Esc cancels between batches and the result says exactly which were stored ($n)"
keys q
wait_screen '^EXITED=0$'

# ---- batch mode's progress goes to stderr when it is a terminal ----

awk 'BEGIN { for (i = 1; i <= 60000; i++) printf "TTY-%05d,STANDARD,1,FLAT,2031-01-01,1\n", i }' \
    >"$TMP/tty.csv"
dash_start_args 120 10 "LANG=C" -p "$PORT" -k "$KEY" --upload "$TMP/tty.csv"
wait_screen '^EXITED=0$'
capture | grep -Eq '^\[#{30}\] 60000/60000 records +[0-9]+ records/s +ETA 0:00 +batch 2/2$' ||
    fail "no final progress line on the terminal"
capture | grep -q '^uploaded 60000 records in 2 batches' || fail "no result line"
ok "--upload shows progress on a terminal"
