/* test_lifecycle.c - a coupon's life after REQUEST (PROTOCOL.md version 2, "Lookups" and "Holds
 * and undo") against the real server: HOLD counts against max_uses until it is used, released
 * or ends by itself; REDEEM with a hold; forged hold ids; UNREDEEM gives a use back and keeps the
 * history marked undone; COUPONS and COUPON show what a user has and what happened to a code;
 * STATS counts held and unredeemed uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "bb.h"
#include "proto.h"

#define LINE_MAX_    1024
#define HID_BUF      (PROTO_HOLD_MAX + 1)
#define HID_CHARS    67    /* a hold id: base64 of 50 bytes */
#define CLOCK_SLACK  5     /* seconds between the test's clock and a reply's time */
#define EXPIRY_WAIT  8000  /* ms: a 1-second hold has ended and been swept within this */
#define MANY_COUPONS 1001  /* one more than COUPONS shows */
#define MANY_USES    2500  /* redemptions of one coupon, streamed by COUPON */
#define BATCH_SEND   64000 /* bytes of pipelined commands per send */
#define STREAM_IO_MS 30000

static const char *const types[] = {"NONE", "FREE", "STANDARD", "MEGADEAL"};

/* ---- helpers ---- */

static const char *
one_line(struct bb_client *c, const char *cmd)
{
    static char reply[BB_REPLY_MAX];
    static char copy[LINE_MAX_];
    const char *st = bb_cmd(c, cmd, reply);
    if (st != reply)
        fail_msg("\"%s\": expected one line, got:\n%s", cmd, reply);
    snprintf(copy, sizeof copy, "%s", st);
    return copy;
}

static void
field(const char *line, const char *key, char *out, size_t cap)
{
    const char *v;
    size_t n;
    if (!proto_reply_field(line, strlen(line), key, &v, &n) || n >= cap)
        fail_msg("no %s= in \"%s\"", key, line);
    memcpy(out, v, n);
    out[n] = '\0';
}

static int64_t
time_field(const char *line, const char *key)
{
    char v[64];
    int64_t t;
    field(line, key, v, sizeof v);
    if (!proto_parse_time(v, strlen(v), &t, NULL))
        fail_msg("%s= is no time in \"%s\"", key, line);
    return t;
}

/* HOLD that must succeed; its hold id into hid. Returns the reply line (static). */
static const char *
hold(struct bb_client *c, const char *cmd, char hid[HID_BUF])
{
    const char *line = one_line(c, cmd);
    if (!bb_has_prefix(line, "OK hold="))
        fail_msg("\"%s\": \"%s\"", cmd, line);
    field(line, "hold", hid, HID_BUF);
    return line;
}

/* An admin client with `n` coupons "<prefix>NNNNNN" of max_uses, the first `assign` of them
 * assigned to alice (in order). */
static struct bb_client *
setup_coupons(void **state, const char *prefix, size_t n, unsigned max_uses, size_t assign)
{
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    bb_upload_gen(c, prefix, "", n, NULL, max_uses);
    for (size_t i = 0; i < assign; i++)
        bb_expect_prefix(c, "REQUEST alice", "OK code=");
    return c;
}

static void
wait_stat(struct bb_client *admin, const char *name, uint64_t want, int ms)
{
    int64_t until = bb_now_ms() + ms;
    uint64_t v = 0;
    while ((v = bb_stat(admin, name)) != want && bb_now_ms() < until)
        bb_sleep_ms(BB_POLL_MS);
    if (v != want)
        fail_msg("STAT %s is %llu, expected %llu", name, (unsigned long long)v,
                 (unsigned long long)want);
}

/* ---- holds ---- */

