/* stat.h - the names STATS sends, in one table that the server, couponctl and the benchmark
 * share, so they can never disagree about what a counter is called or means. */
#ifndef COUPOND_PROTO_STAT_H
#define COUPOND_PROTO_STAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

enum proto_stat {
    PROTO_STAT_UPTIME = 0,
    PROTO_STAT_CONNECTIONS,
    PROTO_STAT_COMMANDS,
    PROTO_STAT_CONNECTIONS_TOTAL,
    PROTO_STAT_CLIENTS_REJECTED,
    PROTO_STAT_COMMITS,
    PROTO_STAT_COMMIT_FAILURES,
    PROTO_STAT_CREATED, /* per type from here to UNREDEEMED */
    PROTO_STAT_ASSIGNED,
    PROTO_STAT_REDEEMED,
    PROTO_STAT_AVAILABLE,
    PROTO_STAT_PURGED,
    PROTO_STAT_HELD,
    PROTO_STAT_UNREDEEMED,
    PROTO_STAT_MEGA_QUEUED,
    PROTO_STAT_MEGA_IN_FLIGHT,
    PROTO_STAT_MEGA_GRANTED,
    PROTO_STAT_MEGA_REJECTED,
    PROTO_STAT_MEGA_TIMED_OUT,
    PROTO_NSTATS
};

/* How a value behaves over time (what a metrics exporter calls it). */
enum proto_stat_kind {
    PROTO_STAT_COUNTER = 0, /* only grows (across restarts too, for the stored ones) */
    PROTO_STAT_GAUGE        /* goes up and down */
};

struct proto_stat_def {
    const char *name; /* as sent; a per-type stat adds ".TYPE" */
    bool per_type;
    enum proto_stat_kind kind;
    const char *doc; /* one line for people: man page, HELP, metrics */
};

/* The table, indexed by enum proto_stat, in the order STATS sends it. */
extern const struct proto_stat_def proto_stat_defs[PROTO_NSTATS];

/* Every value of one STATS reply; a stat that is not per type uses type PROTO_TYPE_NONE. */
struct proto_stats {
    uint64_t v[PROTO_NSTATS][PROTO_NTYPES];
};

/* Finds the stat a STAT line names ("assigned.FREE", "commands"); false for a name not in the
 * table (a newer server's: callers ignore it). */
bool proto_stat_lookup(const char *name, size_t len, enum proto_stat *stat, enum proto_type *type);

/* Parses one "STAT name value" line into *out; false when it is not one we know. */
bool proto_stat_parse_line(const char *line, size_t len, struct proto_stats *out);

#endif
