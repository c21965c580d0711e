/* group.c - the group commit (see group.h): two batches, one filling and one in flight. */
#include "group.h"

#include <stdlib.h>

#include "log.h"

struct group {
    struct ev_loop *loop;
    struct store *store;
    struct log *log;
    struct store_batch batches[2];
    struct store_batch *filling, *flying; /* flying: NULL when no commit is in flight */
    double started;                       /* when the flying batch was committed */
    struct group_stats stats;
};

const double group_hist_bounds[GROUP_HIST_BUCKETS] = {0.0005, 0.001, 0.002, 0.004, 0.008, 0.016,
                                                      0.032,  0.064, 0.128, 0.256, 0.512, 1.024};

static void batch_done(struct store_batch *b, enum store_err err);

struct group *
group_new(struct ev_loop *loop, struct store *st, struct log *lg)
{
    struct group *g = calloc(1, sizeof *g);

    if (g == NULL)
        return NULL;
    g->loop = loop;
    g->store = st;
    g->log = lg;
    for (int i = 0; i < 2; i++) {
        store_batch_init(&g->batches[i]);
        g->batches[i].done = batch_done;
        g->batches[i].arg = g;
    }
    g->filling = &g->batches[0];
    return g;
}

void
group_free(struct group *g)
{
    free(g);
}

void
group_add(struct group *g, struct store_op *op)
{
    store_batch_add(g->filling, op);
}

bool
group_busy(const struct group *g)
{
    return g->flying != NULL || g->filling->n > 0;
}

const struct group_stats *
group_stats(const struct group *g)
{
    return &g->stats;
}

void
group_flush(struct group *g)
{
    if (g->flying != NULL || g->filling->n == 0)
        return;
    g->flying = g->filling;
    g->filling = g->flying == &g->batches[0] ? &g->batches[1] : &g->batches[0];
    g->started = ev_time();
    store_commit(g->store, g->flying);
}

static void
record(struct group *g, const struct store_batch *b, enum store_err err)
{
    double took = ev_time() - g->started;
    size_t i = 0;

    if (err != STORE_OK) {
        g->stats.failures++;
        const struct log_field f[] = {log_str("result", "INTERNAL"), log_uint("ops", b->n),
                                      log_int("us", (int64_t)(took * 1e6)),
                                      log_str("error", store_strerror(err)),
                                      log_str("reason", b->msg)};
        log_event(g->log, ev_now(g->loop), "COMMIT", f, LOG_NFIELDS(f));
        return;
    }
    g->stats.commits++;
    g->stats.members += b->n;
    g->stats.seconds += took;
    while (i < GROUP_HIST_BUCKETS && took > group_hist_bounds[i])
        i++;
    g->stats.hist[i]++;
}

/* Completes the members: writes with the batch's outcome, reads of a failed batch again on the
 * committed state (see group.h). */
static void
batch_done(struct store_batch *b, enum store_err err)
{
    struct group *g = b->arg;
    struct store_op *op = b->head, *next;

    record(g, b, err);
    g->flying = NULL;
    store_batch_init(b);
    /* What arrived meanwhile goes to the disk now, before the members are answered: the store
     * works on it while the loop writes these replies. */
    group_flush(g);
    for (; op != NULL; op = next) {
        next = op->next; /* the callback may free or reuse the operation */
        if (err != STORE_OK && !store_op_writes(op->kind))
            store_read(g->store, op);
        else
            op->done(op);
    }
}
