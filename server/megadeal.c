/* megadeal.c - the MEGADEAL service (see megadeal.h). One ev_timer is always set for the
 * queue's next event (window slot, deadline, end of a retention); its callback expires and
 * grants. A grant is an ASSIGN in the group's next batch; only when that batch is durable is
 * the task granted and its waiters answered. */
#include "megadeal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coupon.h"
#include "group.h"
#include "log.h"
#include "rid.h"
#include "store.h"

/* A request id a MEGADEAL REQUEST gave its task. The first id of a task (`carrier`) goes with
 * its grant into the store. */
struct rid_entry {
    struct store_rid rid;
    uint64_t seq; /* the task */
    bool carrier;
    struct rid_entry *next;
};

/* A grant on its way through the group, then (on a store shared by nodes) the close of its
 * shared slot (store.h, GRANT_DONE). Each grant in flight has one, and so may each grant being
 * closed: MEGADEAL_SLOTS_PER_GRANT per allowed grant in flight. */
struct grant {
    struct store_op op;
    struct store_op close_op;
    struct mega_task *t;
    struct megadeal *md;
    bool busy;    /* op is in the group */
    bool closing; /* close_op is in the group */
};

struct megadeal {
    struct ev_loop *loop;
    struct group *group;
    struct log *log;
    struct mega *queue;
    struct task_key *key;
    ev_timer timer_w;
    int64_t wait_ms; /* deadline_ms - issued_ms of every id */
    struct megadeal_ticket *tickets;
    struct grant *grants; /* MEGADEAL_SLOTS_PER_GRANT x `concurrency` slots */
    unsigned n_grants;
    unsigned in_flight;
    unsigned closing;         /* shared slots being closed */
    double held_until;        /* no grant is tried before this (the shared limits were taken) */
    struct store_limit limit; /* the limits every node of a shared store counts together */
    unsigned min_validity;
    bool stopped;
    struct rid_entry *rids; /* the ids of the tasks alive */
    size_t n_rids;
};

static void pump(struct megadeal *md);

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
wall_ms(void)
{
    return (int64_t)(ev_time() * 1000.0);
}

/* ---- log lines ---- */

/* Who a line is about: the client (conn 0: the queue itself), and the user or task. */
struct who {
    uint64_t conn;
    const char *peer;
    const char *user;
};

static const struct who nobody = {0, NULL, NULL};

static void
log_task(struct megadeal *md, struct who w, const char *op, const struct mega_task *t,
         const char *result, const struct log_field *extra, size_t n_extra)
{
    const char *user = w.user;
    uint64_t conn = w.conn;
    const char *peer = w.peer;
    struct log_op lo = {.conn = conn,
                        .peer = peer,
                        .op = op,
                        .user = t != NULL ? t->user : user,
                        .code = t != NULL && t->state == MEGA_GRANTED ? t->coupon.code : NULL,
                        .type = "MEGADEAL",
                        .result = result,
                        .us = -1,
                        .extra = extra,
                        .n_extra = n_extra};
    log_op(md->log, ev_now(md->loop), &lo);
}

static void
log_timeout(struct megadeal *md, const struct mega_task *t)
{
    const struct log_field f[] = {
        log_uint("task", t->seq),
        log_int("waited_ms", (int64_t)((t->finished - t->enqueued) * 1e3))};
    log_task(md, nobody, "MEGADEAL_TIMEOUT", t, "TIMEOUT", f, LOG_NFIELDS(f));
}

/* ---- views ---- */

static void
view_error(struct megadeal_view *v, enum proto_err err, const char *msg)
{
    v->err = err;
    snprintf(v->msg, sizeof v->msg, "%s", msg);
}

