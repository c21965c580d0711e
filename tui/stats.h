/* stats.h - the dashboard's model of coupond's STATS: the counters by name, a per-second
 * history of the counters' growth, the rates now from that history, and the charts. */
#ifndef COUPONCTL_STATS_H
#define COUPONCTL_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "stat.h"

#define STATS_HISTORY_S 300 /* seconds kept for the charts: "the last few minutes" */
/* A rate "now" is the mean of the last 2 complete seconds of history. coupond grants MEGADEAL
 * tasks in bursts up to once a second, so the growth between two polls 500 ms apart reads
 * 0 or twice the rate; a whole second holds one burst's worth. */
#define STATS_RATE_WINDOW_S 2

/* The per-type counters, in the order of the dashboard's columns. */
enum stats_family {
    STATS_CREATED = 0,
    STATS_ASSIGNED,
    STATS_REDEEMED,
    STATS_AVAILABLE,
    STATS_PURGED,
    STATS_HELD,       /* uses reserved by live holds now */
    STATS_UNREDEEMED, /* uses given back by UNREDEEM */
    STATS_NFAMILIES
};

/* The MEGADEAL counters, in the order of the dashboard's panel. */
enum stats_mega {
    STATS_MEGA_QUEUED = 0,
    STATS_MEGA_IN_FLIGHT,
    STATS_MEGA_GRANTED,
    STATS_MEGA_REJECTED,
    STATS_MEGA_TIMED_OUT,
    STATS_NMEGA
};

struct stats_counters {
    uint64_t uptime_s;
    uint64_t connections;
    uint64_t commands;
    uint64_t by_type[STATS_NFAMILIES][PROTO_NTYPES];
    uint64_t mega[STATS_NMEGA];
    char node[PROTO_STAT_TEXT_MAX + 1];  /* STAT node: the server's --node-name; "" when absent */
    char store[PROTO_STAT_TEXT_MAX + 1]; /* STAT store: lmdb or postgresql; "" when absent */
};

/* One value per second for the last STATS_HISTORY_S seconds: v[sec % STATS_HISTORY_S]. */
struct stats_series {
    double v[STATS_HISTORY_S];
    int64_t last_sec; /* the newest second written */
};

struct stats {
    struct stats_counters cur;    /* the last complete sample */
    struct stats_counters next;   /* the sample being read */
    struct proto_stats raw;       /* the reply being read, by protocol/'s STAT names */
    bool have;                    /* cur holds a sample */
    bool continuous;              /* cur and the sample before it came from one connection */
    bool broken;                  /* the connection was lost since cur arrived */
    int64_t cur_ms;               /* when cur arrived */
    int64_t run_ms;               /* when the first sample of cur's unbroken run arrived */
    struct stats_series commands; /* commands per second */
    struct stats_series grants;   /* grants per second */
    struct stats_series queue;    /* MEGADEAL queue depth */
};

/* Names, in the order of the enums, as shown on screen. */
extern const char *const stats_family_names[STATS_NFAMILIES];
extern const char *const stats_mega_names[STATS_NMEGA];

void stats_init(struct stats *s);

/* A STATS reply begins. */
void stats_begin(struct stats *s);

/* One data line of the reply: "STAT name value". Unknown names and other lines are ignored. */
void stats_line(struct stats *s, const char *line, size_t len);

/* The reply's OK arrived at now_ms: the sample becomes current, rates and history move on. */
void stats_end(struct stats *s, int64_t now_ms);

/* The connection was lost: the next sample starts the rates afresh. */
void stats_break(struct stats *s);

/* The rates now: commands and MEGADEAL grants per second, the mean of the last
 * STATS_RATE_WINDOW_S complete seconds of history. False, with *rate untouched, until the
 * unbroken run of samples covers that many whole seconds: just after a (re)connection. */
bool stats_cmd_rate(const struct stats *s, double *rate);
bool stats_grant_rate(const struct stats *s, double *rate);

/* The sum of a family over the types. */
uint64_t stats_total(const struct stats_counters *c, enum stats_family f);

/* Fills out[0..cols) with the history of a series, oldest left, newest right. Each column
 * covers *secs_per_col seconds (the fewest that fit STATS_HISTORY_S into cols, at least 1):
 * the mean of them, or their maximum when `peak` (for a gauge such as queue depth). A rate
 * series ends at the last complete second before now_ms; a gauge's ends at now_ms's second,
 * whose value has been seen already. Returns the peak of the seconds shown: at least every
 * column; for a rate at least every STATS_RATE_WINDOW_S mean, so at least the rate now
 * (stats_*_rate()); for a gauge at least its last sample. */
double stats_chart(const struct stats_series *series, int64_t now_ms, bool peak, double *out,
                   size_t cols, unsigned *secs_per_col);

#endif
