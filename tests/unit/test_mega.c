/* test_mega.c - unit tests of server/mega.c, the MEGADEAL queue and limiter, on a simulated
 * clock: the sliding window, the in-flight cap, deadlines, FIFO order, admission, retention. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mega.h"

#define RATE        MEGA_RATE_DEFAULT
#define CONCURRENCY MEGA_CONCURRENCY_DEFAULT
#define WAIT        ((double)MEGA_WAIT_DEFAULT)
#define PLENTY      1000000 /* coupons available when a test is not about running out */
#define SIM_TASKS   4000    /* arrivals in one random simulation */
#define SIM_SEEDS   6       /* random simulations, each with its own arrival pattern */

static const struct mega_config default_cfg = {
    .rate = RATE,
    .concurrency = CONCURRENCY,
    .wait = WAIT,
    .window = MEGA_WINDOW_SECONDS,
    .retain = MEGA_RETAIN_SECONDS,
};

/* ---- helpers ---- */

static struct mega *
new_queue(void)
{
    struct mega *m = mega_new(&default_cfg);
    assert_non_null(m);
    return m;
}

static struct proto_coupon
coupon_for(uint64_t seq)
{
    struct proto_coupon c = {.type = PROTO_TYPE_MEGADEAL, .discount = 5000, .max_uses = 1};
    snprintf(c.code, sizeof c.code, "MEGA-%llu", (unsigned long long)seq);
    return c;
}

/* Enqueues `user` and expects a new task at `want_pos`. */
static struct mega_task *
enqueue_new(struct mega *m, const char *user, double now, unsigned want_pos)
{
    struct mega_task *t = NULL;
    unsigned pos = 0;
    bool fresh = false;
    assert_int_equal(mega_enqueue(m, user, now, 7, PLENTY, &t, &pos, &fresh), MEGA_OK);
    assert_non_null(t);
    assert_true(fresh);
    assert_int_equal(pos, want_pos);
    assert_int_equal(t->state, MEGA_QUEUED);
    assert_string_equal(t->user, user);
    return t;
}

/* Allocates and commits every grant the limits allow at `now`; returns how many. */
static unsigned
grant_all_now(struct mega *m, double now)
{
    unsigned n = 0;
    struct mega_task *t;
    while ((t = mega_next_grant(m, now))) {
        struct proto_coupon c = coupon_for(t->seq);
        mega_grant_started(m, t);
        mega_grant_committed(m, t, now, &c);
        n++;
    }
    return n;
}

/* Allocates and commits at most one grant at `now`; true when it did. */
static bool
grant_one(struct mega *m, double now)
{
    struct mega_task *t = mega_next_grant(m, now);
    if (!t)
        return false;
    struct proto_coupon c = coupon_for(t->seq);
    mega_grant_started(m, t);
    mega_grant_committed(m, t, now, &c);
    return true;
}

/* Fails unless every window (t - 1, t] holds at most `rate` of the sorted times. */
static void
assert_window(const double *times, size_t n, unsigned rate, double window)
{
    for (size_t i = 0; i + rate < n; i++) {
        if (times[i + rate] - times[i] < window)
            fail_msg("%u grants within %.17g s: from %.17g to %.17g", rate + 1,
                     times[i + rate] - times[i], times[i], times[i + rate]);
    }
}

/* ---- the random simulation ---- */

/* A deterministic generator, so a failure reproduces from its seed. */
static uint64_t
rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double
rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / (double)(1ULL << 53);
}

struct flight {
    struct mega_task *t;
    double commit_at;
    bool fails;
    struct proto_coupon c;
};

struct sim {
    struct mega *m;
    uint64_t rng;
    double *arrivals;
    size_t n_arrivals, next_arrival;
    struct flight flight[CONCURRENCY + 1];
    size_t n_flight;
    double *grants, *allocs; /* commit and allocation times of the grants */
    size_t n_grants, n_allocs;
    bool *queued;           /* by seq: waiting in the test's shadow of the queue */
    bool *done;             /* by seq: granted or failed */
    uint64_t max_seq, head; /* no seq below head is in the shadow queue */
    size_t timeouts, busy, no_coupons, retries;
};

