/* test_proto2.c - unit tests of protocol/ for version 2's requests: request ids, lookups, holds
 * and undo, generation and export; every form, bound and error of ../shared/PROTOCOL.md, the
 * canonical form (proto_fmt_request) and the new error codes and STATS names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"
#include "stat.h"

#define LINE_BUF (PROTO_MAX_LINE + 64)

/* ---- Helpers ---- */

static char *
fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* Parses `line`, which must succeed as `cmd`, into *r. */
static void
expect_ok(const char *line, enum proto_cmd cmd, struct proto_request *r)
{
    struct proto_error e;

    memset(&e, 0, sizeof e);
    if (!proto_parse_request(line, strlen(line), r, &e))
        fail_msg("\"%s\" refused: %s %s", line, proto_err_name(e.code), e.msg);
    assert_int_equal(r->cmd, cmd);
}

/* Parses `line`, which must fail with `code` and a message containing `part`. */
static void
expect_fail(const char *line, enum proto_err code, const char *part)
{
    struct proto_request r;
    struct proto_error e;

    memset(&e, 0, sizeof e);
    if (proto_parse_request(line, strlen(line), &r, &e))
        fail_msg("\"%s\" accepted", line);
    if (e.code != code)
        fail_msg("\"%s\": %s (%s), expected %s", line, proto_err_name(e.code), e.msg,
                 proto_err_name(code));
    if (strstr(e.msg, part) == NULL)
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", line, e.msg, part);
}

/* The canonical line must be `want` and parse back to a request with the same canonical line
 * (with and without the id). */
static void
expect_canonical(const char *line, const char *want, const char *want_no_id)
{
    struct proto_request r, again;
    char buf[PROTO_REQUEST_BUF], buf2[PROTO_REQUEST_BUF];
    struct proto_error e;

    if (!proto_parse_request(line, strlen(line), &r, &e))
        fail_msg("\"%s\" refused: %s", line, e.msg);
    size_t n = proto_fmt_request(buf, &r, true);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, want);
    proto_fmt_request(buf2, &r, false);
    assert_string_equal(buf2, want_no_id);
    if (!proto_parse_request(buf, n, &again, &e))
        fail_msg("canonical \"%s\" refused: %s", buf, e.msg);
    proto_fmt_request(buf2, &again, true);
    assert_string_equal(buf2, buf);
}

/* ---- Tables ---- */

static void
test_new_error_names_in_order(void **state)
{
    (void)state;
    assert_string_equal(proto_err_name(PROTO_ERR_INTERNAL + 1), "ID_CONFLICT");
    assert_string_equal(proto_err_name(PROTO_ERR_ID_CONFLICT), "ID_CONFLICT");
    assert_string_equal(proto_err_name(PROTO_ERR_UNKNOWN_HOLD), "UNKNOWN_HOLD");
    assert_string_equal(proto_err_name(PROTO_ERR_BAD_HOLD), "BAD_HOLD");
    assert_string_equal(proto_err_name(PROTO_ERR_UNKNOWN_REDEMPTION), "UNKNOWN_REDEMPTION");
    assert_string_equal(proto_err_name(PROTO_ERR_UNAVAILABLE), "UNAVAILABLE");
    assert_int_equal(PROTO_ERR_UNAVAILABLE + 1, PROTO_NERRS);
    /* Clients read them back. */
    for (int e = PROTO_ERR_ID_CONFLICT; e < PROTO_NERRS; e++) {
        char line[64];
        snprintf(line, sizeof line, "ERR %s something", proto_err_name((enum proto_err)e));
        assert_int_equal(proto_reply_err(line, strlen(line)), e);
    }
}

static void
test_new_verbs_in_table(void **state)
{
    static const struct {
        enum proto_cmd cmd;
        const char *name;
        int min, max;
        bool admin;
    } want[] = {
        {PROTO_CMD_HOLD, "HOLD", 2, 3, false},         {PROTO_CMD_RELEASE, "RELEASE", 1, 1, false},
        {PROTO_CMD_UNREDEEM, "UNREDEEM", 2, 2, false}, {PROTO_CMD_COUPONS, "COUPONS", 1, 1, false},
        {PROTO_CMD_COUPON, "COUPON", 1, 1, true},      {PROTO_CMD_GENERATE, "GENERATE", 6, 6, true},
        {PROTO_CMD_EXPORT, "EXPORT", 1, 2, true},      {PROTO_CMD_AUDIT, "AUDIT", 0, 0, true},
    };
    (void)state;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct proto_verb *v = &proto_verbs[want[i].cmd];
        assert_string_equal(v->name, want[i].name);
        assert_int_equal(v->min_args, want[i].min);
        assert_int_equal(v->max_args, want[i].max);
        assert_int_equal(v->admin, want[i].admin);
    }
    assert_string_equal(proto_verbs[PROTO_CMD_GENERATE].synopsis,
                        "GENERATE n type discount kind expires max_uses [prefix=P] [length=L] "
                        "[id=RID]");
    assert_string_equal(proto_verbs[PROTO_CMD_HOLD].synopsis, "HOLD user code [seconds] [id=RID]");
}