static void
test_hold_reply_form(void **state)
{
    struct bb_client *c = setup_coupons(state, "H-", 1, 3, 1);
    char hid[HID_BUF];
    int64_t now = (int64_t)time(NULL);

    const char *line = hold(c, "HOLD alice h-000000", hid);
    /* OK hold=HID expires_at=TIME, then the coupon fields. */
    if (strncmp(line, "OK hold=", 8) != 0 || strstr(line, " expires_at=") == NULL)
        fail_msg("HOLD: \"%s\"", line);
    assert_int_equal(strlen(hid), HID_CHARS);
    assert_int_equal(
        strspn(hid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), HID_CHARS);
    const char *coupon = strstr(line, " code=");
    assert_non_null(coupon);
    assert_true(bb_has_prefix(coupon + 1, "code=H-000000 type=NONE discount=10.00 kind=FLAT "
                                          "expires=2099-12-31T23:59:59Z uses=0 max_uses=3"));
    int64_t at = time_field(line, "expires_at");
    if (at < now + 900 - CLOCK_SLACK || at > now + 900 + CLOCK_SLACK)
        fail_msg("default hold of 900 s ends at %lld, now is %lld", (long long)at, (long long)now);
    line = hold(c, "HOLD alice H-000000 60", hid);
    at = time_field(line, "expires_at");
    if (at < now + 60 - CLOCK_SLACK || at > now + 60 + CLOCK_SLACK)
        fail_msg("hold of 60 s ends at %lld, now is %lld", (long long)at, (long long)now);
    assert_int_equal(bb_stat(c, "held.NONE"), 2);
    bb_close(c);
}

static void
test_hold_counts_against_max_uses(void **state)
{
    struct bb_client *c = setup_coupons(state, "H-", 1, 2, 1);
    char h1[HID_BUF], h2[HID_BUF], cmd[LINE_MAX_];

    hold(c, "HOLD alice H-000000", h1);
    hold(c, "HOLD alice H-000000", h2);
    assert_string_not_equal(h1, h2);
    /* uses + live holds = max_uses: nothing more. */
    bb_expect_prefix(c, "HOLD alice H-000000", "ERR EXHAUSTED");
    bb_expect_prefix(c, "REDEEM alice H-000000", "ERR EXHAUSTED");
    bb_expect_prefix(c, "VALIDATE alice H-000000", "ERR EXHAUSTED");
    /* A hold is used by its REDEEM, once. */
    bb_fmt(cmd, sizeof cmd, "REDEEM alice H-000000 hold=%s", h1);
    const char *line = one_line(c, cmd);
    assert_true(bb_has_prefix(line, "OK code=H-000000 type=NONE discount=10.00 kind=FLAT "
                                    "expires=2099-12-31T23:59:59Z uses=1 max_uses=2 "
                                    "redemption="));
    bb_expect_prefix(c, cmd, "ERR UNKNOWN_HOLD");
    bb_expect_prefix(c, "REDEEM alice H-000000", "ERR EXHAUSTED"); /* h2 still holds one */
    /* RELEASE gives the use back, once. */
    bb_fmt(cmd, sizeof cmd, "RELEASE %s", h2);
    bb_expect(c, cmd, "OK released=1");
    bb_expect_prefix(c, cmd, "ERR UNKNOWN_HOLD");
    bb_expect_prefix(c, "REDEEM alice H-000000", "OK code=H-000000 ");
    bb_expect_prefix(c, "REDEEM alice H-000000", "ERR EXHAUSTED");
    assert_int_equal(bb_stat(c, "held.NONE"), 0);
    assert_int_equal(bb_stat(c, "redeemed.NONE"), 2);
    bb_close(c);
}

