/* group.h - the group commit, in one place: the writes (and the reads that must see them) of
 * one loop iteration, from every connection and service, go to the store as one batch with one
 * commit; each member is completed through its own callback when the commit's outcome is
 * known. While one batch is being committed the next one fills; it is committed as soon as the
 * first is done (unless the hold below keeps it), before the first's members are answered, so under
 * load every commit carries what arrived during the one before and the store is never idle while
 * replies are written.
 *
 * A member depends on the commit by construction: it is an operation in the batch. A failed
 * commit fails the writing members (nothing of them was stored); a read member did not depend
 * on anything that failed except the writes before it, which are undone, so it is run again
 * on the committed state instead of being failed. Replies that are not members (PING, AUTH, a
 * MEGADEAL enqueue) never see a commit at all.
 *
 * The hold (`delay`, coupond --commit-delay). Under load with no hold, the clients split into
 * two halves that take turns, one half's batch committing while the other's fills, so a batch
 * holds about half of them. A store whose batch costs much whatever its size (PostgreSQL: a
 * round of statements and a COMMIT) does less work for each request in larger batches. With a
 * hold, when a batch is done, the batch that filled meanwhile waits until it holds as many
 * operations as the two had together (the clients just answered have sent again), or until
 * `delay` has passed, whichever comes first; under load a batch then holds about all the
 * clients. A client alone is never held: the batch before its request held only it. A request
 * that arrives while another client's batch is in flight may wait up to `delay` longer. */
#ifndef COUPOND_GROUP_H
#define COUPOND_GROUP_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct group;
struct log;

/* Latency buckets of the commit histogram, in seconds (upper bounds): from a fast SSD's
 * fsync to a stalled disk. */
#define GROUP_HIST_BUCKETS 12

struct group_stats {
    uint64_t commits;                      /* batches made durable */
    uint64_t failures;                     /* batches that failed */
    uint64_t members;                      /* operations completed through commits */
    uint64_t hist[GROUP_HIST_BUCKETS + 1]; /* commit durations; the last bucket is +Inf */
    double seconds;                        /* sum of commit durations */
};

extern const double group_hist_bounds[GROUP_HIST_BUCKETS];

/* `delay`: the hold, in seconds (0: none; see above). */
struct group *group_new(struct ev_loop *loop, struct store *st, struct log *lg, double delay);
/* Frees the group; the store must have no batch in flight (store_close waits for it). */
void group_free(struct group *g);

/* Adds an operation to the filling batch. op->done runs when it completes, never before
 * group_add returns. */
void group_add(struct group *g, struct store_op *op);

/* The end of a loop iteration: commits the filling batch unless one is in flight or the hold
 * keeps it. */
void group_flush(struct group *g);

/* True while a batch is in flight or filling. */
bool group_busy(const struct group *g);

const struct group_stats *group_stats(const struct group *g);

#endif
