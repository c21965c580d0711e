/* test_edges.c - edge cases of issues 9 and 15: a pipelined burst whose replies far exceed the
 * output cap, a PURGE cut short by SIGTERM, --check on a directory without a store, two CRs
 * before the LF, the line limit counting a CR, HTTP judged on the first line only, a failed group
 * commit and the replies that did not depend on it, a held WAIT at a graceful shutdown. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bb.h"

/* From PROTOCOL.md. */
#define MAX_LINE   4096  /* bytes of a request line before its LF, a CR included */
#define MAX_UPLOAD 50000 /* records in one UPLOAD with the default --max-upload */

/* The pipelined burst (issue 9). Of every BURST_CYCLE lines 2 are HELP, 2 STATS and 6 REQUEST:
 * 16 KiB of them ask for some 400 KiB of replies, more than the 256 KiB output cap, so a server
 * that reads on while its replies pile up cuts the client off even though it reads all along. */
#define BURST_LINES     100000 /* request lines sent without waiting for a reply */
#define BURST_COUPONS   40000  /* FREE coupons: the later REQUESTs get NO_COUPONS */
#define BURST_CYCLE     10
#define BURST_LINE_MAX  32    /* "REQUEST u99999 FREE\n" */
#define BURST_IO_MS     60000 /* an ASan server on a busy 2-core machine is slow */
#define HELP_BURST      400   /* HELPs in one write: 2,000 bytes asking for ~300 KiB */
#define QUIET_MS        300   /* no stray reply may arrive within this */
#define CODE_BUF        80    /* a coupon code (at most 64 characters) */
#define STATUS_SHOWN    200   /* bytes of an unexpected line quoted in a failure */
#define BURST_FAIL_TEXT 512   /* the description of what went wrong in the burst */

/* The interrupted PURGE (issue 9). */
#define PURGE_COUPONS 200000       /* already expired, uploaded in batches of MAX_UPLOAD */
#define PAST_EXPIRY   "2020-01-01" /* uploads accept expired coupons */
#define UPLOAD_IO_MS  120000       /* a 50,000-record upload on an ASan server */
#define PURGE_IO_MS   60000        /* a whole purge of 800,000 coupons, ASan included */
/* The tries, until one SIGTERM comes while the purge runs: the delay from PURGE to SIGTERM, and
 * the expired coupons, in multiples of PURGE_COUPONS. The delay stays long enough for the server
 * to have read the PURGE (a PURGE not started at a shutdown is refused, which tests nothing). */
static const struct {
    int delay_ms, sets;
} purge_tries[] = {{30, 1}, {10, 2}, {10, 4}};

/* The failed group commit (issue 9). */
#define FAULT_COUPONS 5     /* FREE and MEGADEAL coupons each */
#define WAIT_IO_MS    20000 /* a held WAIT can take the whole --megadeal-wait, more under ASan */

/* WAIT at shutdown (issue 15). */
#define SHUTDOWN_USERS 5   /* tasks queued at --megadeal-rate 1: the last waits ~4 s */
#define HELD_MS        300 /* a held WAIT's reply must not come this soon */
#define TASK_BUF       160 /* a task id (at most 128 characters) */

#define OUT_MAX BB_RUN_OUT_MAX

/* ---- Surroundings of the tests that manage their own servers ---- */

/* One test's servers and scratch files; cleaned up by env_teardown whatever happened. */
struct edge_env {
    struct bb_server *s;
    char aux[BB_PATH_MAX];          /* scratch: the failsys trigger, --check dirs */
    char trigger[BB_PATH_MAX + 16]; /* the failsys trigger file */
};

static int
env_setup(void **state)
{
    struct edge_env *e = calloc(1, sizeof *e);
    if (e == NULL || !bb_tmpdir_make(e->aux)) {
        free(e);
        return -1;
    }
    snprintf(e->trigger, sizeof e->trigger, "%s/failsys.trigger", e->aux);
    *state = e;
    return 0;
}

/* Stops and frees the current server (if any); false when it crashed or reported an error. */
static bool
env_drop_server(struct edge_env *e)
{
    bool ok = true;
    if (e->s == NULL)
        return true;
    while (e->s->clients != NULL)
        bb_close(e->s->clients);
    if (e->s->pid > 0 && bb_server_stop(e->s) != 0)
        ok = false;
    bb_server_free(e->s);
    e->s = NULL;
    return ok;
}

