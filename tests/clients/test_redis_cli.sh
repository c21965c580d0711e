#!/usr/bin/env bash
# tests/clients/test_redis_cli.sh - coupond through redis-cli (Debian's redis-tools), a client
# nobody here wrote: REQUEST, VALIDATE, an error and STATS in one-shot mode, in piped mode
# (commands on stdin) and with --pipe (RESP on stdin, which redis-cli ends with an ECHO). Run by
# with_server.sh (COUPOND_PORT, COUPOND_KEY, COUPOND_OPLOG).
set -eu
P=$COUPOND_PORT
TMP=$(mktemp -d "${TMPDIR:-/tmp}/coupond-cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
N=0

ok() {
    N=$((N + 1))
    echo "ok $N - $*"
}

fail() {
    echo "FAIL: $*" >&2
    echo "$N passed, 1 failed"
    exit 1
}

cli() { redis-cli -p "$P" "$@"; }

# expect_out WHAT WANT CMD...: CMD's output (lines joined by spaces) is WANT.
expect_out() {
    local what=$1 want=$2 got
    shift 2
    got=$("$@" 2>&1 | tr '\n' ' ' | sed 's/ $//') || true
    [ "$got" = "$want" ] || fail "$what: expected \"$want\", got \"$got\""
}

# One-shot mode: one command per run, its reply printed raw (no terminal).
expect_out "AUTH then UPLOAD" "uploaded 4" \
    cli --no-auth-warning -a "$COUPOND_KEY" UPLOAD C-1,FREE,5,FLAT,2099-12-31,2 \
    C-2,FREE,5,FLAT,2099-12-31,2 C-3,FREE,5,FLAT,2099-12-31,2 C-4,FREE,5,FLAT,2099-12-31,2
ok "one-shot UPLOAD after -a KEY (AUTH key)"
expect_out "REQUEST" "code C-1 type FREE discount 5.00 kind FLAT expires 2099-12-31T23:59:59Z uses 0 max_uses 2" \
    cli REQUEST alice FREE
ok "one-shot REQUEST alice FREE"
expect_out "VALIDATE" "code C-1 type FREE discount 5.00 kind FLAT expires 2099-12-31T23:59:59Z uses 0 max_uses 2" \
    cli VALIDATE alice c-1
ok "one-shot VALIDATE"
rc=0
out=$(cli -e VALIDATE bob C-1 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ $out == "INVALID "* ]] || fail "an error: rc=$rc, \"$out\""
ok "one-shot error: INVALID, exit status 1 with -e"
out=$(cli --no-auth-warning --user default --pass "$COUPOND_KEY" STATS | paste -sd' ')
[[ " $out " == *" assigned.FREE 1 "* ]] || fail "STATS: $out"
ok "one-shot STATS after --user default --pass KEY (AUTH default key)"

# Piped mode: commands as lines on stdin, one reply each.
printf 'REQUEST bob FREE\nVALIDATE bob C-2\nREDEEM bob C-2\nFROB\nPING\n' >"$TMP/cmds"
out=$(cli <"$TMP/cmds" | paste -sd' ')
want="code C-2 type FREE discount 5.00 kind FLAT expires 2099-12-31T23:59:59Z uses 0 max_uses 2"
want="$want $want code C-2 type FREE discount 5.00 kind FLAT expires 2099-12-31T23:59:59Z uses 1"
want="$want max_uses 2 redemption 1 UNKNOWN_COMMAND unknown command FROB  PONG"
[ "$out" = "$want" ] || fail "piped mode: \"$out\""
ok "piped mode: REQUEST, VALIDATE, REDEEM, an error, PING"

# --pipe: RESP on stdin, replies counted; redis-cli adds an ECHO to find the last reply.
{
    printf '*3\r\n$7\r\nREQUEST\r\n$5\r\ncarol\r\n$4\r\nFREE\r\n'
    printf '*3\r\n$8\r\nVALIDATE\r\n$5\r\ncarol\r\n$3\r\nC-3\r\n'
    printf '*3\r\n$8\r\nVALIDATE\r\n$5\r\ncarol\r\n$3\r\nC-4\r\n'
} >"$TMP/resp"
rc=0
out=$(cli --pipe <"$TMP/resp" 2>&1) || rc=$?
[[ $out == *"errors: 1, replies: 3"* ]] || fail "--pipe: rc=$rc \"$out\""
ok "--pipe: 3 replies, 1 error (C-4 is not carol's)"

# What redis-cli sent, from the operation log.
sleep 0.3
sent=$(awk '/ conn=/ { op = ""; sub_ = ""
        for (i = 1; i <= NF; i++) { if ($i ~ /^op=/) op = substr($i, 4); if ($i ~ /^sub=/) sub_ = " " substr($i, 5) }
        if (op != "CONNECT" && op != "CLOSE" && !seen[op sub_]++) printf "%s%s", (n++ ? ", " : ""), op sub_ }' "$COUPOND_OPLOG")
echo "# redis-cli $(redis-cli --version | cut -d' ' -f2) sent: $sent"
grep -q ' op=COMMAND .*sub=DOCS' "$COUPOND_OPLOG" || fail "piped mode sent no COMMAND DOCS"
grep -q ' op=ECHO ' "$COUPOND_OPLOG" || fail "--pipe sent no ECHO"
ok "redis-cli's own commands: COMMAND DOCS (piped mode), ECHO (--pipe)"
echo "$N passed, 0 failed"
