/* purge.c - the purge engine: runs of bounded chunks, each run answering the PURGE commands
 * that were waiting when it started. */
#include "purge.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "conn.h"
#include "log.h"
#include "server.h"

struct waiters {
    struct conn **v;
    size_t len, cap;
};

struct run {
    bool active; /* started: chunks are being deleted */
    bool wanted; /* requested (by a command or the timer) */
    bool done;   /* the last chunk ran (or failed); answered after the commit */
    bool failed;
    int64_t cutoff;              /* delete what expired before this */
    uint64_t committed, pending; /* deleted and durable; deleted in the open group */
    double started;
    struct waiters waiters;
};

struct purge {
    struct server *srv;
    struct run cur, next;
    bool stopping;
};

struct purge *
purge_new(struct server *srv)
{
    struct purge *p = calloc(1, sizeof *p);
    if (p)
        p->srv = srv;
    return p;
}

void
purge_free(struct purge *p)
{
    if (!p)
        return;
    free(p->cur.waiters.v);
    free(p->next.waiters.v);
    free(p);
}

static bool
waiters_add(struct waiters *w, struct conn *c)
{
    if (w->len == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4;
        struct conn **v = realloc(w->v, cap * sizeof *v);
        if (!v)
            return false;
        w->v = v;
        w->cap = cap;
    }
    w->v[w->len++] = c;
    return true;
}

static void
waiters_remove(struct waiters *w, const struct conn *c)
{
    for (size_t i = 0; i < w->len; i++)
        if (w->v[i] == c)
            w->v[i] = NULL;
}

bool
purge_request(struct purge *p, struct conn *c)
{
    if (c && !waiters_add(&p->next.waiters, c))
        return false;
    p->next.wanted = true;
    server_defer(p->srv);
    return true;
}

void
purge_cancel(struct purge *p, struct conn *c)
{
    waiters_remove(&p->cur.waiters, c);
    waiters_remove(&p->next.waiters, c);
}

bool
purge_busy(const struct purge *p)
{
    return p->cur.active || p->next.wanted;
}

void
purge_stop(struct purge *p)
{
    p->stopping = true;
    if (p->cur.active)
        p->cur.done = true;
    /* Requests that never started are told so: nothing was purged for them. */
    for (size_t i = 0; i < p->next.waiters.len; i++) {
        struct conn *c = p->next.waiters.v[i];
        if (!c)
            continue;
        conn_error(c, PROTO_ERR_INTERNAL, "server shutting down, nothing was purged");
        conn_reply_done(c);
    }
    p->next.waiters.len = 0;
    p->next.wanted = false;
}

/* Moves the next run's requests into the current run. */
static void
start_run(struct purge *p)
{
    struct waiters spare = p->cur.waiters;
    spare.len = 0;
    p->cur = p->next;
    p->cur.active = true;
    p->cur.cutoff = server_now_sec(p->srv);
    p->cur.started = server_now(p->srv);
    p->next = (struct run){.waiters = spare};
}

void
purge_step(struct purge *p)
{
    if (!p->cur.active && p->next.wanted && !p->stopping)
        start_run(p);
    if (!p->cur.active || p->cur.done)
        return;
    bool more = false;
    uint64_t n = 0;
    enum store_err e = store_purge(p->srv->store, p->cur.cutoff, PURGE_CHUNK, &n, &more);
    p->cur.pending += n;
    if (e != STORE_OK) {
        p->cur.failed = true;
        p->cur.done = true;
        const struct log_field f[] = {log_str("error", store_strerror(e)),
                                      log_str("reason", store_last_error(p->srv->store))};
        log_event(p->srv->log, server_now(p->srv), "PURGE_FAILED", f, LOG_NFIELDS(f));
    } else if (!more) {
        p->cur.done = true;
    }
}

/* Logs the run's outcome for one waiting connection, or once for a timer run. */
static void
log_run(struct purge *p, const struct conn *c, bool ok)
{
    struct run *r = &p->cur;
    double now = server_now(p->srv);
    const struct log_field extra = log_uint("purged", r->committed);
    struct log_op lo = {.conn = c ? c->id : 0,
                        .peer = c ? c->peer : NULL,
                        .op = c ? "PURGE" : "PURGE_TIMER",
                        .result = ok ? "OK" : "INTERNAL",
                        .us = (int64_t)((now - r->started) * 1e6),
                        .extra = &extra,
                        .n_extra = 1};
    log_op(p->srv->log, now, &lo);
}

static void
answer(struct purge *p, bool ok, const char *why)
{
    struct run *r = &p->cur;
    size_t answered = 0;
    for (size_t i = 0; i < r->waiters.len; i++) {
        struct conn *c = r->waiters.v[i];
        if (!c)
            continue;
        if (ok)
            conn_printf(c, "OK purged=%llu\n", (unsigned long long)r->committed);
        else
            conn_error(c, PROTO_ERR_INTERNAL, "purge stopped after %llu coupons: %s",
                       (unsigned long long)r->committed, why);
        conn_reply_done(c);
        conn_unblock(c);
        log_run(p, c, ok);
        answered++;
    }
    if (answered == 0)
        log_run(p, NULL, ok);
}

void
purge_committed(struct purge *p, bool ok, const char *why)
{
    struct run *r = &p->cur;
    if (!r->active)
        return;
    if (ok)
        r->committed += r->pending;
    r->pending = 0;
    if (!ok) {
        r->failed = true;
        r->done = true;
    }
    if (r->done) {
        answer(p, !r->failed, r->failed ? (why ? why : "store error") : NULL);
        r->active = false;
        r->waiters.len = 0;
    }
    if (purge_busy(p) && !p->stopping)
        server_defer(p->srv);
}