static int
env_teardown(void **state)
{
    struct edge_env *e = *state;
    int rc = env_drop_server(e) ? 0 : -1;
    bb_tmpdir_remove(e->aux);
    unsetenv("LD_PRELOAD");
    unsetenv("FAILSYS_TRIGGER");
    unsetenv("FAILSYS_MATCH");
    free(e);
    return rc;
}

static struct bb_server *
env_start(struct edge_env *e, const char *const *args)
{
    e->s = bb_server_start(args);
    if (e->s == NULL)
        fail_msg("coupond did not start");
    return e->s;
}

/* ---- Small protocol helpers ---- */

/* Reads one line; fails the test, naming `what`, when none arrives. */
static void
read_line_or_fail(struct bb_client *c, char *line, size_t cap, const char *what)
{
    enum bb_read r = bb_read_line(c, line, cap);
    if (r != BB_READ_LINE)
        fail_msg("%s: no line (%s)", what,
                 r == BB_READ_CLOSED    ? "connection closed"
                 : r == BB_READ_TIMEOUT ? "timed out"
                                        : "read error");
}

/* Expects the next line to be exactly `want`. */
static void
expect_line(struct bb_client *c, const char *want)
{
    static char line[BB_LINE_MAX];
    read_line_or_fail(c, line, sizeof line, want);
    if (strcmp(line, want) != 0)
        fail_msg("expected \"%s\", got \"%.*s\"", want, STATUS_SHOWN, line);
}

/* REQUEST user [type], expected to succeed; copies the coupon code into code[CODE_BUF]. */
static void
request_code(struct bb_client *c, const char *user, const char *type, char *code)
{
    char cmd[128];
    bb_fmt(cmd, sizeof cmd, "REQUEST %s %s", user, type);
    const char *status = bb_expect_prefix(c, cmd, "OK code=");
    size_t n = strcspn(status + 8, " ");
    assert_true(n < CODE_BUF);
    memcpy(code, status + 8, n);
    code[n] = '\0';
}

/* Copies the task= field of `line` into id[TASK_BUF]; fails when there is none. */
static void
task_field(const char *line, char *id)
{
    const char *p = strstr(line, " task=");
    if (p == NULL)
        fail_msg("no task id in \"%s\"", line);
    p += 6;
    size_t n = strcspn(p, " ");
    if (n == 0 || n >= TASK_BUF)
        fail_msg("bad task id in \"%s\"", line);
    memcpy(id, p, n);
    id[n] = '\0';
}

/* ---- 1. A pipelined burst far beyond the output cap (issue 9) ---- */

enum burst_kind { BURST_REQUEST, BURST_HELP, BURST_STATS };

/* Sends a buffer from its own thread, so that the test reads replies while it writes. */
struct burst_writer {
    pthread_t thread;
    int fd;
    const char *buf;
    size_t len, sent;
    int err; /* errno of a failed send, or 0 */
};

static void *
burst_write(void *arg)
{
    struct burst_writer *w = arg;
    while (w->sent < w->len) {
        ssize_t n = send(w->fd, w->buf + w->sent, w->len - w->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            w->err = errno;
            break;
        }
        w->sent += (size_t)n;
    }
    return NULL;
}

/* Reads the reply to line `i` of the burst, of kind `k`, and checks its shape; a REQUEST that got
 * a coupon must get the next one in upload order, "F-<ok>". Counts the REQUEST OKs in *oks.
 * Returns false with the reason in why[BURST_FAIL_TEXT]. */
