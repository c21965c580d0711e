#!/usr/bin/env bash
# A panel on a short terminal: at 80x15 and 80x12 the purge panel takes rows from the charts
# and the table, so its question is on screen before y is taken, and the count is shown
# after. On a terminal too small for the dashboard the question cannot be seen, so y does
# not purge.
. "$(dirname "$0")/lib.sh"

start_server 0
printf 'OLD-1,FREE,1,FLAT,2020-01-01,1\nOLD-2,,1,FLAT,2020-01-01,1\nOLD-3,,1,FLAT,2020-01-01,1\n' |
    ctl --upload - >/dev/null

# purge_at COLS ROWS EXPECTED QUESTION: p, the QUESTION (a regex), y, the count EXPECTED.
purge_at() {
    dash_start "$1" "$2" LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color
    wait_screen "127\\.0\\.0\\.1:$PORT  connected"
    keys p
    wait_screen "^  $4\$"
    keys y
    wait_screen "Purged $3"
    capture | tail -n 1 | grep -q '^ u  Upload' || fail "$1x$2: the footer is not on the last row"
    keys Escape
    wait_screen_gone "Purged $3"
    keys q
    wait_screen '^EXITED=0$'
}

# Too small for anything but a note: p and y must do nothing.
dash_start 80 10 LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color
wait_screen 'Terminal too small \(80x10\)'
keys p
keys y
log_sync
[ "$(log_count PURGE)" = 0 ] || fail "y purged although the question was not on screen"
resize 80 24
wait_screen '^  TOTAL '
screen_lacks '\[y/N\]' || fail "the unseen question is still open"
keys q
wait_screen '^EXITED=0$'
ok "on a terminal too small to show the question, y does not purge"

long='Delete every expired coupon that was never redeemed\? \[y/N\]'
purge_at 80 15 "3 coupons" "$long"
ok "at 80x15 the question shows, y purges and the count shows"

printf 'OLD-4,FREE,1,FLAT,2020-01-01,1\n' | ctl --upload - >/dev/null
purge_at 80 12 "1 coupon" "$long"
ok "at 80x12 too"

printf 'OLD-5,FREE,1,FLAT,2020-01-01,1\n' | ctl --upload - >/dev/null
purge_at 40 12 "1 coupon" 'Purge expired coupons\? \[y/N\]'
ok "at 40x12, with the short question"
