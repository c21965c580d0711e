/* megadeal.c - the MEGADEAL queue in the server. One ev_timer is always set for the queue's
 * next event (window slot, deadline, end of a retention); its callback expires and grants.
 * Grants are store_assign calls in the iteration's group, so they share its commit; the
 * server calls megadeal_committed after it, and only then is a task granted and answered. */
#include "megadeal.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "coupon.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "task.h"

/* A WAIT held back until its task is granted or fails. */
struct waiter {
    struct conn *c;
    uint64_t seq;
};

struct megadeal {
    struct server *srv;
    struct mega *queue;
    struct task_key *key;
    ev_timer timer_w;
    int64_t wait_ms; /* deadline_ms - issued_ms of every id */
    struct waiter *waiters;
    size_t n_waiters, cap_waiters;
    struct mega_task **pending; /* allocated in the open group: `concurrency` slots */
    size_t n_pending;
    bool stopped;
};

/* The queue's clock: monotonic, read exactly (not the loop's cached time), because a grant's
 * time in the window is when its commit was done, which is after the iteration began. */
static double
mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t
wall_ms(const struct megadeal *md)
{
    return (int64_t)(server_now_precise(md->srv) * 1000.0);
}

/* ---- log lines ---- */

/* A field for log_task that is left out. */
static const struct log_field no_field = {.kind = LOG_STR, .s = NULL};

/* A task's line: its number as task= when there is a task, then `more` (or no_field). */
static void
log_task(struct megadeal *md, const struct conn *c, const char *op, const char *user,
         const struct mega_task *t, const char *result, struct log_field more)
{
    struct log_field extra[2];
    size_t n = 0;
    if (t)
        extra[n++] = log_uint("task", t->seq);
    extra[n++] = more;
    struct log_op lo = {.conn = c ? c->id : 0,
                        .peer = c ? c->peer : NULL,
                        .op = op,
                        .user = t ? t->user : user,
                        .code = t && t->state == MEGA_GRANTED ? t->coupon.code : NULL,
                        .type = "MEGADEAL",
                        .result = result,
                        .us = -1,
                        .extra = extra,
                        .n_extra = n};
    log_op(md->srv->log, server_now(md->srv), &lo);
}

static void
log_timeout(struct megadeal *md, const struct mega_task *t)
{
    log_task(md, NULL, "MEGADEAL_TIMEOUT", NULL, t, "TIMEOUT",
             log_int("waited_ms", (int64_t)((t->finished - t->enqueued) * 1e3)));
}

/* ---- replies ---- */

static void
task_id(const struct megadeal *md, const struct mega_task *t, char id[TASK_ID_BUF])
{
    struct task_payload p;
    task_payload_make(md->key, t->seq, t->stamp, t->stamp + md->wait_ms, t->user, &p);
    task_encode(md->key, &p, id);
}

/* Writes a task's state: queued with its position, granted with its coupon, or its failure. */
static enum proto_err
reply_task(struct megadeal *md, struct conn *c, const struct mega_task *t)
{
    char id[TASK_ID_BUF], coupon[PROTO_COUPON_BUF];
    task_id(md, t, id);
    switch (t->state) {
    case MEGA_QUEUED:
    case MEGA_IN_FLIGHT:
        conn_printf(c, "OK task=%s status=queued position=%u\n", id, mega_position(md->queue, t));
        return PROTO_OK;
    case MEGA_GRANTED:
        proto_fmt_coupon(coupon, &t->coupon);
        conn_printf(c, "OK task=%s status=granted %s\n", id, coupon);
        return PROTO_OK;
    case MEGA_FAILED:
        break;
    }
    if (t->fail == MEGA_FAIL_NO_COUPONS) {
        conn_error(c, PROTO_ERR_NO_COUPONS, "no MEGADEAL coupon left");
        return PROTO_ERR_NO_COUPONS;
    }
    conn_error(c, PROTO_ERR_TIMEOUT, "task not granted within %lld seconds",
               (long long)(md->wait_ms / 1000));
    return PROTO_ERR_TIMEOUT;
}

static bool
waiter_add(struct megadeal *md, struct conn *c, uint64_t seq)
{
    if (md->n_waiters == md->cap_waiters) {
        size_t cap = md->cap_waiters ? md->cap_waiters * 2 : 16;
        struct waiter *v = realloc(md->waiters, cap * sizeof *v);
        if (!v)
            return false;
        md->waiters = v;
        md->cap_waiters = cap;
    }
    md->waiters[md->n_waiters++] = (struct waiter){c, seq};
    return true;
}

/* Answers every WAIT whose task has finished. An entry is taken out before its reply is
 * written, because writing can close the connection, which calls megadeal_conn_closed. */
