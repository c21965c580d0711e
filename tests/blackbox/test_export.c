/* test_export.c - EXPORT (PROTOCOL.md version 2, "Code generation and export") against the real
 * server: every coupon (of a type) or every redemption after SEQ, one line each, then
 * OK count=N; one consistent snapshot while writes go on; 100,000 coupons streamed while
 * another client's REQUESTs are answered promptly (their p95 is bounded); the replies after an
 * EXPORT wait behind it; a client that stops reading is cut off, one that leaves is let go. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bb.h"
#include "proto.h"

#define BIG          100000    /* coupons of the large export */
#define HALF         (BIG / 2) /* one UPLOAD's worth (--max-upload) */
#define SIDE_COUPONS 5000      /* FREE coupons the other client REQUESTs during the export */
#define SNAPSHOT_N   5000      /* coupons of the snapshot test */
#define LATE_N       100       /* coupons uploaded while it streams */
#define STREAM_IO_MS 60000
/* A loop stalled by the export delays most REQUESTs behind it by seconds; a lone commit whose
 * fsync a busy disk held up (CI runs PostgreSQL clusters beside this test) delays one. So the
 * bound is on the 95th percentile, which one such outlier among MIN_SAMPLES cannot move. */
#define P95_LIMIT_MS   1000
#define MIN_SAMPLES    20
#define STALL_WAIT_MS  9000 /* CONN_OUT_STALL (5 s) and slack */
#define LOG_WAIT_MS    5000
#define SMALL_RCVBUF   4096
#define EXIT_BAD_REPLY 3
/* The exporting client pauses 1 ms every PACE_ROWS rows, so the export lasts a few hundred
 * milliseconds and its output backs up and drains many times, as with a real consumer. */
#define PACE_ROWS 500

/* ---- helpers ---- */

/* Reads lines until a status line; counts those that start with `head` (every data line must).
 * Returns the status line (static). Lines starting with `forbid` (when not NULL) fail. */
static const char *
read_rows(struct bb_client *c, const char *head, const char *forbid, size_t *rows)
{
    static char line[BB_LINE_MAX];
    size_t hl = strlen(head);
    *rows = 0;
    for (;;) {
        if (bb_read_line(c, line, sizeof line) != BB_READ_LINE)
            fail_msg("the reply broke off after %zu rows", *rows);
        if (proto_reply_kind(line, strlen(line)) != PROTO_REPLY_DATA)
            return line;
        if (strncmp(line, head, hl) != 0)
            fail_msg("row %zu: \"%s\" does not start with \"%s\"", *rows + 1, line, head);
        if (forbid != NULL && strstr(line, forbid) != NULL)
            fail_msg("row %zu: \"%s\" should not be in this export", *rows + 1, line);
        (*rows)++;
    }
}

/* True when the server runs with AddressSanitizer, whose quarantine keeps freed buffers and
 * makes its memory grow with traffic, so memory bounds do not apply. */
static bool
server_has_asan(const struct bb_server *s)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)s->pid);
    return bb_file_count(path, "libasan") > 0;
}