static void
test_stat_names_held_unredeemed(void **state)
{
    enum proto_stat s;
    enum proto_type t;
    (void)state;
    assert_true(proto_stat_lookup("held.FREE", 9, &s, &t));
    assert_int_equal(s, PROTO_STAT_HELD);
    assert_int_equal(t, PROTO_TYPE_FREE);
    assert_true(proto_stat_lookup("unredeemed.MEGADEAL", 19, &s, &t));
    assert_int_equal(s, PROTO_STAT_UNREDEEMED);
    assert_int_equal(t, PROTO_TYPE_MEGADEAL);
    assert_false(proto_stat_lookup("held", 4, &s, &t));
    assert_true(proto_stat_defs[PROTO_STAT_HELD].per_type);
    assert_true(proto_stat_defs[PROTO_STAT_UNREDEEMED].per_type);
}

/* ---- Request ids ---- */

static void
test_rid_on_every_write(void **state)
{
    static const struct {
        const char *line;
        enum proto_cmd cmd;
    } lines[] = {
        {"REQUEST alice id=order-1", PROTO_CMD_REQUEST},
        {"REQUEST alice FREE id=order-1", PROTO_CMD_REQUEST},
        {"REDEEM alice C1 id=order-1", PROTO_CMD_REDEEM},
        {"REDEEM alice C1 hold=AbC_-9 id=order-1", PROTO_CMD_REDEEM},
        {"UPLOAD 3 id=order-1", PROTO_CMD_UPLOAD},
        {"HOLD alice C1 id=order-1", PROTO_CMD_HOLD},
        {"HOLD alice C1 60 id=order-1", PROTO_CMD_HOLD},
        {"RELEASE AbC_-9 id=order-1", PROTO_CMD_RELEASE},
        {"UNREDEEM alice 7 id=order-1", PROTO_CMD_UNREDEEM},
        {"GENERATE 5 FREE 10 FLAT 2030-01-01 1 id=order-1", PROTO_CMD_GENERATE},
        {"GENERATE 5 FREE 10 FLAT 2030-01-01 1 prefix=X length=8 id=order-1", PROTO_CMD_GENERATE},
    };
    (void)state;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        struct proto_request r;
        expect_ok(lines[i].line, lines[i].cmd, &r);
        assert_string_equal(r.rid, "order-1");
    }
}

static void
test_rid_absent_is_empty(void **state)
{
    struct proto_request r;
    (void)state;
    expect_ok("REQUEST alice FREE", PROTO_CMD_REQUEST, &r);
    assert_string_equal(r.rid, "");
    expect_ok("REDEEM alice C1", PROTO_CMD_REDEEM, &r);
    assert_string_equal(r.rid, "");
    assert_string_equal(r.hold, "");
}

static void
test_rid_characters_and_case(void **state)
{
    struct proto_request r;
    (void)state;
    expect_ok("REQUEST alice id=AZaz09_-.:", PROTO_CMD_REQUEST, &r);
    assert_string_equal(r.rid, "AZaz09_-.:");
    expect_ok("REQUEST alice id=550e8400-e29b-41d4-a716-446655440000", PROTO_CMD_REQUEST, &r);
    assert_string_equal(r.rid, "550e8400-e29b-41d4-a716-446655440000");
    expect_ok("REQUEST alice id=MiXeD", PROTO_CMD_REQUEST, &r);
    assert_string_equal(r.rid, "MiXeD"); /* case-sensitive: kept as sent */
}

static void
test_rid_length_bounds(void **state)
{
    char line[256], rid[PROTO_RID_MAX + 2];
    struct proto_request r;
    (void)state;
    snprintf(line, sizeof line, "REQUEST alice id=%s", fill(rid, 'r', PROTO_RID_MAX));
    expect_ok(line, PROTO_CMD_REQUEST, &r);
    assert_int_equal(strlen(r.rid), PROTO_RID_MAX);
    snprintf(line, sizeof line, "REQUEST alice id=%s", fill(rid, 'r', PROTO_RID_MAX + 1));
    expect_fail(line, PROTO_ERR_BAD_REQUEST, "longer than 64");
    expect_ok("REQUEST alice id=x", PROTO_CMD_REQUEST, &r);
    assert_string_equal(r.rid, "x");
    expect_fail("REQUEST alice id=", PROTO_ERR_BAD_REQUEST, "bad request id: empty");
}

static void
test_rid_bad_characters(void **state)
{
    static const char *const bad[] = {"REQUEST alice id=a/b",  "REQUEST alice id=a=b",
                                      "REQUEST alice id=a,b",  "REQUEST alice id=a@b",
                                      "REDEEM alice C1 id=x!", "UPLOAD 2 id=a+b"};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_fail(bad[i], PROTO_ERR_BAD_REQUEST, "bad request id");
}

