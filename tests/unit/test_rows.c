/* test_rows.c - unit tests of the server's pure parts of version 2: GENERATE's candidates
 * (gen.c: the codes' form, alphabet and spread, the spare counts), the data lines of long
 * replies (rows.c: every line's exact form, parts bounded by the room given), and request id
 * fingerprints (rid.c: a retry's spelling never matters, its arguments always do). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "gen.h"
#include "proto.h"
#include "reply.h"
#include "rid.h"
#include "rows.h"

#define DRAWS   20000 /* codes drawn to check their spread */
#define OUT_MAX (1 << 20)

static int
setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* ---- gen ---- */

static void
test_code_form(void **state)
{
    char code[STORE_CODE_MAX + 1];
    (void)state;
    for (unsigned len = PROTO_GEN_LENGTH_MIN; len <= PROTO_GEN_LENGTH_MAX; len++) {
        gen_code(code, "", len);
        assert_int_equal(strlen(code), len);
        assert_int_equal(strspn(code, PROTO_GEN_ALPHABET), len);
    }
    gen_code(code, "SALE-", 12);
    assert_int_equal(strlen(code), 17);
    assert_memory_equal(code, "SALE-", 5);
    assert_int_equal(strspn(code + 5, PROTO_GEN_ALPHABET), 12);
    char longest[PROTO_PREFIX_MAX + 1];
    memset(longest, 'P', PROTO_PREFIX_MAX);
    longest[PROTO_PREFIX_MAX] = '\0';
    gen_code(code, longest, PROTO_GEN_LENGTH_MAX);
    assert_int_equal(strlen(code), PROTO_PREFIX_MAX + PROTO_GEN_LENGTH_MAX);
    char parsed[PROTO_CODE_MAX + 1];
    assert_true(proto_parse_code(code, strlen(code), parsed, NULL));
    assert_string_equal(parsed, code); /* already upper case: stored as drawn */
}

static int
cmp_code(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void
test_codes_spread(void **state)
{
    static char codes[DRAWS][STORE_CODE_MAX + 1];
    unsigned counts[PROTO_GEN_ALPHABET_LEN] = {0};
    (void)state;
    for (int i = 0; i < DRAWS; i++) {
        gen_code(codes[i], "", PROTO_GEN_LENGTH_DEFAULT);
        for (const char *p = codes[i]; *p; p++)
            counts[strchr(PROTO_GEN_ALPHABET, *p) - PROTO_GEN_ALPHABET]++;
    }
    /* No repeats among 20,000 codes of 60 bits. */
    qsort(codes, DRAWS, sizeof codes[0], cmp_code);
    for (int i = 1; i < DRAWS; i++)
        if (strcmp(codes[i - 1], codes[i]) == 0)
            fail_msg("code %s drawn twice", codes[i]);
    /* Every character about equally often: 240,000 characters, 7,500 each expected, a
     * standard deviation of about 85; 600 off is more than 7 of them. */
    for (int c = 0; c < PROTO_GEN_ALPHABET_LEN; c++)
        if (counts[c] < 6900 || counts[c] > 8100)
            fail_msg("character %c drawn %u times of 240000", PROTO_GEN_ALPHABET[c], counts[c]);
}

static void
test_candidates(void **state)
{
    (void)state;
    assert_int_equal(gen_candidates(1, 0), 1 + GEN_SPARE_MIN);
    assert_int_equal(gen_candidates(50000, 0), 50000 + 50000 / GEN_SPARE_DIV + GEN_SPARE_MIN);
    assert_int_equal(gen_candidates(50000, 1) - 50000, 2 * (gen_candidates(50000, 0) - 50000));
    assert_int_equal(gen_candidates(100, 3) - 100, 8 * (gen_candidates(100, 0) - 100));
    for (unsigned a = 0; a + 1 < GEN_ATTEMPTS; a++)
        assert_true(gen_candidates(1000, a + 1) > gen_candidates(1000, a));
}

static void
test_fill(void **state)
{
    struct proto_request req;
    struct proto_error e;
    struct store_coupon recs[10];
    const char *line = "GENERATE 10 FREE 12.5 PERCENT 2030-06-01 3 prefix=x- length=8";
    (void)state;
    assert_true(proto_parse_request(line, strlen(line), &req, &e));
    gen_fill(recs, 10, &req);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(recs[i].type, STORE_TYPE_FREE);
        assert_int_equal(recs[i].kind, STORE_KIND_PERCENT);
        assert_int_equal(recs[i].discount, 1250);
        assert_int_equal(recs[i].max_uses, 3);
        assert_int_equal(recs[i].uses, 0);
        assert_int_equal(recs[i].held, 0);
        assert_string_equal(recs[i].user, "");
        assert_int_equal(strlen(recs[i].code), 10);
        assert_memory_equal(recs[i].code, "X-", 2);
        assert_int_equal(recs[i].expires, req.gen.expires);
    }
}

