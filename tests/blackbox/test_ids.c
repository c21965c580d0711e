/* test_ids.c - request ids (PROTOCOL.md version 2, "Request ids: safe retries") against the real
 * server: the same write with the same id changes nothing and gets its first reply again with
 * replayed=1, from any connection, after a lost reply, a restart and kill -9; another write with
 * the id is ID_CONFLICT; an ERR is not kept; MEGADEAL retries get the same task and, once
 * granted, the grant, also after a restart; ids expire after --id-retention. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "bb.h"
#include "proto.h"

#define LINE_MAX_      1024
#define SETTLE_MS      5000 /* a write sent by a client that hung up is durable within this */
#define WAIT_IO_MS     20000
#define GRANT_WAIT_MS  20000 /* a queued MEGADEAL task is granted within this at rate 1 */
#define RETENTION      2     /* --id-retention of the expiry test, seconds */
#define RETENTION_WAIT 8000  /* ms after which an id kept RETENTION seconds is surely gone */
#define ID_BUF         (PROTO_TASK_MAX + 1)

static const char *const rate_one[] = {"--megadeal-rate", "1", "--megadeal-wait", "30", NULL};
static const char *const short_retention[] = {"--id-retention", "2", NULL};

/* ---- helpers ---- */

/* Sends cmd and returns a copy of its one-line reply (static, valid until the next call);
 * fails when the reply has data lines. */
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

/* Expects `line` to be `first` with " replayed=1" added at the end. */
static void
assert_replay_of(const char *line, const char *first)
{
    char want[LINE_MAX_ + 16];
    snprintf(want, sizeof want, "%s replayed=1", first);
    if (strcmp(line, want) != 0)
        fail_msg("expected the replay\n  \"%s\"\ngot\n  \"%s\"", want, line);
}

/* The value of field `key` of `line` into out; fails when there is none. */
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

/* Sends cmd on a fresh connection and hangs up at once, before any reply can arrive. */
static void
send_and_vanish(struct bb_server *s, const char *cmd)
{
    struct bb_client *c = bb_connect(s);
    bb_send_str(c, cmd);
    shutdown(c->fd, SHUT_WR);
    bb_close(c);
}

/* Polls STATS until `name` is `want`, at most SETTLE_MS. */
static void
wait_stat(struct bb_client *admin, const char *name, uint64_t want)
{
    int64_t until = bb_now_ms() + SETTLE_MS;
    uint64_t v = 0;
    while ((v = bb_stat(admin, name)) != want && bb_now_ms() < until)
        bb_sleep_ms(BB_POLL_MS);
    if (v != want)
        fail_msg("STAT %s is %llu, expected %llu", name, (unsigned long long)v,
                 (unsigned long long)want);
}

static void
restart_or_fail(struct bb_server *s)
{
    if (!bb_server_restart(s))
        fail_msg("coupond did not come back on %s", s->dir);
}

/* ---- REQUEST ---- */

static void
test_request_replayed(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *a = bb_connect_admin(s), *b = bb_connect(s);
    char first[LINE_MAX_];
    bb_upload_gen(a, "K-", "", 5, NULL, 3);

    snprintf(first, sizeof first, "%s", one_line(a, "REQUEST alice id=order-1"));
    assert_true(bb_has_prefix(first, "OK code=K-000000 type=NONE"));
    assert_null(strstr(first, "replayed"));
    assert_replay_of(one_line(a, "REQUEST alice id=order-1"), first);
    /* Any connection, and any spelling of the same request. */
    assert_replay_of(one_line(b, "request   alice\tid=order-1"), first);
    assert_replay_of(one_line(b, "REQUEST alice NONE id=order-1"), first);
    assert_replay_of(one_line(b, "REQUEST alice - id=order-1"), first);
    assert_int_equal(bb_stat(a, "assigned.NONE"), 1);
    /* Another id is another write. */
    bb_expect_prefix(b, "REQUEST alice id=order-2", "OK code=K-000001 ");
    /* Ids are case-sensitive. */
    bb_expect_prefix(b, "REQUEST alice id=ORDER-1", "OK code=K-000002 ");
    assert_int_equal(bb_stat(a, "assigned.NONE"), 3);
    bb_close(a);
    bb_close(b);
}