static void
test_rid_must_be_last_and_once(void **state)
{
    (void)state;
    expect_fail("REDEEM alice C1 id=a hold=H", PROTO_ERR_BAD_REQUEST, "id= must be the last word");
    expect_fail("REQUEST alice id=a id=b", PROTO_ERR_BAD_REQUEST, "id= must be the last word");
    expect_fail("GENERATE 1 - 1 FLAT 2030-01-01 1 prefix=A prefix=B", PROTO_ERR_BAD_REQUEST,
                "prefix= given twice");
    expect_fail("GENERATE 1 - 1 FLAT 2030-01-01 1 id=a length=8", PROTO_ERR_BAD_REQUEST,
                "id= must be the last word");
}

static void
test_rid_not_on_reads(void **state)
{
    (void)state;
    /* Reads take no id: the word is an argument too many or a bad value. */
    expect_fail("VALIDATE alice C1 id=a", PROTO_ERR_BAD_REQUEST, "usage: VALIDATE");
    expect_fail("STATUS t1 id=a", PROTO_ERR_BAD_REQUEST, "usage: STATUS");
    expect_fail("COUPONS alice id=a", PROTO_ERR_BAD_REQUEST, "usage: COUPONS");
    expect_fail("PING id=a", PROTO_ERR_BAD_REQUEST, "usage: PING");
    expect_fail("EXPORT HISTORY id=a", PROTO_ERR_BAD_REQUEST, "usage: EXPORT");
}

static void
test_rid_only_beyond_required_args(void **state)
{
    struct proto_request r;
    (void)state;
    /* The user is required: "id=x" is the user's name, not an id. */
    expect_ok("REQUEST id=x", PROTO_CMD_REQUEST, &r);
    assert_string_equal(r.user, "id=x");
    assert_string_equal(r.rid, "");
    expect_ok("REQUEST id=x id=y", PROTO_CMD_REQUEST, &r);
    assert_string_equal(r.user, "id=x");
    assert_string_equal(r.rid, "y");
    /* A code cannot hold '=': a missing code is a bad code. */
    expect_fail("REDEEM alice id=x", PROTO_ERR_BAD_REQUEST, "bad code");
}

static void
test_option_names_lower_case(void **state)
{
    (void)state;
    /* "ID=x" is no option: it is REQUEST's type, and a bad one. */
    expect_fail("REQUEST alice ID=x", PROTO_ERR_BAD_REQUEST, "bad type");
    expect_fail("REDEEM alice C1 HOLD=x", PROTO_ERR_BAD_REQUEST, "usage: REDEEM");
    /* An option another verb takes is not this verb's. */
    expect_fail("REQUEST alice hold=x", PROTO_ERR_BAD_REQUEST, "bad type");
    expect_fail("HOLD alice C1 prefix=x", PROTO_ERR_BAD_REQUEST, "bad seconds");
}

/* ---- Holds and undo ---- */

static void
test_hold_forms(void **state)
{
    struct proto_request r;
    (void)state;
    expect_ok("HOLD alice summer-1", PROTO_CMD_HOLD, &r);
    assert_string_equal(r.user, "alice");
    assert_string_equal(r.code, "SUMMER-1");
    assert_int_equal(r.seconds, PROTO_HOLD_SECONDS_DEFAULT);
    assert_int_equal(r.seconds, 900);
    expect_ok("hold alice C 1", PROTO_CMD_HOLD, &r);
    assert_int_equal(r.seconds, 1);
    expect_ok("HOLD alice C 86400", PROTO_CMD_HOLD, &r);
    assert_int_equal(r.seconds, 86400);
    expect_ok("HOLD alice C 0000060", PROTO_CMD_HOLD, &r);
    assert_int_equal(r.seconds, 60);
}

static void
test_hold_seconds_bounds(void **state)
{
    static const char *const bad[] = {"HOLD alice C 0",   "HOLD alice C 86401",
                                      "HOLD alice C -1",  "HOLD alice C 1.5",
                                      "HOLD alice C 1e3", "HOLD alice C 99999999999999999999999",
                                      "HOLD alice C x"};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_fail(bad[i], PROTO_ERR_BAD_REQUEST, "bad seconds: must be from 1 to 86400");
}

static void
test_hold_arg_errors(void **state)
{
    (void)state;
    expect_fail("HOLD", PROTO_ERR_BAD_REQUEST, "usage: HOLD user code [seconds] [id=RID]");
    expect_fail("HOLD alice", PROTO_ERR_BAD_REQUEST, "usage: HOLD");
    expect_fail("HOLD alice C 60 x", PROTO_ERR_BAD_REQUEST, "usage: HOLD");
    expect_fail("HOLD alice C/1", PROTO_ERR_BAD_REQUEST, "bad code");
}

