#!/usr/bin/env bash
# The dashboard in tmux against a real coupond, in a UTF-8 locale with colours: the counts
# appear, an upload through u, a bad file through u, purge with confirmation, help, resizing
# to 80x24 and 200x60, and q.
. "$(dirname "$0")/lib.sh"

start_server 0
awk 'BEGIN { for (i = 1; i <= 7; i++) printf "SEED-%d,FREE,10,PERCENT,2031-01-01,1\n", i }' |
    ctl --upload - >/dev/null

dash_start 80 24 -u NO_COLOR LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color
wait_screen "127\\.0\\.0\\.1:$PORT  connected"
wait_screen '^  FREE +7 +0 +0 +7 +0 +0 +0$'
wait_screen '^  TOTAL +7 +0 +0 +7 +0 +0 +0$'
capture | grep -Eq '^  TYPE +created +assigned +redeemed +available +purged +held +unredeemed$' || fail "no table header"
capture | grep -Eq 'MEGADEAL  queued 0  in flight 0  granted 0  rejected 0  timed out 0' ||
    fail "no MEGADEAL panel"
capture | tail -n 1 | grep -Eq 'u +Upload +p +Purge +r +Refresh +\? +Help +q +Quit' ||
    fail "the footer does not show the keys"
ok "the dashboard shows the counts, the MEGADEAL panel and the keys"

# Colours from the one table; Unicode in a UTF-8 locale. The charts are empty (no MEGADEAL
# traffic): their baseline is a middle dot.
capture_escapes | grep -q $'\e\\[3[0-7]m' || fail "no colour with a colour terminal and NO_COLOR unset"
capture | grep -q '··········' || fail "no Unicode chart baseline in a UTF-8 locale"
wait_screen 'cmd/s [0-9]+\.[0-9]'
ok "colours and Unicode in a UTF-8 locale; the command rate is shown"

# ---- upload through u ----

printf 'code,type,discount,kind,expires,max_uses\nDASH-1,STANDARD,5,FLAT,2031-01-01,1\nDASH-2,STANDARD,5,FLAT,2031-01-01,1\nDASH-3,STANDARD,5,FLAT,2031-01-01,1\n' \
    >"$TMP/three.csv"
keys u
wait_screen 'File to upload:'
keys -l "$TMP/thr"
keys Tab
wait_screen "File to upload: $TMP/three\\.csv"
keys Enter
wait_screen 'uploaded 3 records in 1 batch'
wait_screen '^  STANDARD +3 +0 +0 +3 +0 +0 +0$'
capture | grep -q 'batch 1 of 1, records 1-3, lines 2-4: stored' || fail "no batch line in the result"
keys Escape
wait_screen_gone 'uploaded 3 records'
ok "an upload through u (with Tab completion) updates created"

# ---- a bad file through u: nothing sent ----

printf 'DASH-4,STANDARD,5,FLAT,2031-01-01,1\nDASH-5,STANDARD,5,FLAT,2031-13-01,1\n' >"$TMP/bad.csv"
keys u
wait_screen 'File to upload:'
keys -l "$TMP/bad.csv"
keys Enter
wait_screen '1 bad record in .*: nothing was sent'
wait_screen 'line 2: bad expires: month out of range'
[ "$(stat_of created.STANDARD)" = 3 ] || fail "a bad file changed created.STANDARD"
keys Enter
wait_screen_gone 'nothing was sent'
ok "a bad file through u lists the bad lines and sends nothing"

# ---- purge with confirmation ----

printf 'GONE-1,FREE,1,FLAT,2020-01-01,1\nGONE-2,,1,FLAT,2020-01-01,1\n' | ctl --upload - >/dev/null
wait_screen '^  TOTAL +12 +0 +0 +10 +0 +0 +0$'
keys p
wait_screen 'Delete every expired coupon that was never redeemed\? \[y/N\]'
keys n
wait_screen_gone '\[y/N\]'
[ "$(stat_of purged.FREE)" = 0 ] || fail "n purged"
keys p
wait_screen '\[y/N\]'
keys y
wait_screen 'Purged 2 coupons'
wait_screen '^  TOTAL +12 +0 +0 +10 +2 +0 +0$'
keys Escape
wait_screen_gone 'Purged 2'
ok "purge asks first, then purges and shows the count"

# ---- help ----

keys '?'
wait_screen 'couponctl help'
keys x
wait_screen_gone 'couponctl help'
wait_screen '^  FREE '
ok "? shows the help and any key closes it"

# ---- resizing ----

widest() { capture | LC_ALL=C.UTF-8 wc -L; }
resize 200 60
rows_are() { [ "$(capture | wc -l)" -eq "$1" ]; }
wait_for "a 60-row screen" rows_are 60
# tmux resizes the pane at once; the dashboard redraws when its KEY_RESIZE arrives, so poll
# for the footer on the new last row rather than reading the screen right away.
footer_last() { capture | tail -n 1 | grep -q 'q  Quit'; }
wait_for "the footer on row 60" footer_last
wait_screen '^  TOTAL +12 '
[ "$(widest)" -gt 150 ] || fail "the charts do not use the width of 200 columns"
resize 80 24
wait_for "a 24-row screen" rows_are 24
wait_for "the footer on row 24" footer_last
wait_screen '^  TOTAL +12 '
[ "$(widest)" -le 80 ] || fail "a line is wider than 80 columns"
capture | grep -q 'grants/s' || fail "no grants chart at 80x24"
capture | grep -q 'queue depth' || fail "no queue chart at 80x24"
ok "the screen follows resizes to 200x60 and back to 80x24"

# ---- q ----

keys q
wait_screen '^EXITED=0$'
ok "q quits with status 0"