static void
test_id_conflict(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *a = bb_connect_admin(s);
    bb_upload_gen(a, "K-", "", 3, NULL, 3);
    bb_upload_gen(a, "F-", "FREE", 3, NULL, 3);
    bb_expect_prefix(a, "REQUEST alice id=x", "OK code=K-000000 ");
    bb_expect_prefix(a, "REQUEST bob id=x", "ERR ID_CONFLICT");
    bb_expect_prefix(a, "REQUEST alice FREE id=x", "ERR ID_CONFLICT");
    bb_expect_prefix(a, "REDEEM alice K-000000 id=x", "ERR ID_CONFLICT");
    bb_expect_prefix(a, "HOLD alice K-000000 id=x", "ERR ID_CONFLICT");
    bb_expect_prefix(a, "UNREDEEM alice 1 id=x", "ERR ID_CONFLICT");
    bb_expect_prefix(a, "GENERATE 2 FREE 5 FLAT 2099-12-31 1 id=x", "ERR ID_CONFLICT");
    /* An UPLOAD with a taken id still reads its records, and stores none. */
    bb_send_str(a, "UPLOAD 1 id=x\nNEW-1,,10,FLAT,2099-12-31,1\nPING\n");
    const char *st = bb_get_reply(a, reply);
    if (!bb_has_prefix(st, "ERR ID_CONFLICT"))
        fail_msg("UPLOAD with a taken id: \"%s\"", reply);
    bb_expect_reply_prefix(a, "OK PONG");
    /* Nothing of them happened. */
    assert_int_equal(bb_stat(a, "assigned.NONE"), 1);
    assert_int_equal(bb_stat(a, "assigned.FREE"), 0);
    assert_int_equal(bb_stat(a, "redeemed.NONE"), 0);
    assert_int_equal(bb_stat(a, "created.NONE"), 3);
    assert_int_equal(bb_stat(a, "created.FREE"), 3);
    bb_expect_prefix(a, "VALIDATE alice K-000000", "OK code=K-000000 ");
    bb_close(a);
}

static void
test_err_is_not_kept(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *a = bb_connect_admin(s);
    bb_expect_prefix(a, "REQUEST alice FREE id=e-1", "ERR NO_COUPONS");
    bb_upload_gen(a, "F-", "FREE", 1, NULL, 1);
    /* The ERR changed nothing: the retry runs again, and this time it works. */
    const char *line = one_line(a, "REQUEST alice FREE id=e-1");
    assert_true(bb_has_prefix(line, "OK code=F-000000 "));
    assert_null(strstr(line, "replayed"));
    bb_expect_prefix(a, "REDEEM bob F-000000 id=e-2", "ERR INVALID");
    line = one_line(a, "REDEEM alice F-000000 id=e-2");
    assert_true(bb_has_prefix(line, "OK code=F-000000 "));
    assert_null(strstr(line, "replayed"));
    bb_close(a);
}

/* A client that hangs up before the reply, then asks again with the same id: the same coupon. */
static void
test_lost_reply_retried(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *a = bb_connect_admin(s);
    bb_upload_gen(a, "L-", "", 4, NULL, 1);
    send_and_vanish(s, "REQUEST alice id=lost-1\n");
    wait_stat(a, "assigned.NONE", 1);
    struct bb_client *c = bb_connect(s);
    const char *line = one_line(c, "REQUEST alice id=lost-1");
    if (!bb_has_prefix(line, "OK code=L-000000 ") || strstr(line, " replayed=1") == NULL)
        fail_msg("retry after a lost reply: \"%s\"", line);
    assert_int_equal(bb_stat(a, "assigned.NONE"), 1);
    /* Without an id, COUPONS finds what a lost reply held. */
    send_and_vanish(s, "REQUEST alice\n");
    wait_stat(a, "assigned.NONE", 2);
    static char reply[BB_REPLY_MAX];
    const char *st = bb_cmd(c, "COUPONS alice", reply);
    assert_string_equal(st, "OK count=2");
    assert_true(bb_has_prefix(reply, "COUPON code=L-000001 "));
    bb_close(c);
    bb_close(a);
}

