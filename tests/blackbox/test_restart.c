/* test_restart.c - durability and files: what coupond acknowledged survives SIGTERM and kill -9, a
 * batch cut off mid-upload stores nothing, admin.key is made once, private, and kept, and SIGHUP
 * reopens the operation log. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bb.h"
#include "proto.h"

#define PIPELINED_REQUESTS    2000 /* REQUESTs in flight when SIGTERM arrives */
#define CUT_BATCH             100  /* announced records of the cut-off upload */
#define CUT_SENT              50   /* records actually sent before the close */
#define CLOSE_SETTLE_MS       300  /* time for the server to notice a closed connection */
#define KEY_FILE_BYTES        (BB_KEY_HEX + 1)
#define SIGTERM_LAST_YEAR     2090  /* expiry year of the first SIGTERM round */
#define LOG_WAIT_MS           2000  /* the operation log shows an operation within this */
#define LOG_READ_MAX          65536 /* bytes of the operation log read */
#define SETTLE_BEFORE_TERM_MS 300   /* lets the server process every pipelined REQUEST */
#define SMALL_RCVBUF          4096  /* keeps replies queued in the server, not in the kernel */
#define TORN_SHOWN            120   /* bytes of a cut-off reply line printed */

static const char *const types[] = {"NONE", "FREE", "STANDARD", "MEGADEAL"};
static const char *const counters[] = {"created", "assigned", "redeemed", "available", "purged"};
enum { NTYPES = 4, NCOUNTERS = 5 };

/* Reads every per-type counter into v[counter][type]. */
static void
read_counters(struct bb_client *c, uint64_t v[NCOUNTERS][NTYPES])
{
    static char reply[BB_REPLY_MAX];
    const char *status = bb_cmd(c, "STATS", reply);
    assert_string_equal(status, "OK");
    for (int i = 0; i < NCOUNTERS; i++) {
        for (int t = 0; t < NTYPES; t++) {
            char name[64];
            snprintf(name, sizeof name, "%s.%s", counters[i], types[t]);
            if (!bb_stat_find(reply, name, &v[i][t]))
                fail_msg("STATS lacks %s:\n%s", name, reply);
        }
    }
}

static void
assert_counters_equal(uint64_t a[NCOUNTERS][NTYPES], uint64_t b[NCOUNTERS][NTYPES])
{
    for (int i = 0; i < NCOUNTERS; i++)
        for (int t = 0; t < NTYPES; t++)
            if (a[i][t] != b[i][t])
                fail_msg("STAT %s.%s was %llu before the restart, %llu after", counters[i],
                         types[t], (unsigned long long)a[i][t], (unsigned long long)b[i][t]);
}

static void
restart_or_fail(struct bb_server *s)
{
    if (!bb_server_restart(s))
        fail_msg("coupond did not come back on %s", s->dir);
}

static void
test_sigterm_restart_keeps_data(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect_admin(s);
    bb_upload_gen(c, "K-", "", 10, NULL, 3);
    bb_upload_gen(c, "F-", "FREE", 5, NULL, 1);
    bb_expect_prefix(c, "REQUEST alice", "OK code=K-000000 ");
    bb_expect_prefix(c, "REQUEST bob", "OK code=K-000001 ");
    bb_expect_prefix(c, "REQUEST carol FREE", "OK code=F-000000 ");
    bb_expect_prefix(c, "REDEEM alice K-000000", "OK code=K-000000 ");
    bb_expect_prefix(c, "REDEEM alice K-000000", "OK code=K-000000 ");
    bb_expect_prefix(c, "REDEEM carol F-000000", "OK code=F-000000 ");
    uint64_t before[NCOUNTERS][NTYPES], after[NCOUNTERS][NTYPES];
    read_counters(c, before);
    bb_close(c);

    assert_int_equal(bb_server_stop(s), 0);
    restart_or_fail(s);

    c = bb_connect_admin(s);
    read_counters(c, after);
    assert_counters_equal(before, after);
    bb_expect(c, "VALIDATE alice K-000000",
              "OK code=K-000000 type=NONE discount=10.00 kind=FLAT "
              "expires=2099-12-31T23:59:59Z uses=2 max_uses=3");
    bb_expect_prefix(c, "VALIDATE bob K-000001", "OK code=K-000001 ");
    bb_expect_prefix(c, "VALIDATE carol F-000000", "ERR EXHAUSTED");
    bb_expect_prefix(c, "REQUEST dave", "OK code=K-000002 "); /* allocation order is kept */
    bb_close(c);
}