/* Arrivals in bursts: quiet stretches, and floods that overfill the queue so that both BUSY
 * and timeouts happen. */
static void
sim_arrivals(struct sim *s)
{
    double t = 0;
    s->arrivals = calloc(SIM_TASKS, sizeof *s->arrivals);
    assert_non_null(s->arrivals);
    for (size_t i = 0; i < SIM_TASKS; i++) {
        double phase = (double)((uint64_t)(t / 20.0) % 3);
        double mean_gap = phase == 0 ? 0.04 : phase == 1 ? 0.09 : 0.4;
        t += -mean_gap * log(1.0 - rng_unit(&s->rng));
        s->arrivals[i] = t;
    }
    s->n_arrivals = SIM_TASKS;
}

static void
sim_init(struct sim *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    s->m = new_queue();
    s->head = 1;
    sim_arrivals(s);
    s->grants = calloc(SIM_TASKS * 2, sizeof *s->grants);
    s->allocs = calloc(SIM_TASKS * 2, sizeof *s->allocs);
    s->queued = calloc(SIM_TASKS + 2, sizeof *s->queued);
    s->done = calloc(SIM_TASKS + 2, sizeof *s->done);
    assert_true(s->grants && s->allocs && s->queued && s->done);
}

static void
sim_free(struct sim *s)
{
    mega_free(s->m);
    free(s->arrivals);
    free(s->grants);
    free(s->allocs);
    free(s->queued);
    free(s->done);
}

/* The smallest seq in the shadow queue: the one FIFO says is next. */
static uint64_t
sim_head(struct sim *s)
{
    while (s->head <= s->max_seq && !s->queued[s->head])
        s->head++;
    return s->head <= s->max_seq ? s->head : 0;
}

static void
sim_arrive(struct sim *s, double now)
{
    char user[32];
    /* Some users ask twice: a repeat must get its queued task back. */
    snprintf(user, sizeof user, "u%llu", (unsigned long long)(rng_next(&s->rng) % 3000));
    struct mega_task *t;
    unsigned pos;
    bool fresh;
    struct mega_counters before;
    mega_counters(s->m, &before);
    enum mega_err e = mega_enqueue(s->m, user, now, 0, PLENTY, &t, &pos, &fresh);
    if (e == MEGA_BUSY) {
        /* Retried grants go back to the queue even when it is full. */
        /* BUSY counts the tasks waiting: queued and in flight. */
        assert_true(before.queued + before.in_flight >= MEGA_QUEUE_MAX);
        assert_true(before.queued <= MEGA_QUEUE_MAX + CONCURRENCY);
        s->busy++;
        return;
    }
    assert_int_equal(e, MEGA_OK);
    assert_string_equal(t->user, user);
    assert_int_equal(pos, mega_position(s->m, t));
    if (!fresh) {
        assert_true(t->state == MEGA_QUEUED || t->state == MEGA_IN_FLIGHT);
        assert_false(s->done[t->seq]);
        return;
    }
    assert_int_equal(t->seq, s->max_seq + 1);
    assert_int_equal(pos, before.queued + before.in_flight + 1);
    s->max_seq = t->seq;
    s->queued[t->seq] = true;
}

/* Commits (or fails) the in-flight grants whose commit is due. */
static void
sim_commits(struct sim *s, double now)
{
    size_t i = 0;
    while (i < s->n_flight) {
        struct flight f = s->flight[i];
        if (f.commit_at > now) {
            i++;
            continue;
        }
        s->flight[i] = s->flight[--s->n_flight];
        assert_int_equal(f.t->state, MEGA_IN_FLIGHT);
        if (f.fails) {
            s->retries++;
            if (mega_grant_retry(s->m, f.t, now)) {
                s->queued[f.t->seq] = true;
                if (f.t->seq < s->head)
                    s->head = f.t->seq;
                assert_int_equal(f.t->state, MEGA_QUEUED);
            } else {
                assert_int_equal(f.t->fail, MEGA_FAIL_TIMEOUT);
                s->done[f.t->seq] = true;
                s->timeouts++;
            }
            continue;
        }
        mega_grant_committed(s->m, f.t, now, &f.c);
        assert_int_equal(f.t->state, MEGA_GRANTED);
        s->done[f.t->seq] = true;
        s->grants[s->n_grants++] = now;
    }
}

