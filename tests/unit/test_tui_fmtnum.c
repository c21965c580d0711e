/* test_tui_fmtnum.c - couponctl's counts in fixed columns: all digits when they fit, else an
 * abbreviation that fits, never a cut number. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "fmtnum.h"

static void
check(uint64_t v, size_t width, const char *want)
{
    char buf[FMTNUM_BUF];
    size_t n = fmtnum_fit(buf, v, width);

    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
    assert_true(n <= width);
}

static void
test_digits_when_they_fit(void **state)
{
    (void)state;
    check(0, 1, "0");
    check(1000000, 9, "1000000");
    check(999999999, 9, "999999999");
    check(12345678901ULL, 11, "12345678901");
}

static void
test_abbreviated_when_they_do_not(void **state)
{
    (void)state;
    check(1000000, 6, "1.0M");
    check(1234567, 6, "1.2M");
    check(1000000000ULL, 9, "1.0G");
    check(123456789012ULL, 11, "123.5G");
    check(999950000, 6, "1.0G");   /* 999.95M would round to 1000.0M: the next unit */
    check(999949000, 6, "999.9M"); /* still under 999.95M */
    check(UINT64_MAX, 9, "18.4E"); /* the largest count of all */
}

static void
test_no_decimal_when_only_that_fits(void **state)
{
    (void)state;
    check(123456, 4, "123k");
}

static void
test_nothing_when_nothing_fits(void **state)
{
    char buf[FMTNUM_BUF];

    (void)state;
    assert_int_equal(fmtnum_fit(buf, 123456, 3), 0);
    assert_string_equal(buf, "");
    assert_int_equal(fmtnum_fit(buf, 10, 1), 0);
}

static void
test_every_count_fits_the_minimum(void **state)
{
    char buf[FMTNUM_BUF];
    uint64_t v = 1;

    (void)state;
    for (int i = 0; i < 64; i++, v = v * 3 + 1)
        assert_true(fmtnum_fit(buf, v, FMTNUM_MIN_WIDTH) > 0);
    assert_true(fmtnum_fit(buf, UINT64_MAX, FMTNUM_MIN_WIDTH) > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digits_when_they_fit),
        cmocka_unit_test(test_abbreviated_when_they_do_not),
        cmocka_unit_test(test_no_decimal_when_only_that_fits),
        cmocka_unit_test(test_nothing_when_nothing_fits),
        cmocka_unit_test(test_every_count_fits_the_minimum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
