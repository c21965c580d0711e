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
    PROTO_STAT_NODE, /* text from here on (PROTO_STAT_FIRST_TEXT) */
    PROTO_STAT_STORE,
    PROTO_NSTATS
};

/* The text stats are the last of the table, from this one on. */
#define PROTO_STAT_FIRST_TEXT PROTO_STAT_NODE
#define PROTO_STAT_NTEXT      (PROTO_NSTATS - PROTO_STAT_FIRST_TEXT)

/* Bytes of a text value at most: a node name (the store's STORE_NODE_MAX, a host name's
 * HOST_NAME_MAX), the longest there is. */
#define PROTO_STAT_TEXT_MAX 64

/* How a value behaves over time (what a metrics exporter calls it). */
enum proto_stat_kind {
    PROTO_STAT_COUNTER = 0, /* only grows (across restarts too, for the stored ones) */
    PROTO_STAT_GAUGE,       /* goes up and down */
    PROTO_STAT_TEXT         /* not a number: one word of printable ASCII, a name ("STAT node a1") */
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
    uint64_t v[PROTO_NSTATS][PROTO_NTYPES]; /* the numbers (a text stat's row stays 0) */
    char text[PROTO_STAT_NTEXT][PROTO_STAT_TEXT_MAX + 1]; /* the text stats, "" when not set */
};

/* The value of text stat `stat` in *s ("" when not set); NULL when `stat` is a number. */
const char *proto_stats_text(const struct proto_stats *s, enum proto_stat stat);

/* Sets text stat `stat` of *s to `text` when it is one word of printable ASCII of at most
 * PROTO_STAT_TEXT_MAX bytes (else, NULL included, "-"); false, and *s untouched, when `stat` is
 * a number. */
bool proto_stats_set_text(struct proto_stats *s, enum proto_stat stat, const char *text);

/* Finds the stat a STAT line names ("assigned.FREE", "commands"); false for a name not in the
 * table (a newer server's: callers ignore it). */
bool proto_stat_lookup(const char *name, size_t len, enum proto_stat *stat, enum proto_type *type);

/* Parses one "STAT name value" line into *out: a number, or for a text stat a word; false when
 * it is not one we know (a newer server's name: callers ignore it) or its value is not of its
 * kind. */
bool proto_stat_parse_line(const char *line, size_t len, struct proto_stats *out);

#endif
