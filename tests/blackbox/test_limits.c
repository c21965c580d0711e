/* test_limits.c - connection cap, idle timeout, AUTH throttling, output cap, and the command line
 * (coupond(8)): bad flags, port in use, unwritable data dir, -V, --help. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bb.h"

#define MAX_CLIENTS        5     /* --max-clients of the cap test */
#define SLOT_WAIT_MS       3000  /* a closed connection frees its slot within this */
#define IDLE_OBSERVE_MS    3500  /* how long the idle test watches both connections */
#define IDLE_MIN_MS        800   /* --idle-timeout 1 must not close sooner ... */
#define IDLE_MAX_MS        3000  /* ... nor later than this */
#define ACTIVE_PING_MS     250   /* the active connection's PING period */
#define AUTH_DELAY_MIN_MS  500   /* a wrong key is answered no sooner (the contract says 1 s) */
#define PROMPT_MAX_MS      450   /* an unrelated command meanwhile is answered within this */
#define CLOSE_WAIT_MS      3000  /* a connection the server ends is closed within this */
#define FLOOD_RCVBUF       4096  /* keeps the kernel from buffering the flood's replies */
#define FLOOD_CHUNK        20480 /* bytes of "HELP\n" per send */
#define FLOOD_MAX_BYTES    (8 * 1024 * 1024) /* input far beyond what the output cap allows */
#define FLOOD_SETTLE_MS    500               /* for the server to act on what it already has */
#define FLOOD_SEND_TIMEOUT 1000              /* ms one blocked send may take */
#define FLOOD_STALL_MS     8000              /* blocked sends in all before we call it a hang */
#define OUT_MAX            BB_RUN_OUT_MAX

static const char wrong_key[] =
    "AUTH 0000000000000000000000000000000000000000000000000000000000000000";

/* ---- Connection cap ---- */

/* Connects and PINGs until the server serves the connection: it may still count one that was
 * closed a moment ago (the harness's own start-up probe, say). */
static struct bb_client *
connect_served(struct bb_server *s)
{
    int64_t deadline = bb_now_ms() + SLOT_WAIT_MS;
    for (;;) {
        char line[BB_LINE_MAX];
        struct bb_client *c = bb_connect(s);
        bb_try_send(c, "PING\n", 5);
        enum bb_read r = bb_read_line(c, line, sizeof line);
        if (r == BB_READ_LINE && strcmp(line, "OK PONG") == 0)
            return c;
        bb_close(c);
        if (r == BB_READ_LINE && !bb_has_prefix(line, "ERR BUSY"))
            fail_msg("expected OK PONG or ERR BUSY, got \"%s\"", line);
        if (r == BB_READ_TIMEOUT)
            fail_msg("no reply to PING");
        if (bb_now_ms() >= deadline)
            fail_msg("no connection slot became free within %d ms", SLOT_WAIT_MS);
        bb_sleep_ms(BB_POLL_MS);
    }
}

static void
expect_turned_away(struct bb_server *s)
{
    char line[BB_LINE_MAX];
    struct bb_client *c = bb_connect(s);
    enum bb_read r = bb_read_line(c, line, sizeof line);
    if (r != BB_READ_LINE)
        fail_msg("connection over the cap: expected \"ERR BUSY too many clients\", got no line");
    assert_string_equal(line, "ERR BUSY too many clients");
    assert_true(bb_wait_closed(c, CLOSE_WAIT_MS));
    bb_close(c);
}

static void
test_max_clients(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c[MAX_CLIENTS];
    for (int i = 0; i < MAX_CLIENTS; i++)
        c[i] = connect_served(s);
    expect_turned_away(s);
    bb_close(c[0]);
    c[0] = connect_served(s); /* the closed one's slot is free again */
    for (int i = 0; i < MAX_CLIENTS; i++)
        bb_expect(c[i], "PING", "OK PONG");
    expect_turned_away(s);
    for (int i = 0; i < MAX_CLIENTS; i++)
        bb_close(c[i]);
}

/* ---- Idle timeout ---- */

static void
test_idle_timeout(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *idle = bb_connect(s);
    struct bb_client *active = bb_connect(s);
    bb_expect(idle, "PING", "OK PONG");
    int64_t t0 = bb_now_ms();
    int64_t closed_after = -1;
    while (bb_now_ms() - t0 < IDLE_OBSERVE_MS) {
        bb_expect(active, "PING", "OK PONG");
        if (closed_after < 0 && bb_wait_closed(idle, ACTIVE_PING_MS))
            closed_after = bb_now_ms() - t0;
        else if (closed_after >= 0)
            bb_sleep_ms(ACTIVE_PING_MS);
    }
    if (closed_after < 0)
        fail_msg("the idle connection was still open after %d ms", IDLE_OBSERVE_MS);
    print_message("idle connection closed after %lld ms\n", (long long)closed_after);
    assert_true(closed_after >= IDLE_MIN_MS);
    assert_true(closed_after <= IDLE_MAX_MS);
    bb_expect(active, "PING", "OK PONG");
    bb_close(idle);
    bb_close(active);
}