static bool
burst_reply(struct bb_client *c, int i, enum burst_kind k, unsigned *oks, char *why)
{
    static const char *const names[] = {"REQUEST", "HELP", "STATS"};
    static const char *const data[] = {NULL, "INFO ", "STAT "};
    static char line[BB_LINE_MAX];
    for (unsigned lines = 0;; lines++) {
        enum bb_read r = bb_read_line(c, line, sizeof line);
        if (r != BB_READ_LINE) {
            snprintf(why, BURST_FAIL_TEXT, "line %d (%s): no reply, %s, after %u REQUEST OKs", i,
                     names[k],
                     r == BB_READ_CLOSED    ? "the server closed the connection"
                     : r == BB_READ_TIMEOUT ? "timed out"
                                            : "read error",
                     *oks);
            return false;
        }
        if (k == BURST_REQUEST) {
            char want[48];
            snprintf(want, sizeof want, "OK code=F-%06u ", *oks);
            if (strncmp(line, want, strlen(want)) == 0) {
                (*oks)++;
                return true;
            }
            if (bb_has_prefix(line, "ERR NO_COUPONS") && *oks == BURST_COUPONS)
                return true;
        } else if (strcmp(line, "OK") == 0 && lines > 0) {
            return true;
        } else if (strncmp(line, data[k], 5) == 0) {
            continue;
        }
        snprintf(why, BURST_FAIL_TEXT, "line %d (%s, after %u REQUEST OKs): unexpected \"%.*s\"", i,
                 names[k], *oks, STATUS_SHOWN, line);
        return false;
    }
}

static enum burst_kind
burst_kind_of(int i)
{
    switch (i % BURST_CYCLE) {
    case 0:
    case 5:
        return BURST_HELP;
    case 2:
    case 7:
        return BURST_STATS;
    default:
        return BURST_REQUEST;
    }
}

