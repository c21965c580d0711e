/* test_commands.c - every command but MEGADEAL's queue, and every error code a client can reach,
 * against the real coupond (coupond-protocol(7) and coupond(8)). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bb.h"
#include "proto.h"

#define SHORT_EXPIRY_S   3     /* a coupon uploaded to expire during the test */
#define EXPIRY_MARGIN_MS 1200  /* waited past an expiry before relying on it */
#define PURGE_WAIT_MS    10000 /* the purge timer (1 s) must have run within this */
#define STAT_POLL_MS     200   /* between STATS polls */
#define REJECT_BATCH     200   /* records in the batch that overflows the REJECT lines */
#define SMALL_UPLOAD     10    /* --max-upload of the TOO_LARGE test */
#define QUIET_MS         300   /* no stray reply may arrive within this */

static const char *const types[] = {"NONE", "FREE", "STANDARD", "MEGADEAL"};

static struct bb_client *
admin_client(void **state)
{
    return bb_connect_admin(bb_server_of(state));
}

/* Sends "UPLOAD n" and the n record lines in one write, without reading the reply. */
static void
send_upload(struct bb_client *c, const char *const *records, size_t n)
{
    char head[32];
    snprintf(head, sizeof head, "UPLOAD %zu\n", n);
    size_t len = strlen(head);
    for (size_t i = 0; i < n; i++)
        len += strlen(records[i]) + 1;
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    strcpy(buf, head);
    for (size_t i = 0; i < n; i++) {
        strcat(buf, records[i]);
        strcat(buf, "\n");
    }
    bb_send(c, buf, len);
    free(buf);
}

/* Wall-clock seconds. */
static int64_t
wall_now(void)
{
    return (int64_t)time(NULL);
}

/* "YYYY-MM-DDTHH:MM:SSZ" SHORT_EXPIRY_S seconds from now; returns that time. */
static int64_t
short_expiry(char *buf, size_t size)
{
    int64_t t = wall_now() + SHORT_EXPIRY_S;
    bb_fmt_time(buf, size, t);
    return t;
}

/* Sleeps until the wall clock is safely past `t` (coupons expiring at t are expired). */
static void
sleep_past(int64_t t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    int64_t wait = (t + 1) * 1000 + EXPIRY_MARGIN_MS - 1000 - now_ms;
    if (wait > 0)
        bb_sleep_ms((int)wait);
}

static void
assert_stat(struct bb_client *c, const char *name, uint64_t want)
{
    uint64_t got = bb_stat(c, name);
    if (got != want)
        fail_msg("STAT %s: expected %llu, got %llu", name, (unsigned long long)want,
                 (unsigned long long)got);
}

/* ---- Service commands ---- */

static void
test_ping(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_expect(c, "PING", "OK PONG");
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

/* True when one of the lines in [text, end) is `word` alone or `word` and a space. */
static bool
has_line(const char *text, const char *end, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; p < end; p = strchr(p, '\n') + 1)
        if (strncmp(p, word, n) == 0 && (p[n] == ' ' || p[n] == '\n'))
            return true;
    return false;
}

static void
test_help_lists_every_verb(void **state)
{
    static const char *const verbs[] = {"PING",    "HELP",     "AUTH",     "REQUEST", "STATUS",
                                        "WAIT",    "VALIDATE", "REDEEM",   "QUIT",    "UPLOAD",
                                        "PURGE",   "STATS",    "HOLD",     "RELEASE", "UNREDEEM",
                                        "COUPONS", "COUPON",   "GENERATE", "EXPORT"};
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = bb_connect(bb_server_of(state));
    const char *status = bb_cmd(c, "HELP", reply);
    assert_string_equal(status, "OK");
    assert_true(status > reply); /* at least one INFO line */
    for (const char *p = reply; p < status; p = strchr(p, '\n') + 1)
        if (strncmp(p, "INFO ", 5) != 0)
            fail_msg("HELP data line not starting with \"INFO \": %.80s", p);
    for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++) {
        char want[32];
        snprintf(want, sizeof want, "INFO %s", verbs[v]);
        if (!has_line(reply, status, want))
            fail_msg("HELP has no \"%s\" line:\n%s", want, reply);
    }
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

static void
test_auth_right_key(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_auth(c);
    bb_expect_prefix(c, "STATS", "OK");
    bb_close(c);
}

static void
test_auth_wrong_key_denied(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    char cmd[BB_KEY_HEX + 8];
    snprintf(cmd, sizeof cmd, "AUTH %0*d", BB_KEY_HEX, 0);
    bb_expect_prefix(c, cmd, "ERR DENIED");
    bb_expect_prefix(c, "STATS", "ERR DENIED");
    bb_auth(c); /* one wrong key does not lock the connection out */
    bb_expect_prefix(c, "STATS", "OK");
    bb_close(c);
}