static void
sim_expire(struct sim *s, double now)
{
    struct mega_task *t;
    while ((t = mega_expire(s->m, now))) {
        /* Reported exactly at the deadline: the clock jumps to every next event. */
        assert_true(t->deadline == now);
        assert_int_equal(t->state, MEGA_FAILED);
        assert_int_equal(t->fail, MEGA_FAIL_TIMEOUT);
        assert_true(s->queued[t->seq]);
        assert_int_equal(t->seq, sim_head(s));
        s->queued[t->seq] = false;
        s->done[t->seq] = true;
        s->timeouts++;
    }
}

static void
sim_grants(struct sim *s, double now)
{
    struct mega_task *t;
    while ((t = mega_next_grant(s->m, now))) {
        assert_true(now < t->deadline);
        assert_int_equal(t->seq, sim_head(s)); /* FIFO */
        s->queued[t->seq] = false;
        if (rng_unit(&s->rng) < 0.02) { /* the store found no coupon */
            mega_grant_failed(s->m, t, now, MEGA_FAIL_NO_COUPONS);
            s->done[t->seq] = true;
            s->no_coupons++;
            continue;
        }
        mega_grant_started(s->m, t);
        assert_true(s->n_flight < CONCURRENCY);
        double delay = rng_unit(&s->rng) < 0.2 ? 0.0 : rng_unit(&s->rng) * 0.5;
        s->flight[s->n_flight++] =
            (struct flight){t, now + delay, rng_unit(&s->rng) < 0.03, coupon_for(t->seq)};
        s->allocs[s->n_allocs++] = now;
    }
    struct mega_counters mc;
    mega_counters(s->m, &mc);
    assert_int_equal(mc.in_flight, s->n_flight);
    assert_true(mc.in_flight <= CONCURRENCY);
}

/* The next time anything happens: an arrival, a commit, or the queue's own next event. */
static bool
sim_next(const struct sim *s, double now, double *next)
{
    bool have = false;
    double when;
    if (mega_next_event(s->m, now, &when)) {
        /* Everything due at `now` was just done: a due event now would be a busy loop. */
        assert_true(when > now);
        *next = when;
        have = true;
    }
    if (s->next_arrival < s->n_arrivals && (!have || s->arrivals[s->next_arrival] < *next)) {
        *next = s->arrivals[s->next_arrival];
        have = true;
    }
    for (size_t i = 0; i < s->n_flight; i++) {
        if (!have || s->flight[i].commit_at < *next) {
            *next = s->flight[i].commit_at;
            have = true;
        }
    }
    return have;
}

static void
sim_run(uint64_t seed)
{
    struct sim s;
    sim_init(&s, seed);
    double now = 0;
    size_t steps = 0;
    while (sim_next(&s, now, &now)) {
        assert_true(++steps < 50 * SIM_TASKS); /* progress, no livelock */
        sim_commits(&s, now);
        while (s.next_arrival < s.n_arrivals && s.arrivals[s.next_arrival] <= now) {
            sim_arrive(&s, now);
            s.next_arrival++;
        }
        sim_expire(&s, now);
        sim_grants(&s, now);
        mega_reap(s.m, now);
    }
    /* Every task ended one way or the other, and the counters agree. */
    struct mega_counters mc;
    mega_counters(s.m, &mc);
    assert_int_equal(mc.queued, 0);
    assert_int_equal(mc.in_flight, 0);
    assert_int_equal(mc.granted, s.n_grants);
    assert_int_equal(mc.timed_out, s.timeouts);
    assert_int_equal(mc.rejected, s.busy + s.no_coupons);
    for (uint64_t q = 1; q <= s.max_seq; q++)
        assert_true(s.done[q]);
    assert_int_equal(s.n_grants + s.timeouts + s.no_coupons, s.max_seq);
    /* The floods overfilled the queue: the limits were exercised, not idle. */
    assert_true(s.busy > 0);
    assert_true(s.timeouts > 0);
    assert_true(s.retries > 0);
    /* About 2400 of 4000 in ~320 s of simulated time: the limiter does not starve the queue. */
    assert_true(s.n_grants > SIM_TASKS / 2);
    assert_window(s.grants, s.n_grants, RATE, MEGA_WINDOW_SECONDS);
    assert_window(s.allocs, s.n_allocs, RATE, MEGA_WINDOW_SECONDS);
    sim_free(&s);
}