static void
test_burst_beyond_output_cap(void **state)
{
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    bb_set_timeout(c, BURST_IO_MS);
    bb_upload_gen(c, "F-", "FREE", BURST_COUPONS, NULL, 1);

    char *buf = malloc((size_t)BURST_LINES * BURST_LINE_MAX);
    assert_non_null(buf);
    size_t len = 0;
    unsigned requests = 0;
    for (int i = 0; i < BURST_LINES; i++) {
        enum burst_kind k = burst_kind_of(i);
        if (k == BURST_HELP)
            len += (size_t)sprintf(buf + len, "HELP\n");
        else if (k == BURST_STATS)
            len += (size_t)sprintf(buf + len, "STATS\n");
        else
            len += (size_t)sprintf(buf + len, "REQUEST u%d FREE\n", i);
        requests += k == BURST_REQUEST;
    }

    int64_t t0 = bb_now_ms();
    struct burst_writer w = {.fd = c->fd, .buf = buf, .len = len};
    assert_int_equal(pthread_create(&w.thread, NULL, burst_write, &w), 0);
    unsigned oks = 0;
    static char why[BURST_FAIL_TEXT];
    bool ok = true;
    for (int i = 0; i < BURST_LINES && ok; i++)
        ok = burst_reply(c, i, burst_kind_of(i), &oks, why);
    if (!ok)
        shutdown(c->fd, SHUT_RDWR); /* the writer may be stuck in send(): let it fail */
    pthread_join(w.thread, NULL);
    free(buf);
    if (!ok)
        fail_msg("%d request lines (%zu bytes) in one burst: %s; the writer had sent %zu bytes",
                 BURST_LINES, len, why, w.sent);
    if (w.err != 0)
        fail_msg("sending the burst: %s after %zu of %zu bytes", strerror(w.err), w.sent, len);
    print_message("burst: %d lines (%zu bytes, %u REQUESTs) answered in %lld ms\n", BURST_LINES,
                  len, requests, (long long)(bb_now_ms() - t0));

    assert_int_equal(oks, BURST_COUPONS);
    assert_true(bb_quiet(c, QUIET_MS));
    assert_int_equal(bb_stat(c, "assigned.FREE"), oks);
    assert_int_equal(bb_stat(c, "available.FREE"), 0);
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

/* The bug report's case: 2,000 bytes that ask for more than the output cap. */
static void
test_help_burst_one_write(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = bb_connect(bb_server_of(state));
    char buf[HELP_BURST * 5];
    for (int i = 0; i < HELP_BURST; i++)
        memcpy(buf + i * 5, "HELP\n", 5);
    bb_send(c, buf, sizeof buf);
    for (int i = 0; i < HELP_BURST; i++) {
        if (bb_read_reply(c, reply) < 2 || strcmp(strrchr(reply, '\n') + 1, "OK") != 0 ||
            strncmp(reply, "INFO ", 5) != 0)
            fail_msg("HELP %d of %d in one %zu-byte write: expected INFO lines and OK, got "
                     "\"%.*s\"",
                     i + 1, HELP_BURST, sizeof buf, STATUS_SHOWN, reply);
    }
    assert_true(bb_quiet(c, QUIET_MS));
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

/* ---- 2. A PURGE cut short by SIGTERM says so (issue 9) ---- */

/* Uploads n records <prefix><i> that expired long ago, in one UPLOAD. The reply is
 * "OK uploaded=n", to which a version 2 server adds " expired=n". */
static void
upload_expired(struct bb_client *c, const char *prefix, int first, int n)
{
    static char reply[BB_REPLY_MAX];
    size_t cap = 32 + (size_t)n * 64;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t len = (size_t)snprintf(buf, cap, "UPLOAD %d\n", n);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%07d,,10,FLAT,%s,1\n", prefix, first + i,
                                PAST_EXPIRY);
    bb_send(c, buf, len);
    free(buf);
    bb_get_reply(c, reply);
    char plain[64], v2[96];
    bb_fmt(plain, sizeof plain, "OK uploaded=%d", n);
    bb_fmt(v2, sizeof v2, "OK uploaded=%d expired=%d", n, n);
    if (strcmp(reply, plain) != 0 && strcmp(reply, v2) != 0)
        fail_msg("UPLOAD %d expired records: expected \"%s\", got \"%s\"", n, v2, reply);
}

/* Parses "OK purged=N" or "OK purged=N more=1"; fails on anything else. */
static void
parse_purged(const char *line, unsigned long *n, bool *more)
{
    int used = 0;
    if (sscanf(line, "OK purged=%lu%n", n, &used) != 1 ||
        (line[used] != '\0' && strcmp(line + used, " more=1") != 0))
        fail_msg("PURGE: expected \"OK purged=N\" or \"OK purged=N more=1\", got \"%s\"", line);
    *more = line[used] != '\0';
}

static void
test_purge_cut_short_says_more(void **state)
{
    struct edge_env *e = *state;
    static const char *const args[] = {"--purge-interval", "0", NULL};
    static char reply[BB_REPLY_MAX];
    unsigned long n = 0, total = 0;
    bool more = false;
    size_t tries = sizeof purge_tries / sizeof purge_tries[0];
    size_t t;
    for (t = 0; t < tries; t++) {
        if (!env_drop_server(e))
            fail_msg("the server of the previous try did not exit cleanly");
        struct bb_server *s = env_start(e, args);
        struct bb_client *c = bb_connect_admin(s);
        bb_set_timeout(c, UPLOAD_IO_MS);
        total = (unsigned long)PURGE_COUPONS * (unsigned long)purge_tries[t].sets;
        for (unsigned long first = 0; first < total; first += MAX_UPLOAD)
            upload_expired(c, "X-", (int)first, MAX_UPLOAD);
        bb_set_timeout(c, PURGE_IO_MS);

        int64_t t0 = bb_now_ms();
        bb_send_str(c, "PURGE\n");
        bb_sleep_ms(purge_tries[t].delay_ms);
        bb_server_signal(s, SIGTERM);
        const char *status = bb_get_reply(c, reply);
        print_message("PURGE of %lu, SIGTERM after %d ms: \"%s\" after %lld ms\n", total,
                      purge_tries[t].delay_ms, status, (long long)(bb_now_ms() - t0));
        parse_purged(status, &n, &more);
        /* The server closes the connection after the reply and exits cleanly. */
        assert_true(bb_wait_closed(c, BB_STOP_TIMEOUT_MS));
        bb_close(c);
        assert_int_equal(bb_server_wait(s, BB_STOP_TIMEOUT_MS), 0);
        if (more || n != total)
            break;
        print_message("the purge finished before the SIGTERM; trying again\n");
    }
    if (t == tries)
        fail_msg("every purge, up to %lu coupons, finished before the SIGTERM (\"%s\"): a purge "
                 "that is never cut short cannot test more=1; does it still work in chunks?",
                 total, reply);

    /* more=1 iff the purge left expired coupons behind. */
    if (n > total || more != (n < total))
        fail_msg("a PURGE of %lu expired coupons interrupted by SIGTERM answered \"%s\": more=1 "
                 "must be there exactly when fewer than all were purged",
                 total, reply);

    /* The rest goes in the next PURGE, and nothing was counted twice or lost. */
    if (!bb_server_restart_any_port(e->s))
        fail_msg("coupond did not start again");
    struct bb_client *c = bb_connect_admin(e->s);
    bb_set_timeout(c, PURGE_IO_MS);
    unsigned long m = 0;
    bool more2 = false;
    parse_purged(bb_cmd(c, "PURGE", reply), &m, &more2);
    print_message("after the restart: \"%s\"\n", reply);
    assert_false(more2);
    assert_int_equal(n + m, total);
    assert_int_equal(bb_stat(c, "purged.NONE"), total);
    assert_int_equal(bb_stat(c, "available.NONE"), 0);
    bb_expect(c, "PURGE", "OK purged=0");
    bb_close(c);
}

/* ---- 3. --check on a directory without a store (issue 9) ---- */

/* Number of entries of `dir` besides . and ..; -1 when it cannot be opened. */
static int
dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* `coupond --check -d dir` fails, saying there is no store in dir. */
static void
check_says_no_store(const char *dir)
{
    static char out[OUT_MAX], err[OUT_MAX];
    const char *const args[] = {"--check", "-d", dir, NULL};
    int st = bb_run(args, out, OUT_MAX, err, OUT_MAX);
    char want[BB_PATH_MAX + 32];
    bb_fmt(want, sizeof want, "no store in %s", dir);
    print_message("coupond --check -d %s: status %d, stdout \"%s\", stderr \"%s\"\n", dir, st, out,
                  err);
    if (st <= 0 || (strstr(err, want) == NULL && strstr(out, want) == NULL))
        fail_msg("coupond --check -d %s: expected a non-zero exit saying \"%s\", got status %d\n"
                 "stdout: %s\nstderr: %s",
                 dir, want, st, out, err);
}

static void
test_check_without_store(void **state)
{
    struct edge_env *e = *state;
    char missing[BB_PATH_MAX + 16], empty[BB_PATH_MAX + 16];
    bb_fmt(missing, sizeof missing, "%s/missing", e->aux);
    bb_fmt(empty, sizeof empty, "%s/empty", e->aux);
    assert_int_equal(mkdir(empty, 0700), 0);

    check_says_no_store(missing);
    struct stat st;
    if (stat(missing, &st) == 0)
        fail_msg("coupond --check created %s (%d entries in it)", missing, dir_entries(missing));
    assert_int_equal(errno, ENOENT);

    check_says_no_store(empty);
    int left = dir_entries(empty);
    if (left != 0)
        fail_msg("coupond --check left %d entries in the empty directory %s", left, empty);
}

/* ---- 4. Two CRs before the LF (issue 9) ---- */

static void
test_two_crs_are_a_control_byte(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_send_str(c, "PING\r\r\n");
    bb_expect_reply_prefix(c, "ERR BAD_REQUEST");
    bb_send_str(c, "PING\r\n");
    expect_line(c, "OK PONG");

    /* A record line ending in CR CR LF is rejected, with one ending in CR LF beside it. */
    bb_auth(c);
    bb_send_str(c, "UPLOAD 2\r\nCR-1,,10,FLAT,2099-12-31,1\r\r\nCR-2,,10,FLAT,2099-12-31,1\r\n");
    int lines = bb_read_reply(c, reply);
    if (lines != 2 || strncmp(reply, "REJECT 1 ", 9) != 0 ||
        strcmp(strchr(reply, '\n') + 1, "ERR BAD_BATCH 1 of 2 records rejected, nothing stored") !=
            0)
        fail_msg("a record ending in CR CR LF: expected \"REJECT 1 ...\" and \"ERR BAD_BATCH 1 of "
                 "2 records rejected, nothing stored\", got:\n%s",
                 reply);
    assert_int_equal(bb_stat(c, "created.NONE"), 0);
    bb_send_str(c, "UPLOAD 1\r\nCR-2,,10,FLAT,2099-12-31,1\r\n");
    expect_line(c, "OK uploaded=1");
    assert_int_equal(bb_stat(c, "created.NONE"), 1);
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

/* ---- 5. The line limit counts a trailing CR (issue 9) ---- */

/* Makes line[] "PING", blanks, CR, LF, with `before_lf` bytes before the LF, CR included. */
static void
ping_line(char *line, size_t before_lf)
{
    memset(line, ' ', before_lf - 1);
    memcpy(line, "PING", 4);
    memcpy(line + before_lf - 1, "\r\n", 3);
}

static void
test_line_limit_counts_cr(void **state)
{
    static char over[MAX_LINE + 3], limit[MAX_LINE + 2];
    ping_line(over, MAX_LINE + 1); /* PING, 4,092 blanks, CR: 4,097 bytes */
    ping_line(limit, MAX_LINE);    /* PING, 4,091 blanks, CR: 4,096 bytes */
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_send_str(c, over);
    bb_expect_reply_prefix(c, "ERR TOO_LONG");
    bb_send_str(c, limit);
    expect_line(c, "OK PONG");
    bb_expect(c, "PING", "OK PONG");
    assert_true(bb_quiet(c, QUIET_MS));
    bb_close(c);
}

/* ---- 6. HTTP is judged on the first non-blank line only (issue 9) ---- */

static void
expect_http_refused(struct bb_server *s, const char *what, const char *bytes, size_t len)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = bb_connect(s);
    bb_send(c, bytes, len);
    const char *status = bb_get_reply(c, reply);
    if (!bb_has_prefix(status, "ERR BAD_REQUEST"))
        fail_msg("%s: expected ERR BAD_REQUEST and a close, got \"%s\"", what, reply);
    if (!bb_wait_closed(c, BB_IO_TIMEOUT_MS))
        fail_msg("%s: ERR BAD_REQUEST, but the connection stays open", what);
    bb_close(c);
}

static void
test_http_judged_on_first_line_only(void **state)
{
    struct bb_server *s = bb_server_of(state);
    enum { LONG = 5000 };
    static char line[LONG + 32];

    /* An over-long first line is still the first line: what follows is a command. */
    struct bb_client *c = bb_connect(s);
    memset(line, 'x', LONG);
    line[LONG] = '\n';
    bb_send(c, line, LONG + 1);
    bb_expect_reply_prefix(c, "ERR TOO_LONG");
    bb_send_str(c, "GET / HTTP/1.1\r\n");
    bb_expect_reply_prefix(c, "ERR UNKNOWN_COMMAND");
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);

    /* Kept: a first line (after blank ones) with an HTTP method is refused, long or not. */
    static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    expect_http_refused(s, "GET as the first line", get, sizeof get - 1);
    static const char blank_get[] = "\r\n\r\nGET / HTTP/1.1\r\n";
    expect_http_refused(s, "GET after blank lines", blank_get, sizeof blank_get - 1);
    memset(line, 'a', LONG);
    memcpy(line, "GET /", 5);
    memcpy(line + LONG, " HTTP/1.1\r\n", 12);
    expect_http_refused(s, "a 5,000-byte GET as the first line", line, strlen(line));
}