/* A task's state as a reply shows it. */
static void
view_task(const struct megadeal *md, const struct mega_task *t, struct megadeal_view *v)
{
    struct task_payload p;

    task_payload_make(md->key, t->seq, t->stamp, t->stamp + md->wait_ms, t->user, &p);
    task_encode(md->key, &p, v->id);
    v->err = PROTO_OK;
    switch (t->state) {
    case MEGA_QUEUED:
    case MEGA_IN_FLIGHT:
        v->granted = false;
        v->position = mega_position(md->queue, t);
        return;
    case MEGA_GRANTED:
        v->granted = true;
        v->coupon = t->coupon;
        return;
    case MEGA_FAILED:
        break;
    }
    if (t->fail == MEGA_FAIL_NO_COUPONS) {
        view_error(v, PROTO_ERR_NO_COUPONS, "no MEGADEAL coupon left");
        return;
    }
    v->err = PROTO_ERR_TIMEOUT;
    snprintf(v->msg, sizeof v->msg, "task not granted within %lld seconds",
             (long long)(md->wait_ms / 1000));
}

static bool
finished(const struct mega_task *t)
{
    return t->state == MEGA_GRANTED || t->state == MEGA_FAILED;
}

/* Answers every held ticket whose task has finished (or is gone). A ticket is unlinked before
 * its callback, which may free it. */
static void
answer_tickets(struct megadeal *md)
{
    double now = mono_now();
    struct megadeal_ticket *t = md->tickets, *next;

    for (; t != NULL; t = next) {
        next = t->next;
        const struct mega_task *task = mega_lookup(md->queue, t->seq, now);
        if (task != NULL && !finished(task))
            continue;
        megadeal_cancel(md, t);
        if (task != NULL)
            view_task(md, task, &t->view);
        else
            view_error(&t->view, PROTO_ERR_UNKNOWN_TASK, "no such task");
        t->done(t);
    }
}

/* ---- request ids ---- */

/* The live task of an entry, or NULL when it is gone or failed (its ids are then forgotten). */
static struct mega_task *
entry_task(const struct megadeal *md, const struct rid_entry *e, double now)
{
    struct mega_task *t = mega_lookup(md->queue, e->seq, now);

    return t != NULL && t->state != MEGA_FAILED ? t : NULL;
}

/* Forgets the ids whose tasks are gone, and with `seq` > 0, every id of that task too. */
static void
prune_rids(struct megadeal *md, uint64_t seq, double now)
{
    struct rid_entry **pp = &md->rids, *e;

    while ((e = *pp) != NULL) {
        if (e->seq == seq || entry_task(md, e, now) == NULL) {
            *pp = e->next;
            free(e);
            md->n_rids--;
        } else {
            pp = &e->next;
        }
    }
}

/* The entry of an id whose task is alive, or NULL. */
static struct rid_entry *
find_rid(struct megadeal *md, const struct store_rid *rid, double now)
{
    for (struct rid_entry *e = md->rids; e != NULL; e = e->next)
        if (rid_same_id(&e->rid, rid))
            return entry_task(md, e, now) != NULL ? e : NULL;
    return NULL;
}

/* The entry whose id goes with task seq's grant, or NULL. */
static const struct rid_entry *
carrier_of(const struct megadeal *md, uint64_t seq)
{
    for (const struct rid_entry *e = md->rids; e != NULL; e = e->next)
        if (e->seq == seq && e->carrier)
            return e;
    return NULL;
}

/* Remembers that `rid` named task t; false when out of memory. */
static bool
add_rid(struct megadeal *md, const struct store_rid *rid, const struct mega_task *t)
{
    struct rid_entry *e = malloc(sizeof *e);

    if (e == NULL)
        return false;
    e->rid = *rid;
    e->seq = t->seq;
    e->carrier = carrier_of(md, t->seq) == NULL;
    e->next = md->rids;
    md->rids = e;
    md->n_rids++;
    return true;
}

/* ---- grants ---- */