static void
answer_waiters(struct megadeal *md)
{
    double now = mono_now();
    size_t i = 0;
    while (i < md->n_waiters) {
        struct waiter w = md->waiters[i];
        const struct mega_task *t = mega_lookup(md->queue, w.seq, now);
        if (t && (t->state == MEGA_QUEUED || t->state == MEGA_IN_FLIGHT)) {
            i++;
            continue;
        }
        md->waiters[i] = md->waiters[--md->n_waiters];
        if (t)
            reply_task(md, w.c, t);
        else
            conn_error(w.c, PROTO_ERR_UNKNOWN_TASK, "no such task");
        conn_reply_done(w.c);
        conn_unblock(w.c);
    }
}

/* ---- the engine ---- */

/* A task's allocation was lost: back to the queue, or timed out. */
static void
retry(struct megadeal *md, struct mega_task *t, double now, const char *why)
{
    log_task(md, NULL, "MEGADEAL_RETRY", NULL, t, "INTERNAL", log_str("reason", why));
    if (!mega_grant_retry(md->queue, t, now))
        log_timeout(md, t);
}

/* Allocates the head task's coupon in the open group. True when a task finished here. */
static bool
allocate(struct megadeal *md, struct mega_task *t, double now)
{
    struct server *srv = md->srv;
    struct store_coupon sc;
    enum store_err e =
        store_assign(srv->store, STORE_TYPE_MEGADEAL, t->user, server_now_sec(srv), &sc);
    if (e == STORE_OK) {
        struct proto_coupon pc;
        coupon_to_proto(&sc, &pc);
        mega_grant_started(md->queue, t, &pc);
        md->pending[md->n_pending++] = t;
        return false;
    }
    if (e == STORE_NO_COUPONS) {
        mega_grant_failed(md->queue, t, now, MEGA_FAIL_NO_COUPONS);
        log_task(md, NULL, "MEGADEAL_REJECT", NULL, t, "NO_COUPONS", no_field);
        return true;
    }
    retry(md, t, now, store_strerror(e));
    return t->state == MEGA_FAILED;
}

/* Sets the timer for the queue's next event, or stops it when none is due. */
static void
reschedule(struct megadeal *md, double now)
{
    struct ev_loop *loop = md->srv->loop;
    double when;
    ev_timer_stop(loop, &md->timer_w);
    if (md->stopped || !mega_next_event(md->queue, now, &when))
        return;
    ev_timer_set(&md->timer_w, when > now ? when - now : 0., 0.);
    ev_timer_start(loop, &md->timer_w);
}

/* Everything due now: forget old results, time out, grant what the limits allow. */
static void
pump(struct megadeal *md)
{
    double now = mono_now();
    bool finished = false;
    struct mega_task *t;
    mega_reap(md->queue, now);
    while ((t = mega_expire(md->queue, now))) {
        log_timeout(md, t);
        finished = true;
    }
    while (!md->stopped && (t = mega_next_grant(md->queue, now)))
        finished |= allocate(md, t, now);
    if (finished)
        answer_waiters(md);
    reschedule(md, now);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pump(w->data);
}

void
megadeal_committed(struct megadeal *md, bool ok, const char *why)
{
    if (md->n_pending == 0)
        return;
    double now = mono_now();
    for (size_t i = 0; i < md->n_pending; i++) {
        struct mega_task *t = md->pending[i];
        if (!ok) {
            retry(md, t, now, why ? why : "commit failed");
            continue;
        }
        mega_grant_committed(md->queue, t, now);
        log_task(md, NULL, "MEGADEAL_GRANT", NULL, t, "OK",
                 log_int("waited_ms", (int64_t)((now - t->enqueued) * 1e3)));
    }
    md->n_pending = 0;
    answer_waiters(md);
    reschedule(md, now);
}

/* ---- commands ---- */

