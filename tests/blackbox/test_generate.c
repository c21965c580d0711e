/* test_generate.c - GENERATE (PROTOCOL.md version 2, "Code generation and export") against the
 * real server: n CODE lines then OK generated=n; every code new, distinct, of the prefix plus
 * `length` characters of the alphabet without look-alikes; the coupons stored whole with the
 * fields asked for; the bounds (n up to --max-upload, prefix, length) and AUTH. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bb.h"
#include "proto.h"

#define ALPHABET     "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
#define STREAM_IO_MS 60000
#define MAX_UPLOAD   50000 /* the default --max-upload */
#define SHORT_CODES  20000 /* codes of length 6 per GENERATE in the uniqueness test */

static const char *const small_max_upload[] = {"--max-upload", "10", NULL};

struct codes {
    char (*v)[PROTO_CODE_MAX + 1];
    size_t n, cap;
};

/* Sends cmd and reads its CODE lines into *out (appended); returns the status line (static). */
static const char *
generate(struct bb_client *c, const char *cmd, struct codes *out)
{
    static char line[BB_LINE_MAX];
    bb_send_str(c, cmd);
    bb_send_str(c, "\n");
    for (;;) {
        if (bb_read_line(c, line, sizeof line) != BB_READ_LINE)
            fail_msg("\"%s\": the reply broke off after %zu codes", cmd, out ? out->n : 0);
        if (strncmp(line, "CODE ", 5) != 0)
            return line;
        if (out == NULL)
            continue;
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 1024;
            out->v = realloc(out->v, out->cap * sizeof *out->v);
            assert_non_null(out->v);
        }
        if (strlen(line + 5) > PROTO_CODE_MAX)
            fail_msg("code too long: %s", line);
        strcpy(out->v[out->n++], line + 5);
    }
}

/* Sends COUPON cmd and expects exactly the line `want`, then OK (no redemption yet). */
static void
expect_coupon(struct bb_client *c, const char *cmd, const char *want)
{
    static char reply[BB_REPLY_MAX];
    char full[512];
    bb_fmt(full, sizeof full, "%s\nOK", want);
    bb_cmd(c, cmd, reply);
    if (strcmp(reply, full) != 0)
        fail_msg("\"%s\": expected\n%s\ngot\n%s", cmd, full, reply);
}

static int
cmp_code(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Every code is prefix + `length` alphabet characters, and no two are the same. */
static void
check_codes(struct codes *cs, const char *prefix, size_t length)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < cs->n; i++) {
        const char *code = cs->v[i];
        if (strlen(code) != pl + length || strncmp(code, prefix, pl) != 0 ||
            strspn(code + pl, ALPHABET) != length)
            fail_msg("code %zu \"%s\" is not %s + %zu of %s", i, code, prefix, length, ALPHABET);
    }
    qsort(cs->v, cs->n, sizeof *cs->v, cmp_code);
    for (size_t i = 1; i < cs->n; i++)
        if (strcmp(cs->v[i - 1], cs->v[i]) == 0)
            fail_msg("code %s generated twice", cs->v[i]);
}

static void
codes_free(struct codes *cs)
{
    free(cs->v);
    *cs = (struct codes){0};
}

