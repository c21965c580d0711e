# tests/tui/lib.sh - shared by the couponctl tests (sourced): a real coupond on a free port with
# a temporary data dir, a private tmux server for the dashboard, polling with bounded timeouts,
# and cleanup of everything a test started, on exit and, by a watchdog, when the test is killed
# (CTest's timeout). Needs COUPOND_BIN and COUPONCTL_BIN (CTest sets them).
# No pipefail: the tests pipe output into grep -q, which may exit before the writer is done;
# the writer's SIGPIPE must not count as a failure. A pipeline's status is its last command's.
set -eu

: "${COUPOND_BIN:?COUPOND_BIN must name the coupond binary}"
: "${COUPONCTL_BIN:?COUPONCTL_BIN must name the couponctl binary}"

# Waits are polls with a deadline, never fixed sleeps. Sanitizer builds are several times
# slower, so the deadlines are generous; a passing test never waits for them.
WAIT_S=${TUI_TEST_WAIT_S:-20}
POLL_S=0.05

TMP=$(mktemp -d "${TMPDIR:-/tmp}/couponctl-test.XXXXXX")
DATA="$TMP/data"
KEY="$DATA/admin.key"
SERVER_LOG="$TMP/coupond.log"
SERVER_PID=""
PORT=""
TMUX_SOCKET="$TMP/tmux.sock" # in TMP, so that nothing of the test outlives it
SESSION="dash"
TESTS_RUN=0
BG_PIDS="" # processes a test started in the background, ended by cleanup (see track)
PIDS_FILE="$TMP/pids" # the same, for the watchdog

# Ending processes, always by process id. kill_tree PID: SIGKILL to PID and everything below
# it; each is stopped first, so that it starts nothing new (a pane's shell would go on to its
# next command) while its children are found. kill_panes SOCKET [SESSION]: the same for what
# runs in the panes of the tmux server at SOCKET (of SESSION only, when given), before tmux
# ends them with SIGHUP: a sanitizer build of couponctl that gets SIGHUP once its terminal is
# gone can hang in its leak check at exit, spinning, for good. kill_tracked FILE DIR: the pids
# listed in FILE whose command line still names DIR (so never a process that reused the id).
KILL_FNS='
kill_tree() {
    local child
    kill -STOP "$1" 2>/dev/null || return 0
    for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
    kill -KILL "$1" 2>/dev/null || true
}
kill_panes() {
    local pid scope="-a"
    [ -z "${2:-}" ] || scope="-s -t =$2:"
    for pid in $(tmux -S "$1" list-panes $scope -F "#{pane_pid}" 2>/dev/null); do
        kill_tree "$pid"
    done
}
kill_tracked() {
    local pid
    [ -f "$1" ] || return 0
    for pid in $(cat "$1"); do
        if tr "\0" " " <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$2"; then
            kill_tree "$pid"
        fi
    done
}'
eval "$KILL_FNS"

# track PID: a process the test started in the background, to be ended with the test.
track() {
    BG_PIDS="$BG_PIDS $1"
    echo "$1" >>"$PIDS_FILE"
}

cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    for pid in $BG_PIDS; do
        kill_tree "$pid"
    done
    kill_panes "$TMUX_SOCKET"
    tmux -S "$TMUX_SOCKET" kill-server 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