/* ---- AUTH throttling ---- */

static void
test_wrong_key_delayed_others_served(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *slow = bb_connect(s);
    struct bb_client *other = bb_connect(s);
    char line[BB_LINE_MAX];

    int64_t t0 = bb_now_ms();
    bb_send_str(slow, wrong_key);
    bb_send_str(slow, "\nPING\n");
    bb_expect(other, "PING", "OK PONG");
    int64_t other_ms = bb_now_ms() - t0;
    bb_expect_reply_prefix(slow, "ERR DENIED");
    int64_t denied_ms = bb_now_ms() - t0;
    /* The PING behind the wrong key waited its turn. */
    assert_int_equal(bb_read_line(slow, line, sizeof line), BB_READ_LINE);
    assert_string_equal(line, "OK PONG");
    print_message("DENIED after %lld ms, other client's PONG after %lld ms\n", (long long)denied_ms,
                  (long long)other_ms);
    if (denied_ms < AUTH_DELAY_MIN_MS)
        fail_msg("wrong key answered after %lld ms, expected >= %d", (long long)denied_ms,
                 AUTH_DELAY_MIN_MS);
    if (other_ms > PROMPT_MAX_MS || other_ms >= denied_ms)
        fail_msg("the other client's PING took %lld ms while a wrong key was delayed",
                 (long long)other_ms);

    int64_t t1 = bb_now_ms(); /* the right key is not delayed */
    bb_auth(other);
    assert_true(bb_now_ms() - t1 < AUTH_DELAY_MIN_MS);
    bb_close(slow);
    bb_close(other);
}

static void
test_third_wrong_key_closes(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_expect_prefix(c, wrong_key, "ERR DENIED");
    bb_expect_prefix(c, wrong_key, "ERR DENIED");
    bb_expect(c, "PING", "OK PONG"); /* two wrong keys: still open */
    bb_expect_prefix(c, wrong_key, "ERR DENIED");
    assert_true(bb_wait_closed(c, CLOSE_WAIT_MS));
    bb_close(c);
}

/* ---- Output cap ---- */

/* True when the peer has closed or reset the connection; reads nothing. */
static bool
peer_gone(const struct bb_client *c)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return false;
    return ti.tcpi_state == TCP_CLOSE || ti.tcpi_state == TCP_CLOSE_WAIT;
}

/* A client that floods requests and never reads: the server stops taking its input once its
 * replies back up (flow control), and cuts it off when they make no progress for
 * CONN_OUT_STALL seconds (5 s, well inside FLOOD_STALL_MS); other clients are served all along. */
static void
test_output_cap_disconnects_non_reader(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *flood = bb_connect_opt(s, FLOOD_RCVBUF);
    assert_non_null(flood);
    bb_set_timeout(flood, FLOOD_SEND_TIMEOUT);
    struct bb_client *other = bb_connect(s);
    static char chunk[FLOOD_CHUNK];
    for (size_t i = 0; i + 5 <= sizeof chunk; i += 5)
        memcpy(chunk + i, "HELP\n", 5);

    size_t sent = 0;
    int stalled_ms = 0, err = 0;
    while (sent < FLOOD_MAX_BYTES) {
        err = bb_try_send(flood, chunk, sizeof chunk);
        if (err == EAGAIN) {
            stalled_ms += FLOOD_SEND_TIMEOUT;
            if (stalled_ms >= FLOOD_STALL_MS)
                break;
            bb_expect(other, "PING", "OK PONG");
            continue;
        }
        if (err != 0)
            break;
        sent += sizeof chunk;
    }
    print_message("flood: %zu bytes of HELP sent, then %s\n", sent,
                  err != 0 ? strerror(err) : "no error");
    if (err == 0 || err == EAGAIN) {
        /* The kernel may have buffered all of it: look again once the server had time. */
        bb_sleep_ms(FLOOD_SETTLE_MS);
        if (peer_gone(flood))
            err = ECONNRESET;
    }
    if (err != EPIPE && err != ECONNRESET)
        fail_msg("a client that never reads was not disconnected (%zu bytes sent, %s)", sent,
                 err == EAGAIN ? "still connected after the sends stalled" : "no error");
    bb_expect(other, "PING", "OK PONG");
    bb_close(flood);
    bb_close(other);
}

/* ---- Command line ---- */

static int
count_lines(const char *s)
{
    int n = 0;
    for (; *s != '\0'; s++)
        if (*s == '\n' || s[1] == '\0')
            n++;
    return n;
}

