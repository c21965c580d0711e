/* stats.c - STATS samples, rates from counter deltas, per-second history. */
#include "stats.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define MS_PER_S 1000

const char *const stats_family_names[STATS_NFAMILIES] = {
    "created", "assigned", "redeemed", "available", "purged", "held", "unredeemed",
};

const char *const stats_mega_names[STATS_NMEGA] = {
    "queued", "in flight", "granted", "rejected", "timed out",
};

/* The dashboard's counters are protocol/'s STATS names (stat.h), in the dashboard's order. */
static const enum proto_stat family_stat[STATS_NFAMILIES] = {
    PROTO_STAT_CREATED, PROTO_STAT_ASSIGNED, PROTO_STAT_REDEEMED,   PROTO_STAT_AVAILABLE,
    PROTO_STAT_PURGED,  PROTO_STAT_HELD,     PROTO_STAT_UNREDEEMED,
};

static const enum proto_stat mega_stat[STATS_NMEGA] = {
    PROTO_STAT_MEGA_QUEUED,   PROTO_STAT_MEGA_IN_FLIGHT, PROTO_STAT_MEGA_GRANTED,
    PROTO_STAT_MEGA_REJECTED, PROTO_STAT_MEGA_TIMED_OUT,
};

/* The dashboard's counters from a whole STATS reply. */
static void
counters_of(const struct proto_stats *raw, struct stats_counters *c)
{
    c->uptime_s = raw->v[PROTO_STAT_UPTIME][0];
    c->connections = raw->v[PROTO_STAT_CONNECTIONS][0];
    c->commands = raw->v[PROTO_STAT_COMMANDS][0];
    for (int f = 0; f < STATS_NFAMILIES; f++)
        for (int t = 0; t < PROTO_NTYPES; t++)
            c->by_type[f][t] = raw->v[family_stat[f]][t];
    for (int m = 0; m < STATS_NMEGA; m++)
        c->mega[m] = raw->v[mega_stat[m]][0];
    snprintf(c->node, sizeof c->node, "%s", proto_stats_text(raw, PROTO_STAT_NODE));
    snprintf(c->store, sizeof c->store, "%s", proto_stats_text(raw, PROTO_STAT_STORE));
}

void
stats_init(struct stats *s)
{
    memset(s, 0, sizeof *s);
}

void
stats_begin(struct stats *s)
{
    memset(&s->next, 0, sizeof s->next);
    memset(&s->raw, 0, sizeof s->raw);
}

void
stats_line(struct stats *s, const char *line, size_t len)
{
    if (proto_stat_parse_line(line, len, &s->raw))
        counters_of(&s->raw, &s->next);
}

/* Moves the series on to second `sec`, clearing the seconds skipped. */
static void
series_advance(struct stats_series *r, int64_t sec)
{
    if (sec <= r->last_sec)
        return;
    int64_t from = r->last_sec + 1;
    if (sec - from >= STATS_HISTORY_S)
        from = sec - STATS_HISTORY_S + 1;
    for (int64_t t = from; t <= sec; t++)
        r->v[t % STATS_HISTORY_S] = 0;
    r->last_sec = sec;
}

/* Spreads `rate` per second over the time (from_ms, to_ms], second by second. */
static void
series_add_rate(struct stats_series *r, int64_t from_ms, int64_t to_ms, double rate)
{
    series_advance(r, to_ms / MS_PER_S);
    if (to_ms - from_ms > (int64_t)STATS_HISTORY_S * MS_PER_S)
        from_ms = to_ms - (int64_t)STATS_HISTORY_S * MS_PER_S;
    for (int64_t t = from_ms; t < to_ms;) {
        int64_t sec = t / MS_PER_S;
        int64_t sec_end = (sec + 1) * MS_PER_S;
        int64_t stop = sec_end < to_ms ? sec_end : to_ms;
        r->v[sec % STATS_HISTORY_S] += rate * (double)(stop - t) / MS_PER_S;
        t = stop;
    }
}

/* Sets a gauge for the seconds (from_ms, to_ms]: it held `value` all that time. */
static void
series_set_gauge(struct stats_series *r, int64_t from_ms, int64_t to_ms, double value)
{
    int64_t to = to_ms / MS_PER_S, from = from_ms / MS_PER_S;

    series_advance(r, to);
    if (to - from >= STATS_HISTORY_S)
        from = to - STATS_HISTORY_S + 1;
    for (int64_t sec = from; sec <= to; sec++)
        if (r->v[sec % STATS_HISTORY_S] < value)
            r->v[sec % STATS_HISTORY_S] = value;
}

