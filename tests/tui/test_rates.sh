#!/usr/bin/env bash
# The dashboard's rates while coupond drains a MEGADEAL queue at its 10 grants a second:
# "grants/s now" reads about 10 (the mean of the last 2 seconds), not 0 and 20 by turns,
# and is never above the peak the chart shows beside it; likewise the queue depth.
. "$(dirname "$0")/lib.sh"

start_server 0
awk 'BEGIN { for (i = 1; i <= 60; i++) printf "MD-%02d,MEGADEAL,50,PERCENT,2031-01-01,1\n", i }' |
    ctl --upload - >/dev/null

dash_start 100 30 LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color
wait_screen "127\\.0\\.0\\.1:$PORT  connected"
wait_screen 'cmd/s [0-9]+\.[0-9]'

# 55 tasks: at 10 a second the last one is granted after about 5 s, within the 10 s wait.
reqs=()
for i in $(seq 1 55); do reqs+=("REQUEST u$i MEGADEAL"); done
raw "${reqs[@]}" >"$TMP/requests.out" &
track "$!"

# check_screen: fails the test on a "now" above its peak; true once the drain is over.
seen=""
check_screen() {
    local screen g q
    screen=$(capture)
    g=$(echo "$screen" | sed -n 's/^  grants\/s  now \([0-9.]*\)  peak \([0-9.]*\) .*/\1 \2/p')
    q=$(echo "$screen" | sed -n 's/^  queue depth  now \([0-9]*\)  peak \([0-9.]*\) .*/\1 \2/p')
    if [ -n "$g" ]; then
        awk -v v="$g" 'BEGIN { split(v, a, " "); exit !(a[1] + 0 <= a[2] + 0) }' ||
            fail "grants/s now above its peak: $g"
        if awk -v v="$g" 'BEGIN { split(v, a, " "); exit !(a[1] >= 8 && a[1] <= 12) }'; then
            seen="$seen ${g%% *}"
        fi
    fi
    if [ -n "$q" ]; then
        awk -v v="$q" 'BEGIN { split(v, a, " "); exit !(a[1] + 0 <= a[2] + 0) }' ||
            fail "queue depth now above its peak: $q"
    fi
    echo "$screen" | grep -q 'MEGADEAL  queued 0  in flight 0  granted 55 '
}
wait_for "the queue to drain" check_screen
[ "$(grep -c 'status=queued' "$TMP/requests.out")" -eq 55 ] || fail "not 55 tasks queued: $(cat "$TMP/requests.out")"
[ -n "$seen" ] || fail "grants/s now never read between 8 and 12 while the queue drained"
seen=$(printf '%s\n' $seen | sort -u | tr '\n' ' ')
ok "grants/s now read 8..12 during the drain (${seen% }), never above its peak"

# After the drain the rate falls to 0, still within its peak.
falls_to_zero() { check_screen >/dev/null; screen_has '^  grants/s  now 0\.0  peak '; }
wait_for "grants/s now to fall to 0.0" falls_to_zero
ok "after the drain grants/s now falls to 0.0"

keys q
wait_screen '^EXITED=0$'
