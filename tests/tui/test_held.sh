#!/usr/bin/env bash
# The dashboard's held and unredeemed columns (STATS held.T and unredeemed.T), made with HOLD,
# RELEASE, REDEEM hold= and UNREDEEM over the raw protocol: per type and in total, within 80
# columns; narrower, held is kept longer than unredeemed and purged.
. "$(dirname "$0")/lib.sh"

start_server 0
printf 'H-1,FREE,10,FLAT,2031-01-01,5\nH-2,STANDARD,10,FLAT,2031-01-01,5\nH-3,,1,FLAT,2031-01-01,2\n' |
    ctl --upload - >/dev/null || fail "the upload failed"
raw "REQUEST ann FREE" "REQUEST bob STANDARD" "REQUEST cy" "HOLD ann H-1 3600" "HOLD ann H-1 3600" \
    "HOLD bob H-2" "REDEEM cy H-3" "REDEEM cy H-3" "UNREDEEM cy 1" "UNREDEEM cy 2" >"$TMP/raw.out"
[ "$(grep -c '^OK hold=' "$TMP/raw.out")" = 3 ] || fail "the holds: $(cat "$TMP/raw.out")"
[ "$(grep -c '^OK code=H-3 ' "$TMP/raw.out")" = 5 ] || fail "the uses of H-3: $(cat "$TMP/raw.out")"
[ "$(stat_of held.FREE)" = 2 ] && [ "$(stat_of unredeemed.NONE)" = 2 ] || fail "STATS does not count them"
hid=$(sed -n 's/^OK hold=\([^ ]*\) .*code=H-1 .*/\1/p' "$TMP/raw.out" | head -n 1)

dash_start 80 24 LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color
wait_screen '^  TOTAL +3 +3 +2 +0 +0 +3 +2$'
screen_has '^  TYPE +created +assigned +redeemed +available +purged +held +unredeemed$' || fail "no header"
screen_has '^  NONE +1 +1 +2 +0 +0 +0 +2$' || fail "NONE: two uses, both undone"
screen_has '^  FREE +1 +1 +0 +0 +0 +2 +0$' || fail "FREE: two uses held"
screen_has '^  STANDARD +1 +1 +0 +0 +0 +1 +0$' || fail "STANDARD: one use held"
[ "$(capture | LC_ALL=C.UTF-8 wc -L)" -le 80 ] || fail "a line is wider than 80 columns"
ok "held and unredeemed per type and in total, all seven columns within 80"

raw "RELEASE $hid" | grep -q '^OK released=1$' || fail "RELEASE failed"
wait_screen '^  FREE +1 +1 +0 +0 +0 +1 +0$'
raw "REDEEM ann H-1" | grep -q '^OK code=H-1 .* uses=1 ' || fail "REDEEM failed"
wait_screen '^  FREE +1 +1 +1 +0 +0 +1 +0$'
screen_has '^  TOTAL +3 +3 +3 +0 +0 +2 +2$' || fail "the total does not follow"
ok "a released hold leaves held; redeemed counts on"

resize 55 24
wait_screen '^  TYPE +created +assigned +redeemed +avail +held$'
wait_screen '^  FREE +1 +1 +1 +0 +1$'
screen_has '^  NONE +1 +1 +2 +0 +0$' || fail "55 columns: NONE"
resize 44 24
wait_screen '^  TYPE +created +assigned +available$'
[ "$(capture | LC_ALL=C.UTF-8 wc -L)" -le 44 ] || fail "a line is wider than 44 columns"
ok "narrower, held is kept after purged and unredeemed are given up"

keys q
wait_screen '^EXITED=0$'
