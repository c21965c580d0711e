/* test_tui_statjson.c - couponctl --stats --json: STAT lines become one JSON object, per-type
 * stats grouped by type, digits as numbers, anything else as strings, bad lines refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "statjson.h"

/* Feeds the lines, writes the object, returns it (the caller frees). */
static char *
render(const char *const *lines, size_t n)
{
    struct statjson *j = statjson_new();
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    assert_non_null(j);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        assert_true(statjson_line(j, lines[i], strlen(lines[i])));
    assert_true(statjson_write(j, out));
    assert_int_equal(fclose(out), 0);
    statjson_free(j);
    return buf;
}

static void
test_grouped_by_type(void **state)
{
    static const char *const lines[] = {
        "STAT uptime 12",        "STAT created.NONE 0",     "STAT created.FREE 3",
        "STAT assigned.FREE 1",  "STAT created.MEGADEAL 7", "STAT node shop-1",
        "STAT store postgresql", "STAT megadeal.queued 0",
    };
    char *got = render(lines, sizeof lines / sizeof lines[0]);

    (void)state;
    assert_string_equal(got, "{\"uptime\":12,\"created\":{\"NONE\":0,\"FREE\":3,\"MEGADEAL\":7},"
                             "\"assigned\":{\"FREE\":1},\"node\":\"shop-1\","
                             "\"store\":\"postgresql\",\"megadeal.queued\":0}\n");
    free(got);
}

/* A value that is not a plain JSON number stays a string: a leading zero, too many digits. */
static void
test_numbers_and_strings(void **state)
{
    static const char *const lines[] = {
        "STAT a 007",
        "STAT b 12345678901234567890",
        "STAT c 0",
        "STAT d x\"y",
    };
    char *got = render(lines, sizeof lines / sizeof lines[0]);

    (void)state;
    assert_string_equal(got, "{\"a\":\"007\",\"b\":\"12345678901234567890\",\"c\":0,"
                             "\"d\":\"x\\\"y\"}\n");
    free(got);
}

static void
test_bad_lines(void **state)
{
    struct statjson *j = statjson_new();
    char longword[STATJSON_WORD + 16];

    (void)state;
    assert_non_null(j);
    assert_false(statjson_line(j, "OK", 2));
    assert_false(statjson_line(j, "STAT lonely", 11));
    assert_false(statjson_line(j, "STAT a b c", 10));
    memset(longword, 'x', sizeof longword);
    memcpy(longword, "STAT n ", 7);
    assert_false(statjson_line(j, longword, sizeof longword));
    for (int i = 0; i < STATJSON_MAX; i++)
        assert_true(statjson_line(j, "STAT n 1", 8));
    assert_false(statjson_line(j, "STAT n 1", 8)); /* past STATJSON_MAX */
    statjson_free(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grouped_by_type),
        cmocka_unit_test(test_numbers_and_strings),
        cmocka_unit_test(test_bad_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