/* ---- tests ---- */

static void
test_window_random_arrivals(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= SIM_SEEDS; seed++)
        sim_run(seed);
}

/* 30 tasks at once, commits instantaneous: 10 at 0 (in two steps of 5, the in-flight cap),
 * 10 at exactly 1.0, 10 at exactly 2.0; a token bucket with a burst would go faster. */
static void
test_thirty_take_two_seconds(void **state)
{
    (void)state;
    struct mega *m = new_queue();
    char user[16];
    for (unsigned i = 0; i < 30; i++) {
        snprintf(user, sizeof user, "u%u", i);
        enqueue_new(m, user, 0.0, i + 1);
    }
    struct mega_task *t = mega_next_grant(m, 0.0);
    unsigned started = 0;
    while (t) { /* allocate without committing: the in-flight cap stops at 5 */
        mega_grant_started(m, t);
        started++;
        t = mega_next_grant(m, 0.0);
    }
    assert_int_equal(started, CONCURRENCY);
    double when = -1;
    assert_true(mega_next_event(m, 0.0, &when));
    assert_true(when == WAIT); /* only the head's deadline: commits must make room */
    struct mega_counters mc;
    mega_counters(m, &mc);
    struct proto_coupon unused = coupon_for(0);
    for (uint64_t seq = 1; seq <= mc.in_flight; seq++)
        mega_grant_committed(m, mega_lookup(m, seq, 0.0), 0.0, &unused);
    assert_int_equal(grant_all_now(m, 0.0), 5);
    assert_true(mega_next_event(m, 0.0, &when));
    assert_true(when == 1.0);
    assert_int_equal(grant_all_now(m, 0.999999), 0);
    assert_int_equal(grant_all_now(m, 1.0), 10);
    assert_true(mega_next_event(m, 1.0, &when));
    assert_true(when == 2.0);
    assert_int_equal(grant_all_now(m, 2.0), 10);
    mega_counters(m, &mc);
    assert_int_equal(mc.granted, 30);
    assert_int_equal(mc.queued, 0);
    mega_free(m);
}

/* Grants spread over time: the slot is exactly the oldest grant in the window plus one. */
static void
test_window_slides(void **state)
{
    (void)state;
    struct mega *m = new_queue();
    char user[16];
    for (unsigned i = 0; i < 15; i++) {
        snprintf(user, sizeof user, "u%u", i);
        enqueue_new(m, user, 0.0, i + 1);
    }
    /* One grant every 0.1 s: ten fit in [0, 0.9]. */
    for (unsigned i = 0; i < 10; i++)
        assert_true(grant_one(m, 0.1 * i));
    assert_false(grant_one(m, 0.95));
    double when;
    assert_true(mega_next_event(m, 0.95, &when));
    assert_true(when == 0.0 + 1.0);
    assert_int_equal(grant_all_now(m, 1.0), 1); /* the grant at 0 left; the one at 0.1 not */
    assert_true(mega_next_event(m, 1.0, &when));
    assert_true(when == 0.1 + 1.0);
    assert_int_equal(grant_all_now(m, 1.05), 0);
    assert_int_equal(grant_all_now(m, 0.1 + 1.0), 1);
    mega_free(m);
}

