/* purge.c - the purge service (see purge.h): runs of chunks, each a PURGE operation in the
 * group's next batch; a run answers the tickets that were waiting when it started. */
#include "purge.h"

#include <stdio.h>
#include <stdlib.h>

#include "group.h"
#include "log.h"
#include "store.h"

struct run {
    bool active;    /* chunks are being deleted */
    bool wanted;    /* requested (by a command or the timer) */
    int64_t cutoff; /* delete what expired before this */
    uint64_t purged;
    double started;
    struct purge_ticket *tickets;
};

struct purge {
    struct ev_loop *loop;
    struct group *group;
    struct log *log;
    struct run cur, next;
    struct store_op op; /* the chunk in flight */
    bool chunk_busy;
    bool stopping;
};

static void start_chunk(struct purge *p);

struct purge *
purge_new(struct ev_loop *loop, struct group *g, struct log *lg)
{
    struct purge *p = calloc(1, sizeof *p);

    if (p == NULL)
        return NULL;
    p->loop = loop;
    p->group = g;
    p->log = lg;
    return p;
}

void
purge_free(struct purge *p)
{
    free(p);
}

static void
unlink_ticket(struct purge_ticket **list, struct purge_ticket *t)
{
    for (; *list != NULL; list = &(*list)->next) {
        if (*list == t) {
            *list = t->next;
            t->next = NULL;
            return;
        }
    }
}

void
purge_cancel(struct purge *p, struct purge_ticket *t)
{
    unlink_ticket(&p->cur.tickets, t);
    unlink_ticket(&p->next.tickets, t);
}

bool
purge_busy(const struct purge *p)
{
    return p->cur.active || p->next.wanted;
}

/* Logs the outcome of a run nobody waited for (the timer's); a PURGE command logs its own. */
static void
log_timer_run(struct purge *p, bool ok, bool more)
{
    const struct run *r = &p->cur;
    double now = ev_now(p->loop);
    const struct log_field extra[] = {log_uint("purged", r->purged), log_uint("more", 1)};
    struct log_op lo = {.op = "PURGE_TIMER",
                        .result = ok ? "OK" : "INTERNAL",
                        .us = (int64_t)((now - r->started) * 1e6),
                        .extra = extra,
                        .n_extra = more ? 2 : 1};

    log_op(p->log, now, &lo);
}

/* Ends the current run: every ticket gets the outcome (err: the store's, on failure). */
static void
end_run(struct purge *p, bool ok, bool more, enum store_err err)
{
    struct run *r = &p->cur;
    struct purge_ticket *t = r->tickets;

    r->active = false;
    r->tickets = NULL;
    if (t == NULL)
        log_timer_run(p, ok, more);
    while (t != NULL) {
        struct purge_ticket *next = t->next;
        t->ok = ok;
        t->purged = r->purged;
        t->more = more;
        t->why = ok ? NULL : store_strerror(err);
        t->err = err;
        t->seconds = ev_now(p->loop) - r->started;
        t->next = NULL;
        t->done(t);
        t = next;
    }
}

static void
start_run(struct purge *p)
{
    p->cur = p->next;
    p->cur.active = true;
    p->cur.wanted = false;
    p->cur.cutoff = (int64_t)ev_now(p->loop);
    p->cur.started = ev_now(p->loop);
    p->cur.purged = 0;
    p->next = (struct run){0};
    start_chunk(p);
}

static void
chunk_done(struct store_op *op)
{
    struct purge *p = op->arg;

    p->chunk_busy = false;
    if (op->err != STORE_OK) {
        const struct log_field f[] = {log_str("error", store_strerror(op->err)),
                                      log_str("reason", op->out.msg)};
        log_event(p->log, ev_now(p->loop), "PURGE_FAILED", f, LOG_NFIELDS(f));
        end_run(p, false, false, op->err);
    } else {
        p->cur.purged += op->out.count;
        if (!op->out.more)
            end_run(p, true, false, STORE_OK);
        else if (p->stopping)
            end_run(p, true, true, STORE_OK);
        else
            start_chunk(p);
    }
    if (!p->cur.active && p->next.wanted && !p->stopping)
        start_run(p);
}

static void
start_chunk(struct purge *p)
{
    struct store_op *op = &p->op;

    *op = (struct store_op){
        .kind = STORE_OP_PURGE, .now = p->cur.cutoff, .done = chunk_done, .arg = p};
    op->in.max = PURGE_CHUNK;
    p->chunk_busy = true;
    group_add(p->group, op);
}

void
purge_request(struct purge *p, struct purge_ticket *t)
{
    if (t != NULL) {
        t->next = p->next.tickets;
        p->next.tickets = t;
    }
    if (p->stopping) {
        purge_stop(p);
        return;
    }
    p->next.wanted = true;
    if (!p->cur.active)
        start_run(p);
}

void
purge_stop(struct purge *p)
{
    p->stopping = true;
    /* The current run ends when its chunk in flight completes. Requests that never started
     * are told so: nothing was purged for them. */
    struct purge_ticket *t = p->next.tickets;
    p->next = (struct run){0};
    while (t != NULL) {
        struct purge_ticket *next = t->next;
        t->ok = false;
        t->purged = 0;
        t->more = false;
        t->why = "server shutting down, nothing was purged";
        t->err = STORE_OK;
        t->next = NULL;
        t->done(t);
        t = next;
    }
}