static void
test_replayed_after_restart(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *a = bb_connect_admin(s);
    char req[LINE_MAX_], red[LINE_MAX_], up[LINE_MAX_];
    bb_upload_gen(a, "R-", "", 3, NULL, 3);
    snprintf(req, sizeof req, "%s", one_line(a, "REQUEST alice id=r-1"));
    snprintf(red, sizeof red, "%s", one_line(a, "REDEEM alice R-000000 id=r-2"));
    assert_non_null(strstr(red, " redemption="));
    bb_send_str(a, "UPLOAD 1 id=r-3\nU-1,,10,FLAT,2099-12-31,1\n");
    static char reply[BB_REPLY_MAX];
    snprintf(up, sizeof up, "%s", bb_get_reply(a, reply));
    assert_string_equal(up, "OK uploaded=1");
    bb_close(a);

    assert_int_equal(bb_server_stop(s), 0);
    restart_or_fail(s);

    a = bb_connect_admin(s);
    assert_replay_of(one_line(a, "REQUEST alice id=r-1"), req);
    assert_replay_of(one_line(a, "REDEEM alice R-000000 id=r-2"), red);
    bb_send_str(a, "UPLOAD 1 id=r-3\nU-1,,10,FLAT,2099-12-31,1\n");
    assert_replay_of(bb_get_reply(a, reply), up);
    assert_int_equal(bb_stat(a, "assigned.NONE"), 1);
    assert_int_equal(bb_stat(a, "redeemed.NONE"), 1);
    assert_int_equal(bb_stat(a, "created.NONE"), 4);
    bb_close(a);
}

static void
test_replayed_after_kill9(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *a = bb_connect_admin(s);
    char first[LINE_MAX_];
    bb_upload_gen(a, "P-", "", 3, NULL, 1);
    snprintf(first, sizeof first, "%s", one_line(a, "REQUEST alice id=k-1"));
    bb_server_kill(s); /* right after the acknowledgement */
    bb_close(a);
    restart_or_fail(s);
    a = bb_connect_admin(s);
    assert_replay_of(one_line(a, "REQUEST alice id=k-1"), first);

    /* A reply lost with the connection, then the server killed: the retry still finds it. */
    send_and_vanish(s, "REQUEST bob id=k-2\n");
    wait_stat(a, "assigned.NONE", 2);
    bb_server_kill(s);
    bb_close(a);
    restart_or_fail(s);
    a = bb_connect_admin(s);
    const char *line = one_line(a, "REQUEST bob id=k-2");
    if (!bb_has_prefix(line, "OK code=P-000001 ") || strstr(line, " replayed=1") == NULL)
        fail_msg("retry after kill -9: \"%s\"", line);
    assert_int_equal(bb_stat(a, "assigned.NONE"), 2);
    bb_close(a);
}

/* ---- every write ---- */