static void
test_hold_checks(void **state)
{
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    char hid[HID_BUF], cmd[LINE_MAX_];
    bb_send_str(c, "UPLOAD 1\nX-000000,,10,FLAT,2000-01-01,1\n");
    bb_expect_reply_prefix(c, "OK uploaded=1 expired=1");
    bb_upload_gen(c, "Y-", "", 2, NULL, 1);
    bb_expect_prefix(c, "REQUEST alice", "OK code=Y-000000 "); /* X- expired: not assigned */
    bb_expect_prefix(c, "REQUEST bob", "OK code=Y-000001 ");
    /* The VALIDATE checks, in order. */
    bb_expect_prefix(c, "HOLD alice NOPE", "ERR INVALID");
    bb_expect_prefix(c, "HOLD bob Y-000000", "ERR INVALID");
    bb_expect_prefix(c, "HOLD alice Y-000000 0", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "HOLD alice Y-000000 86401", "ERR BAD_REQUEST");
    hold(c, "HOLD alice Y-000000 86400", hid);
    /* A hold is of its coupon and user. */
    bb_fmt(cmd, sizeof cmd, "REDEEM bob Y-000001 hold=%s", hid);
    bb_expect_prefix(c, cmd, "ERR UNKNOWN_HOLD");
    bb_fmt(cmd, sizeof cmd, "REDEEM bob Y-000000 hold=%s", hid);
    bb_expect_prefix(c, cmd, "ERR INVALID");
    /* Forged, altered, truncated ids: the one message, nothing revealed. */
    char bad[HID_BUF];
    snprintf(bad, sizeof bad, "%s", hid);
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    bb_fmt(cmd, sizeof cmd, "RELEASE %s", bad);
    bb_expect(c, cmd, "ERR BAD_HOLD " PROTO_BAD_HOLD_MSG);
    bb_fmt(cmd, sizeof cmd, "REDEEM alice Y-000000 hold=%s", bad);
    bb_expect(c, cmd, "ERR BAD_HOLD " PROTO_BAD_HOLD_MSG);
    bb_fmt(cmd, sizeof cmd, "RELEASE %.*s", HID_CHARS - 1, hid);
    bb_expect(c, cmd, "ERR BAD_HOLD " PROTO_BAD_HOLD_MSG);
    bb_expect(c, "RELEASE not-a-hold", "ERR BAD_HOLD " PROTO_BAD_HOLD_MSG);
    bb_expect(c, "RELEASE a.b", "ERR BAD_HOLD " PROTO_BAD_HOLD_MSG);
    /* A task id is no hold id. */
    bb_upload_gen(c, "M-", "MEGADEAL", 1, NULL, 1);
    char task[PROTO_TASK_MAX + 1];
    field(one_line(c, "REQUEST carol MEGADEAL"), "task", task, sizeof task);
    bb_fmt(cmd, sizeof cmd, "RELEASE %s", task);
    bb_expect(c, cmd, "ERR BAD_HOLD " PROTO_BAD_HOLD_MSG);
    /* The hold is untouched by all that. */
    bb_fmt(cmd, sizeof cmd, "REDEEM alice Y-000000 hold=%s", hid);
    bb_expect_prefix(c, cmd, "OK code=Y-000000 ");
    bb_close(c);
}

static void
test_hold_expires_by_itself(void **state)
{
    struct bb_client *c = setup_coupons(state, "E-", 1, 1, 1);
    char hid[HID_BUF], cmd[LINE_MAX_];

    hold(c, "HOLD alice E-000000 1", hid);
    bb_expect_prefix(c, "REDEEM alice E-000000", "ERR EXHAUSTED");
    assert_int_equal(bb_stat(c, "held.NONE"), 1);
    /* Nobody releases it: its use comes back by itself. */
    wait_stat(c, "held.NONE", 0, EXPIRY_WAIT);
    bb_fmt(cmd, sizeof cmd, "RELEASE %s", hid);
    bb_expect_prefix(c, cmd, "ERR UNKNOWN_HOLD");
    bb_fmt(cmd, sizeof cmd, "REDEEM alice E-000000 hold=%s", hid);
    bb_expect_prefix(c, cmd, "ERR UNKNOWN_HOLD");
    bb_expect_prefix(c, "REDEEM alice E-000000", "OK code=E-000000 ");
    bb_close(c);
}

static void
test_holds_are_durable(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = setup_coupons(state, "D-", 1, 1, 1);
    char hid[HID_BUF], cmd[LINE_MAX_];

    hold(c, "HOLD alice D-000000", hid);
    bb_close(c);
    bb_server_kill(s);
    if (!bb_server_restart(s))
        fail_msg("coupond did not come back");
    c = bb_connect_admin(s);
    assert_int_equal(bb_stat(c, "held.NONE"), 1);
    bb_expect_prefix(c, "REDEEM alice D-000000", "ERR EXHAUSTED");
    bb_fmt(cmd, sizeof cmd, "REDEEM alice D-000000 hold=%s", hid); /* the id survives too */
    bb_expect_prefix(c, cmd, "OK code=D-000000 ");
    assert_int_equal(bb_stat(c, "held.NONE"), 0);
    bb_close(c);
}

/* ---- undo ---- */

