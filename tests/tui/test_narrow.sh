#!/usr/bin/env bash
# The dashboard between 40 and 79 columns: the table gives up whole columns (purged first)
# and shortens labels, a number is shown whole or not at all, and the lines of items (header,
# MEGADEAL, chart labels) end with a whole item. 123456 coupons make numbers that a cut would
# turn into other numbers (1, 12, 123...).
. "$(dirname "$0")/lib.sh"

start_server 0
awk 'BEGIN { for (i = 1; i <= 123456; i++) printf "W%d,FREE,1,FLAT,2031-01-01,1\n", i }' |
    ctl --upload - >/dev/null

# row_whole LABEL: the row's numbers are all 123456 or 0, the created column among them.
row_whole() {
    local line tok n=0
    line=$(capture | grep -E "^  $1 ") || return 1
    for tok in ${line#  "$1"}; do
        [ "$tok" = 123456 ] || [ "$tok" = 0 ] || return 1
        n=$((n + 1))
    done
    [ "$n" -ge 2 ] && [ "$(echo "$line" | awk '{ print $2 }')" = 123456 ]
}

lines_whole() {
    row_whole FREE && row_whole TOTAL || return 1
    capture | grep -Eq "^ couponctl  127\\.0\\.0\\.1:$PORT  connected(  up [0-9]{2}:[0-9]{2}:[0-9]{2}(  conns [0-9]+(  cmd/s ([0-9]+\\.[0-9]|-)(  node [^ ]+( \\([a-z]+\\))?)?)?)?)? *\$" ||
        return 1
    capture | grep -Eq '^  MEGADEAL(  [a-z ]+ [0-9]+)*$' || return 1
    capture | grep -Eq '^  grants/s(  now ([0-9]+\.[0-9]|-)(  peak [0-9]+\.[0-9](  \(last [0-9:]+ min\))?)?)?$' ||
        return 1
}

for cols in 40 43 47 52 55 58 62 66 71 75 79; do
    dash_start "$cols" 24 LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color
    wait_screen '^  TOTAL +[0-9]'
    wait_for "whole numbers and items at $cols columns" lines_whole
    [ "$(capture | LC_ALL=C.UTF-8 wc -L)" -le "$cols" ] || fail "a line is wider than $cols columns"
done
ok "from 40 to 79 columns every number on screen is whole"

# 55 columns, the width of the report: created, assigned, redeemed, available (short) and
# held; not unredeemed and purged.
dash_start 55 24 LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color
wait_screen '^  FREE +123456 +0 +0 +123456 +0$'
screen_has '^  TYPE +created +assigned +redeemed +avail +held$' || fail "55 columns: not the five columns"
ok "at 55 columns the table drops purged and unredeemed, and shows available whole as avail"

# 80 columns: all seven, with their full labels, whole.
dash_start 80 24 LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color
wait_screen '^  FREE +123456 +0 +0 +123456 +0 +0 +0$'
screen_has '^  TYPE +created +assigned +redeemed +available +purged +held +unredeemed$' ||
    fail "80 columns: not the seven columns"
[ "$(capture | LC_ALL=C.UTF-8 wc -L)" -le 80 ] || fail "a line is wider than 80 columns"

ok "at 80 columns all seven columns fit with their full labels"

keys q
wait_screen '^EXITED=0$'