static void
test_sigint_exits_zero(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect_admin(s);
    bb_upload_gen(c, "I-", "", 2, NULL, 1);
    bb_close(c);
    bb_server_signal(s, SIGINT);
    assert_int_equal(bb_server_wait(s, BB_STOP_TIMEOUT_MS), 0);
    restart_or_fail(s);
    c = bb_connect_admin(s);
    assert_int_equal(bb_stat(c, "created.NONE"), 2);
    bb_close(c);
}

static void
test_kill9_keeps_acknowledged_writes(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect_admin(s);
    bb_upload_gen(c, "K-", "", 10, NULL, 5);
    bb_server_kill(s); /* right after the acknowledgement */
    bb_close(c);
    restart_or_fail(s);

    c = bb_connect_admin(s);
    assert_int_equal(bb_stat(c, "created.NONE"), 10);
    bb_send_str(c, "REQUEST alice\nREQUEST alice\nREQUEST bob\n");
    for (int i = 0; i < 3; i++)
        bb_get_reply(c, reply);
    bb_server_kill(s);
    bb_close(c);
    restart_or_fail(s);

    c = bb_connect_admin(s);
    bb_expect_prefix(c, "VALIDATE alice K-000000", "OK code=K-000000 ");
    bb_expect_prefix(c, "VALIDATE alice K-000001", "OK code=K-000001 ");
    bb_expect_prefix(c, "VALIDATE bob K-000002", "OK code=K-000002 ");
    bb_send_str(c, "REDEEM alice K-000000\nREDEEM alice K-000000\nREDEEM bob K-000002\n");
    for (int i = 0; i < 3; i++)
        bb_get_reply(c, reply);
    bb_server_kill(s);
    bb_close(c);
    restart_or_fail(s);

    c = bb_connect_admin(s);
    bb_expect(c, "VALIDATE alice K-000000",
              "OK code=K-000000 type=NONE discount=10.00 kind=FLAT "
              "expires=2099-12-31T23:59:59Z uses=2 max_uses=5");
    bb_expect_prefix(c, "VALIDATE bob K-000002", "OK code=K-000002 ");
    assert_int_equal(bb_stat(c, "created.NONE"), 10);
    assert_int_equal(bb_stat(c, "assigned.NONE"), 3);
    assert_int_equal(bb_stat(c, "redeemed.NONE"), 3);
    assert_int_equal(bb_stat(c, "available.NONE"), 7);
    bb_expect_prefix(c, "REQUEST carol", "OK code=K-000003 ");
    bb_close(c);
}

/* One round of test_sigterm_answers_what_it_commits: `delay_ms` between the last request sent
 * and SIGTERM; `rcvbuf` > 0 shrinks the client's receive buffer so that most replies wait in the
 * server. Returns with the server restarted. */