/* A task's allocation was lost: back to the queue, or timed out. */
static void
retry(struct megadeal *md, struct mega_task *t, double now, const char *why)
{
    const struct log_field f[] = {log_uint("task", t->seq), log_str("reason", why)};
    log_task(md, nobody, "MEGADEAL_RETRY", t, "INTERNAL", f, LOG_NFIELDS(f));
    if (!mega_grant_retry(md->queue, t, now))
        log_timeout(md, t);
}

/* A shared slot's close committed or failed; a close that failed is left to the store's lease
 * (store.h): nothing waits for it. */
static void
close_done(struct store_op *op)
{
    struct grant *g = op->arg;

    g->closing = false;
    g->md->closing--;
    pump(g->md);
}

/* The grant was answered: its slot in the limits shared by nodes closes. */
static void
close_slot(struct megadeal *md, struct grant *g, uint64_t slot)
{
    memset(&g->close_op.in, 0, sizeof g->close_op.in);
    g->close_op.kind = STORE_OP_GRANT_DONE;
    g->close_op.now = (int64_t)ev_time();
    g->close_op.in.grant = slot;
    g->close_op.done = close_done;
    g->close_op.arg = g;
    g->closing = true;
    md->closing++;
    group_add(md->group, &g->close_op);
}

/* The limits shared with other nodes were taken: the task goes back to the head of the queue
 * without using a slot of this node's window, and no grant is tried for a while. */
static void
limited(struct megadeal *md, struct mega_task *t, double now)
{
    md->held_until = now + MEGADEAL_LIMITED_RETRY_S;
    if (!mega_grant_requeue(md->queue, t, now))
        log_timeout(md, t);
}

/* A grant's batch completed: the task is granted, found no coupon, or goes back. */
static void
grant_done(struct store_op *op)
{
    struct grant *g = op->arg;
    struct megadeal *md = g->md;
    struct mega_task *t = g->t;
    double now = mono_now();

    g->busy = false;
    md->in_flight--;
    if (op->err == STORE_LIMITED) {
        limited(md, t, now);
    } else if (op->err == STORE_ID_CONFLICT) {
        /* Another write took the task's id first (it was sent while the task waited): the
         * grant goes on without the id, which names that other write now. */
        prune_rids(md, t->seq, now);
        retry(md, t, now, "request id used by another write");
    } else if (op->err == STORE_OK) {
        struct proto_coupon pc;
        coupon_to_proto(&op->out.coupon, &pc);
        mega_grant_committed(md->queue, t, now, &pc);
        const struct log_field f[] = {log_uint("task", t->seq),
                                      log_int("waited_ms", (int64_t)((now - t->enqueued) * 1e3))};
        log_task(md, nobody, "MEGADEAL_GRANT", t, "OK", f, LOG_NFIELDS(f));
    } else if (op->err == STORE_NO_COUPONS) {
        mega_grant_failed(md->queue, t, now, MEGA_FAIL_NO_COUPONS);
        const struct log_field f[] = {log_uint("task", t->seq)};
        log_task(md, nobody, "MEGADEAL_REJECT", t, "NO_COUPONS", f, LOG_NFIELDS(f));
    } else {
        retry(md, t, now, op->out.msg[0] ? op->out.msg : store_strerror(op->err));
    }
    answer_tickets(md);
    if (op->err == STORE_OK && op->out.grant != 0)
        close_slot(md, g, op->out.grant);
    pump(md);
}

static struct grant *
free_slot(struct megadeal *md)
{
    for (unsigned i = 0; i < md->n_grants; i++)
        if (!md->grants[i].busy && !md->grants[i].closing)
            return &md->grants[i];
    return NULL;
}