static struct bb_client *
admin(void **state)
{
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    bb_set_timeout(c, STREAM_IO_MS);
    return c;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- small exports ---- */

static void
test_export_coupons(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = admin(state);
    size_t rows;
    bb_upload_gen(c, "A-", "", 3, NULL, 2);
    bb_upload_gen(c, "B-", "FREE", 2, NULL, 1);
    bb_expect_prefix(c, "REQUEST alice FREE", "OK code=B-000000 ");

    bb_send_str(c, "EXPORT COUPONS\n");
    assert_string_equal(read_rows(c, "COUPON code=", NULL, &rows), "OK count=5");
    assert_int_equal(rows, 5);
    /* One line as COUPON code shows it, without the history. */
    const char *st = bb_cmd(c, "EXPORT COUPONS FREE", reply);
    assert_string_equal(st, "OK count=2");
    char *second = strchr(reply, '\n') + 1;
    second[-1] = '\0';
    assert_true(bb_has_prefix(reply, "COUPON code=B-000000 type=FREE discount=10.00 kind=FLAT "
                                     "expires=2099-12-31T23:59:59Z uses=0 max_uses=1 user=alice "
                                     "assigned="));
    assert_true(bb_has_prefix(second, "COUPON code=B-000001 type=FREE discount=10.00 kind=FLAT "
                                      "expires=2099-12-31T23:59:59Z uses=0 max_uses=1 user=- "
                                      "assigned=-\nOK count=2"));
    bb_send_str(c, "export coupons none\n");
    assert_string_equal(read_rows(c, "COUPON code=A-", NULL, &rows), "OK count=3");
    bb_send_str(c, "EXPORT COUPONS MEGADEAL\n");
    assert_string_equal(read_rows(c, "COUPON", NULL, &rows), "OK count=0");
    bb_close(c);
}

static void
test_export_history(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = admin(state);
    size_t rows;
    bb_upload_gen(c, "H-", "STANDARD", 2, NULL, 5);
    bb_expect_prefix(c, "REQUEST alice STANDARD", "OK code=H-000000 ");
    bb_expect_prefix(c, "REQUEST bob STANDARD", "OK code=H-000001 ");
    for (int i = 0; i < 3; i++)
        bb_expect_prefix(c, "REDEEM alice H-000000", "OK ");
    for (int i = 0; i < 2; i++)
        bb_expect_prefix(c, "REDEEM bob H-000001", "OK ");

    bb_send_str(c, "EXPORT HISTORY\n");
    assert_string_equal(read_rows(c, "REDEMPTION seq=", NULL, &rows), "OK count=5");
    const char *st = bb_cmd(c, "EXPORT HISTORY after=3", reply);
    assert_string_equal(st, "OK count=2");
    assert_true(bb_has_prefix(reply, "REDEMPTION seq=4 time="));
    assert_non_null(strstr(reply, " code=H-000001 type=STANDARD user=bob\nREDEMPTION seq=5 "));
    assert_string_equal(bb_cmd(c, "EXPORT HISTORY after=5", reply), "OK count=0");
    /* An undone use is marked. */
    bb_expect_prefix(c, "UNREDEEM bob 5", "OK ");
    st = bb_cmd(c, "EXPORT HISTORY after=4", reply);
    assert_string_equal(st, "OK count=1");
    assert_true(bb_has_prefix(reply, "REDEMPTION seq=5 time="));
    assert_non_null(strstr(reply, " code=H-000001 type=STANDARD user=bob undone="));
    bb_close(c);
}

static void
test_export_needs_auth(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_expect_prefix(c, "EXPORT COUPONS", "ERR DENIED");
    bb_expect_prefix(c, "EXPORT HISTORY", "ERR DENIED");
    bb_auth(c);
    bb_expect_prefix(c, "EXPORT", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "EXPORT AUDITS", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "EXPORT HISTORY FREE", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "EXPORT COUPONS after=1", "ERR BAD_REQUEST");
    bb_expect(c, "EXPORT HISTORY after=0", "OK count=0");
    bb_close(c);
}

/* Replies sent after an EXPORT come after all of it, in order. */
static void
test_replies_wait_behind_export(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = admin(state);
    size_t rows;
    bb_upload_gen(c, "O-", "", 3000, NULL, 1);
    bb_send_str(c, "EXPORT COUPONS\nPING\nREQUEST alice\nEXPORT HISTORY\nPING\n");
    assert_string_equal(read_rows(c, "COUPON code=O-", NULL, &rows), "OK count=3000");
    bb_expect_reply_prefix(c, "OK PONG");
    bb_expect_reply_prefix(c, "OK code=O-000000 ");
    assert_string_equal(bb_get_reply(c, reply), "OK count=0");
    bb_expect_reply_prefix(c, "OK PONG");
    bb_close(c);
}

/* ---- one snapshot ---- */

static void
test_export_is_one_snapshot(void **state)
{
    static char line[BB_LINE_MAX];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = admin(state);
    struct bb_client *slow = bb_connect_opt(s, SMALL_RCVBUF);
    size_t rows;
    assert_non_null(slow);
    bb_set_timeout(slow, STREAM_IO_MS);
    bb_auth(slow);
    bb_upload_gen(c, "S-", "", SNAPSHOT_N, NULL, 1);
    bb_send_str(slow, "EXPORT COUPONS\n");
    assert_int_equal(bb_read_line(slow, line, sizeof line), BB_READ_LINE);
    assert_true(bb_has_prefix(line, "COUPON code=S-000000 "));
    /* While it streams: new coupons that sort last, and a redemption of an exported one. */
    bb_upload_gen(c, "ZZ-", "", LATE_N, NULL, 1);
    bb_expect_prefix(c, "REQUEST alice", "OK code=S-000000 ");
    const char *st = read_rows(slow, "COUPON code=S-", "user=alice", &rows);
    assert_string_equal(st, "OK count=5000");
    assert_int_equal(rows + 1, SNAPSHOT_N);
    /* A new export shows them. */
    bb_send_str(c, "EXPORT COUPONS\n");
    assert_string_equal(read_rows(c, "COUPON code=", NULL, &rows), "OK count=5100");
    bb_close(slow);
    bb_close(c);
}

/* ---- 100,000 coupons while another client is served ---- */

/* The exporting child: its own connection, the whole export read and checked; tells the parent
 * through `ready` once the export has begun. Exits 0 when all was right. */
static void
export_child(struct bb_server *s, int ready)
{
    static char line[BB_LINE_MAX];
    struct bb_client *c = bb_connect_opt(s, 0);
    size_t rows = 0;
    if (c == NULL)
        _exit(1);
    bb_set_timeout(c, STREAM_IO_MS);
    char auth[BB_KEY_HEX + 8];
    snprintf(auth, sizeof auth, "AUTH %s\n", s->key);
    if (bb_try_send(c, auth, strlen(auth)) != 0 || bb_read_line(c, line, sizeof line) ||
        strcmp(line, "OK") != 0)
        _exit(1);
    if (bb_try_send(c, "EXPORT COUPONS STANDARD\n", 24) != 0)
        _exit(1);
    while (bb_read_line(c, line, sizeof line) == BB_READ_LINE) {
        if (strncmp(line, "COUPON code=", 12) != 0)
            break;
        if (++rows == 1 && write(ready, "x", 1) != 1)
            _exit(1);
        if (rows % PACE_ROWS == 0)
            bb_sleep_ms(1);
    }
    char want[64];
    snprintf(want, sizeof want, "OK count=%d", BIG);
    if (rows != BIG || strcmp(line, want) != 0) {
        fprintf(stderr, "export: %zu rows, then \"%s\"\n", rows, line);
        _exit(EXIT_BAD_REPLY);
    }
    _exit(0);
}

static void
test_export_100k_while_serving(void **state)
{
    static char reply[BB_REPLY_MAX];
    static int64_t lat_us[SIDE_COUPONS];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = admin(state);
    int pipefd[2];
    bb_upload_gen(c, "X-", "STANDARD", HALF, NULL, 1);
    bb_upload_gen(c, "Y-", "STANDARD", HALF, NULL, 1);
    bb_upload_gen(c, "F-", "FREE", SIDE_COUPONS, NULL, 1);

    assert_int_equal(pipe(pipefd), 0);
    int64_t t0 = bb_now_ms();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        export_child(s, pipefd[1]);
    }
    close(pipefd[1]);
    char x;
    assert_int_equal(read(pipefd[0], &x, 1), 1); /* the export is streaming */
    close(pipefd[0]);

    size_t n = 0;
    int status = 0;
    pid_t done = 0;
    while (n < SIDE_COUPONS && (done = waitpid(pid, &status, WNOHANG)) == 0) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        const char *st = bb_cmd(c, "REQUEST shopper FREE", reply);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (!bb_has_prefix(st, "OK code=") || strstr(st, " type=FREE ") == NULL)
            fail_msg("REQUEST during the export: \"%s\"", st);
        lat_us[n++] = (b.tv_sec - a.tv_sec) * 1000000LL + (b.tv_nsec - a.tv_nsec) / 1000;
    }
    if (done == 0)
        assert_int_equal(waitpid(pid, &status, 0), pid);
    int64_t took = bb_now_ms() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the exporting client failed (status %d)", status);
    if (n < MIN_SAMPLES)
        fail_msg("only %zu REQUESTs answered during the %lld ms export", n, (long long)took);
    qsort(lat_us, n, sizeof lat_us[0], cmp_i64);
    int64_t p95 = lat_us[(n * 95) / 100];
    int64_t p99 = lat_us[(n * 99) / 100];
    print_message("export of %d coupons took %lld ms; meanwhile %zu REQUESTs of another client: "
                  "p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                  BIG, (long long)took, n, lat_us[n / 2] / 1e3, p95 / 1e3, p99 / 1e3,
                  lat_us[n - 1] / 1e3);
    if (p95 > P95_LIMIT_MS * 1000LL)
        fail_msg("REQUESTs waited for the export: p95 %.1f ms", p95 / 1e3);
    assert_int_equal(bb_stat(c, "assigned.FREE"), n);
    bb_close(c);
}