/* ---- 7. A failed group commit fails only the replies that depended on it (issue 9) ---- */

/* dl_iterate_phdr callback: copies the path of a loaded ASan runtime into `data`. */
static int
find_asan(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const char *base = strrchr(info->dlpi_name, '/');
    if (base == NULL || strncmp(base + 1, "libasan.so", 10) != 0)
        return 0;
    snprintf(data, BB_PATH_MAX, "%s", info->dlpi_name);
    return 1;
}

/* The shim to preload: FAILSYS_PRELOAD (CTest sets it for test_faults), else
 * tests/libfailsys.so of the build tree that holds COUPOND_BIN, after the ASan runtime when this
 * test (built like the server) runs with gcc's shared one, as tests/CMakeLists.txt does. */
static void
failsys_preload(char *buf, size_t size)
{
    const char *preload = getenv("FAILSYS_PRELOAD");
    if (preload != NULL && *preload != '\0') {
        bb_fmt(buf, size, "%s", preload);
        return;
    }
    const char *bin = getenv("COUPOND_BIN");
    const char *slash = bin != NULL ? strrchr(bin, '/') : NULL;
    if (slash == NULL)
        fail_msg("FAILSYS_PRELOAD is not set and COUPOND_BIN names no build directory");
    char lib[BB_PATH_MAX + 32], asan[BB_PATH_MAX] = "";
    bb_fmt(lib, sizeof lib, "%.*s/tests/libfailsys.so", (int)(slash - bin), bin);
    if (access(lib, R_OK) != 0)
        fail_msg("FAILSYS_PRELOAD is not set and there is no %s (build the failsys target)", lib);
    dl_iterate_phdr(find_asan, asan);
    if (asan[0] != '\0')
        bb_fmt(buf, size, "%s:%s", asan, lib);
    else
        bb_fmt(buf, size, "%s", lib);
}