static void
test_generate_basic(void **state)
{
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    struct codes cs = {0};
    char cmd[256];

    const char *st = generate(c, "GENERATE 1000 free 12.5 percent 2099-06-30 3", &cs);
    assert_string_equal(st, "OK generated=1000");
    assert_int_equal(cs.n, 1000);
    check_codes(&cs, "", 12);
    assert_int_equal(bb_stat(c, "created.FREE"), 1000);
    assert_int_equal(bb_stat(c, "available.FREE"), 1000);
    /* Stored with the fields asked for, unassigned. */
    bb_fmt(cmd, sizeof cmd, "COUPON %s", cs.v[500]);
    char want[256];
    bb_fmt(want, sizeof want,
           "COUPON code=%s type=FREE discount=12.50 kind=PERCENT "
           "expires=2099-06-30T23:59:59Z uses=0 max_uses=3 user=- assigned=-",
           cs.v[500]);
    expect_coupon(c, cmd, want);
    /* Lower case finds it: codes are case-insensitive. */
    for (char *p = cmd; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    expect_coupon(c, cmd, want);
    /* And it is handed out like any coupon. */
    bb_expect_prefix(c, "REQUEST alice FREE", "OK code=");
    codes_free(&cs);
    bb_close(c);
}

static void
test_prefix_and_length(void **state)
{
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    struct codes cs = {0};

    assert_string_equal(generate(c, "GENERATE 50 - 1 FLAT 2099-12-31 1 prefix=sale- length=6", &cs),
                        "OK generated=50");
    check_codes(&cs, "SALE-", 6);
    codes_free(&cs);
    assert_string_equal(generate(c,
                                 "GENERATE 5 STANDARD 1 FLAT 2099-12-31 1 "
                                 "prefix=ABCDEFGHIJKLMNOP length=32",
                                 &cs),
                        "OK generated=5");
    check_codes(&cs, "ABCDEFGHIJKLMNOP", 32);
    codes_free(&cs);
    assert_int_equal(bb_stat(c, "created.NONE"), 50);
    assert_int_equal(bb_stat(c, "created.STANDARD"), 5);
    bb_close(c);
}

static void
test_generate_errors(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *anon = bb_connect(s);
    struct bb_client *c = bb_connect_admin(s);

    bb_expect_prefix(anon, "GENERATE 1 FREE 5 FLAT 2099-12-31 1", "ERR DENIED");
    bb_expect_prefix(c, "GENERATE 50001 FREE 5 FLAT 2099-12-31 1", "ERR TOO_LARGE");
    bb_expect_prefix(c, "GENERATE 0 FREE 5 FLAT 2099-12-31 1", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "GENERATE 1 GOLD 5 FLAT 2099-12-31 1", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "GENERATE 1 FREE 101 PERCENT 2099-12-31 1", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "GENERATE 1 FREE 5 FLAT 2099-12-31 1 length=5", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "GENERATE 1 FREE 5 FLAT 2099-12-31 1 length=33", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "GENERATE 1 FREE 5 FLAT 2099-12-31 1 prefix=ABCDEFGHIJKLMNOPQ",
                     "ERR BAD_REQUEST");
    bb_expect_prefix(c, "GENERATE 1 FREE 5 FLAT 2099-12-31 1 prefix=a/b", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "GENERATE 1 FREE 5 FLAT 2099-12-31", "ERR BAD_REQUEST");
    assert_int_equal(bb_stat(c, "created.FREE"), 0);
    bb_close(anon);
    bb_close(c);
}

static void
test_max_upload_bounds_n(void **state)
{
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    struct codes cs = {0};
    bb_expect_prefix(c, "GENERATE 11 FREE 5 FLAT 2099-12-31 1", "ERR TOO_LARGE");
    assert_string_equal(generate(c, "GENERATE 10 FREE 5 FLAT 2099-12-31 1", &cs),
                        "OK generated=10");
    codes_free(&cs);
    bb_close(c);
}

/* The largest GENERATE: its 50,000 lines are streamed, and the connection lives on. */
static void
test_generate_max(void **state)
{
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    struct codes cs = {0};
    bb_set_timeout(c, STREAM_IO_MS);
    assert_string_equal(generate(c, "GENERATE 50000 STANDARD 1 FLAT 2099-12-31 1", &cs),
                        "OK generated=50000");
    assert_int_equal(cs.n, MAX_UPLOAD);
    check_codes(&cs, "", 12);
    assert_int_equal(bb_stat(c, "created.STANDARD"), MAX_UPLOAD);
    bb_expect(c, "PING", "OK PONG");
    codes_free(&cs);
    bb_close(c);
}

/* Short codes from two GENERATEs under one prefix: never one code twice. 40,000 codes of 30
 * bits hold about one pair that would clash (40000^2 / 2 / 2^30): the store refuses the second
 * and a spare takes its place. */
static void
test_unique_across_batches(void **state)
{
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    struct codes cs = {0};
    bb_set_timeout(c, STREAM_IO_MS);
    char cmd[128];
    bb_fmt(cmd, sizeof cmd, "GENERATE %d FREE 1 FLAT 2099-12-31 1 prefix=P length=6", SHORT_CODES);
    assert_string_equal(generate(c, cmd, &cs), "OK generated=20000");
    assert_string_equal(generate(c, cmd, &cs), "OK generated=20000");
    assert_int_equal(cs.n, 2 * SHORT_CODES);
    check_codes(&cs, "P", 6);
    assert_int_equal(bb_stat(c, "created.FREE"), 2 * SHORT_CODES);
    codes_free(&cs);
    bb_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_basic, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_prefix_and_length, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_generate_errors, bb_setup, bb_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_max_upload_bounds_n, bb_setup, bb_teardown,
                                                 (void *)small_max_upload),
        cmocka_unit_test_setup_teardown(test_generate_max, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_unique_across_batches, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