/* Runs coupond with `-d DIR -p 0 --log DIR/ops.log` plus `extra` (NULL-terminated). */
static int
run_with_dir(const char *dir, const char *const *extra, char *out, char *err)
{
    char log[BB_PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/ops.log", dir);
    const char *args[BB_MAX_ARGS + 1] = {"-d", dir, "-p", "0", "--log", log};
    size_t n = 6;
    for (size_t i = 0; extra[i] != NULL && n < BB_MAX_ARGS; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return bb_run(args, out, OUT_MAX, err, OUT_MAX);
}

static void
assert_one_error_line(const char *what, const char *err)
{
    if (count_lines(err) != 1 || strncmp(err, "coupond: ", 9) != 0)
        fail_msg("%s: expected one line \"coupond: reason\" on stderr, got:\n%s", what, err);
}

/* Fixtures of the command-line tests: *state is a fresh temporary directory. */
static int
tmpdir_setup(void **state)
{
    char *dir = malloc(BB_PATH_MAX);
    if (dir == NULL || !bb_tmpdir_make(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int
tmpdir_teardown(void **state)
{
    bb_tmpdir_remove(*state);
    free(*state);
    return 0;
}

static void
test_bad_flags(void **state)
{
    const char *dir = *state;
    static const char *const cases[][3] = {
        {"--no-such-flag", NULL, NULL},    {"-x", NULL, NULL},
        {"--max-upload", "0", NULL},       {"--max-upload", "50001", NULL},
        {"--max-upload", NULL, NULL},      {"--max-clients", "0", NULL},
        {"--port", "70000", NULL},         {"--idle-timeout", "-1", NULL},
        {"--purge-interval", "abc", NULL}, {"--map-size", "12Q", NULL},
        {"--listen", "999.1.1.1", NULL},
    };
    static char out[OUT_MAX], err[OUT_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s %s", cases[i][0], cases[i][1] ? cases[i][1] : "");
        int st = run_with_dir(dir, cases[i], out, err);
        if (st == -1)
            fail_msg("coupond %s: still running after %d ms", what, BB_RUN_TIMEOUT_MS);
        if (st == 0)
            fail_msg("coupond %s: exit status 0", what);
        assert_one_error_line(what, err);
    }
}

static void
test_port_in_use(void **state)
{
    const char *dir = *state;
    static char out[OUT_MAX], err[OUT_MAX];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)ntohs(a.sin_port));
    const char *const extra[] = {"-p", port, NULL}; /* the last -p wins */
    int st = run_with_dir(dir, extra, out, err);
    close(fd);
    assert_int_equal(st, 1);
    assert_one_error_line("port in use", err);
}

static void
test_unwritable_data_dir(void **state)
{
    const char *dir = *state;
    static char out[OUT_MAX], err[OUT_MAX];
    char file[BB_PATH_MAX + 16], data[BB_PATH_MAX + 32];
    snprintf(file, sizeof file, "%s/plain-file", dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(data, sizeof data, "%s/data", file); /* a path under a regular file */
    const char *const extra[] = {"-d", data, NULL};
    int st = run_with_dir(dir, extra, out, err);
    assert_int_equal(st, 1);
    assert_one_error_line("unwritable data dir", err);
}

static void
test_version(void **state)
{
    (void)state;
    static char out[OUT_MAX], err[OUT_MAX];
    static const char *const flags[] = {"-V", "--version"};
    for (size_t i = 0; i < 2; i++) {
        const char *const args[] = {flags[i], NULL};
        assert_int_equal(bb_run(args, out, OUT_MAX, err, OUT_MAX), 0);
#ifdef COUPOND_VERSION
        assert_string_equal(out, "coupond " COUPOND_VERSION "\n");
#else
        assert_true(strncmp(out, "coupond ", 8) == 0);
#endif
    }
}

static void
test_help_mentions_every_flag(void **state)
{
    (void)state;
    static const char *const flags[] = {
        "--listen", "--port",        "--data-dir",     "--max-upload", "--purge-interval",
        "--log",    "--max-clients", "--idle-timeout", "--map-size",   "--version",
        "--help",   "--store",       "--node-name",
    };
    static char out[OUT_MAX], err[OUT_MAX], both[2 * OUT_MAX];
    const char *const long_help[] = {"--help", NULL};
    assert_int_equal(bb_run(long_help, out, OUT_MAX, err, OUT_MAX), 0);
    snprintf(both, sizeof both, "%s%s", out, err);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strstr(both, flags[i]) == NULL)
            fail_msg("--help does not mention %s:\n%s", flags[i], both);
    const char *const short_help[] = {"-h", NULL};
    assert_int_equal(bb_run(short_help, out, OUT_MAX, err, OUT_MAX), 0);
    assert_true(strstr(out, "--port") != NULL || strstr(err, "--port") != NULL);
}

int
main(void)
{
    static const char *const max_clients[] = {"--max-clients", "5", NULL};
    static const char *const idle[] = {"--idle-timeout", "1", NULL};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_max_clients, bb_setup, bb_teardown,
                                                 (void *)max_clients),
        cmocka_unit_test_prestate_setup_teardown(test_idle_timeout, bb_setup, bb_teardown,
                                                 (void *)idle),
        cmocka_unit_test_setup_teardown(test_wrong_key_delayed_others_served, bb_setup,
                                        bb_teardown),
        cmocka_unit_test_setup_teardown(test_third_wrong_key_closes, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_output_cap_disconnects_non_reader, bb_setup,
                                        bb_teardown),
        cmocka_unit_test_setup_teardown(test_bad_flags, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_port_in_use, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_data_dir, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_help_mentions_every_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
