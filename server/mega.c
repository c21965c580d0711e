/* mega.c - the MEGADEAL queue: three lists of tasks (queued, in flight, finished), an index by
 * sequence, and a ring of the last `rate` grant times for the sliding window. */
#include "mega.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MEGA_INDEX_MIN 64 /* first capacity of the sequence index */

struct mega_list {
    struct mega_task *head, *tail;
    size_t len;
};

/* One entry of the index: tasks in sequence order; task is NULL once reaped. */
struct mega_slot {
    uint64_t seq;
    struct mega_task *task;
};

struct mega {
    struct mega_config cfg;
    struct mega_list queue;  /* QUEUED, in sequence (= arrival = deadline) order */
    struct mega_list flight; /* IN_FLIGHT, in allocation order */
    struct mega_list done;   /* GRANTED and FAILED, in the order they finished */
    struct mega_slot *index;
    size_t index_len, index_cap, index_holes;
    double *ring; /* the last `rate` grant times, oldest at ring_head, ascending */
    unsigned ring_head, ring_len;
    uint64_t next_seq;
    uint64_t granted, rejected, timed_out;
};

/* ---- lists ---- */

static void
list_append(struct mega_list *l, struct mega_task *t)
{
    t->next = NULL;
    t->prev = l->tail;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
    l->len++;
}

static void
list_remove(struct mega_list *l, struct mega_task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        l->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        l->tail = t->prev;
    t->prev = t->next = NULL;
    l->len--;
}

/* Inserts t before the first task with a larger sequence, keeping the list in sequence order. */
static void
list_insert_ordered(struct mega_list *l, struct mega_task *t)
{
    struct mega_task *at = l->head;
    while (at && at->seq < t->seq)
        at = at->next;
    if (!at) {
        list_append(l, t);
        return;
    }
    t->next = at;
    t->prev = at->prev;
    if (at->prev)
        at->prev->next = t;
    else
        l->head = t;
    at->prev = t;
    l->len++;
}

static void
list_free(struct mega_list *l)
{
    struct mega_task *t = l->head;
    while (t) {
        struct mega_task *next = t->next;
        free(t);
        t = next;
    }
    *l = (struct mega_list){0};
}

/* ---- the sequence index ---- */

static bool
index_add(struct mega *m, struct mega_task *t)
{
    if (m->index_len == m->index_cap) {
        size_t cap = m->index_cap ? m->index_cap * 2 : MEGA_INDEX_MIN;
        struct mega_slot *v = realloc(m->index, cap * sizeof *v);
        if (!v)
            return false;
        m->index = v;
        m->index_cap = cap;
    }
    m->index[m->index_len++] = (struct mega_slot){t->seq, t};
    return true;
}

