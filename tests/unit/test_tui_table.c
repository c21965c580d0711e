/* test_tui_table.c - the layout of the dashboard's counters table: all seven columns with
 * their full labels at 80 columns, short labels and fewer columns when narrower, given up in
 * their order, never wider than the room, every number whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "fmtnum.h"
#include "table.h"

#define ROOM_80 68 /* an 80-column terminal less the margin (2) and the type column (10) */

/* The order columns are given up in: the last of this list first. */
static const enum stats_family keep[STATS_NFAMILIES] = {
    STATS_AVAILABLE, STATS_CREATED,    STATS_ASSIGNED, STATS_REDEEMED,
    STATS_HELD,      STATS_UNREDEEMED, STATS_PURGED,
};

static void
all_digits(int widest[STATS_NFAMILIES], int d)
{
    for (int f = 0; f < STATS_NFAMILIES; f++)
        widest[f] = d;
}

static int
shown(const struct table_layout *t)
{
    int n = 0;

    for (int f = 0; f < STATS_NFAMILIES; f++)
        n += t->shown[f];
    return n;
}

static void
test_all_seven_at_80_columns(void **state)
{
    int widest[STATS_NFAMILIES];
    struct table_layout t;

    (void)state;
    all_digits(widest, 1);
    widest[STATS_CREATED] = widest[STATS_AVAILABLE] = 8; /* 12,345,678 coupons */
    table_layout(ROOM_80, widest, &t);
    assert_int_equal(shown(&t), STATS_NFAMILIES);
    for (int f = 0; f < STATS_NFAMILIES; f++)
        assert_string_equal(t.label[f], stats_family_names[f]);
    assert_true(t.used <= ROOM_80);
}

static void
test_wide_when_room(void **state)
{
    int widest[STATS_NFAMILIES];
    struct table_layout t;

    (void)state;
    all_digits(widest, 3);
    table_layout(STATS_NFAMILIES * TABLE_WIDE_W, widest, &t);
    for (int f = 0; f < STATS_NFAMILIES; f++)
        assert_int_equal(t.width[f], TABLE_WIDE_W);
}

static void
test_short_labels_before_giving_up(void **state)
{
    int widest[STATS_NFAMILIES];
    struct table_layout t;

    (void)state;
    all_digits(widest, 1);
    widest[STATS_CREATED] = widest[STATS_AVAILABLE] = 6;
    table_layout(43, widest, &t); /* 55 columns */
    assert_int_equal(shown(&t), 5);
    assert_false(t.shown[STATS_PURGED]);
    assert_false(t.shown[STATS_UNREDEEMED]);
    assert_true(t.shown[STATS_HELD]);
    assert_string_equal(t.label[STATS_AVAILABLE], "avail");
    /* Three columns at 44: room for the full label again. */
    table_layout(32, widest, &t);
    assert_int_equal(shown(&t), 3);
    assert_string_equal(t.label[STATS_AVAILABLE], "available");
}

/* For any room and numbers: within the room, columns given up in order, numbers whole. */
static void
test_properties(void **state)
{
    int widest[STATS_NFAMILIES];
    struct table_layout t;
    char buf[FMTNUM_BUF];

    (void)state;
    for (int d = 1; d <= 20; d++) {
        all_digits(widest, 1);
        widest[d % STATS_NFAMILIES] = d;
        for (int room = 0; room <= 120; room++) {
            table_layout(room, widest, &t);
            int sum = 0;
            for (int i = 0; i < STATS_NFAMILIES; i++) {
                enum stats_family f = keep[i];
                if (i > 0 && t.shown[f])
                    assert_true(t.shown[keep[i - 1]]);
                if (!t.shown[f])
                    continue;
                sum += t.width[f];
                assert_true((int)strlen(t.label[f]) + TABLE_GAP <= t.width[f]);
                /* The widest number the column can get, whole in it. */
                uint64_t v = 1;
                for (int k = 1; k < widest[f]; k++)
                    v *= 10;
                assert_true(fmtnum_fit(buf, v, (size_t)(t.width[f] - TABLE_GAP)) > 0);
                if (widest[f] <= TABLE_DIGITS_MAX)
                    assert_int_equal(strlen(buf), (size_t)widest[f]);
            }
            assert_int_equal(sum, t.used);
            assert_true(t.used <= room);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_seven_at_80_columns),
        cmocka_unit_test(test_wide_when_room),
        cmocka_unit_test(test_short_labels_before_giving_up),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