static void
test_admin_before_auth_denied(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_expect_prefix(c, "STATS", "ERR DENIED");
    bb_expect_prefix(c, "PURGE", "ERR DENIED");
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

static void
test_upload_before_auth_swallows_records(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    /* The second record reads like QUIT: it must be swallowed, not obeyed. */
    bb_send_str(c, "UPLOAD 2\nA-1,,10,FLAT,2030-01-01,1\nQUIT\nPING\n");
    bb_expect_reply_prefix(c, "ERR DENIED");
    bb_expect_reply_prefix(c, "OK PONG");
    assert_true(bb_quiet(c, QUIET_MS));
    bb_expect_prefix(c, "STATS", "ERR DENIED");
    bb_auth(c);
    assert_stat(c, "created.NONE", 0);
    bb_expect_prefix(c, "REQUEST alice", "ERR NO_COUPONS");
    bb_close(c);
}

/* ---- UPLOAD ---- */

static void
test_upload_ok(void **state)
{
    static const char *const records[] = {
        "U-1,,10,FLAT,2030-01-01,1",         "U-2,FREE,10,FLAT,2030-01-01,1",
        "U-3,STANDARD,10,FLAT,2030-01-01,1", "U-4,standard,10,FLAT,2030-01-01,1",
        "U-5,MEGADEAL,10,FLAT,2030-01-01,1",
    };
    struct bb_client *c = admin_client(state);
    bb_upload(c, records, 5);
    assert_stat(c, "created.NONE", 1);
    assert_stat(c, "created.FREE", 1);
    assert_stat(c, "created.STANDARD", 2);
    assert_stat(c, "created.MEGADEAL", 1);
    assert_stat(c, "available.STANDARD", 2);
    bb_close(c);
}

/* Expects `k` REJECT lines naming `linenos` (only the first PROTO_REJECT_SHOWN), then
 * "ERR BAD_BATCH k of n records rejected, nothing stored". */
static void
expect_bad_batch(struct bb_client *c, const size_t *linenos, size_t k, size_t n)
{
    static char reply[BB_REPLY_MAX];
    int lines = bb_read_reply(c, reply);
    if (lines < 0)
        fail_msg("no complete reply to the UPLOAD; got \"%s\"", reply);
    size_t shown = k < PROTO_REJECT_SHOWN ? k : PROTO_REJECT_SHOWN;
    if ((size_t)lines != shown + 1)
        fail_msg("expected %zu REJECT lines and a status line, got %d lines:\n%s", shown, lines,
                 reply);
    const char *p = reply;
    for (size_t i = 0; i < shown; i++) {
        char want[32];
        snprintf(want, sizeof want, "REJECT %zu ", linenos[i]);
        const char *eol = strchr(p, '\n');
        if (strncmp(p, want, strlen(want)) != 0 || eol == p + strlen(want))
            fail_msg("REJECT line %zu: expected \"%sreason\", got \"%.*s\"", i + 1, want,
                     (int)(eol - p), p);
        p = eol + 1;
    }
    char status[96];
    snprintf(status, sizeof status, "ERR BAD_BATCH %zu of %zu records rejected, nothing stored", k,
             n);
    assert_string_equal(p, status);
}

static void
test_upload_bad_records_rejected(void **state)
{
    static const char code65[] =
        "A234567890123456789012345678901234567890123456789012345678901234X";
    char long_code[128];
    snprintf(long_code, sizeof long_code, "%s,,10,FLAT,2030-01-01,1", code65);
    const char *bad[] = {
        "B-1,,10,FLAT,2030-01-01",          /* 5 fields */
        "B-2,,10,FLAT,2030-01-01,1,x",      /* 7 fields */
        "B-3,GOLD,10,FLAT,2030-01-01,1",    /* no such type */
        "B-4,,0,FLAT,2030-01-01,1",         /* discount not > 0 */
        "B-5,,12.345,FLAT,2030-01-01,1",    /* 3 decimal places */
        "B-6,,-5,FLAT,2030-01-01,1",        /* negative */
        "B-7,,100.01,PERCENT,2030-01-01,1", /* percentage over 100 */
        "B-8,,10,CASH,2030-01-01,1",        /* no such kind */
        "B-9,,10,FLAT,2030-02-30,1",        /* no such day */
        "B-10,,10,FLAT,next week,1",        /* not a time */
        "B-11,,10,FLAT,2030-01-01,0",       /* max_uses below 1 */
        "B-12,,10,FLAT,2030-01-01,1000001", /* max_uses over 1000000 */
        long_code,                          /* 65-character code */
        "B*13,,10,FLAT,2030-01-01,1",       /* bad code character */
        ",,10,FLAT,2030-01-01,1",           /* empty code */
        "PING",                             /* a command is just a malformed record */
        "B-16,,abc,FLAT,2030-01-01,1",      /* discount not a number */
        "B-17,,10,FLAT,2030-01-01,1x",      /* max_uses not a number */
        "B-18,,10,FLAT,2030-13-01,1",       /* no such month */
    };
    enum { NBAD = sizeof bad / sizeof bad[0] };
    char good[NBAD][48];
    const char *records[2 * NBAD];
    size_t linenos[NBAD];
    for (size_t i = 0; i < NBAD; i++) {
        snprintf(good[i], sizeof good[i], "G-%zu,,10,FLAT,2030-01-01,1", i);
        records[2 * i] = good[i];
        records[2 * i + 1] = bad[i];
        linenos[i] = 2 * i + 2;
    }
    struct bb_client *c = admin_client(state);
    send_upload(c, records, 2 * NBAD);
    expect_bad_batch(c, linenos, NBAD, 2 * NBAD);
    bb_expect(c, "PING", "OK PONG");
    assert_stat(c, "created.NONE", 0);
    assert_stat(c, "available.NONE", 0);
    bb_expect_prefix(c, "REQUEST alice", "ERR NO_COUPONS");
    bb_upload(c, records, 1); /* G-0 was not stored: it can be uploaded now */
    bb_close(c);
}

static void
test_upload_reject_lines_capped(void **state)
{
    static char lines[REJECT_BATCH][48];
    const char *records[REJECT_BATCH];
    size_t linenos[REJECT_BATCH];
    size_t k = 0;
    for (size_t i = 0; i < REJECT_BATCH; i++) {
        bool bad = i % 4 != 0;
        snprintf(lines[i], sizeof lines[i], "C-%zu,,%s,FLAT,2030-01-01,1", i, bad ? "0" : "5");
        records[i] = lines[i];
        if (bad)
            linenos[k++] = i + 1;
    }
    struct bb_client *c = admin_client(state);
    send_upload(c, records, REJECT_BATCH);
    expect_bad_batch(c, linenos, k, REJECT_BATCH);
    assert_stat(c, "created.NONE", 0);
    bb_close(c);
}

static void
test_upload_duplicate_code_in_batch(void **state)
{
    static const char *const records[] = {
        "D-1,,10,FLAT,2030-01-01,1", "D-2,,10,FLAT,2030-01-01,1",
        "d-1,FREE,10,FLAT,2030-01-01,1", /* codes are case-insensitive */
    };
    static const size_t linenos[] = {3};
    struct bb_client *c = admin_client(state);
    send_upload(c, records, 3);
    expect_bad_batch(c, linenos, 1, 3);
    assert_stat(c, "created.NONE", 0);
    assert_stat(c, "created.FREE", 0);
    bb_close(c);
}

static void
test_upload_existing_code(void **state)
{
    static const char *const first[] = {"X-1,,10,FLAT,2030-01-01,1"};
    static const char *const second[] = {"X-2,,10,FLAT,2029-01-01,1", "x-1,,10,FLAT,2030-01-01,1"};
    static const size_t linenos[] = {2};
    struct bb_client *c = admin_client(state);
    bb_upload(c, first, 1);
    send_upload(c, second, 2);
    expect_bad_batch(c, linenos, 1, 2);
    assert_stat(c, "created.NONE", 1);
    bb_expect(c, "REQUEST alice",
              "OK code=X-1 type=NONE discount=10.00 kind=FLAT expires=2030-01-01T23:59:59Z uses=0 "
              "max_uses=1");
    bb_expect_prefix(c, "REQUEST bob", "ERR NO_COUPONS");
    bb_close(c);
}

static void
test_upload_bad_count(void **state)
{
    static const char *const bad_counts[] = {"UPLOAD 0\n", "UPLOAD -1\n", "UPLOAD abc\n",
                                             "UPLOAD\n", "UPLOAD 1 2\n"};
    struct bb_client *c = admin_client(state);
    for (size_t i = 0; i < sizeof bad_counts / sizeof bad_counts[0]; i++) {
        /* No record lines are read: the next line is a command. */
        bb_send_str(c, bad_counts[i]);
        bb_send_str(c, "PING\n");
        bb_expect_reply_prefix(c, "ERR BAD_REQUEST");
        bb_expect_reply_prefix(c, "OK PONG");
    }
    bb_close(c);
}

static void
test_upload_too_large(void **state)
{
    struct bb_client *c = admin_client(state);
    char buf[1024] = "UPLOAD 11\n";
    for (int i = 0; i < SMALL_UPLOAD; i++) {
        char rec[64];
        snprintf(rec, sizeof rec, "T-%d,,10,FLAT,2030-01-01,1\n", i);
        strcat(buf, rec);
    }
    strcat(buf, "PING\n"); /* the 11th record: dropped, not answered */
    strcat(buf, "PING\n"); /* the next command */
    bb_send_str(c, buf);
    bb_expect_reply_prefix(c, "ERR TOO_LARGE");
    bb_expect_reply_prefix(c, "OK PONG");
    assert_true(bb_quiet(c, QUIET_MS));
    assert_stat(c, "created.NONE", 0);
    bb_upload_gen(c, "T-", "", SMALL_UPLOAD, NULL, 1); /* exactly the limit is fine */
    assert_stat(c, "created.NONE", SMALL_UPLOAD);
    bb_close(c);
}

/* ---- REQUEST ---- */

/* Sends a MEGADEAL REQUEST. Returns false on the interim `ERR BUSY`; returns true when the reply
 * is exactly `OK task=ID status=queued position=P` with 1 <= P <= max_position, with ID copied to
 * task. (A queue may grant at once, so a later request can be first in line again.) */
static bool
megadeal_queued(struct bb_client *c, const char *cmd, int max_position,
                char task[PROTO_TASK_MAX + 1])
{
    static char reply[BB_REPLY_MAX];
    const char *status = bb_cmd(c, cmd, reply);
    if (bb_has_prefix(status, "ERR BUSY"))
        return false;
    const char *id;
    size_t id_len;
    if (!proto_reply_field(status, strlen(status), "task", &id, &id_len) || id_len > PROTO_TASK_MAX)
        fail_msg("\"%s\": expected ERR BUSY or a queued task, got \"%s\"", cmd, reply);
    memcpy(task, id, id_len);
    task[id_len] = '\0';
    for (int position = 1; position <= max_position; position++) {
        char want[PROTO_TASK_MAX + 64];
        snprintf(want, sizeof want, "OK task=%s status=queued position=%d", task, position);
        if (strcmp(status, want) == 0)
            return true;
    }
    fail_msg("\"%s\": expected \"OK task=%s status=queued position=1..%d\", got \"%s\"", cmd, task,
             max_position, reply);
    return false;
}

static int
next_year(void)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    return tm.tm_year + 1900 + 1;
}