static void
test_in_flight_counts_in_window(void **state)
{
    (void)state;
    struct mega_config cfg = default_cfg;
    cfg.rate = 3;
    cfg.concurrency = 5;
    struct mega *m = mega_new(&cfg);
    assert_non_null(m);
    enqueue_new(m, "a", 0, 1);
    enqueue_new(m, "b", 0, 2);
    enqueue_new(m, "c", 0, 3);
    enqueue_new(m, "d", 0, 4);
    struct proto_coupon c = coupon_for(1);
    for (int i = 0; i < 3; i++)
        mega_grant_started(m, mega_next_grant(m, 0));
    /* Three in flight use the whole rate, though the cap would allow five. */
    assert_null(mega_next_grant(m, 5.0));
    double when;
    assert_true(mega_next_event(m, 0, &when));
    assert_true(when == WAIT); /* no window slot can open before a commit */
    mega_grant_committed(m, mega_lookup(m, 1, 0.5), 0.5, &c);
    assert_null(mega_next_grant(m, 0.5));
    assert_true(mega_next_event(m, 0.5, &when));
    assert_true(when == 1.5); /* the commit at 0.5 counts from its commit time */
    assert_non_null(mega_next_grant(m, 1.5));
    mega_free(m);
}

static void
test_deadline(void **state)
{
    (void)state;
    struct mega_config cfg = default_cfg;
    cfg.rate = 1;
    struct mega *m = mega_new(&cfg);
    assert_non_null(m);
    enqueue_new(m, "a", 0, 1);
    struct mega_task *b = enqueue_new(m, "b", 0.5, 2);
    assert_true(b->deadline == 0.5 + WAIT);
    assert_int_equal(grant_all_now(m, 0), 1);
    /* b's slot opens at 1.0; nobody grants it, and the clock jumps to its deadline. */
    assert_null(mega_expire(m, 0.5 + WAIT - 0.001));
    assert_null(mega_next_grant(m, 0.5 + WAIT));
    struct mega_task *t = mega_expire(m, 0.5 + WAIT);
    assert_ptr_equal(t, b);
    assert_int_equal(t->state, MEGA_FAILED);
    assert_int_equal(t->fail, MEGA_FAIL_TIMEOUT);
    assert_int_equal(mega_position(m, t), 0);
    assert_null(mega_expire(m, 0.5 + WAIT));
    struct mega_counters mc;
    mega_counters(m, &mc);
    assert_int_equal(mc.timed_out, 1);
    assert_int_equal(mc.granted, 1);
    assert_int_equal(mc.queued, 0);
    /* A timed-out task is never granted, even with the window open. */
    assert_null(mega_next_grant(m, 100));
    mega_free(m);
}

static void
test_next_event_deadline_first(void **state)
{
    (void)state;
    struct mega_config cfg = default_cfg;
    cfg.rate = 1;
    cfg.wait = 0.5;
    struct mega *m = mega_new(&cfg);
    assert_non_null(m);
    double when;
    assert_false(mega_next_event(m, 0, &when)); /* nothing at all: no timer */
    enqueue_new(m, "a", 0, 1);
    enqueue_new(m, "b", 0.1, 2);
    assert_int_equal(grant_all_now(m, 0), 1);
    assert_true(mega_next_event(m, 0, &when));
    assert_true(when == 0.1 + 0.5); /* b's deadline comes before the slot at 1.0 */
    mega_free(m);
}

static void
test_fifo_and_positions(void **state)
{
    (void)state;
    struct mega *m = new_queue();
    struct mega_task *a = enqueue_new(m, "a", 0, 1);
    struct mega_task *b = enqueue_new(m, "b", 0, 2);
    struct mega_task *c = enqueue_new(m, "c", 0, 3);
    assert_ptr_equal(mega_next_grant(m, 0), a);
    struct proto_coupon pc = coupon_for(1);
    mega_grant_started(m, a);
    /* In flight still counts as ahead: a is 1, b 2, c 3. */
    assert_int_equal(mega_position(m, a), 1);
    assert_int_equal(mega_position(m, b), 2);
    assert_int_equal(mega_position(m, c), 3);
    assert_ptr_equal(mega_next_grant(m, 0), b);
    mega_grant_committed(m, a, 0, &pc);
    assert_int_equal(mega_position(m, a), 0);
    assert_int_equal(mega_position(m, b), 1);
    assert_int_equal(mega_position(m, c), 2);
    assert_string_equal(a->coupon.code, "MEGA-1");
    assert_int_equal(a->state, MEGA_GRANTED);
    mega_free(m);
}

