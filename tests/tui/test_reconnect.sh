#!/usr/bin/env bash
# The dashboard and a server that goes away: the server killed, the RECONNECTING banner, the
# server restarted on the same port and data dir, the dashboard back; a dashboard started
# before its server; a refused key.
. "$(dirname "$0")/lib.sh"

start_server 0
awk 'BEGIN { for (i = 1; i <= 5; i++) printf "KEEP-%d,STANDARD,10,PERCENT,2031-01-01,1\n", i }' |
    ctl --upload - >/dev/null

dash_start 80 24 LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color
wait_screen "127\\.0\\.0\\.1:$PORT  connected"
wait_screen '^  STANDARD +5 +0 +0 +5 +0 +0 +0$'
ok "the dashboard is connected"

kill_server
wait_screen "RECONNECTING to 127\\.0\\.0\\.1:$PORT in [0-9.]+ s \\(attempt [0-9]+\\)"
wait_screen 'Connection refused'
capture | grep -q "127\\.0\\.0\\.1:$PORT  RECONNECTING" || fail "the header does not say RECONNECTING"
capture | grep -Eq '^  STANDARD +5 ' || fail "the last counts are gone while reconnecting"
ok "the server killed: the banner shows, the last counts stay"

# The attempts back off: the attempt number grows while the server is down.
attempt() { capture | sed -n 's/.*(attempt \([0-9]*\)).*/\1/p'; }
attempt_after() { [ "$(attempt)" -gt "$1" ]; }
first=$(attempt)
wait_for "a later attempt" attempt_after "$first"
keys r
capture | grep -q RECONNECTING || fail "the banner went away with r while the server is down"
ok "reconnection is attempted again and again, and the dashboard answers keys meanwhile"

start_server "$PORT"
wait_screen "127\\.0\\.0\\.1:$PORT  connected"
wait_screen_gone 'RECONNECTING'
wait_screen '^  STANDARD +5 +0 +0 +5 +0 +0 +0$'
wait_screen 'up 00:00:0[0-9]'
ok "the server restarted on the same port and data dir: the dashboard reconnected"

keys q
wait_screen '^EXITED=0$'

# ---- a dashboard started while the server is down ----

stop_server
dash_start 80 24 LANG=C.UTF-8 LC_ALL=C.UTF-8
wait_screen 'RECONNECTING'
capture | grep -Eq '^  FREE +- +- +- +- +- +- +-$' || fail "numbers shown before any answer"
start_server "$PORT"
wait_screen "127\\.0\\.0\\.1:$PORT  connected"
wait_screen '^  STANDARD +5 +0 +0 +5 +0 +0 +0$'
ok "a dashboard started before its server connects when the server comes"
keys q
wait_screen '^EXITED=0$'

# ---- a refused key ----

printf '%064d\n' 7 >"$TMP/wrong.key"
dash_start_args 200 24 "LANG=C.UTF-8" -p "$PORT" -k "$TMP/wrong.key"
wait_screen '^EXITED=4$'
capture | grep -q "refused the admin key from $TMP/wrong.key" || fail "the refusal does not name the key file"
ok "a refused key ends the dashboard with status 4, naming the key file"