/* PROTOCOL.md's session, with its dates moved to next year so they stay in the future. */
static void
test_session_example(void **state)
{
    int y = next_year();
    char r1[64], r2[64], r3[64], want[512];
    snprintf(r1, sizeof r1, "SUMMER-1,STANDARD,20,FLAT,%d-12-31,3", y);
    snprintf(r2, sizeof r2, "SUMMER-2,,15,PERCENT,%d-12-31T12:00:00+02:00,1", y);
    snprintf(r3, sizeof r3, "MEGA-1,MEGADEAL,50,PERCENT,%d-12-31,1", y);
    const char *records[] = {r1, r2, r3};
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_auth(c);
    bb_upload(c, records, 3);
    snprintf(want, sizeof want,
             "OK code=SUMMER-1 type=STANDARD discount=20.00 kind=FLAT "
             "expires=%d-12-31T23:59:59Z uses=0 max_uses=3",
             y);
    bb_expect(c, "REQUEST alice STANDARD", want);
    snprintf(want, sizeof want,
             "OK code=SUMMER-1 type=STANDARD discount=20.00 kind=FLAT "
             "expires=%d-12-31T23:59:59Z uses=1 max_uses=3",
             y);
    /* Version 2 adds redemption=SEQ after the coupon fields. */
    bb_expect_prefix(c, "REDEEM alice summer-1", want);
    bb_expect_prefix(c, "REDEEM bob SUMMER-1", "ERR INVALID");
    char task[PROTO_TASK_MAX + 1];
    if (megadeal_queued(c, "REQUEST carol MEGADEAL", 1, task)) {
        char cmd[PROTO_TASK_MAX + 8];
        snprintf(cmd, sizeof cmd, "WAIT %s", task);
        snprintf(want, sizeof want,
                 "OK task=%s status=granted code=MEGA-1 type=MEGADEAL discount=50.00 "
                 "kind=PERCENT expires=%d-12-31T23:59:59Z uses=0 max_uses=1",
                 task, y);
        bb_expect(c, cmd, want);
        bb_expect_prefix(c, "REQUEST dave MEGADEAL", "ERR NO_COUPONS");
    }
    snprintf(want, sizeof want,
             "OK code=SUMMER-2 type=NONE discount=15.00 kind=PERCENT "
             "expires=%d-12-31T10:00:00Z uses=0 max_uses=1",
             y);
    bb_expect(c, "REQUEST dave", want);
    bb_close(c);
}