/* Puts the head task's assignment into the group's next batch. */
static void
start_grant(struct megadeal *md, struct mega_task *t)
{
    struct grant *g = free_slot(md); /* pump asked for one first */

    mega_grant_started(md->queue, t);
    g->busy = true;
    g->t = t;
    memset(&g->op.in, 0, sizeof g->op.in);
    g->op.kind = STORE_OP_ASSIGN;
    g->op.now = (int64_t)ev_time();
    g->op.in.type = STORE_TYPE_MEGADEAL;
    g->op.in.min_expires = g->op.now + (int64_t)md->min_validity;
    g->op.in.limit = md->limit;
    snprintf(g->op.in.user, sizeof g->op.in.user, "%s", t->user);
    const struct rid_entry *e = carrier_of(md, t->seq);
    if (e != NULL) {
        g->op.in.rid = e->rid;
        g->op.in.task_seq = t->seq;
        g->op.in.task_stamp = t->stamp;
    }
    g->op.done = grant_done;
    g->op.arg = g;
    md->in_flight++;
    group_add(md->group, &g->op);
}

/* Sets the timer for the queue's next event, or stops it when none is due. */
static void
reschedule(struct megadeal *md, double now)
{
    double when;

    ev_timer_stop(md->loop, &md->timer_w);
    if (md->stopped || !mega_next_event(md->queue, now, &when))
        return;
    if (when < md->held_until) /* a deadline in the meantime is seen then, a little late */
        when = md->held_until;
    ev_timer_set(&md->timer_w, when > now ? when - now : 0., 0.);
    ev_timer_start(md->loop, &md->timer_w);
}

/* Everything due now: forget old results, time out, grant what the limits allow. */
static void
pump(struct megadeal *md)
{
    double now = mono_now();
    bool expired = false;
    struct mega_task *t;

    if (mega_reap(md->queue, now) > 0)
        prune_rids(md, 0, now);
    while ((t = mega_expire(md->queue, now)) != NULL) {
        log_timeout(md, t);
        expired = true;
    }
    while (!md->stopped && now >= md->held_until && free_slot(md) != NULL &&
           (t = mega_next_grant(md->queue, now)) != NULL)
        start_grant(md, t);
    if (expired)
        answer_tickets(md);
    reschedule(md, now);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pump(w->data);
}

/* ---- commands ---- */

/* Refusals before the queue is asked: shutdown, and a full table of request ids. */
static bool
refused(struct megadeal *md, const struct store_rid *rid, struct megadeal_view *v)
{
    if (md->stopped) {
        view_error(v, PROTO_ERR_BUSY, "server shutting down");
        return true;
    }
    if (rid != NULL && md->n_rids >= MEGADEAL_RIDS_MAX) {
        view_error(v, PROTO_ERR_BUSY, "too many MEGADEAL request ids pending");
        return true;
    }
    return false;
}

/* The answer when the id names a task already: true, with that task or ID_CONFLICT in *v. */
static bool
known_rid(struct megadeal *md, const struct store_rid *rid, struct megadeal_view *v)
{
    switch (rid != NULL ? megadeal_rid_find(md, rid, v) : MEGADEAL_RID_NONE) {
    case MEGADEAL_RID_FOUND:
        return true;
    case MEGADEAL_RID_CONFLICT:
        view_error(v, PROTO_ERR_ID_CONFLICT, "request id used for another request");
        return true;
    case MEGADEAL_RID_NONE:
        break;
    }
    return false;
}