/* A counter going down means the server restarted (or is another one); so does another node
 * name: behind a gateway, a reconnection may reach another node of the same store. */
static bool
same_run(const struct stats_counters *old, const struct stats_counters *now)
{
    return now->uptime_s >= old->uptime_s && now->commands >= old->commands &&
           now->mega[STATS_MEGA_GRANTED] >= old->mega[STATS_MEGA_GRANTED] &&
           strcmp(now->node, old->node) == 0;
}

void
stats_end(struct stats *s, int64_t now_ms)
{
    const struct stats_counters *n = &s->next;
    double queue = (double)n->mega[STATS_MEGA_QUEUED];

    s->continuous = s->have && !s->broken && now_ms > s->cur_ms && same_run(&s->cur, n);
    s->broken = false;
    if (s->continuous) {
        double dt = (double)(now_ms - s->cur_ms) / MS_PER_S;
        series_add_rate(&s->commands, s->cur_ms, now_ms,
                        (double)(n->commands - s->cur.commands) / dt);
        series_add_rate(&s->grants, s->cur_ms, now_ms,
                        (double)(n->mega[STATS_MEGA_GRANTED] - s->cur.mega[STATS_MEGA_GRANTED]) /
                            dt);
        series_set_gauge(&s->queue, s->cur_ms, now_ms, queue);
    } else {
        s->run_ms = now_ms;
        series_advance(&s->commands, now_ms / MS_PER_S);
        series_advance(&s->grants, now_ms / MS_PER_S);
        series_set_gauge(&s->queue, now_ms, now_ms, queue);
    }
    s->cur = *n;
    s->cur_ms = now_ms;
    s->have = true;
}

void
stats_break(struct stats *s)
{
    s->continuous = false;
    s->broken = true;
}

static double
second_value(const struct stats_series *r, int64_t sec)
{
    if (sec > r->last_sec || sec <= r->last_sec - STATS_HISTORY_S || sec < 0)
        return 0;
    return r->v[sec % STATS_HISTORY_S];
}

/* The mean of the STATS_RATE_WINDOW_S seconds ending with `last`. */
static double
window_mean(const struct stats_series *r, int64_t last)
{
    double sum = 0;

    for (int64_t sec = last - STATS_RATE_WINDOW_S + 1; sec <= last; sec++)
        sum += second_value(r, sec);
    return sum / STATS_RATE_WINDOW_S;
}

/* The mean of the last STATS_RATE_WINDOW_S seconds that are complete (cur arrived after
 * them), when all of them are inside the unbroken run (its first sample arrived before). */
static bool
window_rate(const struct stats *s, const struct stats_series *r, double *rate)
{
    if (!s->have || !s->continuous)
        return false;
    int64_t last = s->cur_ms / MS_PER_S - 1;
    int64_t first = (s->run_ms + MS_PER_S - 1) / MS_PER_S;
    if (last - first + 1 < STATS_RATE_WINDOW_S)
        return false;
    *rate = window_mean(r, last);
    return true;
}

bool
stats_cmd_rate(const struct stats *s, double *rate)
{
    return window_rate(s, &s->commands, rate);
}

bool
stats_grant_rate(const struct stats *s, double *rate)
{
    return window_rate(s, &s->grants, rate);
}

uint64_t
stats_total(const struct stats_counters *c, enum stats_family f)
{
    uint64_t sum = 0;

    for (int t = 0; t < PROTO_NTYPES; t++)
        sum += c->by_type[f][t];
    return sum;
}

double
stats_chart(const struct stats_series *series, int64_t now_ms, bool peak, double *out, size_t cols,
            unsigned *secs_per_col)
{
    size_t k = cols > 0 ? (STATS_HISTORY_S + cols - 1) / cols : 1;
    int64_t newest = now_ms / MS_PER_S - (peak ? 0 : 1);
    double top = 0;

    *secs_per_col = (unsigned)k;
    for (size_t j = 0; j < cols; j++) {
        int64_t last = newest - (int64_t)((cols - 1 - j) * k);
        double acc = 0;
        for (size_t i = 0; i < k; i++) {
            double v = second_value(series, last - (int64_t)i);
            acc = peak ? (v > acc ? v : acc) : acc + v;
        }
        out[j] = peak ? acc : acc / (double)k;
        top = out[j] > top ? out[j] : top;
    }
    /* A gauge's columns are maxima: the top one holds its largest second. A rate's top must
     * also hold every rate "now" of these seconds, which are means over a window. */
    for (int64_t sec = newest - (int64_t)(cols * k) + 1; !peak && sec <= newest; sec++) {
        double m = window_mean(series, sec);
        top = m > top ? m : top;
    }
    return top;
}