# A signal (CTest's timeout) exits through the EXIT trap too.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# The watchdog. CTest ends a test that runs past its timeout with SIGKILL to its process tree,
# and then no EXIT trap runs. Servers and couponctl started with & are in that tree; the tmux
# server is not (it runs detached, and so does what its panes run). So a process outside the
# tree (double fork, new session) waits for this shell to end, then ends the panes, the tmux
# server and the tracked processes, and removes TMP. After a normal exit it finds nothing left.
(setsid bash -c "$KILL_FNS"'
    while kill -0 "$1" 2>/dev/null; do sleep 1; done
    kill_panes "$2"
    tmux -S "$2" kill-server 2>/dev/null
    kill_tracked "$3/pids" "$3"
    rm -rf "$3"' watchdog "$$" "$TMUX_SOCKET" "$TMP" </dev/null >/dev/null 2>&1 &)

fail() {
    echo "FAIL: $*" >&2
    if tmux -S "$TMUX_SOCKET" has-session -t "=$SESSION" 2>/dev/null; then
        echo "--- the screen:" >&2
        capture >&2 || true
    fi
    if [ -f "$SERVER_LOG" ]; then
        echo "--- the last lines of the server log:" >&2
        tail -n 5 "$SERVER_LOG" >&2
    fi
    exit 1
}

ok() {
    TESTS_RUN=$((TESTS_RUN + 1))
    echo "ok $TESTS_RUN - $*"
}

# wait_for DESCRIPTION COMMAND...: runs COMMAND until it succeeds, or fails the test.
wait_for() {
    local what=$1 deadline
    shift
    deadline=$(($(date +%s) + WAIT_S))
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "timed out waiting for $what"
        sleep "$POLL_S"
    done
}

# ---- coupond ----

server_listening() {
    [ -s "$KEY" ] && [ "$(grep -c 'op=LISTEN' "$SERVER_LOG" 2>/dev/null)" -gt "$1" ]
}

# start_server PORT [FLAGS...]: starts coupond on PORT (0: a free one), with more FLAGS if
# given, and sets PORT.
start_server() {
    local before=0 port=$1
    shift
    [ -f "$SERVER_LOG" ] && before=$(grep -c 'op=LISTEN' "$SERVER_LOG" || true)
    "$COUPOND_BIN" -p "$port" -d "$DATA" "$@" 2>>"$SERVER_LOG" &
    SERVER_PID=$!
    echo "$SERVER_PID" >>"$PIDS_FILE"
    wait_for "coupond to listen" server_listening "$before"
    PORT=$(grep 'op=LISTEN' "$SERVER_LOG" | tail -n 1 | sed 's/.* port=\([0-9]*\).*/\1/')
}

# start_other_server DIR: a second coupond on a free port with the data dir DIR (its key is
# DIR/admin.key, its log DIR.log); sets OTHER_PID and OTHER_PORT. cleanup ends it.
start_other_server() {
    local log="$1.log"
    "$COUPOND_BIN" -p 0 -d "$1" 2>>"$log" &
    OTHER_PID=$!
    track "$OTHER_PID"
    wait_for "the second coupond to listen" other_listening "$1"
    OTHER_PORT=$(grep 'op=LISTEN' "$log" | tail -n 1 | sed 's/.* port=\([0-9]*\).*/\1/')
}

other_listening() {
    [ -s "$1/admin.key" ] && grep -q 'op=LISTEN' "$1.log" 2>/dev/null
}

# kill_server: ends coupond the hard way, as a crash would.
kill_server() {
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# stop_server: SIGTERM, a graceful stop.
stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# ctl ARGS...: couponctl against the test server with its key.
ctl() {
    "$COUPONCTL_BIN" -p "$PORT" -k "$KEY" "$@"
}

# stat_of NAME: one counter from STATS.
stat_of() {
    ctl --stats | awk -v n="$1" '$1 == "STAT" && $2 == n { print $3 }'
}

# stat_is NAME VALUE: for wait_for.
stat_is() {
    [ "$(stat_of "$1")" = "$2" ]
}

# log_count OP: how many operations OP the server has logged.
log_count() {
    grep -cE "op=$1( |\$)" "$SERVER_LOG" || true
}

# log_sync: returns once every operation done so far is in the log, which a thread of coupond
# writes behind the event loop: it sends one PING and waits for its line (STATS polls are not
# logged without --log-reads).
log_sync() {
    local n
    n=$(log_count PING)
    raw PING >/dev/null
    wait_for "the server log to catch up" log_has_more PING "$n"
}

log_has_more() {
    [ "$(log_count "$1")" -gt "$2" ]
}

# raw LINES...: sends protocol lines straight to coupond and prints its replies.
raw() {
    raw_to "$PORT" "$@"
}

# raw_to PORT LINES...: the same to the coupond on PORT.
raw_to() {
    local fd port=$1
    shift
    exec {fd}<>"/dev/tcp/127.0.0.1/$port"
    printf '%s\n' "$@" QUIT >&"$fd"
    cat <&"$fd"
    exec {fd}>&-
}

# ---- the dashboard in tmux ----

tmux_() {
    # -u: UTF-8 between tmux and us; the pane's own locale is set per command.
    LC_ALL=C.UTF-8 tmux -u -S "$TMUX_SOCKET" -f /dev/null "$@"
}

# dash_start COLS ROWS ENV...: runs couponctl in a new tmux session; when it exits the pane
# shows "EXITED=status" and stays.
dash_start() {
    local cols=$1 rows=$2
    shift 2
    new_session "$cols" "$rows" "env $* $COUPONCTL_BIN -p $PORT -k $KEY; echo EXITED=\$?; sleep 600"
}

# dash_start_args COLS ROWS "ENV..." ARGS...: the same with explicit couponctl arguments.
dash_start_args() {
    local cols=$1 rows=$2 envs=$3
    shift 3
    new_session "$cols" "$rows" "env $envs $COUPONCTL_BIN $*; echo EXITED=\$?; sleep 600"
}

# new_session COLS ROWS COMMAND: the new session replaces the old one, which is killed only
# after, so that the tmux server never exits in between; what ran in it is ended first (see
# kill_panes).
SESSIONS=0
new_session() {
    local old=$SESSION
    SESSIONS=$((SESSIONS + 1))
    SESSION="dash$SESSIONS"
    tmux_ new-session -d -s "$SESSION" -x "$1" -y "$2" "$3"
    kill_panes "$TMUX_SOCKET" "$old"
    tmux_ kill-session -t "=$old" 2>/dev/null || true
}

capture() {
    tmux_ capture-pane -p -t "=$SESSION:"
}

capture_escapes() {
    tmux_ capture-pane -p -e -t "=$SESSION:"
}

keys() {
    tmux_ send-keys -t "=$SESSION:" "$@"
}

resize() {
    tmux_ resize-window -t "=$SESSION:" -x "$1" -y "$2"
}

screen_has() {
    capture | grep -Eq -- "$1"
}

screen_lacks() {
    ! capture | grep -Eq -- "$1"
}

# wait_screen REGEX: polls the screen until a line matches.
wait_screen() {
    wait_for "the screen to show /$1/" screen_has "$1"
}

wait_screen_gone() {
    wait_for "the screen to stop showing /$1/" screen_lacks "$1"
}