static void
sigterm_round(struct bb_server *s, int round, int delay_ms, int rcvbuf)
{
    static char line[BB_LINE_MAX];
    char prefix[16], expires[32];
    snprintf(prefix, sizeof prefix, "R%d-", round);
    /* Earlier than every earlier round's leftovers, so this round's coupons go first. */
    snprintf(expires, sizeof expires, "%d-12-31", SIGTERM_LAST_YEAR - round);
    struct bb_client *c = bb_connect_opt(s, rcvbuf);
    assert_non_null(c);
    bb_auth(c);
    uint64_t assigned_before = bb_stat(c, "assigned.NONE");
    bb_upload_gen(c, prefix, "", PIPELINED_REQUESTS, expires, 1);
    size_t cap = PIPELINED_REQUESTS * 32;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t len = 0;
    for (int i = 0; i < PIPELINED_REQUESTS; i++)
        len += (size_t)snprintf(buf + len, cap - len, "REQUEST u%d\n", i);
    bb_send(c, buf, len);
    free(buf);
    bb_sleep_ms(delay_ms);
    bb_server_signal(s, SIGTERM);

    int answered = 0;
    enum bb_read why = BB_READ_LINE;
    while (answered < PIPELINED_REQUESTS &&
           (why = bb_read_line(c, line, sizeof line)) == BB_READ_LINE) {
        char want[64];
        snprintf(want, sizeof want, "OK code=%s%06d ", prefix, answered);
        if (strncmp(line, want, strlen(want)) != 0)
            fail_msg("reply %d during shutdown: expected \"%s...\", got \"%s\"", answered + 1, want,
                     line);
        answered++;
    }
    if (why != BB_READ_LINE && why != BB_READ_CLOSED)
        fail_msg("after %d replies the connection neither answered nor closed", answered);
    size_t torn = c->len;
    char torn_text[TORN_SHOWN + 1];
    snprintf(torn_text, sizeof torn_text, "%.*s", (int)torn, c->buf);
    bb_close(c);
    int status = bb_server_wait(s, BB_STOP_TIMEOUT_MS);
    restart_or_fail(s);

    c = bb_connect_admin(s);
    uint64_t stored = bb_stat(c, "assigned.NONE") - assigned_before;
    print_message("SIGTERM %d ms after %d pipelined REQUESTs (rcvbuf %d): %d answered, %llu "
                  "stored\n",
                  delay_ms, PIPELINED_REQUESTS, rcvbuf, answered, (unsigned long long)stored);
    if (torn > 0)
        fail_msg("the server closed the connection in the middle of reply %d: \"%s\" (%zu bytes); "
                 "%d answered, %llu stored",
                 answered + 1, torn_text, torn, answered, (unsigned long long)stored);
    if (stored != (uint64_t)answered)
        fail_msg("%d REQUESTs answered but %llu stored", answered, (unsigned long long)stored);
    assert_int_equal(status, 0);
    if (answered > 0) {
        char cmd[96];
        snprintf(cmd, sizeof cmd, "VALIDATE u%d %s%06d", answered - 1, prefix, answered - 1);
        bb_expect_prefix(c, cmd, "OK");
    }
    bb_close(c);
}

/* SIGTERM with REQUESTs in flight: every answered one is durable, nothing is durable that was not
 * answered, and no reply is cut in half. Which ones get in depends on timing, so the signal is
 * sent at a few different moments. */
static void
test_sigterm_answers_what_it_commits(void **state)
{
    static const int delays_ms[] = {0, 0, 1, 1, 2, 3, 5, 10};
    int n = (int)(sizeof delays_ms / sizeof delays_ms[0]);
    for (int i = 0; i < n; i++)
        sigterm_round(bb_server_of(state), i, delays_ms[i], 0);
    /* All processed, most replies still queued in the server: they must all be sent. */
    sigterm_round(bb_server_of(state), n, SETTLE_BEFORE_TERM_MS, SMALL_RCVBUF);
}

static void
test_upload_cut_off_stores_nothing(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect_admin(s);
    size_t cap = 32 + CUT_SENT * 64;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t len = (size_t)snprintf(buf, cap, "UPLOAD %d\n", CUT_BATCH);
    for (int i = 0; i < CUT_SENT; i++)
        len += (size_t)snprintf(buf + len, cap - len, "CUT-%06d,,10,FLAT,2030-01-01,1\n", i);
    len += (size_t)snprintf(buf + len, cap - len, "CUT-%06d,,10,FL", CUT_SENT); /* torn record */
    bb_send(c, buf, len);
    free(buf);
    bb_close(c);
    bb_sleep_ms(CLOSE_SETTLE_MS);

    c = bb_connect_admin(s);
    assert_int_equal(bb_stat(c, "created.NONE"), 0);
    bb_expect_prefix(c, "REQUEST alice", "ERR NO_COUPONS");
    bb_close(c);
    assert_int_equal(bb_server_stop(s), 0);
    restart_or_fail(s);

    c = bb_connect_admin(s);
    assert_int_equal(bb_stat(c, "created.NONE"), 0);
    bb_upload_gen(c, "CUT-", "", CUT_BATCH, "2030-01-01", 1); /* the codes are free */
    bb_close(c);
}