static void
test_request_normalises_values(void **state)
{
    static const char *const records[] = {
        "n-a,FREE,12.5,FLAT,2030-01-01,1",
        "N-B,standard,7,percent,2030-06-15T08:30:00-05:30,2",
        "n.c_9,,0.01,Flat,2030-03-01T00:00:00Z,1000000",
        "N-D,NONE,100,PERCENT,2030-01-01t10:00:00z,1",
        "n-e,free,99.99,FLAT,2029-12-31T23:00:00.123+01:00,5",
    };
    struct bb_client *c = admin_client(state);
    bb_upload(c, records, 5);
    bb_expect(c, "REQUEST u1 FREE",
              "OK code=N-E type=FREE discount=99.99 kind=FLAT expires=2029-12-31T22:00:00Z "
              "uses=0 max_uses=5");
    bb_expect(c, "REQUEST u1 FREE",
              "OK code=N-A type=FREE discount=12.50 kind=FLAT expires=2030-01-01T23:59:59Z "
              "uses=0 max_uses=1");
    bb_expect(c, "REQUEST u2 STANDARD",
              "OK code=N-B type=STANDARD discount=7.00 kind=PERCENT "
              "expires=2030-06-15T14:00:00Z uses=0 max_uses=2");
    bb_expect(c, "REQUEST u3",
              "OK code=N-D type=NONE discount=100.00 kind=PERCENT expires=2030-01-01T10:00:00Z "
              "uses=0 max_uses=1");
    bb_expect(c, "REQUEST u3",
              "OK code=N.C_9 type=NONE discount=0.01 kind=FLAT expires=2030-03-01T00:00:00Z "
              "uses=0 max_uses=1000000");
    bb_close(c);
}

/* Earliest expiry first; ties go to the earliest uploaded, across batches, not to the code. */
static void
test_request_order(void **state)
{
    static const char *const batch1[] = {
        "O-A,,10,FLAT,2031-01-01,1",
        "O-C,,10,FLAT,2030-06-01,1",
        "O-B,,10,FLAT,2030-06-01,1",
    };
    static const char *const batch2[] = {
        "O-D,,10,FLAT,2030-01-01,1",
        "O-0,,10,FLAT,2030-06-01T23:59:59Z,1", /* same instant as the bare date */
    };
    static const char *const order[] = {"O-D", "O-C", "O-B", "O-0", "O-A"};
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = admin_client(state);
    bb_upload(c, batch1, 3);
    bb_upload(c, batch2, 2);
    for (size_t i = 0; i < 5; i++) {
        const char *status = bb_cmd(c, "REQUEST alice", reply);
        struct proto_coupon cp;
        if (!proto_reply_coupon(status, strlen(status), &cp))
            fail_msg("REQUEST %zu: not a coupon reply: %s", i + 1, reply);
        if (strcmp(cp.code, order[i]) != 0)
            fail_msg("REQUEST %zu: expected %s, got %s", i + 1, order[i], reply);
    }
    bb_expect_prefix(c, "REQUEST alice", "ERR NO_COUPONS");
    bb_close(c);
}

