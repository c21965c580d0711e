#!/usr/bin/env bash
# The node and the store (STATS's text stats node and store, coupond --node-name): the
# dashboard's header ends with "node NAME (STORE)" when the terminal has room for it, and
# leaves it out whole when not; `couponctl --stats` prints both STAT lines, and --json gives
# them as strings, even a node name of digits. A dashboard that reconnects to another node (as
# through a gateway) shows the new name.
. "$(dirname "$0")/lib.sh"

start_server 0 --node-name edge-7
ctl --stats >"$TMP/stats.out"
grep -qx 'STAT node edge-7' "$TMP/stats.out" || fail "--stats: no 'STAT node edge-7'"
grep -qx 'STAT store lmdb' "$TMP/stats.out" || fail "--stats: no 'STAT store lmdb'"
ok "couponctl --stats prints the node and the store"

dash_start 110 24 LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color
wait_screen "^ couponctl  127\\.0\\.0\\.1:$PORT  connected  up [0-9:]+  conns [0-9]+  cmd/s [-0-9.]+  node edge-7 \\(lmdb\\) *\$"
ok "the header names the node and its store at 110 columns"
resize 72 24
wait_screen "^ couponctl  127\\.0\\.0\\.1:$PORT  connected  up [0-9:]+  conns [0-9]+  cmd/s [-0-9.]+ *\$"
screen_has 'edge-7' && fail "72 columns: the node is shown cut"
ok "at 72 columns the node is left out whole"
resize 110 24

# The same port, another node: the header follows.
stop_server
start_server "$PORT" --node-name 1234
wait_screen "  node 1234 \\(lmdb\\) *\$"
ok "after a reconnection to another node the header names it"
keys q
wait_screen '^EXITED=0$'

ctl --stats --json >"$TMP/stats.json"
grep -q '"node":"1234"' "$TMP/stats.json" || fail "--json: the node is not the string \"1234\": $(cat "$TMP/stats.json")"
grep -q '"store":"lmdb"' "$TMP/stats.json" || fail "--json: no \"store\":\"lmdb\""
ok "--stats --json gives node and store as strings"
