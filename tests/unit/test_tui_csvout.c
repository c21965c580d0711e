/* test_tui_csvout.c - couponctl's CSV output of EXPORT and GENERATE replies: rows in the upload
 * format that csvload reads back, redemptions with quoted user names, malformed lines and
 * counts that do not match refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvout.h"

#define OUT_MAX 4096

struct sink {
    char buf[OUT_MAX];
    FILE *f;
};

static void
sink_open(struct sink *s)
{
    memset(s->buf, 0, sizeof s->buf);
    s->f = fmemopen(s->buf, sizeof s->buf, "w");
    assert_non_null(s->f);
}

static const char *
sink_text(struct sink *s)
{
    fflush(s->f);
    return s->buf;
}

static bool
line(struct csvout *w, const char *text)
{
    return csvout_line(w, text, strlen(text));
}

static void
test_coupons(void **state)
{
    struct sink s;
    struct csvout w;

    (void)state;
    sink_open(&s);
    csvout_init(&w, CSVOUT_COUPONS, s.f, NULL);
    assert_true(csvout_header(&w));
    assert_true(line(&w, "COUPON code=A1 type=FREE discount=10.00 kind=FLAT "
                         "expires=2031-01-01T23:59:59Z uses=1 max_uses=2 user=bob "
                         "assigned=2026-12-02T13:05:26Z"));
    assert_true(line(&w, "COUPON code=A2 type=NONE discount=12.50 kind=PERCENT "
                         "expires=2031-01-01T23:59:59Z uses=0 max_uses=1 user=- assigned=-"));
    /* A user named "-" is assigned all the same: the time tells. */
    assert_true(line(&w, "COUPON code=A3 type=MEGADEAL discount=1.00 kind=FLAT "
                         "expires=2031-01-01T23:59:59Z uses=0 max_uses=1 user=- "
                         "assigned=2026-12-02T13:05:26Z"));
    assert_true(csvout_end(&w, "OK count=3", strlen("OK count=3")));
    assert_string_equal(sink_text(&s), "code,type,discount,kind,expires,max_uses\n"
                                       "A1,FREE,10.00,FLAT,2031-01-01T23:59:59Z,2\n"
                                       "A2,,12.50,PERCENT,2031-01-01T23:59:59Z,1\n"
                                       "A3,MEGADEAL,1.00,FLAT,2031-01-01T23:59:59Z,1\n");
    assert_int_equal(w.rows, 3);
    assert_int_equal(w.assigned, 2);
    assert_int_equal(w.used, 1);
    fclose(s.f);
}

static void
test_history(void **state)
{
    struct sink s;
    struct csvout w;

    (void)state;
    sink_open(&s);
    csvout_init(&w, CSVOUT_HISTORY, s.f, NULL);
    assert_true(csvout_header(&w));
    assert_true(line(&w, "REDEMPTION seq=1 time=2026-12-02T13:16:57Z code=A1 type=FREE "
                         "user=b,\"ob undone=2026-12-02T13:17:00Z"));
    assert_true(line(&w, "REDEMPTION seq=18446744073709551615 time=2026-12-02T13:16:58Z "
                         "code=A2 type=NONE user=carol"));
    assert_true(csvout_end(&w, "OK count=2", strlen("OK count=2")));
    assert_string_equal(sink_text(&s),
                        "seq,time,code,type,user,undone\n"
                        "1,2026-12-02T13:16:57Z,A1,FREE,\"b,\"\"ob\",2026-12-02T13:17:00Z\n"
                        "18446744073709551615,2026-12-02T13:16:58Z,A2,,carol,\n");
    assert_int_equal(w.undone, 1);
    fclose(s.f);
}

static void
test_codes(void **state)
{
    struct sink s;
    struct csvout w;
    struct proto_coupon gen = {.type = PROTO_TYPE_STANDARD,
                               .kind = PROTO_KIND_PERCENT,
                               .discount = 250,
                               .expires = 1940716799, /* 2031-07-01T23:59:59Z */
                               .max_uses = 3};

    (void)state;
    sink_open(&s);
    csvout_init(&w, CSVOUT_CODES, s.f, &gen);
    assert_true(csvout_header(&w));
    assert_true(line(&w, "CODE SALE-ABCDEF"));
    assert_true(line(&w, "CODE SALE-GHJKLM"));
    assert_true(csvout_end(&w, "OK generated=2 replayed=1", strlen("OK generated=2 replayed=1")));
    assert_true(w.replayed);
    assert_string_equal(sink_text(&s),
                        "code,type,discount,kind,expires,max_uses\n"
                        "SALE-ABCDEF,STANDARD,2.50,PERCENT,2031-07-01T23:59:59Z,3\n"
                        "SALE-GHJKLM,STANDARD,2.50,PERCENT,2031-07-01T23:59:59Z,3\n");
    fclose(s.f);
}

static void
test_refusals(void **state)
{
    struct sink s;
    struct csvout w;

    (void)state;
    sink_open(&s);
    csvout_init(&w, CSVOUT_COUPONS, s.f, NULL);
    assert_false(line(&w, "CODE X1"));
    assert_non_null(strstr(w.error, "COUPON line couponctl cannot read: CODE X1"));
    assert_false(line(&w, "COUPON code=A1 type=FREE discount=10.00 kind=FLAT "
                          "expires=2031-01-01T23:59:59Z uses=3 max_uses=2 user=- assigned=-"));
    assert_int_equal(w.rows, 0);
    assert_false(csvout_end(&w, "OK count=1", strlen("OK count=1")));
    assert_non_null(strstr(w.error, "announced 1 rows and sent 0"));
    assert_false(csvout_end(&w, "OK", 2));
    fclose(s.f);

    sink_open(&s);
    csvout_init(&w, CSVOUT_HISTORY, s.f, NULL);
    assert_false(line(&w, "REDEMPTION seq=x time=2026-12-02T13:16:57Z code=A1 type=FREE user=b"));
    assert_false(line(&w, "REDEMPTION seq=1 time=2026-12-02T13:16:57Z code=A1 type=FREE"));
    assert_false(line(&w, "REDEMPTION seq=18446744073709551616 time=2026-12-02T13:16:57Z "
                          "code=A1 type=FREE user=b"));
    assert_string_equal(sink_text(&s), "");
    fclose(s.f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coupons),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