static void
test_request_untyped_forms(void **state)
{
    static const char *const records[] = {
        "T-1,,10,FLAT,2030-01-01,1", "T-2,,10,FLAT,2030-01-02,1",     "T-3,,10,FLAT,2030-01-03,1",
        "T-4,,10,FLAT,2030-01-04,1", "F-1,FREE,10,FLAT,2029-01-01,1",
    };
    struct bb_client *c = admin_client(state);
    bb_upload(c, records, 5);
    bb_expect(c, "REQUEST alice",
              "OK code=T-1 type=NONE discount=10.00 kind=FLAT "
              "expires=2030-01-01T23:59:59Z uses=0 max_uses=1");
    bb_expect(c, "REQUEST alice NONE",
              "OK code=T-2 type=NONE discount=10.00 kind=FLAT "
              "expires=2030-01-02T23:59:59Z uses=0 max_uses=1");
    bb_expect(c, "REQUEST alice -",
              "OK code=T-3 type=NONE discount=10.00 kind=FLAT "
              "expires=2030-01-03T23:59:59Z uses=0 max_uses=1");
    bb_expect(c, "REQUEST alice none",
              "OK code=T-4 type=NONE discount=10.00 kind=FLAT "
              "expires=2030-01-04T23:59:59Z uses=0 max_uses=1");
    /* F-1 expires first but is typed: the untyped kind is empty now. */
    bb_expect_prefix(c, "REQUEST alice", "ERR NO_COUPONS");
    bb_expect(c, "REQUEST alice free",
              "OK code=F-1 type=FREE discount=10.00 kind=FLAT "
              "expires=2029-01-01T23:59:59Z uses=0 max_uses=1");
    bb_close(c);
}

static void
test_request_no_coupons(void **state)
{
    struct bb_client *c = admin_client(state);
    bb_expect_prefix(c, "REQUEST alice", "ERR NO_COUPONS");
    bb_upload_gen(c, "F-", "FREE", 1, NULL, 1);
    bb_expect_prefix(c, "REQUEST alice STANDARD", "ERR NO_COUPONS");
    bb_expect_prefix(c, "REQUEST alice", "ERR NO_COUPONS");
    bb_expect_prefix(c, "REQUEST alice FREE", "OK code=F-000000");
    bb_expect_prefix(c, "REQUEST bob FREE", "ERR NO_COUPONS"); /* assigned to one user only */
    bb_close(c);
}

/* ---- VALIDATE and REDEEM ---- */

static void
test_validate_redeem_invalid(void **state)
{
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "V-", "", 2, NULL, 3);
    bb_expect_prefix(c, "REQUEST alice", "OK code=V-000000 ");
    bb_expect_prefix(c, "VALIDATE alice NOPE", "ERR INVALID");
    bb_expect_prefix(c, "REDEEM alice NOPE", "ERR INVALID");
    bb_expect_prefix(c, "VALIDATE bob V-000000", "ERR INVALID");
    bb_expect_prefix(c, "REDEEM bob V-000000", "ERR INVALID");
    bb_expect_prefix(c, "VALIDATE alice V-000001", "ERR INVALID"); /* not assigned */
    bb_expect_prefix(c, "REDEEM alice V-000001", "ERR INVALID");
    /* Nothing above counted a use. */
    bb_expect(c, "VALIDATE alice v-000000",
              "OK code=V-000000 type=NONE discount=10.00 kind=FLAT "
              "expires=2099-12-31T23:59:59Z uses=0 max_uses=3");
    assert_stat(c, "redeemed.NONE", 0);
    bb_close(c);
}

static void
test_exhausted_after_max_uses(void **state)
{
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "E-", "STANDARD", 1, NULL, 2);
    bb_expect_prefix(c, "REQUEST alice STANDARD", "OK code=E-000000 ");
    bb_expect_prefix(c, "VALIDATE alice E-000000", "OK code=E-000000 ");
    bb_expect_prefix(c, "REDEEM alice E-000000",
                     "OK code=E-000000 type=STANDARD discount=10.00 "
                     "kind=FLAT expires=2099-12-31T23:59:59Z uses=1 "
                     "max_uses=2");
    bb_expect(c, "VALIDATE alice E-000000",
              "OK code=E-000000 type=STANDARD discount=10.00 "
              "kind=FLAT expires=2099-12-31T23:59:59Z uses=1 "
              "max_uses=2");
    bb_expect_prefix(c, "REDEEM alice E-000000",
                     "OK code=E-000000 type=STANDARD discount=10.00 "
                     "kind=FLAT expires=2099-12-31T23:59:59Z uses=2 "
                     "max_uses=2");
    bb_expect_prefix(c, "VALIDATE alice E-000000", "ERR EXHAUSTED");
    bb_expect_prefix(c, "REDEEM alice E-000000", "ERR EXHAUSTED");
    assert_stat(c, "redeemed.STANDARD", 2);
    bb_close(c);
}