static void
test_redeem_with_hold(void **state)
{
    struct proto_request r;
    char line[512], hid[PROTO_HOLD_MAX + 2];
    (void)state;
    expect_ok("REDEEM alice c1 hold=AQAAAAAAAAEAAAGS-x_4", PROTO_CMD_REDEEM, &r);
    assert_string_equal(r.code, "C1");
    assert_string_equal(r.hold, "AQAAAAAAAAEAAAGS-x_4"); /* as sent, case kept */
    snprintf(line, sizeof line, "REDEEM alice C1 hold=%s", fill(hid, 'h', PROTO_HOLD_MAX));
    expect_ok(line, PROTO_CMD_REDEEM, &r);
    /* A malformed hold id is a bad hold id like a forged one, with the one message. */
    snprintf(line, sizeof line, "REDEEM alice C1 hold=%s", fill(hid, 'h', PROTO_HOLD_MAX + 1));
    expect_fail(line, PROTO_ERR_BAD_HOLD, PROTO_BAD_HOLD_MSG);
    expect_fail("REDEEM alice C1 hold=", PROTO_ERR_BAD_HOLD, PROTO_BAD_HOLD_MSG);
    expect_fail("REDEEM alice C1 hold=a.b", PROTO_ERR_BAD_HOLD, PROTO_BAD_HOLD_MSG);
    expect_fail("REDEEM alice C1 hold=a hold=b", PROTO_ERR_BAD_REQUEST, "hold= given twice");
}

static void
test_release_forms(void **state)
{
    struct proto_request r;
    struct proto_error e;
    (void)state;
    expect_ok("RELEASE AbC-_9", PROTO_CMD_RELEASE, &r);
    assert_string_equal(r.hold, "AbC-_9");
    expect_fail("RELEASE", PROTO_ERR_BAD_REQUEST, "usage: RELEASE HID [id=RID]");
    expect_fail("RELEASE a b", PROTO_ERR_BAD_REQUEST, "usage: RELEASE");
    assert_false(proto_parse_request("RELEASE a:b", 11, &r, &e));
    assert_int_equal(e.code, PROTO_ERR_BAD_HOLD);
    assert_string_equal(e.msg, PROTO_BAD_HOLD_MSG);
    /* "RELEASE id=x": the hold id is required, so this is a hold id, and a bad one. */
    expect_fail("RELEASE id=x", PROTO_ERR_BAD_HOLD, PROTO_BAD_HOLD_MSG);
}

static void
test_unredeem_forms(void **state)
{
    struct proto_request r;
    (void)state;
    expect_ok("UNREDEEM alice 1", PROTO_CMD_UNREDEEM, &r);
    assert_string_equal(r.user, "alice");
    assert_int_equal(r.seq, 1);
    expect_ok("UNREDEEM alice 18446744073709551615", PROTO_CMD_UNREDEEM, &r);
    assert_int_equal(r.seq, UINT64_MAX);
    expect_fail("UNREDEEM alice 0", PROTO_ERR_BAD_REQUEST, "bad SEQ");
    expect_fail("UNREDEEM alice 18446744073709551616", PROTO_ERR_BAD_REQUEST, "bad SEQ");
    expect_fail("UNREDEEM alice -1", PROTO_ERR_BAD_REQUEST, "bad SEQ");
    expect_fail("UNREDEEM alice x", PROTO_ERR_BAD_REQUEST, "bad SEQ");
    expect_fail("UNREDEEM alice", PROTO_ERR_BAD_REQUEST, "usage: UNREDEEM user SEQ [id=RID]");
    expect_fail("UNREDEEM alice 1 2", PROTO_ERR_BAD_REQUEST, "usage: UNREDEEM");
}

/* ---- Lookups ---- */

static void
test_coupons_and_coupon(void **state)
{
    struct proto_request r;
    char line[256], user[PROTO_USER_MAX + 2];
    (void)state;
    expect_ok("COUPONS alice", PROTO_CMD_COUPONS, &r);
    assert_string_equal(r.user, "alice");
    snprintf(line, sizeof line, "COUPONS %s", fill(user, 'u', PROTO_USER_MAX));
    expect_ok(line, PROTO_CMD_COUPONS, &r);
    snprintf(line, sizeof line, "COUPONS %s", fill(user, 'u', PROTO_USER_MAX + 1));
    expect_fail(line, PROTO_ERR_BAD_REQUEST, "bad user");
    expect_fail("COUPONS", PROTO_ERR_BAD_REQUEST, "usage: COUPONS user");
    expect_fail("COUPONS a b", PROTO_ERR_BAD_REQUEST, "usage: COUPONS user");
    expect_ok("coupon summer-1", PROTO_CMD_COUPON, &r);
    assert_string_equal(r.code, "SUMMER-1");
    expect_fail("COUPON", PROTO_ERR_BAD_REQUEST, "usage: COUPON code");
    expect_fail("COUPON a b", PROTO_ERR_BAD_REQUEST, "usage: COUPON code");
    expect_fail("COUPON a/b", PROTO_ERR_BAD_REQUEST, "bad code");
    assert_true(proto_verbs[PROTO_CMD_COUPON].admin);
    assert_false(proto_verbs[PROTO_CMD_COUPONS].admin);
}