/* ---- rows ---- */

struct capture {
    char buf[OUT_MAX];
    size_t len;
};

static void
sink(void *arg, const char *data, size_t len)
{
    struct capture *c = arg;
    assert_true(c->len + len < sizeof c->buf);
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    c->buf[c->len] = '\0';
}

static struct store_coupon
coupon(const char *code, const char *user, int64_t assigned)
{
    struct store_coupon c = {.type = STORE_TYPE_STANDARD,
                             .kind = STORE_KIND_FLAT,
                             .discount = 2000,
                             .expires = 1924991999, /* 2030-12-31T23:59:59Z */
                             .uses = 1,
                             .max_uses = 3,
                             .assigned_at = assigned};
    snprintf(c.code, sizeof c.code, "%s", code);
    snprintf(c.user, sizeof c.user, "%s", user);
    return c;
}

static void
test_coupon_lines(void **state)
{
    static struct capture cap;
    struct proto_out o;
    struct rows r;
    struct store_coupon cs[2] = {coupon("A-1", "alice", 1798761600), coupon("B-2", "", 0)};
    (void)state;
    proto_out_init(&o, sink, &cap);
    rows_of_coupons(&r, ROWS_COUPONS, cs, NULL, 2);
    assert_int_equal(rows_write(&r, &o, 1000000), 2);
    assert_string_equal(cap.buf,
                        "COUPON code=A-1 type=STANDARD discount=20.00 kind=FLAT "
                        "expires=2030-12-31T23:59:59Z uses=1 max_uses=3 user=alice "
                        "assigned=2027-01-01T00:00:00Z\n"
                        "COUPON code=B-2 type=STANDARD discount=20.00 kind=FLAT "
                        "expires=2030-12-31T23:59:59Z uses=1 max_uses=3 user=- assigned=-\n");
    cap.len = 0;
    rows_of_coupons(&r, ROWS_ASSIGNED, cs, NULL, 1);
    rows_write(&r, &o, 1000000);
    assert_string_equal(cap.buf, "COUPON code=A-1 type=STANDARD discount=20.00 kind=FLAT "
                                 "expires=2030-12-31T23:59:59Z uses=1 max_uses=3 "
                                 "assigned=2027-01-01T00:00:00Z\n");
    assert_false(rows_left(&r));
}

static void
test_code_lines(void **state)
{
    static struct capture cap;
    struct proto_out o;
    struct rows r;
    char codes[2][STORE_CODE_MAX + 1] = {"Z", "X"};
    (void)state;
    proto_out_init(&o, sink, &cap);
    rows_of_codes(&r, (const char(*)[STORE_CODE_MAX + 1]) codes, 2);
    rows_write(&r, &o, 1000000);
    assert_string_equal(cap.buf, "CODE Z\nCODE X\n");
}

static void
test_redemption_lines(void **state)
{
    static struct capture cap;
    struct proto_out o;
    struct rows r;
    struct store_redemption d[2] = {
        {.seq = 7, .time = 1798761600, .code = "A-1", .type = STORE_TYPE_FREE, .user = "bob"},
        {.seq = 8,
         .time = 1798761601,
         .code = "A-1",
         .type = STORE_TYPE_NONE,
         .user = "bob",
         .undone = 1798765200}};
    (void)state;
    proto_out_init(&o, sink, &cap);
    rows_of_redemptions(&r, ROWS_USES, d, 2);
    rows_write(&r, &o, 1000000);
    assert_string_equal(cap.buf, "REDEMPTION seq=7 time=2027-01-01T00:00:00Z user=bob\n"
                                 "REDEMPTION seq=8 time=2027-01-01T00:00:01Z user=bob "
                                 "undone=2027-01-01T01:00:00Z\n");
    cap.len = 0;
    rows_of_redemptions(&r, ROWS_HISTORY, d, 2);
    rows_write(&r, &o, 1000000);
    assert_string_equal(cap.buf,
                        "REDEMPTION seq=7 time=2027-01-01T00:00:00Z code=A-1 type=FREE user=bob\n"
                        "REDEMPTION seq=8 time=2027-01-01T00:00:01Z code=A-1 type=NONE user=bob "
                        "undone=2027-01-01T01:00:00Z\n");
}