static void
test_expired(void **state)
{
    char exp[32];
    int64_t t = short_expiry(exp, sizeof exp);
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "X-", "", 3, exp, 1);
    bb_expect_prefix(c, "REQUEST alice", "OK code=X-000000 ");
    bb_expect_prefix(c, "REQUEST alice", "OK code=X-000001 ");
    bb_expect_prefix(c, "REDEEM alice X-000001", "OK code=X-000001 ");
    bb_expect_prefix(c, "VALIDATE alice X-000000", "OK code=X-000000 ");
    sleep_past(t);
    bb_expect_prefix(c, "VALIDATE alice X-000000", "ERR EXPIRED");
    bb_expect_prefix(c, "REDEEM alice X-000000", "ERR EXPIRED");
    bb_expect_prefix(c, "VALIDATE alice X-000001", "ERR EXHAUSTED"); /* uses are checked first */
    bb_expect_prefix(c, "VALIDATE bob X-000000", "ERR INVALID");     /* then the owner */
    bb_expect_prefix(c, "REQUEST carol", "ERR NO_COUPONS");          /* X-000002 expired */
    assert_stat(c, "redeemed.NONE", 1);
    assert_stat(c, "available.NONE", 0);
    bb_close(c);
}

/* ---- MEGADEAL interim, STATUS, WAIT ---- */

/* REQUEST user MEGADEAL never assigns at once: interim `ERR BUSY` (coupond-protocol(7)), or a
 * queued task once the queue exists. */
static void
test_megadeal_request_not_immediate(void **state)
{
    char task[PROTO_TASK_MAX + 1];
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "M-", "MEGADEAL", 2, NULL, 1);
    megadeal_queued(c, "REQUEST carol MEGADEAL", 1, task);
    megadeal_queued(c, "request dave megadeal", 2, task);
    bb_close(c);
}