/* ---- GENERATE ---- */

static void
test_generate_basic(void **state)
{
    struct proto_request r;
    (void)state;
    expect_ok("GENERATE 100 standard 12.5 flat 2030-06-01 3", PROTO_CMD_GENERATE, &r);
    assert_int_equal(r.count, 100);
    assert_int_equal(r.gen.type, PROTO_TYPE_STANDARD);
    assert_int_equal(r.gen.discount, 1250);
    assert_int_equal(r.gen.kind, PROTO_KIND_FLAT);
    assert_int_equal(r.gen.max_uses, 3);
    assert_string_equal(r.prefix, "");
    assert_int_equal(r.length, PROTO_GEN_LENGTH_DEFAULT);
    assert_int_equal(r.length, 12);
    char when[PROTO_TIME_BUF];
    proto_fmt_time(when, r.gen.expires);
    assert_string_equal(when, "2030-06-01T23:59:59Z");
    expect_ok("GENERATE 1 NONE 100 PERCENT 2030-01-01T00:00:00Z 1000000", PROTO_CMD_GENERATE, &r);
    assert_int_equal(r.gen.type, PROTO_TYPE_NONE);
    expect_ok("GENERATE 1 - 1 PERCENT 2030-01-01 1", PROTO_CMD_GENERATE, &r);
    assert_int_equal(r.gen.type, PROTO_TYPE_NONE);
}

static void
test_generate_prefix_and_length(void **state)
{
    struct proto_request r;
    char line[256], p[PROTO_PREFIX_MAX + 2];
    (void)state;
    expect_ok("GENERATE 2 FREE 5 FLAT 2030-01-01 1 prefix=sale- length=6", PROTO_CMD_GENERATE, &r);
    assert_string_equal(r.prefix, "SALE-");
    assert_int_equal(r.length, 6);
    expect_ok("GENERATE 2 FREE 5 FLAT 2030-01-01 1 length=32 prefix=X", PROTO_CMD_GENERATE, &r);
    assert_string_equal(r.prefix, "X");
    assert_int_equal(r.length, 32);
    expect_ok("GENERATE 2 FREE 5 FLAT 2030-01-01 1 prefix=", PROTO_CMD_GENERATE, &r);
    assert_string_equal(r.prefix, "");
    snprintf(line, sizeof line, "GENERATE 2 FREE 5 FLAT 2030-01-01 1 prefix=%s",
             fill(p, 'P', PROTO_PREFIX_MAX));
    expect_ok(line, PROTO_CMD_GENERATE, &r);
    assert_int_equal(strlen(r.prefix), PROTO_PREFIX_MAX);
    snprintf(line, sizeof line, "GENERATE 2 FREE 5 FLAT 2030-01-01 1 prefix=%s",
             fill(p, 'P', PROTO_PREFIX_MAX + 1));
    expect_fail(line, PROTO_ERR_BAD_REQUEST, "bad prefix: longer than 16");
    expect_fail("GENERATE 2 FREE 5 FLAT 2030-01-01 1 prefix=a/b", PROTO_ERR_BAD_REQUEST,
                "bad prefix");
    expect_fail("GENERATE 2 FREE 5 FLAT 2030-01-01 1 length=5", PROTO_ERR_BAD_REQUEST,
                "bad length: must be from 6 to 32");
    expect_fail("GENERATE 2 FREE 5 FLAT 2030-01-01 1 length=33", PROTO_ERR_BAD_REQUEST,
                "bad length");
    expect_fail("GENERATE 2 FREE 5 FLAT 2030-01-01 1 length=", PROTO_ERR_BAD_REQUEST, "bad length");
    expect_fail("GENERATE 2 FREE 5 FLAT 2030-01-01 1 length=x", PROTO_ERR_BAD_REQUEST,
                "bad length");
    expect_fail("GENERATE 2 FREE 5 FLAT 2030-01-01 1 length=8 length=9", PROTO_ERR_BAD_REQUEST,
                "length= given twice");
}