enum proto_err
megadeal_request(struct megadeal *md, struct conn *c, const char *user, struct log_note *note)
{
    struct server *srv = md->srv;
    if (md->stopped) {
        conn_error(c, PROTO_ERR_BUSY, "server shutting down");
        return PROTO_ERR_BUSY;
    }
    struct store_counters sc;
    enum store_err e = store_counters(srv->store, server_now_sec(srv), &sc);
    if (e != STORE_OK) {
        conn_error(c, PROTO_ERR_INTERNAL, "%s, nothing was changed", store_strerror(e));
        return PROTO_ERR_INTERNAL;
    }
    double now = mono_now();
    struct mega_task *t;
    unsigned pos;
    bool fresh;
    struct mega_counters mc;
    mega_counters(md->queue, &mc);
    switch (mega_enqueue(md->queue, user, now, wall_ms(md), sc.type[STORE_TYPE_MEGADEAL].available,
                         &t, &pos, &fresh)) {
    case MEGA_OK:
        break;
    case MEGA_BUSY:
        log_task(md, c, "MEGADEAL_REJECT", user, NULL, "BUSY", log_uint("queued", mc.queued));
        conn_error(c, PROTO_ERR_BUSY, "MEGADEAL queue is full (%d tasks)", MEGA_QUEUE_MAX);
        return PROTO_ERR_BUSY;
    case MEGA_NO_COUPONS:
        log_task(md, c, "MEGADEAL_REJECT", user, NULL, "NO_COUPONS", log_uint("queued", mc.queued));
        conn_error(c, PROTO_ERR_NO_COUPONS, "no MEGADEAL coupon left");
        return PROTO_ERR_NO_COUPONS;
    case MEGA_NOMEM:
        conn_error(c, PROTO_ERR_INTERNAL, "out of memory, nothing was changed");
        return PROTO_ERR_INTERNAL;
    }
    log_note_add(note, log_uint("task", t->seq));
    log_note_add(note, log_uint("position", pos));
    if (!fresh)
        log_note_add(note, log_uint("again", 1));
    if (fresh) {
        log_task(md, c, "MEGADEAL_ENQUEUE", NULL, t, "OK", log_uint("position", pos));
        reschedule(md, now);
    }
    return reply_task(md, c, t);
}

enum proto_err
megadeal_status(struct megadeal *md, struct conn *c, const char *id, bool wait, bool *deferred,
                struct log_note *note)
{
    struct task_payload given, live;
    if (!task_decode(md->key, id, strlen(id), &given)) {
        conn_error(c, PROTO_ERR_BAD_TASK, "%s", PROTO_BAD_TASK_MSG);
        return PROTO_ERR_BAD_TASK;
    }
    log_note_add(note, log_uint("task", given.seq));
    struct mega_task *t = mega_lookup(md->queue, given.seq, mono_now());
    if (t)
        task_payload_make(md->key, t->seq, t->stamp, t->stamp + md->wait_ms, t->user, &live);
    if (!t || !task_payload_equal(&given, &live)) {
        conn_error(c, PROTO_ERR_UNKNOWN_TASK,
                   "no such task (finished long ago, or lost in a "
                   "restart)");
        return PROTO_ERR_UNKNOWN_TASK;
    }
    bool waiting = t->state == MEGA_QUEUED || t->state == MEGA_IN_FLIGHT;
    if (!wait || !waiting)
        return reply_task(md, c, t);
    if (!waiter_add(md, c, t->seq)) {
        conn_error(c, PROTO_ERR_INTERNAL, "out of memory");
        return PROTO_ERR_INTERNAL;
    }
    log_note_add(note, log_uint("held", 1));
    conn_block(c);
    *deferred = true;
    return PROTO_OK;
}

void
megadeal_conn_closed(struct megadeal *md, struct conn *c)
{
    for (size_t i = 0; i < md->n_waiters; i++) {
        if (md->waiters[i].c == c) {
            md->waiters[i] = md->waiters[--md->n_waiters];
            return; /* a blocked connection waits on one task at most */
        }
    }
}

void
megadeal_stop(struct megadeal *md)
{
    md->stopped = true;
    ev_timer_stop(md->srv->loop, &md->timer_w);
}

void
megadeal_counters(const struct megadeal *md, struct mega_counters *out)
{
    mega_counters(md->queue, out);
}

/* ---- life cycle ---- */

struct megadeal *
megadeal_new(struct server *srv, char *errbuf, size_t errlen)
{
    const struct opts *o = srv->opts;
    struct mega_config cfg = {.rate = o->megadeal_rate,
                              .concurrency = o->megadeal_concurrency,
                              .wait = o->megadeal_wait,
                              .window = MEGA_WINDOW_SECONDS,
                              .retain = MEGA_RETAIN_SECONDS};
    struct megadeal *md = calloc(1, sizeof *md);
    if (!md || !(md->queue = mega_new(&cfg)) ||
        !(md->pending = calloc(cfg.concurrency, sizeof *md->pending))) {
        snprintf(errbuf, errlen, "cannot set up the MEGADEAL queue: out of memory");
        megadeal_free(md);
        return NULL;
    }
    md->key = task_key_load(o->data_dir, errbuf, errlen);
    if (!md->key) {
        megadeal_free(md);
        return NULL;
    }
    md->srv = srv;
    md->wait_ms = (int64_t)o->megadeal_wait * 1000;
    ev_timer_init(&md->timer_w, timer_cb, 0., 0.);
    md->timer_w.data = md;
    return md;
}

void
megadeal_free(struct megadeal *md)
{
    if (!md)
        return;
    if (md->srv)
        ev_timer_stop(md->srv->loop, &md->timer_w);
    mega_free(md->queue);
    task_key_free(md->key);
    free(md->pending);
    free(md->waiters);
    free(md);
}