static void
test_same_user_same_task(void **state)
{
    (void)state;
    struct mega *m = new_queue();
    enqueue_new(m, "a", 0, 1);
    struct mega_task *b = enqueue_new(m, "b", 0, 2);
    struct mega_task *t;
    unsigned pos;
    bool fresh = true;
    /* Asked again (even with no coupons and a full queue: the user check comes first). */
    assert_int_equal(mega_enqueue(m, "b", 1, 9, 0, &t, &pos, &fresh), MEGA_OK);
    assert_ptr_equal(t, b);
    assert_false(fresh);
    assert_int_equal(pos, 2);
    assert_int_equal(t->stamp, 7); /* the original task, unchanged */
    assert_int_equal(grant_all_now(m, 1), 2);
    /* Granted: the next REQUEST is a new task. */
    assert_int_equal(mega_enqueue(m, "b", 2, 9, PLENTY, &t, &pos, &fresh), MEGA_OK);
    assert_true(fresh);
    assert_int_equal(t->seq, 3);
    struct mega_counters mc;
    mega_counters(m, &mc);
    assert_int_equal(mc.rejected, 0);
    mega_free(m);
}

static void
test_busy_at_101(void **state)
{
    (void)state;
    struct mega *m = new_queue();
    char user[16];
    for (unsigned i = 0; i < MEGA_QUEUE_MAX; i++) {
        snprintf(user, sizeof user, "u%u", i);
        enqueue_new(m, user, 0, i + 1);
    }
    struct mega_task *t = (struct mega_task *)1;
    unsigned pos = 77;
    bool fresh = true;
    assert_int_equal(mega_enqueue(m, "late", 0, 0, PLENTY, &t, &pos, &fresh), MEGA_BUSY);
    assert_ptr_equal(t, (struct mega_task *)1); /* outputs untouched */
    assert_int_equal(pos, 77);
    /* A user already queued still gets the task back. */
    assert_int_equal(mega_enqueue(m, "u99", 0, 0, PLENTY, &t, &pos, &fresh), MEGA_OK);
    assert_int_equal(pos, 100);
    struct mega_counters mc;
    mega_counters(m, &mc);
    assert_int_equal(mc.queued, MEGA_QUEUE_MAX);
    assert_int_equal(mc.rejected, 1);
    /* One leaves the queue: there is room again. */
    assert_int_equal(grant_all_now(m, 0), 10);
    enqueue_new(m, "late", 0, 91);
    mega_free(m);
}

static void
test_no_coupons_admission(void **state)
{
    (void)state;
    struct mega *m = new_queue();
    struct mega_task *t;
    unsigned pos;
    bool fresh;
    assert_int_equal(mega_enqueue(m, "a", 0, 0, 0, &t, &pos, &fresh), MEGA_NO_COUPONS);
    assert_int_equal(mega_enqueue(m, "a", 0, 0, 2, &t, &pos, &fresh), MEGA_OK);
    assert_int_equal(mega_enqueue(m, "b", 0, 0, 2, &t, &pos, &fresh), MEGA_OK);
    assert_int_equal(mega_enqueue(m, "c", 0, 0, 2, &t, &pos, &fresh), MEGA_NO_COUPONS);
    assert_int_equal(mega_enqueue(m, "c", 0, 0, 3, &t, &pos, &fresh), MEGA_OK);
    struct mega_counters mc;
    mega_counters(m, &mc);
    assert_int_equal(mc.rejected, 2);
    assert_int_equal(mc.queued, 3);
    /* BUSY is checked before NO_COUPONS. */
    char user[16];
    for (unsigned i = 3; i < MEGA_QUEUE_MAX; i++) {
        snprintf(user, sizeof user, "u%u", i);
        enqueue_new(m, user, 0, i + 1);
    }
    assert_int_equal(mega_enqueue(m, "z", 0, 0, 0, &t, &pos, &fresh), MEGA_BUSY);
    mega_free(m);
}