static void
test_every_write_replays(void **state)
{
    static char reply[BB_REPLY_MAX], first_gen[BB_REPLY_MAX];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *a = bb_connect_admin(s);
    char line[LINE_MAX_], hold[ID_BUF], cmd[LINE_MAX_];
    bb_upload_gen(a, "W-", "", 2, NULL, 5);
    bb_expect_prefix(a, "REQUEST alice", "OK code=W-000000 ");

    /* HOLD: the same hold, the same id. */
    snprintf(line, sizeof line, "%s", one_line(a, "HOLD alice W-000000 60 id=h-1"));
    assert_true(bb_has_prefix(line, "OK hold="));
    assert_replay_of(one_line(a, "HOLD alice W-000000 60 id=h-1"), line);
    assert_int_equal(bb_stat(a, "held.NONE"), 1);
    field(line, "hold", hold, sizeof hold);

    /* RELEASE */
    bb_fmt(cmd, sizeof cmd, "RELEASE %s id=h-2", hold);
    assert_string_equal(one_line(a, cmd), "OK released=1");
    assert_string_equal(one_line(a, cmd), "OK released=1 replayed=1");
    bb_fmt(cmd, sizeof cmd, "RELEASE %s", hold);
    bb_expect_prefix(a, cmd, "ERR UNKNOWN_HOLD"); /* without the id: it runs, and fails */

    /* REDEEM and UNREDEEM */
    snprintf(line, sizeof line, "%s", one_line(a, "REDEEM alice W-000000 id=d-1"));
    assert_replay_of(one_line(a, "REDEEM alice W-000000 id=d-1"), line);
    char seq[32];
    field(line, "redemption", seq, sizeof seq);
    bb_fmt(cmd, sizeof cmd, "UNREDEEM alice %s id=d-2", seq);
    snprintf(line, sizeof line, "%s", one_line(a, cmd));
    assert_true(bb_has_prefix(line, "OK code=W-000000 "));
    assert_replay_of(one_line(a, cmd), line);
    assert_int_equal(bb_stat(a, "redeemed.NONE"), 1);
    assert_int_equal(bb_stat(a, "unredeemed.NONE"), 1);

    /* GENERATE: the same codes again. */
    const char *st = bb_cmd(a, "GENERATE 5 FREE 5 FLAT 2099-12-31 1 id=g-1", reply);
    assert_string_equal(st, "OK generated=5");
    memcpy(first_gen, reply, (size_t)(st - reply));
    first_gen[st - reply] = '\0';
    st = bb_cmd(a, "GENERATE 5 FREE 5 FLAT 2099-12-31 1 id=g-1", reply);
    assert_string_equal(st, "OK generated=5 replayed=1");
    assert_int_equal(strncmp(reply, first_gen, strlen(first_gen)), 0);
    assert_int_equal(bb_stat(a, "created.FREE"), 5);
    bb_close(a);
}

/* ---- MEGADEAL ---- */

static void
task_of(const char *line, char id[ID_BUF])
{
    field(line, "task", id, ID_BUF);
}

