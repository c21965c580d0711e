#!/usr/bin/env bash
# A server at its --max-clients answers a new connection with ERR BUSY and closes it: that is
# a connection problem, not a refused key. Batch mode exits 3 saying the server is busy; the
# dashboard shows its RECONNECTING banner and connects once a slot is free.
. "$(dirname "$0")/lib.sh"

start_server 0 --max-clients 1

# The tmux server starts first, so that it does not inherit the held connection below.
new_session 80 24 "sleep 600"

# Hold the one slot; the PING's answer proves the server counts this connection.
exec {hold}<>"/dev/tcp/127.0.0.1/$PORT"
printf 'PING\n' >&"$hold"
read -r -t "$WAIT_S" reply <&"$hold" || fail "no answer to PING on the held connection"
[ "$reply" = $'OK PONG\r' ] || [ "$reply" = "OK PONG" ] || fail "PING answered '$reply'"

set +e
out=$(ctl --stats 2>&1); rc=$?
set -e
[ "$rc" -eq 3 ] || fail "--stats against a full server exits $rc, not 3: $out"
echo "$out" | grep -q "cannot connect to 127.0.0.1:$PORT: the server is busy (ERR BUSY" ||
    fail "the message does not say the server is busy: $out"
echo "$out" | grep -q "refused the admin key" && fail "BUSY was taken for a refused key: $out"
ok "--stats against a server at --max-clients exits 3: the server is busy"

printf 'BUSY-1,FREE,1,FLAT,2031-01-01,1\n' >"$TMP/one.csv"
set +e
out=$(ctl --upload "$TMP/one.csv" 2>&1); rc=$?
set -e
[ "$rc" -eq 3 ] || fail "--upload against a full server exits $rc, not 3: $out"
echo "$out" | grep -q "the server is busy" || fail "the upload does not say the server is busy: $out"
ok "--upload against a server at --max-clients exits 3: the server is busy"

# The dashboard retries, with the server's reason in the banner.
dash_start 132 24 LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color
wait_screen "RECONNECTING to 127\\.0\\.0\\.1:$PORT in [0-9.]+ s \\(attempt [0-9]+\\): the server is busy \\(ERR BUSY"
attempt() { capture | sed -n 's/.*(attempt \([0-9]*\)).*/\1/p'; }
attempt_after() { [ "$(attempt)" -gt "$1" ]; }
wait_for "a later attempt" attempt_after "$(attempt)"
screen_lacks '^EXITED=' || fail "the dashboard quit on BUSY"
ok "the dashboard shows RECONNECTING with the server busy, and tries again"

exec {hold}>&-
wait_screen "127\\.0\\.0\\.1:$PORT  connected"
wait_screen_gone 'RECONNECTING'
wait_screen '^  FREE +0 +0 +0 +0 +0 +0 +0$'
ok "a slot freed: the dashboard connects"

keys q
wait_screen '^EXITED=0$'
ok "q quits with status 0"