static void
test_grant_finds_no_coupon(void **state)
{
    (void)state;
    struct mega *m = new_queue();
    struct mega_task *a = enqueue_new(m, "a", 0, 1);
    struct mega_task *b = enqueue_new(m, "b", 0, 2);
    assert_ptr_equal(mega_next_grant(m, 0), a);
    mega_grant_failed(m, a, 0, MEGA_FAIL_NO_COUPONS);
    assert_int_equal(a->state, MEGA_FAILED);
    assert_int_equal(a->fail, MEGA_FAIL_NO_COUPONS);
    assert_ptr_equal(mega_next_grant(m, 0), b);
    struct mega_counters mc;
    mega_counters(m, &mc);
    assert_int_equal(mc.rejected, 1);
    assert_int_equal(mc.granted, 0);
    mega_free(m);
}

/* The limits shared with other nodes were taken (mega_grant_requeue): the task goes back to the
 * head and, unlike a failed commit, uses up no place in this node's window. */
static void
test_requeue_uses_no_window(void **state)
{
    (void)state;
    struct mega_config cfg = default_cfg;
    cfg.rate = 1;
    struct mega *m = mega_new(&cfg);
    assert_non_null(m);
    struct mega_task *a = enqueue_new(m, "a", 0, 1);
    enqueue_new(m, "b", 0, 2);
    mega_grant_started(m, mega_next_grant(m, 0));
    assert_true(mega_grant_requeue(m, a, 0.1));
    assert_int_equal(a->state, MEGA_QUEUED);
    assert_int_equal(mega_position(m, a), 1);
    assert_ptr_equal(mega_next_grant(m, 0.1), a); /* at once: the window is still empty */
    mega_grant_started(m, a);
    assert_false(mega_grant_requeue(m, a, WAIT)); /* past the deadline: it times out */
    assert_int_equal(a->fail, MEGA_FAIL_TIMEOUT);
    mega_free(m);
}

static void
test_retry_goes_back_to_head(void **state)
{
    (void)state;
    struct mega_config cfg = default_cfg;
    cfg.rate = 2;
    struct mega *m = mega_new(&cfg);
    assert_non_null(m);
    struct mega_task *a = enqueue_new(m, "a", 0, 1);
    struct mega_task *b = enqueue_new(m, "b", 0, 2);
    enqueue_new(m, "c", 0, 3);
    mega_grant_started(m, mega_next_grant(m, 0));
    mega_grant_started(m, mega_next_grant(m, 0));
    /* The commit failed: both go back, in their order, ahead of c. */
    assert_true(mega_grant_retry(m, a, 0.1));
    assert_true(mega_grant_retry(m, b, 0.1));
    assert_int_equal(a->state, MEGA_QUEUED);
    assert_int_equal(mega_position(m, a), 1);
    assert_int_equal(mega_position(m, b), 2);
    /* The failed attempts used up the window: the retry comes a second later. */
    assert_null(mega_next_grant(m, 0.5));
    double when;
    assert_true(mega_next_event(m, 0.5, &when));
    assert_true(when == 0.1 + 1.0);
    assert_ptr_equal(mega_next_grant(m, 1.1), a);
    /* A retry past the deadline times out instead. */
    mega_grant_started(m, a);
    assert_false(mega_grant_retry(m, a, WAIT));
    assert_int_equal(a->state, MEGA_FAILED);
    assert_int_equal(a->fail, MEGA_FAIL_TIMEOUT);
    struct mega_counters mc;
    mega_counters(m, &mc);
    assert_int_equal(mc.timed_out, 1);
    assert_int_equal(mc.in_flight, 0);
    assert_int_equal(mc.queued, 2);
    mega_free(m);
}