static void
test_unredeem_keeps_history(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = setup_coupons(state, "U-", 1, 3, 1);
    char s1[32], s2[32], cmd[LINE_MAX_];

    field(one_line(c, "REDEEM alice U-000000"), "redemption", s1, sizeof s1);
    field(one_line(c, "REDEEM alice U-000000"), "redemption", s2, sizeof s2);
    assert_true(strtoull(s2, NULL, 10) > strtoull(s1, NULL, 10));
    bb_fmt(cmd, sizeof cmd, "UNREDEEM alice %s", s1);
    bb_expect(c, cmd,
              "OK code=U-000000 type=NONE discount=10.00 kind=FLAT expires=2099-12-31T23:59:59Z "
              "uses=1 max_uses=3");
    bb_expect_prefix(c, cmd, "ERR UNKNOWN_REDEMPTION"); /* twice */
    bb_fmt(cmd, sizeof cmd, "UNREDEEM bob %s", s2);     /* not bob's */
    bb_expect_prefix(c, cmd, "ERR UNKNOWN_REDEMPTION");
    bb_expect_prefix(c, "UNREDEEM alice 999999", "ERR UNKNOWN_REDEMPTION");
    bb_expect_prefix(c, "UNREDEEM alice 0", "ERR BAD_REQUEST");
    assert_int_equal(bb_stat(c, "redeemed.NONE"), 2); /* every use ever counted */
    assert_int_equal(bb_stat(c, "unredeemed.NONE"), 1);

    /* COUPON shows the history, the undone use marked. */
    const char *st = bb_cmd(c, "COUPON U-000000", reply);
    assert_string_equal(st, "OK");
    char *l2 = strchr(reply, '\n');
    assert_non_null(l2);
    *l2++ = '\0';
    assert_true(bb_has_prefix(reply, "COUPON code=U-000000 type=NONE discount=10.00 kind=FLAT "
                                     "expires=2099-12-31T23:59:59Z uses=1 max_uses=3 user=alice "
                                     "assigned="));
    char *l3 = strchr(l2, '\n');
    assert_non_null(l3);
    *l3++ = '\0';
    char want[LINE_MAX_];
    snprintf(want, sizeof want, "REDEMPTION seq=%s time=", s1);
    assert_int_equal(strncmp(l2, want, strlen(want)), 0);
    assert_non_null(strstr(l2, " user=alice undone="));
    snprintf(want, sizeof want, "REDEMPTION seq=%s time=", s2);
    assert_int_equal(strncmp(l3, want, strlen(want)), 0);
    assert_non_null(strchr(l3, '\n'));
    assert_string_equal(strchr(l3, '\n'), "\nOK");
    *strchr(l3, '\n') = '\0';
    assert_null(strstr(l3, "undone"));
    assert_true(bb_has_prefix(strstr(l3, " user="), " user=alice"));
    /* The use given back can be used again. */
    bb_expect_prefix(c, "REDEEM alice U-000000",
                     "OK code=U-000000 type=NONE discount=10.00 "
                     "kind=FLAT expires=2099-12-31T23:59:59Z uses=2");
    bb_close(c);
}

/* ---- lookups ---- */

static void
test_coupons_of_user(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = setup_coupons(state, "C-", 5, 1, 3);
    struct bb_client *anon = bb_connect(bb_server_of(state));

    /* No AUTH needed; newest first; the coupon fields and assigned=. */
    const char *st = bb_cmd(anon, "COUPONS alice", reply);
    assert_string_equal(st, "OK count=3");
    const char *want[] = {"COUPON code=C-000002 ", "COUPON code=C-000001 ",
                          "COUPON code=C-000000 "};
    const char *p = reply;
    for (int i = 0; i < 3; i++) {
        if (strncmp(p, want[i], strlen(want[i])) != 0)
            fail_msg("COUPONS alice line %d: expected \"%s...\" in\n%s", i + 1, want[i], reply);
        const char *end = strchr(p, '\n');
        char line[LINE_MAX_];
        snprintf(line, sizeof line, "%.*s", (int)(end - p), p);
        struct proto_coupon pc;
        assert_true(proto_reply_coupon(line, strlen(line), &pc));
        int64_t at = time_field(line, "assigned");
        assert_true(llabs(at - (int64_t)time(NULL)) <= CLOCK_SLACK);
        assert_null(strstr(line, " user="));
        p = end + 1;
    }
    assert_string_equal(bb_cmd(anon, "COUPONS nobody", reply), "OK count=0");
    assert_string_equal(reply, "OK count=0");
    bb_expect_prefix(anon, "COUPONS", "ERR BAD_REQUEST");
    bb_close(anon);
    bb_close(c);
}