/* Makes the servers started from now on run with the failsys shim, breaking data.mdb while the
 * trigger file exists. */
static void
use_failsys(struct edge_env *e)
{
    char preload[2 * BB_PATH_MAX + 64];
    failsys_preload(preload, sizeof preload);
    setenv("LD_PRELOAD", preload, 1);
    setenv("FAILSYS_TRIGGER", e->trigger, 1);
    setenv("FAILSYS_MATCH", "data.mdb", 1);
}

static void
trigger_on(const struct edge_env *e, const char *how)
{
    int fd = open(e->trigger, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, how, strlen(how)), (ssize_t)strlen(how));
    close(fd);
}

static void
trigger_off(const struct edge_env *e)
{
    assert_int_equal(unlink(e->trigger), 0);
}

static void
test_failed_commit_spares_independent_replies(void **state)
{
    struct edge_env *e = *state;
    bb_lmdb_only("failsys breaks writes of LMDB's data.mdb (test_unavailable stops PostgreSQL)");
    use_failsys(e);
    struct bb_server *s = env_start(e, NULL);
    struct bb_client *admin = bb_connect_admin(s);
    bb_set_timeout(admin, WAIT_IO_MS);
    bb_upload_gen(admin, "GF-", "FREE", FAULT_COUPONS, NULL, 1);
    bb_upload_gen(admin, "GM-", "MEGADEAL", FAULT_COUPONS, NULL, 1);
    char code[CODE_BUF];
    request_code(admin, "alice", "FREE", code);

    /* One write, so that all of it lands in one group: two writes (REDEEM, REQUEST carol) whose
     * commit fails, and between them commands that do not depend on the commit. The client has
     * not authenticated yet: the AUTH in the middle must take effect. */
    struct bb_client *c = bb_connect(s);
    bb_set_timeout(c, WAIT_IO_MS);
    char burst[512];
    bb_fmt(burst, sizeof burst,
           "REDEEM alice %s\nPING\nAUTH %s\nREQUEST bob MEGADEAL\nREQUEST carol FREE\n", code,
           s->key);
    static const char *const sent[] = {"REDEEM alice CODE", "PING", "AUTH key",
                                       "REQUEST bob MEGADEAL", "REQUEST carol FREE"};
    enum { N = sizeof sent / sizeof sent[0] };
    static char got[N][BB_REPLY_MAX];
    trigger_on(e, "EIO");
    bb_send_str(c, burst);
    for (int i = 0; i < N; i++) {
        if (bb_read_reply(c, got[i]) != 1)
            fail_msg("%s, pipelined while the commit fails: expected a one-line reply, got "
                     "\"%s\"",
                     sent[i], got[i]);
        print_message("  %-22s -> %.*s\n", sent[i], STATUS_SHOWN, got[i]);
    }
    bool fine = bb_has_prefix(got[0], "ERR INTERNAL") && strcmp(got[1], "OK PONG") == 0 &&
                strcmp(got[2], "OK") == 0 && bb_has_prefix(got[3], "OK task=") &&
                strstr(got[3], " status=queued ") != NULL && bb_has_prefix(got[4], "ERR INTERNAL");
    if (!fine)
        fail_msg("a failed commit must fail REDEEM and REQUEST carol FREE (ERR INTERNAL) and "
                 "nothing else: PING OK PONG, AUTH OK, REQUEST bob MEGADEAL OK task=... "
                 "status=queued (see the replies above)");
    char task[TASK_BUF];
    task_field(got[3], task);
    trigger_off(e);
    bb_expect_prefix(c, "STATS", "OK"); /* the AUTH took effect */

    /* Nothing of the failed writes happened; the task lives on and is granted. */
    char cmd[CODE_BUF + 32];
    bb_fmt(cmd, sizeof cmd, "VALIDATE alice %s", code);
    const char *v = bb_expect_prefix(c, cmd, "OK code=");
    if (strstr(v, " uses=0 ") == NULL)
        fail_msg("%s after the failed REDEEM: expected uses=0, got \"%s\"", cmd, v);
    assert_int_equal(bb_stat(c, "assigned.FREE"), 1);
    assert_int_equal(bb_stat(c, "redeemed.FREE"), 0);
    uint64_t alive = bb_stat(c, "megadeal.queued") + bb_stat(c, "megadeal.in_flight") +
                     bb_stat(c, "megadeal.granted");
    assert_true(alive >= 1);
    char wait[TASK_BUF + 16], want[TASK_BUF + 48];
    bb_fmt(wait, sizeof wait, "WAIT %s", task);
    bb_fmt(want, sizeof want, "OK task=%s status=granted code=GM-", task);
    const char *granted = bb_expect_prefix(c, wait, "OK task=");
    if (strncmp(granted, want, strlen(want)) != 0)
        fail_msg("%s: expected \"%s...\", got \"%s\"", wait, want, granted);
    assert_int_equal(bb_stat(c, "megadeal.granted"), 1);
    bb_close(c);
    bb_close(admin);
}