static void
test_generate_value_errors(void **state)
{
    (void)state;
    expect_fail("GENERATE 0 FREE 5 FLAT 2030-01-01 1", PROTO_ERR_BAD_REQUEST,
                "GENERATE needs a positive count");
    expect_fail("GENERATE x FREE 5 FLAT 2030-01-01 1", PROTO_ERR_BAD_REQUEST, "positive count");
    expect_fail("GENERATE 1 GOLD 5 FLAT 2030-01-01 1", PROTO_ERR_BAD_REQUEST, "bad type");
    expect_fail("GENERATE 1 FREE 0 FLAT 2030-01-01 1", PROTO_ERR_BAD_REQUEST, "bad discount");
    expect_fail("GENERATE 1 FREE 1.234 FLAT 2030-01-01 1", PROTO_ERR_BAD_REQUEST,
                "more than 2 decimal places");
    expect_fail("GENERATE 1 FREE 101 PERCENT 2030-01-01 1", PROTO_ERR_BAD_REQUEST,
                "a PERCENT discount is at most 100");
    expect_fail("GENERATE 1 FREE 5 CASH 2030-01-01 1", PROTO_ERR_BAD_REQUEST, "bad kind");
    expect_fail("GENERATE 1 FREE 5 FLAT 2030-02-30 1", PROTO_ERR_BAD_REQUEST, "bad expires");
    expect_fail("GENERATE 1 FREE 5 FLAT 2030-01-01 0", PROTO_ERR_BAD_REQUEST, "bad max_uses");
    expect_fail("GENERATE 1 FREE 5 FLAT 2030-01-01 1000001", PROTO_ERR_BAD_REQUEST, "bad max_uses");
    expect_fail("GENERATE 1 FREE 5 FLAT 2030-01-01", PROTO_ERR_BAD_REQUEST, "usage: GENERATE");
    expect_fail("GENERATE 1 FREE 5 FLAT 2030-01-01 1 x", PROTO_ERR_BAD_REQUEST, "usage: GENERATE");
}

static void
test_generate_large_count_saturates(void **state)
{
    struct proto_request r;
    (void)state;
    /* Too large is the server's to say (TOO_LARGE against --max-upload), not the parser's. */
    expect_ok("GENERATE 50001 FREE 5 FLAT 2030-01-01 1", PROTO_CMD_GENERATE, &r);
    assert_int_equal(r.count, 50001);
    expect_ok("GENERATE 99999999999999999999999 FREE 5 FLAT 2030-01-01 1", PROTO_CMD_GENERATE, &r);
    assert_int_equal(r.count, UINT64_MAX);
}

static void
test_longest_request_fits_the_words(void **state)
{
    struct proto_request r;
    (void)state;
    /* Ten words: the most a request has. */
    expect_ok("GENERATE 1 FREE 5 FLAT 2030-01-01 1 prefix=A length=6 id=r", PROTO_CMD_GENERATE, &r);
    assert_int_equal(PROTO_MAX_WORDS, 10);
    expect_fail("GENERATE 1 FREE 5 FLAT 2030-01-01 1 prefix=A length=6 id=r x",
                PROTO_ERR_BAD_REQUEST, "usage: GENERATE");
}

static void
test_generate_alphabet(void **state)
{
    (void)state;
    assert_int_equal(strlen(PROTO_GEN_ALPHABET), PROTO_GEN_ALPHABET_LEN);
    for (const char *p = PROTO_GEN_ALPHABET; *p; p++) {
        assert_true((*p >= '2' && *p <= '9') || (*p >= 'A' && *p <= 'Z'));
        assert_true(*p != 'I' && *p != 'O');
        assert_null(strchr(p + 1, *p)); /* no repeats */
        char code[PROTO_CODE_MAX + 1];
        assert_true(proto_parse_code(p, 1, code, NULL)); /* every one a code character */
    }
}

/* ---- EXPORT ---- */

static void
test_export_forms(void **state)
{
    struct proto_request r;
    (void)state;
    expect_ok("EXPORT COUPONS", PROTO_CMD_EXPORT, &r);
    assert_int_equal(r.export_what, PROTO_EXPORT_COUPONS);
    assert_false(r.has_type);
    expect_ok("export coupons free", PROTO_CMD_EXPORT, &r);
    assert_true(r.has_type);
    assert_int_equal(r.type, PROTO_TYPE_FREE);
    expect_ok("EXPORT COUPONS NONE", PROTO_CMD_EXPORT, &r);
    assert_true(r.has_type);
    assert_int_equal(r.type, PROTO_TYPE_NONE);
    expect_ok("EXPORT COUPONS -", PROTO_CMD_EXPORT, &r);
    assert_true(r.has_type);
    expect_ok("EXPORT HISTORY", PROTO_CMD_EXPORT, &r);
    assert_int_equal(r.export_what, PROTO_EXPORT_HISTORY);
    assert_int_equal(r.seq, 0);
    expect_ok("Export History after=42", PROTO_CMD_EXPORT, &r);
    assert_int_equal(r.seq, 42);
    expect_ok("EXPORT HISTORY after=0", PROTO_CMD_EXPORT, &r);
    assert_int_equal(r.seq, 0);
    expect_ok("EXPORT HISTORY after=18446744073709551615", PROTO_CMD_EXPORT, &r);
    assert_int_equal(r.seq, UINT64_MAX);
    expect_ok("export audit", PROTO_CMD_EXPORT, &r);
    assert_int_equal(r.export_what, PROTO_EXPORT_AUDIT);
    assert_int_equal(r.seq, 0);
    expect_ok("EXPORT AUDIT after=7", PROTO_CMD_EXPORT, &r);
    assert_int_equal(r.export_what, PROTO_EXPORT_AUDIT);
    assert_int_equal(r.seq, 7);
    expect_ok("audit", PROTO_CMD_AUDIT, &r);
}

