/* metrics.h - the metrics exporter: --metrics-listen ADDR:PORT serves GET /metrics over HTTP in
 * Prometheus's text exposition format (version 0.0.4), on listening sockets of its own
 * (listener.h), apart from the line protocol's port, which keeps refusing HTTP.
 *
 * The metrics are made from protocol/stat.h's one table, never from a list of their own: each
 * STATS name becomes `coupond_` + the name with '.' as '_' and a trailing `_s` spelled
 * `_seconds` (Prometheus's base unit), plus `_total` for a counter that does not end in it; a
 * per-type stat has one series per type with a `type` label; HELP is the table's doc line and
 * TYPE its kind. Beside them: the group commit's latency histogram (coupond_commit_seconds,
 * from group_stats) and coupond_build_info{version,store}.
 *
 * A connection is tiny and bounded: its request (line and headers) is read into a fixed buffer,
 * the store's counters are read (STORE_OP_COUNTERS, answered when that completes), the reply is
 * written, and the connection is closed. Everything is non-blocking on the loop; a connection
 * lives at most METRICS_TIMEOUT seconds; at most METRICS_CONN_MAX are open at once. Only
 * `GET /metrics` is served: another path is 404, another method 405. */
#ifndef COUPOND_METRICS_H
#define COUPOND_METRICS_H

#include <ev.h>
#include <stddef.h>

#include "group.h"
#include "stat.h"
#include "store.h"

struct log;
struct metrics;

/* Scrapes served at once. Prometheus scrapes a target once per interval (an HA pair twice),
 * and a person with curl adds one: 16 leaves room for all of them. A connection beyond it gets
 * 503 at once and is closed, so a flood costs neither memory nor store reads. */
#define METRICS_CONN_MAX 16
/* Bytes of a request's line and headers: Prometheus and curl send about 200. A request that
 * does not end within them is answered 431 and closed. */
#define METRICS_REQ_MAX 4096
/* Seconds a connection lives, from accept to the last byte of its reply: Prometheus's default
 * scrape_timeout. A client slower than that (or one that never sends) is cut off. */
#define METRICS_TIMEOUT 10.0
/* Bytes of a reply's body: the table's 50-odd series and the histogram take about 8 KiB; a body
 * that would not fit is a bug, answered 500. */
#define METRICS_REPLY_MAX (64 * 1024)

/* What the exporter reads. */
struct metrics_source {
    struct store *store;
    const struct group *group;
    /* Every STATS value from the store's counters (cmd_stats). */
    void (*gather)(void *arg, const struct store_counters *c, struct proto_stats *out);
    void *arg;
};

/* Listens on `host` (a name or an address literal) and `port` (0: one the system picks) and
 * logs a METRICS_LISTEN line per address, as the main listener's LISTEN. NULL with a one-line
 * reason in errbuf. `src` is copied; what it points to must outlive the exporter. */
struct metrics *metrics_new(struct ev_loop *loop, const char *host, unsigned port,
                            const struct metrics_source *src, struct log *lg, char *errbuf,
                            size_t errlen);

/* Stops listening and closes every connection (the server is shutting down). */
void metrics_stop(struct metrics *m);

/* Frees the exporter; after store_close when a read may be pending. NULL is a no-op. */
void metrics_free(struct metrics *m);

/* Writes the exposition of stats s, commit statistics gs, the version and the store's backend
 * name into buf (cap bytes, NUL-terminated when cap > 0); returns the length it needs, as
 * snprintf does, so a result >= cap means it did not fit. */
size_t metrics_render(char *buf, size_t cap, const struct proto_stats *s,
                      const struct group_stats *gs, const char *version, const char *store);

/* The metric name of STATS entry `stat` into name[METRICS_NAME_MAX]. */
#define METRICS_NAME_MAX 96
void metrics_name(enum proto_stat stat, char name[METRICS_NAME_MAX]);

#endif