/* ---- clients that stop reading, or leave ---- */

static void
test_stalled_reader_cut_off(void **state)
{
    char path[BB_PATH_MAX + 16], line[BB_LINE_MAX];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = admin(state);
    struct bb_client *stalled = bb_connect_opt(s, SMALL_RCVBUF);
    assert_non_null(stalled);
    bb_auth(stalled);
    bb_upload_gen(c, "X-", "", HALF, NULL, 1);
    bb_upload_gen(c, "Y-", "", HALF, NULL, 1);
    long before_kb = bb_proc_kb(s, "RssAnon");
    bb_send_str(stalled, "EXPORT COUPONS\n");
    /* It never reads. Everyone else is served meanwhile. */
    for (int64_t until = bb_now_ms() + STALL_WAIT_MS; bb_now_ms() < until;) {
        bb_expect(c, "PING", "OK PONG");
        bb_sleep_ms(100);
    }
    snprintf(path, sizeof path, "%s/ops.log", s->dir);
    if (!bb_file_wait_line(path, "reason=output_stalled", LOG_WAIT_MS, line, sizeof line))
        fail_msg("no DROP reason=output_stalled in %s", path);
    assert_true(bb_wait_closed(stalled, LOG_WAIT_MS));
    long after_kb = bb_proc_kb(s, "RssAnon");
    print_message("server RssAnon %ld kB before the export, %ld kB after the cut\n", before_kb,
                  after_kb);
    /* 13 MB of rows were never buffered: what was held was a chunk and the soft limit. */
    if (before_kb > 0 && after_kb > before_kb + 8 * 1024 && !server_has_asan(s))
        fail_msg("RSS grew by %ld kB for a client that did not read", after_kb - before_kb);
    bb_close(stalled);
    bb_expect_prefix(c, "EXPORT HISTORY", "OK count=0");
    bb_close(c);
}

static void
test_client_leaves_mid_export(void **state)
{
    static char line[BB_LINE_MAX];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = admin(state);
    size_t rows;
    bb_upload_gen(c, "L-", "", HALF, NULL, 1);
    for (int round = 0; round < 3; round++) {
        struct bb_client *leaver = bb_connect_opt(s, SMALL_RCVBUF);
        assert_non_null(leaver);
        bb_auth(leaver);
        bb_send_str(leaver, "EXPORT COUPONS\nEXPORT HISTORY\n");
        for (int i = 0; i < 10; i++)
            assert_int_equal(bb_read_line(leaver, line, sizeof line), BB_READ_LINE);
        bb_close(leaver); /* its cursor must be let go */
    }
    /* Writes go on, and a whole export still works. */
    bb_expect_prefix(c, "REQUEST alice", "OK code=L-000000 ");
    bb_send_str(c, "EXPORT COUPONS\n");
    assert_string_equal(read_rows(c, "COUPON code=L-", NULL, &rows), "OK count=50000");
    bb_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_export_coupons, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_export_history, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_export_needs_auth, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_replies_wait_behind_export, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_export_is_one_snapshot, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_export_100k_while_serving, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_stalled_reader_cut_off, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_client_leaves_mid_export, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
