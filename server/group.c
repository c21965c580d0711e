/* group.c - the group commit (see group.h): two batches, one filling and one in flight, and
 * the hold. */
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
    double delay;                         /* the hold, seconds; 0: none */
    ev_timer hold_w;                      /* running while the filling batch is held */
    size_t hold_until_n;                  /* the held batch goes once it has this many */
    struct group_stats stats;
};

const double group_hist_bounds[GROUP_HIST_BUCKETS] = {0.0005, 0.001, 0.002, 0.004, 0.008, 0.016,
                                                      0.032,  0.064, 0.128, 0.256, 0.512, 1.024};

static void batch_done(struct store_batch *b, enum store_err err);
static void hold_cb(struct ev_loop *loop, ev_timer *w, int revents);

struct group *
group_new(struct ev_loop *loop, struct store *st, struct log *lg, double delay)
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
    g->delay = delay;
    ev_timer_init(&g->hold_w, hold_cb, 0., 0.);
    g->hold_w.data = g;
    return g;
}

void
group_free(struct group *g)
{
    if (g != NULL)
        ev_timer_stop(g->loop, &g->hold_w);
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

static bool
held(struct group *g)
{
    if (!ev_is_active(&g->hold_w))
        return false;
    if (g->filling->n < g->hold_until_n)
        return true;
    ev_timer_stop(g->loop, &g->hold_w);
    return false;
}

void
group_flush(struct group *g)
{
    if (g->flying != NULL || g->filling->n == 0 || held(g))
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
    size_t answered = b->n;

    record(g, b, err);
    g->flying = NULL;
    store_batch_init(b);
    if (g->delay > 0) { /* the hold (group.h): until these members are back, or the delay */
        g->hold_until_n = answered + g->filling->n;
        ev_timer_set(&g->hold_w, g->delay, 0.);
        ev_timer_start(g->loop, &g->hold_w);
    }
    /* What arrived meanwhile goes to the disk now unless held, before the members are answered:
     * the store works on it while the loop writes these replies. */
    group_flush(g);
    for (; op != NULL; op = next) {
        next = op->next; /* the callback may free or reuse the operation */
        if (err != STORE_OK && !store_op_writes(op->kind))
            store_read(g->store, op);
        else
            op->done(op);
    }
}

/* The hold's delay is up: the batch goes with what it has. */
static void
hold_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    group_flush(w->data);
}
