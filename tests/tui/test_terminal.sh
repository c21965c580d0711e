#!/usr/bin/env bash
# The dashboard on terminals it cannot use: TERM unset, a type terminfo does not know, and
# "dumb", which cannot move the cursor. Each is a usage error (exit 2, as couponctl(1) says
# of the dashboard without a terminal) with a message. And a missing key file's message
# says how to name one.
. "$(dirname "$0")/lib.sh"

start_server 0

# ncurses (libtinfo) leaves the memory of a failed newterm() behind, for an unknown TERM; a
# sanitizer build must not count that against couponctl.
printf 'leak:new_prescr\n' >"$TMP/lsan.supp"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$TMP/lsan.supp"

# dash_env ENV...: the dashboard under env(1) arguments, in a tmux pane (a real terminal).
dash_env() {
    new_session 100 24 "env $* $COUPONCTL_BIN -p $PORT -k $KEY; echo EXITED=\$?; sleep 600"
}

dash_env -u TERM LANG=C.UTF-8
wait_screen '^EXITED=[0-9]+$'
screen_has '^EXITED=2$' || fail "TERM unset: not exit 2"
screen_has 'couponctl: cannot use the terminal: TERM is not set' || fail "TERM unset: no message"
ok "TERM unset: exit 2 with a message"

dash_env TERM=no-such-terminal LANG=C.UTF-8
wait_screen '^EXITED=[0-9]+$'
screen_has '^EXITED=2$' || fail "an unknown TERM: not exit 2"
screen_has 'cannot use the terminal \(TERM=no-such-terminal\): no such terminal type' ||
    fail "an unknown TERM: no message"
ok "an unknown TERM: exit 2 with a message"

dash_env TERM=dumb LANG=C.UTF-8
wait_screen '^EXITED=[0-9]+$'
screen_has '^EXITED=2$' || fail "TERM=dumb: not exit 2"
screen_has 'cannot use the terminal \(TERM=dumb\): it cannot move the cursor' ||
    fail "TERM=dumb: no message"
ok "TERM=dumb: exit 2 with a message"

set +e
out=$("$COUPONCTL_BIN" -p "$PORT" -k "$TMP/none.key" --stats 2>&1); rc=$?
set -e
[ "$rc" -eq 4 ] || fail "a missing key file exits $rc, not 4"
echo "$out" | grep -q "cannot use key file $TMP/none.key: No such file or directory; name the admin key file with -k FILE" ||
    fail "the missing key's message does not name -k: $out"
ok "a missing key file's message names -k"