static void
test_coupons_at_most_1000(void **state)
{
    static char line[BB_LINE_MAX];
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    bb_set_timeout(c, STREAM_IO_MS);
    bb_upload_gen(c, "N-", "", MANY_COUPONS, NULL, 1);
    char *buf = malloc(MANY_COUPONS * 16);
    size_t len = 0;
    for (int i = 0; i < MANY_COUPONS; i++)
        len += (size_t)sprintf(buf + len, "REQUEST bulk\n");
    bb_send(c, buf, len);
    free(buf);
    for (int i = 0; i < MANY_COUPONS; i++)
        bb_expect_reply_prefix(c, "OK code=");
    bb_send_str(c, "COUPONS bulk\nPING\n");
    int rows = 0;
    while (bb_read_line(c, line, sizeof line) == BB_READ_LINE && strncmp(line, "COUPON ", 7) == 0)
        rows++;
    assert_int_equal(rows, PROTO_COUPONS_SHOWN);
    assert_string_equal(line, "OK count=1001");
    bb_expect_reply_prefix(c, "OK PONG"); /* in order, after the long reply */
    bb_close(c);
}

static void
test_coupon_of_code(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = setup_coupons(state, "Q-", 2, 2, 1);
    struct bb_client *anon = bb_connect(s);

    bb_expect_prefix(anon, "COUPON Q-000000", "ERR DENIED");
    assert_string_equal(bb_cmd(c, "COUPON Q-000001", reply), "OK");
    assert_string_equal(reply, "COUPON code=Q-000001 type=NONE discount=10.00 kind=FLAT "
                               "expires=2099-12-31T23:59:59Z uses=0 max_uses=2 user=- "
                               "assigned=-\nOK");
    bb_expect_prefix(c, "COUPON NOPE", "ERR INVALID");
    bb_expect_prefix(c, "REDEEM alice Q-000000", "OK ");
    const char *st = bb_cmd(c, "COUPON q-000000", reply);
    assert_string_equal(st, "OK");
    assert_true(bb_has_prefix(reply, "COUPON code=Q-000000 type=NONE discount=10.00 kind=FLAT "
                                     "expires=2099-12-31T23:59:59Z uses=1 max_uses=2 user=alice "
                                     "assigned="));
    const char *l2 = strchr(reply, '\n') + 1;
    assert_true(bb_has_prefix(l2, "REDEMPTION seq="));
    assert_non_null(strstr(l2, " user=alice\nOK"));
    bb_close(anon);
    bb_close(c);
}

/* COUPON streams a long history, in order, and what was sent after it comes after it. */
static void
test_coupon_long_history(void **state)
{
    static char line[BB_LINE_MAX];
    struct bb_client *c = setup_coupons(state, "Z-", 1, MANY_USES, 1);
    bb_set_timeout(c, STREAM_IO_MS);
    char *buf = malloc(MANY_USES * 32);
    size_t len = 0;
    for (int i = 0; i < MANY_USES; i++)
        len += (size_t)sprintf(buf + len, "REDEEM alice Z-000000\n");
    bb_send(c, buf, len);
    free(buf);
    for (int i = 0; i < MANY_USES; i++)
        bb_expect_reply_prefix(c, "OK code=Z-000000 ");
    bb_send_str(c, "COUPON Z-000000\nPING\n");
    assert_int_equal(bb_read_line(c, line, sizeof line), BB_READ_LINE);
    assert_true(bb_has_prefix(line, "COUPON code=Z-000000 "));
    uint64_t last = 0;
    int rows = 0;
    while (bb_read_line(c, line, sizeof line) == BB_READ_LINE &&
           strncmp(line, "REDEMPTION ", 11) == 0) {
        uint64_t seq = strtoull(line + strlen("REDEMPTION seq="), NULL, 10);
        if (seq <= last)
            fail_msg("redemption %llu after %llu", (unsigned long long)seq,
                     (unsigned long long)last);
        last = seq;
        rows++;
    }
    assert_int_equal(rows, MANY_USES);
    assert_string_equal(line, "OK");
    bb_expect_reply_prefix(c, "OK PONG");
    bb_close(c);
}

static void
test_stats_names(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    assert_string_equal(bb_cmd(c, "STATS", reply), "OK");
    for (int t = 0; t < 4; t++) {
        char name[64];
        uint64_t v;
        snprintf(name, sizeof name, "held.%s", types[t]);
        assert_true(bb_stat_find(reply, name, &v));
        snprintf(name, sizeof name, "unredeemed.%s", types[t]);
        assert_true(bb_stat_find(reply, name, &v));
    }
    bb_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hold_reply_form, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_hold_counts_against_max_uses, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_hold_checks, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_hold_expires_by_itself, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_holds_are_durable, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_unredeem_keeps_history, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_coupons_of_user, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_coupons_at_most_1000, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_coupon_of_code, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_coupon_long_history, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_stats_names, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
