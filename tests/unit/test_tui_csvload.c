/* test_tui_csvload.c - couponctl's CSV loader at its record limit, with the limit made small:
 * a file of exactly the limit passes, the record after it is refused on its own line. The
 * full-size limit (5000000) is tested by tests/tui/test_limits.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csvload.h"

#define LIMIT 3

struct fixture {
    char dir[64];
    char path[PATH_MAX];
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    snprintf(f->dir, sizeof f->dir, "/tmp/couponctl-csvload-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/records.csv", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Writes a header line when `header`, then n records. */
static void
write_records(const char *path, bool header, int n)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    if (header)
        fprintf(fp, "code,type,discount,kind,expires,max_uses\n");
    for (int i = 1; i <= n; i++)
        fprintf(fp, "LIM-%d,FREE,1,FLAT,2031-01-01,1\n", i);
    assert_int_equal(fclose(fp), 0);
}

static struct csvload *
load(const char *path)
{
    char err[256];
    struct csvload *ld = csvload_open(path, LIMIT, err, sizeof err);
    enum csvload_status st;

    assert_non_null(ld);
    while ((st = csvload_step(ld, CSVLOAD_READ_CHUNK)) == CSVLOAD_MORE)
        ;
    assert_int_equal(st, CSVLOAD_DONE);
    return ld;
}

static void
check(struct fixture *f, bool header, int n, size_t want_good, uint32_t bad_line)
{
    struct csvload_records recs;
    struct csvload *ld;

    write_records(f->path, header, n);
    ld = load(f->path);
    csvload_records(ld, &recs);
    assert_int_equal(recs.n, want_good);
    if (bad_line == 0) {
        assert_int_equal(csvload_bad(ld), 0);
    } else {
        assert_int_equal(csvload_bad(ld), 1);
        assert_int_equal(csvload_error(ld, 0)->line, bad_line);
        assert_string_equal(csvload_error(ld, 0)->reason, "more than 3 records: split the file");
    }
    csvload_free(ld);
}

static void
test_exactly_the_limit_passes(void **state)
{
    check(*state, false, LIMIT, LIMIT, 0);
    check(*state, true, LIMIT, LIMIT, 0);
}

static void
test_one_more_is_refused_on_its_line(void **state)
{
    check(*state, false, LIMIT + 1, LIMIT, LIMIT + 1);
    check(*state, true, LIMIT + 1, LIMIT, LIMIT + 2); /* the header is line 1 */
}

static void
test_reading_stops_at_the_limit(void **state)
{
    check(*state, false, LIMIT + 5, LIMIT, LIMIT + 1); /* one report, not five */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exactly_the_limit_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_more_is_refused_on_its_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reading_stops_at_the_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
