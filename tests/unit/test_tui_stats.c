/* test_tui_stats.c - the dashboard's rates from STATS samples: a server that grants MEGADEAL
 * tasks 10 at a time once a second, polled every 500 ms, reads 10 a second, never 0 or 20,
 * and a rate "now" is never above the chart's peak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "stats.h"

#define POLL_MS    500
#define CHART_COLS 76 /* an 80-column terminal */
#define START_MS   1000000123LL

/* A server: `granted` grows by `burst` at each whole second after `from_ms`. */
struct fake_server {
    uint64_t commands;
    int64_t from_ms;
    unsigned burst;
};

static uint64_t
granted_at(const struct fake_server *srv, int64_t ms)
{
    if (ms < srv->from_ms)
        return 0;
    return (uint64_t)((ms / 1000) - (srv->from_ms / 1000) + 1) * srv->burst;
}

/* One STATS reply as the dashboard reads it, arriving at ms. */
static void
sample(struct stats *s, struct fake_server *srv, int64_t ms, uint64_t queued)
{
    char line[64];

    srv->commands += 5;
    stats_begin(s);
    snprintf(line, sizeof line, "STAT uptime_s %lld", (long long)(ms / 1000));
    stats_line(s, line, strlen(line));
    snprintf(line, sizeof line, "STAT commands %llu", (unsigned long long)srv->commands);
    stats_line(s, line, strlen(line));
    snprintf(line, sizeof line, "STAT megadeal.granted %llu",
             (unsigned long long)granted_at(srv, ms));
    stats_line(s, line, strlen(line));
    snprintf(line, sizeof line, "STAT megadeal.queued %llu", (unsigned long long)queued);
    stats_line(s, line, strlen(line));
    stats_end(s, ms);
}

static double
chart_peak(const struct stats_series *r, int64_t now_ms, bool gauge)
{
    double cols[CHART_COLS];
    unsigned k;

    return stats_chart(r, now_ms, gauge, cols, CHART_COLS, &k);
}

/* A poll only tells that a count grew somewhere in its interval, so a 2-second mean of a
 * count that grows by 10 once a second can read one burst off now and then (15 instead of
 * 10); never the 0 and 20 of rates between two polls 500 ms apart, and never above the
 * chart's peak. */
static void
test_bursts_read_as_their_rate(void **state)
{
    static struct stats s;
    struct fake_server srv = {0, START_MS + 2000, 10};
    int64_t ms = START_MS;
    double rate, sum = 0;
    int n = 0, near = 0;

    (void)state;
    stats_init(&s);
    for (int i = 0; i < 1000; i++, ms += POLL_MS + (i % 3) * 7) {
        sample(&s, &srv, ms, 0);
        if (!stats_grant_rate(&s, &rate))
            continue;
        assert_true(rate <= chart_peak(&s.grants, ms, false) + 1e-9);
        if (ms < srv.from_ms + 3000)
            continue;
        assert_true(rate > 5.0 && rate < 15.0);
        sum += rate;
        n++;
        near += rate >= 9.0 && rate <= 11.0;
    }
    assert_true(sum / n > 9.5 && sum / n < 10.5);
    assert_true(near * 10 >= n * 9);
}

static void
test_commands_rate(void **state)
{
    static struct stats s;
    struct fake_server srv = {0, INT64_MAX, 0};
    int64_t ms = START_MS;
    double rate = -1;

    (void)state;
    stats_init(&s);
    for (int i = 0; i < 10; i++, ms += POLL_MS)
        sample(&s, &srv, ms, 0);
    assert_true(stats_cmd_rate(&s, &rate));
    assert_true(rate > 9.9 && rate < 10.1); /* 5 commands per 500 ms */
}

static void
test_no_rate_before_two_whole_seconds(void **state)
{
    static struct stats s;
    struct fake_server srv = {0, INT64_MAX, 0};
    int64_t ms = START_MS;
    double rate = -1;

    (void)state;
    stats_init(&s);
    sample(&s, &srv, ms, 0);
    assert_false(stats_grant_rate(&s, &rate));
    /* Samples until 1000002623: second 1000001 is the only whole one, one short. */
    for (int i = 1; i < 6; i++)
        sample(&s, &srv, ms + i * POLL_MS, 0);
    assert_false(stats_cmd_rate(&s, &rate));
    sample(&s, &srv, ms + 6 * POLL_MS, 0); /* 1000003123: seconds 1000001 and 1000002 */
    assert_true(stats_cmd_rate(&s, &rate));
    /* A lost connection starts afresh: no rate from the first sample after it. */
    stats_break(&s);
    sample(&s, &srv, ms + 10 * POLL_MS, 0);
    assert_false(stats_cmd_rate(&s, &rate));
    assert_int_equal(rate > 0, true); /* untouched */
}

static void
test_queue_now_within_peak(void **state)
{
    static struct stats s;
    struct fake_server srv = {0, INT64_MAX, 0};
    int64_t ms = START_MS;

    (void)state;
    stats_init(&s);
    for (uint64_t q = 0; q < 40; q += 3, ms += POLL_MS) {
        sample(&s, &srv, ms, q);
        assert_true((double)q <= chart_peak(&s.queue, ms, true));
        assert_true((double)q <= chart_peak(&s.queue, ms + 900, true));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bursts_read_as_their_rate),
        cmocka_unit_test(test_commands_rate),
        cmocka_unit_test(test_no_rate_before_two_whole_seconds),
        cmocka_unit_test(test_queue_now_within_peak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