static void
test_retention(void **state)
{
    (void)state;
    struct mega *m = new_queue();
    struct mega_task *a = enqueue_new(m, "a", 0, 1);
    assert_int_equal(grant_all_now(m, 2), 1);
    double when;
    assert_true(mega_next_event(m, 2, &when));
    assert_true(when == 2 + MEGA_RETAIN_SECONDS); /* the timer also frees old results */
    assert_ptr_equal(mega_lookup(m, 1, 2 + MEGA_RETAIN_SECONDS - 0.001), a);
    assert_int_equal(mega_reap(m, 2 + MEGA_RETAIN_SECONDS - 0.001), 0);
    assert_null(mega_lookup(m, 1, 2 + MEGA_RETAIN_SECONDS));
    assert_int_equal(mega_reap(m, 2 + MEGA_RETAIN_SECONDS), 1);
    assert_null(mega_lookup(m, 1, 0));
    assert_false(mega_next_event(m, 100, &when));
    assert_null(mega_lookup(m, 0, 0));
    assert_null(mega_lookup(m, 2, 0));
    mega_free(m);
}

/* Many tasks reaped in an order unlike their sequence: lookups stay right. */
static void
test_lookup_after_many_reaps(void **state)
{
    (void)state;
    struct mega_config cfg = default_cfg;
    cfg.rate = MEGA_RATE_MAX;
    cfg.concurrency = MEGA_CONCURRENCY_MAX;
    struct mega *m = mega_new(&cfg);
    assert_non_null(m);
    char user[16];
    double now = 0;
    for (unsigned round = 0; round < 50; round++, now += 1) {
        for (unsigned i = 0; i < 40; i++) {
            snprintf(user, sizeof user, "r%u-%u", round, i);
            enqueue_new(m, user, now, i + 1);
        }
        grant_all_now(m, now);
        mega_reap(m, now);
    }
    /* Retention is 60 s and 50 rounds ran: all 2000 are there. */
    for (uint64_t seq = 1; seq <= 2000; seq++) {
        struct mega_task *t = mega_lookup(m, seq, now);
        assert_non_null(t);
        assert_int_equal(t->seq, seq);
    }
    /* Rounds 0..29 end their retention: 1200 holes of 2000 make the index compact. */
    assert_int_equal(mega_reap(m, 60 + 29.5), 30 * 40);
    for (uint64_t seq = 1; seq <= 2000; seq++) {
        struct mega_task *t = mega_lookup(m, seq, 60 + 29.5);
        if (seq <= 30 * 40)
            assert_null(t);
        else
            assert_int_equal(t->seq, seq);
    }
    mega_free(m);
}

static void
test_config_ranges(void **state)
{
    (void)state;
    struct mega_config cfg = default_cfg;
    cfg.rate = 0;
    assert_null(mega_new(&cfg));
    cfg = default_cfg;
    cfg.rate = MEGA_RATE_MAX + 1;
    assert_null(mega_new(&cfg));
    cfg = default_cfg;
    cfg.concurrency = 0;
    assert_null(mega_new(&cfg));
    cfg = default_cfg;
    cfg.wait = 0;
    assert_null(mega_new(&cfg));
    struct mega *m = mega_new(&default_cfg);
    assert_non_null(m);
    assert_int_equal(mega_config(m)->rate, RATE);
    mega_free(m);
    mega_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_random_arrivals),
        cmocka_unit_test(test_thirty_take_two_seconds),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_in_flight_counts_in_window),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_next_event_deadline_first),
        cmocka_unit_test(test_fifo_and_positions),
        cmocka_unit_test(test_same_user_same_task),
        cmocka_unit_test(test_busy_at_101),
        cmocka_unit_test(test_no_coupons_admission),
        cmocka_unit_test(test_grant_finds_no_coupon),
        cmocka_unit_test(test_retry_goes_back_to_head),
        cmocka_unit_test(test_requeue_uses_no_window),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_lookup_after_many_reaps),
        cmocka_unit_test(test_config_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