/* ---- 8. A held WAIT is answered at a graceful shutdown (issue 15 #1) ---- */

static const char *const rate_one[] = {"--megadeal-rate", "1", NULL};

static void
test_wait_answered_at_shutdown(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *admin = bb_connect_admin(s);
    bb_upload_gen(admin, "SD-", "MEGADEAL", 2 * SHUTDOWN_USERS, NULL, 1);
    char buf[SHUTDOWN_USERS * 40];
    size_t len = 0;
    for (int i = 0; i < SHUTDOWN_USERS; i++)
        len += (size_t)sprintf(buf + len, "REQUEST sd%d MEGADEAL\n", i);
    bb_send(admin, buf, len);
    static char reply[BB_REPLY_MAX];
    char last[TASK_BUF] = "";
    for (int i = 0; i < SHUTDOWN_USERS; i++) {
        const char *st = bb_get_reply(admin, reply);
        if (!bb_has_prefix(st, "OK task=") || strstr(st, " status=queued ") == NULL)
            fail_msg("REQUEST sd%d MEGADEAL: expected a queued task, got \"%s\"", i, st);
        task_field(st, last);
    }

    /* The last task is granted about 4 s from now at one grant a second: WAIT is held. */
    struct bb_client *w = bb_connect(s);
    bb_set_timeout(w, WAIT_IO_MS);
    char cmd[TASK_BUF + 16];
    bb_fmt(cmd, sizeof cmd, "WAIT %s\n", last);
    bb_send_str(w, cmd);
    if (!bb_quiet(w, HELD_MS))
        fail_msg("WAIT for the last of %d tasks at one grant a second was not held",
                 SHUTDOWN_USERS);

    bb_server_signal(s, SIGTERM);
    char line[BB_LINE_MAX];
    enum bb_read r = bb_read_line(w, line, sizeof line);
    print_message("WAIT at SIGTERM: %s\n", r == BB_READ_LINE     ? line
                                           : r == BB_READ_CLOSED ? "(connection closed, no line)"
                                                                 : "(no line)");
    if (r != BB_READ_LINE)
        fail_msg("a WAIT held at SIGTERM got no reply before the connection %s",
                 r == BB_READ_CLOSED ? "closed" : "timed out");
    char granted[TASK_BUF + 48];
    bb_fmt(granted, sizeof granted, "OK task=%s status=granted code=SD-", last);
    bool busy = bb_has_prefix(line, "ERR BUSY") && strstr(line, "shut") != NULL;
    if (!busy && strncmp(line, granted, strlen(granted)) != 0)
        fail_msg("a WAIT held at SIGTERM: expected \"ERR BUSY ...shutting down\" or \"%s...\", "
                 "got \"%s\"",
                 granted, line);
    /* Exactly one status line, then the close; the server exits cleanly. */
    r = bb_read_line(w, line, sizeof line);
    if (r != BB_READ_CLOSED)
        fail_msg("after the WAIT's reply: expected the close, got %s \"%s\"",
                 r == BB_READ_LINE ? "a line" : "no close", r == BB_READ_LINE ? line : "");
    assert_int_equal(bb_server_wait(s, BB_STOP_TIMEOUT_MS), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_beyond_output_cap, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_help_burst_one_write, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_purge_cut_short_says_more, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_check_without_store, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_two_crs_are_a_control_byte, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_line_limit_counts_cr, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_http_judged_on_first_line_only, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_spares_independent_replies, env_setup,
                                        env_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_wait_answered_at_shutdown, bb_setup,
                                                 bb_teardown, (void *)rate_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
