/* sweep.h - timer-driven expiry in bounded chunks through the group commit: holds that ended
 * (STORE_OP_EXPIRE_HOLDS) and request ids past their retention (STORE_OP_EXPIRE_IDS). Like a
 * purge, a run deletes at most SWEEP_CHUNK rows per commit and goes on in the next batch while
 * rows are left, so a million expired ids never freeze the loop. */
#ifndef COUPOND_SWEEP_H
#define COUPOND_SWEEP_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct group;
struct log;
struct sweep;

/* Rows removed per chunk: a few milliseconds of store work, as PURGE_CHUNK, so the other
 * members of the chunk's batch wait at most that long for their commit. */
#define SWEEP_CHUNK 5000
/* How often ended holds are removed. A hold that ended counts for nothing at once (the store
 * counts live holds only); the sweep removes it, so STATS held.T falls within about a second. */
#define SWEEP_HOLDS_SECONDS 1.0
/* Request ids are swept a few times per retention: every retention / SWEEP_IDS_PER_RETENTION
 * seconds, within [SWEEP_IDS_MIN, SWEEP_IDS_MAX]. Ids are kept at least the retention, so a
 * little longer (at most a minute) is harmless, and a minute between sweeps costs nothing. */
#define SWEEP_IDS_PER_RETENTION 4
#define SWEEP_IDS_MIN           1.0
#define SWEEP_IDS_MAX           60.0

struct sweep_config {
    enum store_op_kind kind; /* STORE_OP_EXPIRE_HOLDS or STORE_OP_EXPIRE_IDS */
    const char *name;        /* the log's op: "EXPIRE_HOLDS" */
    double every;            /* seconds between runs */
    int64_t age;             /* a run removes what ended before now - age */
};

/* The interval of the request id sweep for a retention of `retention` seconds. */
double sweep_ids_interval(uint32_t retention);

/* A sweep that runs every cfg->every seconds; NULL when out of memory. */
struct sweep *sweep_new(struct ev_loop *loop, struct group *g, struct log *lg,
                        const struct sweep_config *cfg);
void sweep_free(struct sweep *s);

/* Shutdown: no run starts; a run going stops after its chunk in flight. */
void sweep_stop(struct sweep *s);

/* True while a chunk is in flight. */
bool sweep_busy(const struct sweep *s);

#endif