static void
test_export_errors(void **state)
{
    (void)state;
    expect_fail("EXPORT", PROTO_ERR_BAD_REQUEST, "usage: EXPORT");
    expect_fail("EXPORT LEDGER", PROTO_ERR_BAD_REQUEST, "EXPORT takes COUPONS, HISTORY or AUDIT");
    expect_fail("EXPORT AUDIT FREE", PROTO_ERR_BAD_REQUEST, "usage: EXPORT");
    expect_fail("EXPORT AUDIT after=x", PROTO_ERR_BAD_REQUEST, "bad after");
    expect_fail("EXPORT AUDIT after=1 id=x", PROTO_ERR_BAD_REQUEST, "usage: EXPORT");
    expect_fail("AUDIT now", PROTO_ERR_BAD_REQUEST, "usage: AUDIT");
    expect_fail("EXPORT COUPONS GOLD", PROTO_ERR_BAD_REQUEST, "bad type");
    expect_fail("EXPORT COUPONS FREE x", PROTO_ERR_BAD_REQUEST, "usage: EXPORT");
    expect_fail("EXPORT COUPONS after=3", PROTO_ERR_BAD_REQUEST, "usage: EXPORT");
    expect_fail("EXPORT HISTORY FREE", PROTO_ERR_BAD_REQUEST, "usage: EXPORT");
    expect_fail("EXPORT HISTORY after=", PROTO_ERR_BAD_REQUEST, "bad after");
    expect_fail("EXPORT HISTORY after=-1", PROTO_ERR_BAD_REQUEST, "bad after");
    expect_fail("EXPORT HISTORY after=18446744073709551616", PROTO_ERR_BAD_REQUEST, "bad after");
    expect_fail("EXPORT HISTORY after=1 after=2", PROTO_ERR_BAD_REQUEST, "after= given twice");
}

/* ---- Canonical form ---- */

static void
test_canonical_lines(void **state)
{
    (void)state;
    expect_canonical("request  alice", "REQUEST alice NONE", "REQUEST alice NONE");
    expect_canonical("REQUEST alice free id=o-1", "REQUEST alice FREE id=o-1",
                     "REQUEST alice FREE");
    expect_canonical("REDEEM alice c-1 hold=Hx id=o-1", "REDEEM alice C-1 hold=Hx id=o-1",
                     "REDEEM alice C-1 hold=Hx");
    expect_canonical("HOLD alice c-1", "HOLD alice C-1 900", "HOLD alice C-1 900");
    expect_canonical("HOLD alice c-1 0060 id=z", "HOLD alice C-1 60 id=z", "HOLD alice C-1 60");
    expect_canonical("RELEASE Hx id=z", "RELEASE Hx id=z", "RELEASE Hx");
    expect_canonical("UNREDEEM alice 007", "UNREDEEM alice 7", "UNREDEEM alice 7");
    expect_canonical("UPLOAD 0010 id=b", "UPLOAD 10 id=b", "UPLOAD 10");
    expect_canonical("COUPONS alice", "COUPONS alice", "COUPONS alice");
    expect_canonical("COUPON c-1", "COUPON C-1", "COUPON C-1");
    expect_canonical("GENERATE 5 free 12.5 flat 2030-06-01 3 length=8 prefix=ab id=g",
                     "GENERATE 5 FREE 12.50 FLAT 2030-06-01T23:59:59Z 3 prefix=AB length=8 id=g",
                     "GENERATE 5 FREE 12.50 FLAT 2030-06-01T23:59:59Z 3 prefix=AB length=8");
    expect_canonical("GENERATE 5 - 1 percent 2030-06-01T02:00:00+02:00 1",
                     "GENERATE 5 NONE 1.00 PERCENT 2030-06-01T00:00:00Z 1 length=12",
                     "GENERATE 5 NONE 1.00 PERCENT 2030-06-01T00:00:00Z 1 length=12");
    expect_canonical("EXPORT coupons", "EXPORT COUPONS", "EXPORT COUPONS");
    expect_canonical("EXPORT coupons -", "EXPORT COUPONS NONE", "EXPORT COUPONS NONE");
    expect_canonical("EXPORT history", "EXPORT HISTORY after=0", "EXPORT HISTORY after=0");
    expect_canonical("export Audit after=03", "EXPORT AUDIT after=3", "EXPORT AUDIT after=3");
    expect_canonical("audit", "AUDIT", "AUDIT");
    expect_canonical("PING", "PING", "PING");
}