/* Parts: at least one row, then rows until the room is used; every row exactly once. */
static void
test_parts_bounded_by_room(void **state)
{
    static struct capture cap;
    static char codes[1000][STORE_CODE_MAX + 1];
    struct proto_out o;
    struct rows r;
    (void)state;
    for (int i = 0; i < 1000; i++)
        snprintf(codes[i], sizeof codes[i], "C%04d", i);
    proto_out_init(&o, sink, &cap);
    rows_of_codes(&r, (const char(*)[STORE_CODE_MAX + 1]) codes, 1000);
    assert_int_equal(rows_write(&r, &o, 0), 1); /* no room: still one row */
    assert_int_equal(rows_write(&r, &o, 1), 1);
    size_t parts = 2, total = 2;
    while (rows_left(&r)) {
        size_t before = cap.len;
        size_t n = rows_write(&r, &o, 100);
        assert_true(n >= 1);
        /* "CODE C0000\n" is 11 bytes: 100 bytes of room take 10 rows, the last one over it. */
        assert_true(cap.len - before < 100 + 11);
        total += n;
        parts++;
    }
    assert_int_equal(total, 1000);
    assert_int_equal(cap.len, 11000);
    assert_true(parts > 90);
    assert_memory_equal(cap.buf + 10989, "CODE C0999\n", 11);
    assert_int_equal(rows_write(&r, &o, 100), 0);
}

/* ---- rid ---- */

static void
fp_of(const char *line, const char *scope, struct store_rid *out)
{
    struct proto_request req;
    struct proto_error e;
    struct rid_fp h;
    if (!proto_parse_request(line, strlen(line), &req, &e))
        fail_msg("\"%s\": %s", line, e.msg);
    rid_fp_begin(&h, &req);
    rid_fp_end(&h, scope, req.rid, out);
}

static void
test_fp_same_request(void **state)
{
    struct store_rid a, b;
    (void)state;
    fp_of("REDEEM alice summer-1 id=o1", "", &a);
    fp_of("redeem\talice   SUMMER-1 id=o1", "", &b);
    assert_true(rid_same(&a, &b));
    assert_string_equal(a.id, "o1");
    assert_string_equal(a.scope, "");
    /* The id is not part of the fingerprint: another id, the same request. */
    fp_of("REDEEM alice summer-1 id=o2", "", &b);
    assert_memory_equal(a.fp, b.fp, STORE_FP_BYTES);
    assert_false(rid_same_id(&a, &b));
    fp_of("REDEEM alice summer-1 id=o1", "shop", &b);
    assert_false(rid_same_id(&a, &b)); /* another scope */
}

static void
test_fp_other_arguments(void **state)
{
    static const char *const lines[] = {"REQUEST alice id=x",
                                        "REQUEST alice FREE id=x",
                                        "REQUEST bob id=x",
                                        "REDEEM alice C1 id=x",
                                        "REDEEM alice C2 id=x",
                                        "HOLD alice C1 id=x",
                                        "HOLD alice C1 60 id=x",
                                        "UNREDEEM alice 1 id=x",
                                        "UNREDEEM alice 2 id=x",
                                        "UPLOAD 1 id=x",
                                        "RELEASE h id=x",
                                        "REDEEM alice C1 hold=h id=x",
                                        "GENERATE 1 - 1 FLAT 2030-01-01 1 id=x",
                                        "GENERATE 1 - 1 FLAT 2030-01-01 2 id=x"};
    struct store_rid fps[sizeof lines / sizeof lines[0]];
    (void)state;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        fp_of(lines[i], "", &fps[i]);
        for (size_t j = 0; j < i; j++)
            if (memcmp(fps[i].fp, fps[j].fp, STORE_FP_BYTES) == 0)
                fail_msg("\"%s\" and \"%s\" have one fingerprint", lines[i], lines[j]);
    }
}

static void
test_fp_upload_records(void **state)
{
    struct proto_request req;
    struct proto_error e;
    struct rid_fp h;
    struct store_rid a, b, c;
    struct store_coupon r1 = coupon("A", "", 0), r2 = coupon("B", "", 0);
    (void)state;
    assert_true(proto_parse_request("UPLOAD 2 id=u", 13, &req, &e));
    rid_fp_begin(&h, &req);
    rid_fp_record(&h, &r1);
    rid_fp_record(&h, &r2);
    rid_fp_end(&h, "", req.rid, &a);
    rid_fp_begin(&h, &req);
    rid_fp_record(&h, &r1);
    rid_fp_record(&h, &r2);
    rid_fp_end(&h, "", req.rid, &b);
    assert_true(rid_same(&a, &b));
    r2.max_uses = 4; /* one field of one record */
    rid_fp_begin(&h, &req);
    rid_fp_record(&h, &r1);
    rid_fp_record(&h, &r2);
    rid_fp_end(&h, "", req.rid, &c);
    assert_false(rid_same(&a, &c));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_form),         cmocka_unit_test(test_codes_spread),
        cmocka_unit_test(test_candidates),        cmocka_unit_test(test_fill),
        cmocka_unit_test(test_coupon_lines),      cmocka_unit_test(test_code_lines),
        cmocka_unit_test(test_redemption_lines),  cmocka_unit_test(test_parts_bounded_by_room),
        cmocka_unit_test(test_fp_same_request),   cmocka_unit_test(test_fp_other_arguments),
        cmocka_unit_test(test_fp_upload_records),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