/* Well-formed ids that the server never signed. */
static void
test_status_wait_bad_task(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_expect_prefix(c, "STATUS abc", "ERR BAD_TASK");
    bb_expect_prefix(c, "WAIT abc", "ERR BAD_TASK");
    bb_expect_prefix(c, "STATUS AQAAAAAAAAEAAAGSx4", "ERR BAD_TASK");
    bb_expect_prefix(c, "WAIT AQAAAAAAAAEAAAGSx4", "ERR BAD_TASK");
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

/* Malformed ids (bad characters, too long) are BAD_TASK too: ids reveal nothing
 * (coupond-protocol(7)). */
static void
test_status_wait_malformed_task(void **state)
{
    char long_id[PROTO_TASK_MAX + 2];
    memset(long_id, 'A', PROTO_TASK_MAX + 1);
    long_id[PROTO_TASK_MAX + 1] = '\0';
    char cmd[PROTO_TASK_MAX + 32];
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_expect_prefix(c, "STATUS a!b", "ERR BAD_TASK");
    bb_expect_prefix(c, "WAIT a.b", "ERR BAD_TASK");
    snprintf(cmd, sizeof cmd, "STATUS %s", long_id);
    bb_expect_prefix(c, cmd, "ERR BAD_TASK");
    snprintf(cmd, sizeof cmd, "WAIT %s", long_id);
    bb_expect_prefix(c, cmd, "ERR BAD_TASK");
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

/* ---- STATS ---- */

static void
test_stats_names(void **state)
{
    static const char *const plain[] = {
        "uptime_s",           "connections",      "commands",          "megadeal.queued",
        "megadeal.in_flight", "megadeal.granted", "megadeal.rejected", "megadeal.timed_out",
    };
    static const char *const per_type[] = {"created", "assigned", "redeemed", "available",
                                           "purged"};
    static char reply[BB_REPLY_MAX];
    char word[128] = "";
    struct bb_client *c = admin_client(state);
    const char *status = bb_cmd(c, "STATS", reply);
    assert_string_equal(status, "OK");
    for (const char *p = reply; p < status; p = strchr(p, '\n') + 1) {
        const char *name, *text;
        size_t name_len, text_len;
        uint64_t v;
        size_t len = (size_t)(strchr(p, '\n') - p);
        if (proto_reply_stat(p, len, &name, &name_len, &v))
            continue;
        /* The text values (PROTOCOL.md, several nodes): one word each. */
        if (!proto_reply_stat_word(p, len, &name, &name_len, &text, &text_len) ||
            !((name_len == 4 && memcmp(name, "node", 4) == 0) ||
              (name_len == 5 && memcmp(name, "store", 5) == 0)))
            fail_msg("not a \"STAT name value\" line: %.*s", (int)len, p);
    }
    if (!bb_stat_text(reply, "node", word, sizeof word) || word[0] == '\0')
        fail_msg("STATS lacks node:\n%s", reply);
    if (!bb_stat_text(reply, "store", word, sizeof word) ||
        strcmp(word, bb_on_pg() ? "postgresql" : "lmdb") != 0)
        fail_msg("STATS says store %s, not %s:\n%s", word, bb_on_pg() ? "postgresql" : "lmdb",
                 reply);
    uint64_t v;
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (!bb_stat_find(reply, plain[i], &v))
            fail_msg("STATS lacks %s:\n%s", plain[i], reply);
    for (size_t i = 0; i < sizeof per_type / sizeof per_type[0]; i++) {
        for (size_t t = 0; t < 4; t++) {
            char name[64];
            snprintf(name, sizeof name, "%s.%s", per_type[i], types[t]);
            if (!bb_stat_find(reply, name, &v))
                fail_msg("STATS lacks %s:\n%s", name, reply);
        }
    }
    bb_close(c);
}

static void
test_stats_counts_after_scenario(void **state)
{
    static const char *const failed[] = {"Z-1,,10,FLAT,2030-01-01,1", "Z-2,,0,FLAT,2030-01-01,1"};
    static const char *const counters[] = {"created", "assigned", "redeemed", "available",
                                           "purged"};
    /* Indexed [counter][type NONE FREE STANDARD MEGADEAL]. */
    static const uint64_t want[5][4] = {
        {3, 2, 4, 1}, {2, 1, 1, 0}, {1, 0, 2, 0}, {1, 1, 3, 1}, {0, 0, 0, 0},
    };
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = admin_client(state);
    uint64_t commands_before = bb_stat(c, "commands");
    bb_upload_gen(c, "S-N", "", 3, NULL, 1);
    bb_upload_gen(c, "S-F", "FREE", 2, NULL, 1);
    bb_upload_gen(c, "S-S", "STANDARD", 4, NULL, 3);
    bb_upload_gen(c, "S-M", "MEGADEAL", 1, NULL, 1);
    send_upload(c, failed, 2);
    bb_expect_reply_prefix(c, "ERR BAD_BATCH");
    bb_expect_prefix(c, "REQUEST a", "OK code=S-N000000 ");
    bb_expect_prefix(c, "REQUEST b", "OK code=S-N000001 ");
    bb_expect_prefix(c, "REQUEST c FREE", "OK code=S-F000000 ");
    bb_expect_prefix(c, "REQUEST d STANDARD", "OK code=S-S000000 ");
    bb_expect_prefix(c, "REDEEM d S-S000000", "OK code=S-S000000 ");
    bb_expect_prefix(c, "REDEEM d S-S000000", "OK code=S-S000000 ");
    bb_expect_prefix(c, "REDEEM a S-N000000", "OK code=S-N000000 ");
    bb_expect_prefix(c, "REDEEM a S-N000000", "ERR EXHAUSTED");
    bb_expect_prefix(c, "REDEEM x S-N000001", "ERR INVALID");
    const char *status = bb_cmd(c, "STATS", reply);
    assert_string_equal(status, "OK");
    for (size_t i = 0; i < 5; i++) {
        for (size_t t = 0; t < 4; t++) {
            char name[64];
            uint64_t v = UINT64_MAX;
            snprintf(name, sizeof name, "%s.%s", counters[i], types[t]);
            if (!bb_stat_find(reply, name, &v) || v != want[i][t])
                fail_msg("STAT %s: expected %llu, got %lld", name, (unsigned long long)want[i][t],
                         v == UINT64_MAX ? -1LL : (long long)v);
        }
    }
    uint64_t v;
    assert_true(bb_stat_find(reply, "connections", &v) && v >= 1);
    assert_true(bb_stat_find(reply, "commands", &v) && v > commands_before);
    bb_close(c);
}

/* ---- PURGE ---- */

static void
test_purge(void **state)
{
    char exp[32];
    int64_t t = short_expiry(exp, sizeof exp);
    char p1[64], p2[64], p3[64], p4[64];
    snprintf(p1, sizeof p1, "P-1,,10,FLAT,%s,1", exp);     /* assigned, never redeemed */
    snprintf(p2, sizeof p2, "P-2,FREE,10,FLAT,%s,1", exp); /* never assigned */
    snprintf(p3, sizeof p3, "P-3,,10,FLAT,%s,2", exp);     /* redeemed once, uses left */
    snprintf(p4, sizeof p4, "P-4,,10,FLAT,%s,1", exp);     /* redeemed, exhausted */
    const char *records[] = {
        p1, p2, p3, p4, "L-1,FREE,10,FLAT,2099-01-01,1", "L-2,,10,FLAT,2099-01-01,1",
    };
    struct bb_client *c = admin_client(state);
    bb_upload(c, records, 6);
    bb_expect_prefix(c, "REQUEST bob", "OK code=P-1 ");
    bb_expect_prefix(c, "REQUEST carol", "OK code=P-3 ");
    bb_expect_prefix(c, "REQUEST dave", "OK code=P-4 ");
    bb_expect_prefix(c, "REQUEST erin", "OK code=L-2 ");
    bb_expect_prefix(c, "REDEEM carol P-3", "OK code=P-3 ");
    bb_expect_prefix(c, "REDEEM dave P-4", "OK code=P-4 ");
    bb_expect(c, "PURGE", "OK purged=0"); /* nothing has expired yet */
    sleep_past(t);
    bb_expect(c, "PURGE", "OK purged=2");
    bb_expect_prefix(c, "VALIDATE bob P-1", "ERR INVALID");    /* deleted */
    bb_expect_prefix(c, "VALIDATE carol P-3", "ERR EXPIRED");  /* kept: it was redeemed */
    bb_expect_prefix(c, "VALIDATE dave P-4", "ERR EXHAUSTED"); /* kept */
    bb_expect_prefix(c, "VALIDATE erin L-2", "OK code=L-2 ");  /* not expired */
    assert_stat(c, "purged.NONE", 1);
    assert_stat(c, "purged.FREE", 1);
    assert_stat(c, "redeemed.NONE", 2);
    assert_stat(c, "available.FREE", 1);
    bb_expect(c, "PURGE", "OK purged=0");
    bb_expect_prefix(c, "REQUEST fred FREE", "OK code=L-1 ");
    bb_close(c);
}

static void
test_purge_timer(void **state)
{
    char exp[32];
    int64_t t = short_expiry(exp, sizeof exp);
    char rec[64];
    snprintf(rec, sizeof rec, "Q-1,,10,FLAT,%s,1", exp);
    const char *records[] = {rec, "Q-2,,10,FLAT,2099-01-01,1"};
    struct bb_client *c = admin_client(state);
    bb_upload(c, records, 2);
    sleep_past(t);
    int64_t deadline = bb_now_ms() + PURGE_WAIT_MS;
    while (bb_stat(c, "purged.NONE") == 0 && bb_now_ms() < deadline)
        bb_sleep_ms(STAT_POLL_MS);
    assert_stat(c, "purged.NONE", 1);
    assert_stat(c, "available.NONE", 1);
    bb_expect(c, "PURGE", "OK purged=0");
    bb_close(c);
}

/* ---- QUIT and errors ---- */

static void
test_quit(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_expect(c, "QUIT", "OK BYE");
    assert_true(bb_wait_closed(c, BB_IO_TIMEOUT_MS));
    bb_close(c);

    /* A command pipelined after QUIT is not answered. */
    char line[BB_LINE_MAX];
    c = bb_connect(bb_server_of(state));
    bb_send_str(c, "QUIT\nPING\n");
    assert_int_equal(bb_read_line(c, line, sizeof line), BB_READ_LINE);
    assert_string_equal(line, "OK BYE");
    assert_int_equal(bb_read_line(c, line, sizeof line), BB_READ_CLOSED);
    bb_close(c);
}

static void
test_unknown_command(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_expect_prefix(c, "FROB", "ERR UNKNOWN_COMMAND");
    bb_expect_prefix(c, "FROB a b", "ERR UNKNOWN_COMMAND");
    bb_expect_prefix(c, "PINGPING", "ERR UNKNOWN_COMMAND");
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

static void
test_bad_request_arg_counts(void **state)
{
    static const char *const cmds[] = {
        "PING x",         "AUTH",           "AUTH a b c", "REQUEST",      "REQUEST a STANDARD x",
        "STATUS",         "STATUS a b",     "WAIT",       "WAIT a b",     "VALIDATE",
        "VALIDATE alice", "VALIDATE a b c", "REDEEM",     "REDEEM alice", "REDEEM a b c",
        "PURGE now",      "STATS x",
    };
    struct bb_client *c = admin_client(state);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        bb_expect_prefix(c, cmds[i], "ERR BAD_REQUEST");
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

static void
test_bad_request_values(void **state)
{
    char user[PROTO_USER_MAX + 2], code[PROTO_CODE_MAX + 2], cmd[512];
    struct bb_client *c = bb_connect(bb_server_of(state));

    memset(user, 'u', PROTO_USER_MAX + 1);
    user[PROTO_USER_MAX + 1] = '\0';
    bb_fmt(cmd, sizeof cmd, "REQUEST %s", user);
    bb_expect_prefix(c, cmd, "ERR BAD_REQUEST"); /* 129 characters */
    user[PROTO_USER_MAX] = '\0';
    bb_fmt(cmd, sizeof cmd, "REQUEST %s", user);
    bb_expect_prefix(c, cmd, "ERR NO_COUPONS"); /* 128 is fine */

    memset(code, 'C', PROTO_CODE_MAX + 1);
    code[PROTO_CODE_MAX + 1] = '\0';
    bb_fmt(cmd, sizeof cmd, "VALIDATE alice %s", code);
    bb_expect_prefix(c, cmd, "ERR BAD_REQUEST"); /* 65 characters */
    bb_fmt(cmd, sizeof cmd, "REDEEM alice %s", code);
    bb_expect_prefix(c, cmd, "ERR BAD_REQUEST");
    code[PROTO_CODE_MAX] = '\0';
    bb_fmt(cmd, sizeof cmd, "VALIDATE alice %s", code);
    bb_expect_prefix(c, cmd, "ERR INVALID"); /* 64 is fine, and unknown */

    bb_expect_prefix(c, "VALIDATE alice A*B", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "REDEEM alice A/B", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "REQUEST alice GOLD", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "REQUEST alice FREE2", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "REQUEST al!ce@example.org", "ERR NO_COUPONS"); /* printable is fine */
    bb_close(c);
}

int
main(void)
{
    static const char *const max_upload[] = {"--max-upload", "10", NULL};
    static const char *const purge_every_second[] = {"--purge-interval", "1", NULL};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ping, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_help_lists_every_verb, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_auth_right_key, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_auth_wrong_key_denied, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_admin_before_auth_denied, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_before_auth_swallows_records, bb_setup,
                                        bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_ok, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_bad_records_rejected, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_reject_lines_capped, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_duplicate_code_in_batch, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_existing_code, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_bad_count, bb_setup, bb_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_upload_too_large, bb_setup, bb_teardown,
                                                 (void *)max_upload),
        cmocka_unit_test_setup_teardown(test_session_example, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_request_normalises_values, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_request_order, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_request_untyped_forms, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_request_no_coupons, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_validate_redeem_invalid, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_exhausted_after_max_uses, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_expired, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_megadeal_request_not_immediate, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_status_wait_bad_task, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_status_wait_malformed_task, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_stats_names, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_stats_counts_after_scenario, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_purge, bb_setup, bb_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_purge_timer, bb_setup, bb_teardown,
                                                 (void *)purge_every_second),
        cmocka_unit_test_setup_teardown(test_quit, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_command, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_bad_request_arg_counts, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_bad_request_values, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
