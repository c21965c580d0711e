/* test_v1changes.c - PROTOCOL.md's "Small changes to version 1 behaviour": UPLOAD's expired=K,
 * --min-validity, the MEGADEAL queue of rate x wait tasks, and STATS polls left out of the
 * operation log unless --log-reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bb.h"

#define DAY          86400
#define LOG_WAIT_MS  5000 /* the log is written by a thread behind the loop */
#define REPLY_FIELDS 512

static const char *const min_validity_day[] = {"--min-validity", "86400", NULL};
static const char *const rate_two_wait_three[] = {"--megadeal-rate", "2", "--megadeal-wait", "3",
                                                  NULL};
static const char *const log_reads[] = {"--log-reads", NULL};

/* "CODE,FREE,10,FLAT,<expires>,1" with an expiry `offset` seconds from now. */
static void
record_at(char *buf, size_t size, const char *code, int64_t offset)
{
    char when[32];

    bb_fmt_time(when, sizeof when, (int64_t)time(NULL) + offset);
    bb_fmt(buf, size, "%s,FREE,10,FLAT,%s,1", code, when);
}

/* UPLOAD's OK line counts the records that had expired already; they are stored anyway. */
static void
test_upload_expired_count(void **state)
{
    static char reply[BB_REPLY_MAX];
    char r1[128], r2[128], r3[128], cmd[512];
    struct bb_client *c = bb_connect_admin(bb_server_of(state));

    record_at(r1, sizeof r1, "OLD-1", -2 * DAY);
    record_at(r2, sizeof r2, "OLD-2", -DAY);
    record_at(r3, sizeof r3, "NEW-1", DAY);
    bb_fmt(cmd, sizeof cmd, "UPLOAD 3\n%s\n%s\n%s", r1, r2, r3);
    const char *st = bb_cmd(c, cmd, reply);
    if (strcmp(st, "OK uploaded=3 expired=2") != 0)
        fail_msg("expected \"OK uploaded=3 expired=2\", got \"%s\"", st);
    bb_fmt(cmd, sizeof cmd, "UPLOAD 1\n%s", "FRESH-1,FREE,10,FLAT,2099-12-31,1");
    bb_expect(c, cmd, "OK uploaded=1"); /* nothing expired: no field */
    assert_int_equal(bb_stat(c, "created.FREE"), 4);
    assert_int_equal(bb_stat(c, "available.FREE"), 2);
    bb_close(c);
}

/* With --min-validity 86400 a REQUEST skips coupons expiring within a day, the earliest
 * expiring first among the rest. */
static void
test_min_validity(void **state)
{
    char r1[128], r2[128], r3[128], cmd[512];
    struct bb_client *c = bb_connect_admin(bb_server_of(state));

    record_at(r1, sizeof r1, "SOON-1", 3600);
    record_at(r2, sizeof r2, "LATER-2", 3 * DAY);
    record_at(r3, sizeof r3, "LATER-1", 2 * DAY);
    bb_fmt(cmd, sizeof cmd, "UPLOAD 3\n%s\n%s\n%s", r1, r2, r3);
    bb_expect(c, cmd, "OK uploaded=3");
    bb_expect_prefix(c, "REQUEST alice FREE", "OK code=LATER-1");
    bb_expect_prefix(c, "REQUEST bob FREE", "OK code=LATER-2");
    bb_expect_prefix(c, "REQUEST carol FREE", "ERR NO_COUPONS");
    assert_int_equal(bb_stat(c, "available.FREE"), 1); /* SOON-1: unassigned, not expired */
    bb_close(c);
}

/* --megadeal-rate 2 --megadeal-wait 3: the queue holds 6 tasks; the 7th REQUEST is BUSY. */
static void
test_queue_is_rate_times_wait(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    char buf[16 * 32];
    size_t len = 0;

    bb_upload_gen(c, "Q-", "MEGADEAL", 20, NULL, 1);
    for (int i = 0; i < 7; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "REQUEST q%d MEGADEAL\n", i);
    bb_send(c, buf, len);
    for (int i = 0; i < 6; i++)
        bb_expect_reply_prefix(c, "OK task=");
    const char *st = bb_get_reply(c, reply);
    if (!bb_has_prefix(st, "ERR BUSY") || strstr(st, "(6 tasks)") == NULL)
        fail_msg("the 7th REQUEST got \"%s\", not ERR BUSY naming 6 tasks", st);
    bb_close(c);
}

/* STATS is logged only with --log-reads; a write always is. */
static void
stats_logging(void **state, bool expected)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect_admin(s);
    char log[BB_PATH_MAX + 16], line[REPLY_FIELDS];

    snprintf(log, sizeof log, "%s/ops.log", s->dir);
    (void)bb_stat(c, "commands");
    bb_expect(c, "PING", "OK PONG");
    assert_true(bb_file_wait_line(log, "op=PING", LOG_WAIT_MS, line, sizeof line));
    assert_int_equal(bb_file_count(log, "op=STATS") > 0, expected);
    bb_close(c);
}

static void
test_stats_not_logged(void **state)
{
    stats_logging(state, false);
}

static void
test_stats_logged_with_log_reads(void **state)
{
    stats_logging(state, true);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upload_expired_count, bb_setup, bb_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_min_validity, bb_setup, bb_teardown,
                                                 (void *)min_validity_day),
        cmocka_unit_test_prestate_setup_teardown(test_queue_is_rate_times_wait, bb_setup,
                                                 bb_teardown, (void *)rate_two_wait_three),
        cmocka_unit_test_setup_teardown(test_stats_not_logged, bb_setup, bb_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_stats_logged_with_log_reads, bb_setup,
                                                 bb_teardown, (void *)log_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