static void
test_canonical_same_meaning_same_line(void **state)
{
    static const char *const pairs[][2] = {
        {"REQUEST alice", "request alice none"},
        {"REQUEST alice -", "REQUEST\talice\tNONE"},
        {"REDEEM alice summer-1 id=x", "REDEEM alice SUMMER-1 id=x"},
        {"HOLD a c 900", "HOLD a c"},
        {"GENERATE 1 FREE 10 FLAT 2030-01-01 1 length=12",
         "GENERATE 1 FREE 10.00 FLAT 2030-01-01 1"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        struct proto_request a, b;
        char la[PROTO_REQUEST_BUF], lb[PROTO_REQUEST_BUF];
        struct proto_error e;
        assert_true(proto_parse_request(pairs[i][0], strlen(pairs[i][0]), &a, &e));
        expect_ok(pairs[i][1], a.cmd, &b);
        proto_fmt_request(la, &a, false);
        proto_fmt_request(lb, &b, false);
        assert_string_equal(la, lb);
    }
}

static void
test_canonical_differs_by_argument(void **state)
{
    static const char *const lines[] = {"REQUEST alice",
                                        "REQUEST alice FREE",
                                        "REQUEST bob",
                                        "REQUEST Alice",
                                        "REDEEM alice C1",
                                        "REDEEM alice C2",
                                        "REDEEM alice C1 hold=h",
                                        "HOLD alice C1",
                                        "HOLD alice C1 60",
                                        "UNREDEEM alice 1",
                                        "UNREDEEM alice 2",
                                        "UPLOAD 1",
                                        "UPLOAD 2",
                                        "RELEASE h",
                                        "RELEASE g",
                                        "VALIDATE alice C1",
                                        "GENERATE 1 - 1 FLAT 2030-01-01 1",
                                        "GENERATE 2 - 1 FLAT 2030-01-01 1",
                                        "GENERATE 1 - 1 FLAT 2030-01-01 1 prefix=A",
                                        "GENERATE 1 - 1 FLAT 2030-01-01 1 length=6"};
    char seen[sizeof lines / sizeof lines[0]][PROTO_REQUEST_BUF];
    (void)state;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        struct proto_request r;
        struct proto_error e;
        assert_true(proto_parse_request(lines[i], strlen(lines[i]), &r, &e));
        proto_fmt_request(seen[i], &r, false);
        for (size_t j = 0; j < i; j++)
            if (strcmp(seen[i], seen[j]) == 0)
                fail_msg("\"%s\" and \"%s\" have one canonical line", lines[i], lines[j]);
    }
}

static void
test_canonical_longest_fits(void **state)
{
    char line[LINE_BUF], user[PROTO_USER_MAX + 1], hid[PROTO_HOLD_MAX + 1], rid[PROTO_RID_MAX + 1],
        code[PROTO_CODE_MAX + 1];
    char out[PROTO_REQUEST_BUF];
    struct proto_request r;
    (void)state;
    snprintf(line, sizeof line, "REDEEM %s %s hold=%s id=%s", fill(user, 'u', PROTO_USER_MAX),
             fill(code, 'C', PROTO_CODE_MAX), fill(hid, 'h', PROTO_HOLD_MAX),
             fill(rid, 'r', PROTO_RID_MAX));
    expect_ok(line, PROTO_CMD_REDEEM, &r);
    size_t n = proto_fmt_request(out, &r, true);
    assert_int_equal(n, strlen(line));
    assert_string_equal(out, line);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_error_names_in_order),
        cmocka_unit_test(test_new_verbs_in_table),
        cmocka_unit_test(test_stat_names_held_unredeemed),
        cmocka_unit_test(test_rid_on_every_write),
        cmocka_unit_test(test_rid_absent_is_empty),
        cmocka_unit_test(test_rid_characters_and_case),
        cmocka_unit_test(test_rid_length_bounds),
        cmocka_unit_test(test_rid_bad_characters),
        cmocka_unit_test(test_rid_must_be_last_and_once),
        cmocka_unit_test(test_rid_not_on_reads),
        cmocka_unit_test(test_rid_only_beyond_required_args),
        cmocka_unit_test(test_option_names_lower_case),
        cmocka_unit_test(test_hold_forms),
        cmocka_unit_test(test_hold_seconds_bounds),
        cmocka_unit_test(test_hold_arg_errors),
        cmocka_unit_test(test_redeem_with_hold),
        cmocka_unit_test(test_release_forms),
        cmocka_unit_test(test_unredeem_forms),
        cmocka_unit_test(test_coupons_and_coupon),
        cmocka_unit_test(test_generate_basic),
        cmocka_unit_test(test_generate_prefix_and_length),
        cmocka_unit_test(test_generate_value_errors),
        cmocka_unit_test(test_generate_large_count_saturates),
        cmocka_unit_test(test_longest_request_fits_the_words),
        cmocka_unit_test(test_generate_alphabet),
        cmocka_unit_test(test_export_forms),
        cmocka_unit_test(test_export_errors),
        cmocka_unit_test(test_canonical_lines),
        cmocka_unit_test(test_canonical_same_meaning_same_line),
        cmocka_unit_test(test_canonical_differs_by_argument),
        cmocka_unit_test(test_canonical_longest_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
