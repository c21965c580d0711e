/* test_tui_reqid.c - couponctl's request ids: derived from what a write carries, the same for
 * the same write, different for another, and always of the protocol's form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "proto.h"
#include "reqid.h"

static const char recs_a[] = "A-1,FREE,5.00,FLAT,2031-01-01T23:59:59Z,1\n"
                             "A-2,FREE,5.00,FLAT,2031-01-01T23:59:59Z,1\n";
static const char recs_b[] = "A-1,FREE,5.00,FLAT,2031-01-01T23:59:59Z,1\n"
                             "A-2,FREE,5.00,FLAT,2031-01-01T23:59:59Z,2\n";

/* The id parses as a request id, whole. */
static void
assert_valid(const char *id)
{
    char out[PROTO_RID_MAX + 1];

    assert_true(proto_parse_rid(id, strlen(id), out, NULL));
    assert_string_equal(out, id);
}

static void
test_upload_ids(void **state)
{
    char a1[REQID_BUF], a1again[REQID_BUF], b1[REQID_BUF], a2[REQID_BUF];

    (void)state;
    reqid_upload(a1, 1, recs_a, sizeof recs_a - 1);
    reqid_upload(a1again, 1, recs_a, sizeof recs_a - 1);
    reqid_upload(b1, 1, recs_b, sizeof recs_b - 1);
    reqid_upload(a2, 2, recs_a, sizeof recs_a - 1);
    assert_valid(a1);
    assert_string_equal(a1, a1again);
    assert_string_not_equal(a1, b1); /* one field of one record differs */
    assert_string_not_equal(a1, a2);
    assert_memory_equal(a1, "up-1-", 5);
    assert_memory_equal(a2, "up-2-", 5);
    assert_int_equal(strlen(a1), strlen("up-1-") + REQID_HASH_CHARS);
}

static void
test_largest_batch_number_fits(void **state)
{
    char id[REQID_BUF];

    (void)state;
    reqid_upload(id, 5000000, recs_a, sizeof recs_a - 1);
    assert_valid(id);
    assert_true(strlen(id) <= 43);
}

static void
test_generate_ids(void **state)
{
    static const char req[] = "GENERATE 10 FREE 5.00 FLAT 2031-01-01T23:59:59Z 1 length=12";
    char g[REQID_BUF], same[REQID_BUF], other_file[REQID_BUF], other_host[REQID_BUF],
        other_req[REQID_BUF];

    (void)state;
    reqid_generate(g, req, "ops1", "/srv/codes.csv");
    reqid_generate(same, req, "ops1", "/srv/codes.csv");
    reqid_generate(other_file, req, "ops1", "/srv/codes2.csv");
    reqid_generate(other_host, req, "ops2", "/srv/codes.csv");
    reqid_generate(other_req, "GENERATE 11 FREE 5.00 FLAT 2031-01-01T23:59:59Z 1 length=12", "ops1",
                   "/srv/codes.csv");
    assert_valid(g);
    assert_memory_equal(g, "gen-", 4);
    assert_string_equal(g, same);
    assert_string_not_equal(g, other_file);
    assert_string_not_equal(g, other_host);
    assert_string_not_equal(g, other_req);
    /* The parts are kept apart: moving a byte from one to the next changes the id. */
    reqid_generate(other_req, req, "ops1/", "srv/codes.csv");
    assert_string_not_equal(g, other_req);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_ids),
        cmocka_unit_test(test_largest_batch_number_fits),
        cmocka_unit_test(test_generate_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
