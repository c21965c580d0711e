/* test_metrics.c - unit tests of the metrics exporter's exposition (server/metrics.h): the names
 * made from stat.h's table, the series of every stat, the histogram's cumulative buckets, and
 * the bound of its buffer. The HTTP side and promtool's verdict are blackbox/test_metrics's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

#define BODY (METRICS_REPLY_MAX)

static const char *
name_of(enum proto_stat s)
{
    static char name[METRICS_NAME_MAX];

    metrics_name(s, name);
    return name;
}

/* Prometheus's conventions: base units spelled out, counters ending in _total. */
static void
test_names(void **state)
{
    (void)state;
    assert_string_equal(name_of(PROTO_STAT_UPTIME), "coupond_uptime_seconds");
    assert_string_equal(name_of(PROTO_STAT_CONNECTIONS), "coupond_connections");
    assert_string_equal(name_of(PROTO_STAT_COMMANDS), "coupond_commands_total");
    assert_string_equal(name_of(PROTO_STAT_CONNECTIONS_TOTAL), "coupond_connections_total");
    assert_string_equal(name_of(PROTO_STAT_ASSIGNED), "coupond_assigned_total");
    assert_string_equal(name_of(PROTO_STAT_AVAILABLE), "coupond_available");
    assert_string_equal(name_of(PROTO_STAT_MEGA_IN_FLIGHT), "coupond_megadeal_in_flight");
    assert_string_equal(name_of(PROTO_STAT_MEGA_TIMED_OUT), "coupond_megadeal_timed_out_total");
    /* Every name is a valid metric name, and no two are alike. */
    for (int i = 0; i < PROTO_NSTATS; i++) {
        char a[METRICS_NAME_MAX];
        metrics_name((enum proto_stat)i, a);
        assert_int_equal(strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(a));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(a, name_of((enum proto_stat)j));
    }
}

static char *
render(const struct proto_stats *s, const struct group_stats *gs)
{
    char *buf = malloc(BODY);

    assert_non_null(buf);
    size_t n = metrics_render(buf, BODY, s, gs, "9.8.7", "lmdb");
    assert_true(n < BODY);
    assert_int_equal(strlen(buf), n);
    return buf;
}

static void
expect_line(const char *body, const char *line)
{
    char want[512];
    size_t n = strlen(line);

    snprintf(want, sizeof want, "\n%s\n", line);
    if (strstr(body, want) == NULL && !(strncmp(body, line, n) == 0 && body[n] == '\n'))
        fail_msg("no line \"%s\" in:\n%s", line, body);
}

/* Each stat once, with HELP and TYPE from the table, a series per type where it has types. */
static void
test_every_stat(void **state)
{
    struct proto_stats s;
    struct group_stats gs;
    char line[300];

    (void)state;
    memset(&s, 0, sizeof s);
    memset(&gs, 0, sizeof gs);
    s.v[PROTO_STAT_ASSIGNED][PROTO_TYPE_FREE] = 3;
    s.v[PROTO_STAT_UPTIME][0] = 12;
    char *body = render(&s, &gs);
    expect_line(body, "coupond_assigned_total{type=\"FREE\"} 3");
    expect_line(body, "coupond_assigned_total{type=\"MEGADEAL\"} 0");
    expect_line(body, "coupond_uptime_seconds 12");
    expect_line(body, "# TYPE coupond_available gauge");
    expect_line(body, "# TYPE coupond_redeemed_total counter");
    expect_line(body, "coupond_build_info{version=\"9.8.7\",store=\"lmdb\"} 1");
    for (int i = 0; i < PROTO_NSTATS; i++) {
        const struct proto_stat_def *d = &proto_stat_defs[i];
        snprintf(line, sizeof line, "# HELP %s %s", name_of((enum proto_stat)i), d->doc);
        expect_line(body, line);
    }
    free(body);
}

/* The buckets add up: each counts the commits at or below its bound; +Inf and _count are all. */
static void
test_histogram(void **state)
{
    struct proto_stats s;
    struct group_stats gs;
    char line[300];

    (void)state;
    memset(&s, 0, sizeof s);
    memset(&gs, 0, sizeof gs);
    gs.hist[0] = 5;
    gs.hist[3] = 2;
    gs.hist[GROUP_HIST_BUCKETS] = 1;
    gs.commits = 8;
    gs.seconds = 1.5;
    char *body = render(&s, &gs);
    expect_line(body, "# TYPE coupond_commit_seconds histogram");
    expect_line(body, "coupond_commit_seconds_bucket{le=\"0.0005\"} 5");
    expect_line(body, "coupond_commit_seconds_bucket{le=\"0.002\"} 5");
    expect_line(body, "coupond_commit_seconds_bucket{le=\"0.004\"} 7");
    snprintf(line, sizeof line, "coupond_commit_seconds_bucket{le=\"%g\"} 7",
             group_hist_bounds[GROUP_HIST_BUCKETS - 1]);
    expect_line(body, line);
    expect_line(body, "coupond_commit_seconds_bucket{le=\"+Inf\"} 8");
    expect_line(body, "coupond_commit_seconds_sum 1.5");
    expect_line(body, "coupond_commit_seconds_count 8");
    free(body);
}

/* Too small a buffer: cut and NUL-terminated, and the length it needed is returned. */
static void
test_bounded(void **state)
{
    struct proto_stats s;
    struct group_stats gs;
    char small[64];

    (void)state;
    memset(&s, 0xff, sizeof s); /* the longest numbers */
    memset(&gs, 0, sizeof gs);
    char *body = render(&s, &gs);
    size_t need = strlen(body);
    assert_true(need < BODY / 4); /* far inside the bound */
    assert_int_equal(metrics_render(small, sizeof small, &s, &gs, "9.8.7", "lmdb"), need);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, body, sizeof small - 1);
    free(body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_every_stat),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