void
megadeal_enqueue(struct megadeal *md, const char *user, uint64_t available, uint64_t conn,
                 const char *peer, const struct store_rid *rid, struct megadeal_view *v)
{
    double now = mono_now();
    struct who w = {conn, peer, user};
    struct mega_task *t;
    struct mega_counters mc;
    unsigned pos;
    bool fresh;

    memset(v, 0, sizeof *v);
    if (refused(md, rid, v) || known_rid(md, rid, v))
        return;
    mega_counters(md->queue, &mc);
    const struct log_field queued[] = {log_uint("queued", mc.queued)};
    switch (mega_enqueue(md->queue, user, now, wall_ms(), available, &t, &pos, &fresh)) {
    case MEGA_OK:
        break;
    case MEGA_BUSY:
        log_task(md, w, "MEGADEAL_REJECT", NULL, "BUSY", queued, LOG_NFIELDS(queued));
        v->err = PROTO_ERR_BUSY;
        snprintf(v->msg, sizeof v->msg, "MEGADEAL queue is full (%zu tasks)",
                 mega_queue_max(md->queue));
        return;
    case MEGA_NO_COUPONS:
        log_task(md, w, "MEGADEAL_REJECT", NULL, "NO_COUPONS", queued, LOG_NFIELDS(queued));
        view_error(v, PROTO_ERR_NO_COUPONS, "no MEGADEAL coupon left");
        return;
    case MEGA_NOMEM:
        view_error(v, PROTO_ERR_INTERNAL, "out of memory, nothing was changed");
        return;
    }
    if (rid != NULL && !add_rid(md, rid, t)) {
        view_error(v, PROTO_ERR_INTERNAL, "out of memory, nothing was changed");
        return;
    }
    log_note_add(&v->note, log_uint("task", t->seq));
    log_note_add(&v->note, log_uint("position", pos));
    if (!fresh)
        log_note_add(&v->note, log_uint("again", 1));
    if (fresh) {
        log_task(md, w, "MEGADEAL_ENQUEUE", t, "OK", v->note.f, v->note.n);
        pump(md);
    }
    view_task(md, t, v);
}

enum megadeal_rid
megadeal_rid_find(struct megadeal *md, const struct store_rid *rid, struct megadeal_view *v)
{
    double now = mono_now();
    const struct rid_entry *e = find_rid(md, rid, now);

    if (e == NULL)
        return MEGADEAL_RID_NONE;
    if (!rid_same(&e->rid, rid))
        return MEGADEAL_RID_CONFLICT;
    memset(v, 0, sizeof *v);
    const struct mega_task *t = entry_task(md, e, now);
    log_note_add(&v->note, log_uint("task", t->seq));
    view_task(md, t, v);
    v->replayed = true;
    return MEGADEAL_RID_FOUND;
}

bool
megadeal_rid_taken(struct megadeal *md, const struct store_rid *rid)
{
    return find_rid(md, rid, mono_now()) != NULL;
}

void
megadeal_view_granted(const struct megadeal *md, uint64_t seq, int64_t stamp, const char *user,
                      const struct proto_coupon *c, struct megadeal_view *v)
{
    struct task_payload p;

    memset(v, 0, sizeof *v);
    task_payload_make(md->key, seq, stamp, stamp + md->wait_ms, user, &p);
    task_encode(md->key, &p, v->id);
    v->granted = true;
    v->coupon = *c;
    v->replayed = true;
    log_note_add(&v->note, log_uint("task", seq));
}

/* The live task an id names, or NULL with the error in *v. */
static struct mega_task *
task_of(struct megadeal *md, const char *id, struct megadeal_view *v)
{
    struct task_payload given, live;

    memset(v, 0, sizeof *v);
    if (!task_decode(md->key, id, strlen(id), &given)) {
        view_error(v, PROTO_ERR_BAD_TASK, PROTO_BAD_TASK_MSG);
        return NULL;
    }
    log_note_add(&v->note, log_uint("task", given.seq));
    struct mega_task *t = mega_lookup(md->queue, given.seq, mono_now());
    if (t != NULL)
        task_payload_make(md->key, t->seq, t->stamp, t->stamp + md->wait_ms, t->user, &live);
    if (t == NULL || !task_payload_equal(&given, &live)) {
        view_error(v, PROTO_ERR_UNKNOWN_TASK,
                   "no such task (finished long ago, or lost in a restart)");
        return NULL;
    }
    return t;
}

void
megadeal_status(struct megadeal *md, const char *id, struct megadeal_view *v)
{
    struct mega_task *t = task_of(md, id, v);

    if (t != NULL)
        view_task(md, t, v);
}