/* Reads DIR/admin.key and checks its form and mode; returns its text. */
static void
check_key_file(const struct bb_server *s, char text[KEY_FILE_BYTES + 1])
{
    char path[BB_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/admin.key", s->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    if ((st.st_mode & 07777) != 0600)
        fail_msg("%s has mode %04o, expected 0600", path, (unsigned)(st.st_mode & 07777));
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    char buf[KEY_FILE_BYTES + 16];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n != KEY_FILE_BYTES)
        fail_msg("%s has %zd bytes, expected %d", path, n, KEY_FILE_BYTES);
    for (int i = 0; i < BB_KEY_HEX; i++)
        if (!((buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f')))
            fail_msg("%s byte %d is 0x%02x, not a lower-case hex digit", path, i,
                     (unsigned char)buf[i]);
    assert_int_equal(buf[BB_KEY_HEX], '\n');
    memcpy(text, buf, KEY_FILE_BYTES);
    text[KEY_FILE_BYTES] = '\0';
}

static void
test_admin_key_file(void **state)
{
    struct bb_server *s = bb_server_of(state);
    char first[KEY_FILE_BYTES + 1], second[KEY_FILE_BYTES + 1];
    check_key_file(s, first);
    assert_int_equal(bb_server_stop(s), 0);
    restart_or_fail(s);
    check_key_file(s, second);
    assert_string_equal(first, second);
    bb_server_kill(s);
    restart_or_fail(s);
    check_key_file(s, second);
    assert_string_equal(first, second);
    struct bb_client *c = bb_connect(s);
    char cmd[KEY_FILE_BYTES + 8];
    snprintf(cmd, sizeof cmd, "AUTH %.*s", BB_KEY_HEX, first);
    bb_expect(c, cmd, "OK");
    bb_close(c);
}

/* Reads a whole small file into buf (NUL-terminated); false when it cannot be opened. */
static bool
slurp(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t used = 0;
    ssize_t n;
    while (used + 1 < size && (n = read(fd, buf + used, size - 1 - used)) > 0)
        used += (size_t)n;
    buf[used] = '\0';
    close(fd);
    return true;
}

/* Polls `path` until it holds `needle`, at most LOG_WAIT_MS (the log may be written lazily). */
static bool
log_shows(const char *path, const char *needle, char *buf, size_t size)
{
    int64_t deadline = bb_now_ms() + LOG_WAIT_MS;
    do {
        if (slurp(path, buf, size) && strstr(buf, needle) != NULL)
            return true;
        bb_sleep_ms(BB_POLL_MS);
    } while (bb_now_ms() < deadline);
    return false;
}

/* The operation log names operations, never the key, and SIGHUP reopens it after a rotation. */
static void
test_ops_log_reopened_on_sighup(void **state)
{
    static char text[LOG_READ_MAX];
    struct bb_server *s = bb_server_of(state);
    char log[BB_PATH_MAX + 16], rotated[BB_PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/ops.log", s->dir);
    snprintf(rotated, sizeof rotated, "%s/ops.log.1", s->dir);
    struct bb_client *c = bb_connect_admin(s);
    bb_expect_prefix(c, "REQUEST before-rotation", "ERR NO_COUPONS");
    if (!log_shows(log, "user=before-rotation", text, sizeof text))
        fail_msg("%s does not show the REQUEST of before-rotation:\n%s", log, text);
    assert_true(strstr(text, "op=REQUEST") != NULL);
    assert_null(strstr(text, s->key));

    assert_int_equal(rename(log, rotated), 0);
    bb_server_signal(s, SIGHUP);
    bb_sleep_ms(LOG_WAIT_MS / 4);
    bb_expect_prefix(c, "REQUEST after-rotation", "ERR NO_COUPONS");
    if (!log_shows(log, "user=after-rotation", text, sizeof text))
        fail_msg("after SIGHUP, %s does not show the REQUEST of after-rotation:\n%s", log, text);
    assert_null(strstr(text, "before-rotation"));
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sigterm_restart_keeps_data, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_sigint_exits_zero, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_kill9_keeps_acknowledged_writes, bb_setup,
                                        bb_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_answers_what_it_commits, bb_setup,
                                        bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_cut_off_stores_nothing, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_admin_key_file, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_ops_log_reopened_on_sighup, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