/* The slot of `seq` (binary search: sequences only grow), or NULL. */
static struct mega_slot *
index_find(const struct mega *m, uint64_t seq)
{
    size_t lo = 0, hi = m->index_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->index[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->index_len && m->index[lo].seq == seq ? &m->index[lo] : NULL;
}

/* Drops the holes once they are half the index, so it stays proportional to the live tasks. */
static void
index_compact(struct mega *m)
{
    if (m->index_holes * 2 <= m->index_len)
        return;
    size_t n = 0;
    for (size_t i = 0; i < m->index_len; i++)
        if (m->index[i].task)
            m->index[n++] = m->index[i];
    m->index_len = n;
    m->index_holes = 0;
}

/* ---- the window ---- */

static double
ring_at(const struct mega *m, unsigned i)
{
    return m->ring[(m->ring_head + i) % m->cfg.rate];
}

static void
ring_push(struct mega *m, double t)
{
    if (m->ring_len < m->cfg.rate) {
        m->ring[(m->ring_head + m->ring_len) % m->cfg.rate] = t;
        m->ring_len++;
        return;
    }
    m->ring[m->ring_head] = t;
    m->ring_head = (m->ring_head + 1) % m->cfg.rate;
}

/* Whether grant time g is inside the window ending at now, (now - window, now]. */
static bool
in_window(const struct mega *m, double g, double now)
{
    return now - g < m->cfg.window;
}

/* The earliest time at which grant time g has left the window: g + window, moved up by the
 * rounding of that sum when needed, so that in_window and the slot never disagree. */
static double
leaves_window(const struct mega *m, double g)
{
    double t = g + m->cfg.window;
    while (in_window(m, g, t))
        t = nextafter(t, INFINITY);
    return t;
}

/* Committed grants in the window ending at now (the newest ones, at the ring's end). */
static unsigned
window_count(const struct mega *m, double now)
{
    unsigned k = 0;
    while (k < m->ring_len && in_window(m, ring_at(m, m->ring_len - 1 - k), now))
        k++;
    return k;
}

/* The earliest time >= now at which one more grant fits the window, given the grants in
 * flight; false when only commits can make room (rate or concurrency used up in flight). */
static bool
next_slot(const struct mega *m, double now, double *when)
{
    unsigned f = (unsigned)m->flight.len;
    if (f >= m->cfg.concurrency)
        return false;
    unsigned k = window_count(m, now);
    if (k + f < m->cfg.rate) {
        *when = now;
        return true;
    }
    unsigned drop = k + f - m->cfg.rate + 1; /* window grants that must age out */
    if (drop > k)
        return false;
    *when = leaves_window(m, ring_at(m, m->ring_len - k + drop - 1));
    return true;
}

/* ---- life cycle ---- */

static bool
config_ok(const struct mega_config *c)
{
    return c->rate >= 1 && c->rate <= MEGA_RATE_MAX && c->concurrency >= 1 &&
           c->concurrency <= MEGA_CONCURRENCY_MAX && c->wait > 0 && c->window > 0 && c->retain >= 0;
}

struct mega *
mega_new(const struct mega_config *cfg)
{
    if (!config_ok(cfg))
        return NULL;
    struct mega *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cfg = *cfg;
    m->ring = calloc(cfg->rate, sizeof *m->ring);
    if (!m->ring) {
        free(m);
        return NULL;
    }
    m->next_seq = 1;
    return m;
}

void
mega_free(struct mega *m)
{
    if (!m)
        return;
    list_free(&m->queue);
    list_free(&m->flight);
    list_free(&m->done);
    free(m->index);
    free(m->ring);
    free(m);
}

/* ---- admission ---- */

static struct mega_task *
find_user(const struct mega_list *l, const char *user)
{
    for (struct mega_task *t = l->head; t; t = t->next)
        if (strcmp(t->user, user) == 0)
            return t;
    return NULL;
}

static struct mega_task *
new_task(struct mega *m, const char *user, double now, int64_t stamp)
{
    size_t len = strlen(user);
    if (len == 0 || len > PROTO_USER_MAX)
        return NULL;
    struct mega_task *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->seq = m->next_seq;
    memcpy(t->user, user, len + 1);
    t->stamp = stamp;
    t->enqueued = now;
    t->deadline = now + m->cfg.wait;
    t->state = MEGA_QUEUED;
    if (!index_add(m, t)) {
        free(t);
        return NULL;
    }
    m->next_seq++;
    return t;
}

enum mega_err
mega_enqueue(struct mega *m, const char *user, double now, int64_t stamp, uint64_t available,
             struct mega_task **out, unsigned *position, bool *fresh)
{
    struct mega_task *t = find_user(&m->flight, user);
    if (!t)
        t = find_user(&m->queue, user);
    bool made = false;
    if (!t) {
        /* Tasks not yet granted: queued, and in flight (their coupons are still counted in
         * `available` until their commit is done). */
        size_t waiting = m->queue.len + m->flight.len, limit = mega_queue_max(m);
        if (waiting >= limit || waiting >= available) {
            m->rejected++;
            return waiting >= limit ? MEGA_BUSY : MEGA_NO_COUPONS;
        }
        t = new_task(m, user, now, stamp);
        if (!t)
            return MEGA_NOMEM;
        list_append(&m->queue, t);
        made = true;
    }
    *out = t;
    *position = mega_position(m, t);
    *fresh = made;
    return MEGA_OK;
}

/* ---- granting ---- */

static void
finish(struct mega *m, struct mega_task *t, double now, enum mega_state state, enum mega_fail why)
{
    t->state = state;
    t->fail = why;
    t->finished = now;
    list_append(&m->done, t);
    if (why == MEGA_FAIL_TIMEOUT)
        m->timed_out++;
    else if (why == MEGA_FAIL_NO_COUPONS)
        m->rejected++;
    else
        m->granted++;
}

struct mega_task *
mega_expire(struct mega *m, double now)
{
    struct mega_task *t = m->queue.head;
    if (!t || t->deadline > now)
        return NULL;
    list_remove(&m->queue, t);
    finish(m, t, now, MEGA_FAILED, MEGA_FAIL_TIMEOUT);
    return t;
}

struct mega_task *
mega_next_grant(struct mega *m, double now)
{
    struct mega_task *t = m->queue.head;
    double slot;
    if (!t || t->deadline <= now || !next_slot(m, now, &slot) || slot > now)
        return NULL;
    return t;
}

void
mega_grant_started(struct mega *m, struct mega_task *t)
{
    list_remove(&m->queue, t);
    t->state = MEGA_IN_FLIGHT;
    list_append(&m->flight, t);
}

void
mega_grant_committed(struct mega *m, struct mega_task *t, double now, const struct proto_coupon *c)
{
    list_remove(&m->flight, t);
    t->coupon = *c;
    ring_push(m, now);
    finish(m, t, now, MEGA_GRANTED, MEGA_FAIL_NONE);
}

void
mega_grant_failed(struct mega *m, struct mega_task *t, double now, enum mega_fail why)
{
    list_remove(t->state == MEGA_IN_FLIGHT ? &m->flight : &m->queue, t);
    finish(m, t, now, MEGA_FAILED, why);
}

bool
mega_grant_retry(struct mega *m, struct mega_task *t, double now)
{
    ring_push(m, now);
    return mega_grant_requeue(m, t, now);
}

bool
mega_grant_requeue(struct mega *m, struct mega_task *t, double now)
{
    list_remove(t->state == MEGA_IN_FLIGHT ? &m->flight : &m->queue, t);
    memset(&t->coupon, 0, sizeof t->coupon);
    if (t->deadline <= now) {
        finish(m, t, now, MEGA_FAILED, MEGA_FAIL_TIMEOUT);
        return false;
    }
    t->state = MEGA_QUEUED;
    list_insert_ordered(&m->queue, t);
    return true;
}

/* ---- time ---- */

static void
earliest(double t, double *best, bool *have)
{
    if (!*have || t < *best)
        *best = t;
    *have = true;
}

bool
mega_next_event(const struct mega *m, double now, double *when)
{
    double best = 0, slot;
    bool have = false;
    if (m->queue.head) {
        earliest(m->queue.head->deadline, &best, &have);
        if (next_slot(m, now, &slot))
            earliest(slot, &best, &have);
    }
    if (m->done.head)
        earliest(m->done.head->finished + m->cfg.retain, &best, &have);
    if (have)
        *when = best;
    return have;
}

size_t
mega_reap(struct mega *m, double now)
{
    size_t n = 0;
    struct mega_task *t;
    while ((t = m->done.head) && t->finished + m->cfg.retain <= now) {
        list_remove(&m->done, t);
        struct mega_slot *s = index_find(m, t->seq);
        if (s) {
            s->task = NULL;
            m->index_holes++;
        }
        free(t);
        n++;
    }
    index_compact(m);
    return n;
}

/* ---- reading ---- */

struct mega_task *
mega_lookup(const struct mega *m, uint64_t seq, double now)
{
    const struct mega_slot *s = index_find(m, seq);
    struct mega_task *t = s ? s->task : NULL;
    if (!t)
        return NULL;
    bool over = t->state == MEGA_GRANTED || t->state == MEGA_FAILED;
    return over && t->finished + m->cfg.retain <= now ? NULL : t;
}

unsigned
mega_position(const struct mega *m, const struct mega_task *t)
{
    unsigned pos = 1;
    if (t->state == MEGA_QUEUED)
        pos += (unsigned)m->flight.len;
    else if (t->state != MEGA_IN_FLIGHT)
        return 0;
    for (const struct mega_task *u = t->prev; u; u = u->prev)
        pos++;
    return pos;
}

void
mega_counters(const struct mega *m, struct mega_counters *out)
{
    *out = (struct mega_counters){
        .queued = m->queue.len,
        .in_flight = m->flight.len,
        .granted = m->granted,
        .rejected = m->rejected,
        .timed_out = m->timed_out,
    };
}

size_t
mega_queue_max(const struct mega *m)
{
    return m->cfg.queue_max > 0 ? m->cfg.queue_max : MEGA_QUEUE_MAX;
}

size_t
mega_queue_for(unsigned rate, double window, double wait)
{
    double n = (double)rate / window * wait;

    if (n < 1)
        return 1;
    return n > MEGA_QUEUE_CAP ? MEGA_QUEUE_CAP : (size_t)n;
}

const struct mega_config *
mega_config(const struct mega *m)
{
    return &m->cfg;
}