bool
megadeal_wait(struct megadeal *md, const char *id, struct megadeal_ticket *tk)
{
    struct mega_task *t = task_of(md, id, &tk->view);

    if (t == NULL)
        return false;
    if (finished(t) || md->stopped) {
        view_task(md, t, &tk->view);
        if (!finished(t))
            view_error(&tk->view, PROTO_ERR_BUSY, "server shutting down");
        return false;
    }
    tk->seq = t->seq;
    tk->prev = NULL;
    tk->next = md->tickets;
    if (md->tickets != NULL)
        md->tickets->prev = tk;
    md->tickets = tk;
    log_note_add(&tk->view.note, log_uint("held", 1));
    return true;
}

void
megadeal_cancel(struct megadeal *md, struct megadeal_ticket *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else if (md->tickets == t)
        md->tickets = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

void
megadeal_stop(struct megadeal *md)
{
    md->stopped = true;
    ev_timer_stop(md->loop, &md->timer_w);
    while (md->tickets != NULL) {
        struct megadeal_ticket *t = md->tickets;
        megadeal_cancel(md, t);
        memset(&t->view, 0, sizeof t->view);
        view_error(&t->view, PROTO_ERR_BUSY, "server shutting down");
        t->done(t);
    }
}

bool
megadeal_busy(const struct megadeal *md)
{
    return md->in_flight > 0 || md->closing > 0;
}

void
megadeal_counters(const struct megadeal *md, struct mega_counters *out)
{
    mega_counters(md->queue, out);
}

/* ---- life cycle ---- */

struct megadeal *
megadeal_new(struct ev_loop *loop, const struct megadeal_config *cfg, struct group *g,
             struct log *lg, char *errbuf, size_t errlen)
{
    struct mega_config mc = {.rate = cfg->rate,
                             .concurrency = cfg->concurrency,
                             .wait = cfg->wait,
                             .window = MEGA_WINDOW_SECONDS,
                             .retain = MEGA_RETAIN_SECONDS,
                             .queue_max =
                                 mega_queue_for(cfg->rate, MEGA_WINDOW_SECONDS, cfg->wait)};
    struct megadeal *md = calloc(1, sizeof *md);

    if (md == NULL || (md->queue = mega_new(&mc)) == NULL ||
        (md->grants = calloc((size_t)cfg->concurrency * MEGADEAL_SLOTS_PER_GRANT,
                             sizeof *md->grants)) == NULL) {
        snprintf(errbuf, errlen, "cannot set up the MEGADEAL queue: out of memory");
        megadeal_free(md);
        return NULL;
    }
    md->key = task_key_load(cfg->data_dir, errbuf, errlen);
    if (md->key == NULL) {
        megadeal_free(md);
        return NULL;
    }
    md->loop = loop;
    md->group = g;
    md->log = lg;
    md->n_grants = cfg->concurrency * MEGADEAL_SLOTS_PER_GRANT;
    md->limit = (struct store_limit){.rate = cfg->rate,
                                     .concurrency = cfg->concurrency,
                                     .window_ms = (int64_t)(MEGA_WINDOW_SECONDS * 1000.0)};
    for (unsigned i = 0; i < md->n_grants; i++)
        md->grants[i].md = md;
    md->wait_ms = (int64_t)cfg->wait * 1000;
    md->min_validity = cfg->min_validity;
    ev_timer_init(&md->timer_w, timer_cb, 0., 0.);
    md->timer_w.data = md;
    return md;
}

void
megadeal_free(struct megadeal *md)
{
    if (md == NULL)
        return;
    if (md->loop != NULL)
        ev_timer_stop(md->loop, &md->timer_w);
    mega_free(md->queue);
    task_key_free(md->key);
    while (md->rids != NULL) {
        struct rid_entry *e = md->rids;
        md->rids = e->next;
        free(e);
    }
    free(md->grants);
    free(md);
}