static void
test_megadeal_retry_same_task(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *a = bb_connect_admin(s), *b = bb_connect(s);
    char first[LINE_MAX_], task[ID_BUF], again[ID_BUF], cmd[LINE_MAX_];
    bb_set_timeout(a, WAIT_IO_MS);
    bb_upload_gen(a, "M-", "MEGADEAL", 3, NULL, 1);
    /* The first grant of the window goes to a task without an id. */
    bb_expect_prefix(a, "REQUEST zed MEGADEAL", "OK task=");
    snprintf(first, sizeof first, "%s", one_line(a, "REQUEST alice MEGADEAL id=m-1"));
    task_of(first, task);
    const char *line = one_line(b, "REQUEST alice MEGADEAL id=m-1");
    task_of(line, again);
    assert_string_equal(again, task);
    assert_non_null(strstr(line, " replayed=1"));
    bb_expect_prefix(b, "REQUEST bob MEGADEAL id=m-1", "ERR ID_CONFLICT");
    bb_expect_prefix(b, "REQUEST alice id=m-1", "ERR ID_CONFLICT");
    bb_expect_prefix(b, "REDEEM alice M-000000 id=m-1", "ERR ID_CONFLICT");

    bb_fmt(cmd, sizeof cmd, "WAIT %s", task);
    static char reply[BB_REPLY_MAX];
    const char *st = bb_cmd(a, cmd, reply);
    if (!bb_has_prefix(st, "OK task=") || strstr(st, "status=granted") == NULL)
        fail_msg("WAIT: \"%s\"", st);
    char granted[LINE_MAX_];
    snprintf(granted, sizeof granted, "%s", st);
    line = one_line(b, "REQUEST alice MEGADEAL id=m-1");
    assert_replay_of(line, granted);
    assert_int_equal(bb_stat(a, "assigned.MEGADEAL"), 2);

    /* After a restart the queue is gone, but the grant is in the store with its id. */
    bb_close(a);
    bb_close(b);
    assert_int_equal(bb_server_stop(s), 0);
    restart_or_fail(s);
    a = bb_connect_admin(s);
    assert_replay_of(one_line(a, "REQUEST alice MEGADEAL id=m-1"), granted);
    bb_server_kill(s);
    bb_close(a);
    restart_or_fail(s);
    a = bb_connect_admin(s);
    assert_replay_of(one_line(a, "REQUEST alice MEGADEAL id=m-1"), granted);
    bb_expect_prefix(a, "REQUEST bob MEGADEAL id=m-1", "ERR ID_CONFLICT");
    assert_int_equal(bb_stat(a, "assigned.MEGADEAL"), 2);
    bb_close(a);
}

/* ---- retention ---- */

static void
test_ids_expire(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *a = bb_connect_admin(s);
    bb_upload_gen(a, "T-", "", 3, NULL, 1);
    bb_expect_prefix(a, "REQUEST alice id=t-1", "OK code=T-000000 ");
    const char *line = one_line(a, "REQUEST alice id=t-1");
    assert_non_null(strstr(line, " replayed=1"));
    bb_sleep_ms(RETENTION_WAIT);
    /* Forgotten: the same request is a new write now. */
    line = one_line(a, "REQUEST alice id=t-1");
    if (!bb_has_prefix(line, "OK code=T-000001 ") || strstr(line, "replayed") != NULL)
        fail_msg("after --id-retention %d: \"%s\"", RETENTION, line);
    bb_close(a);
}

static void
test_id_syntax(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *a = bb_connect(s);
    char cmd[256], rid[PROTO_RID_MAX + 2];
    bb_expect_prefix(a, "REQUEST alice id=", "ERR BAD_REQUEST");
    bb_expect_prefix(a, "REQUEST alice id=a/b", "ERR BAD_REQUEST");
    bb_expect_prefix(a, "REQUEST alice id=a id=b", "ERR BAD_REQUEST");
    memset(rid, 'r', PROTO_RID_MAX + 1);
    rid[PROTO_RID_MAX + 1] = '\0';
    bb_fmt(cmd, sizeof cmd, "REQUEST alice id=%s", rid);
    bb_expect_prefix(a, cmd, "ERR BAD_REQUEST");
    rid[PROTO_RID_MAX] = '\0';
    bb_fmt(cmd, sizeof cmd, "REQUEST alice id=%s", rid);
    bb_expect_prefix(a, cmd, "ERR NO_COUPONS"); /* well-formed: it ran */
    bb_expect_prefix(a, "VALIDATE alice C-1 id=x", "ERR BAD_REQUEST");
    bb_expect(a, "PING", "OK PONG");
    bb_close(a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_replayed, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_id_conflict, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_err_is_not_kept, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_lost_reply_retried, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_replayed_after_restart, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_replayed_after_kill9, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_every_write_replays, bb_setup, bb_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_megadeal_retry_same_task, bb_setup,
                                                 bb_teardown, (void *)rate_one),
        cmocka_unit_test_prestate_setup_teardown(test_ids_expire, bb_setup, bb_teardown,
                                                 (void *)short_retention),
        cmocka_unit_test_setup_teardown(test_id_syntax, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
