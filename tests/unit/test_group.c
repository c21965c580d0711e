/* test_group.c - unit tests of server/group.c, the group commit, on a real LMDB store: with no
 * hold, the batch that filled during a commit goes as soon as that commit is done; with a hold,
 * it waits until the members just answered are back (as many operations as the two batches had
 * together) or until the delay is up, and a client alone is never held. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "group.h"
#include "log.h"
#include "store.h"

#define NEVER_S       30.0 /* a hold that must not run out during the test */
#define SHORT_S       0.05 /* a hold that must run out */
#define WATCHDOG_S    10.0 /* a test's loop never runs longer */
#define GLANCE_S      0.2  /* how long a held batch is watched staying held */
#define DELAY_SLACK_S 0.01 /* timers may fire a little early by the clock read here */

struct fx {
    char dir[64];
    struct ev_loop *loop;
    struct store *st;
    struct log *log;
    struct group *g;
    ev_timer watchdog;
    bool timed_out;
};

/* One operation and what became of it. */
struct op {
    struct store_op op;
    struct fx *fx;
    bool done;
    double at;      /* when it completed */
    uint64_t batch; /* which batch it was in: the commits counted when it completed */
    void (*then)(struct op *o);
};

static void
watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    ((struct fx *)w->data)->timed_out = true;
    ev_break(loop, EVBREAK_ALL);
}

static struct fx *
fx_new(double delay)
{
    struct fx *fx = calloc(1, sizeof *fx);
    char err[256];
    char path[128];

    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/coupond-group.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(fx->loop);
    struct store_config cfg = {.loop = fx->loop, .mode = STORE_OPEN_CREATE};
    if (store_open(fx->dir, &cfg, &fx->st, err, sizeof err) != STORE_OK)
        fail_msg("store_open %s: %s", fx->dir, err);
    snprintf(path, sizeof path, "%s/ops.log", fx->dir);
    fx->log = log_open(path, err, sizeof err);
    assert_non_null(fx->log);
    fx->g = group_new(fx->loop, fx->st, fx->log, delay);
    assert_non_null(fx->g);
    ev_timer_init(&fx->watchdog, watchdog_cb, WATCHDOG_S, 0.);
    fx->watchdog.data = fx;
    return fx;
}

static void
fx_free(struct fx *fx)
{
    char cmd[128];

    group_free(fx->g);
    store_close(fx->st);
    log_close(fx->log);
    ev_loop_destroy(fx->loop);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
}

static uint64_t
commits(const struct fx *fx)
{
    return group_stats(fx->g)->commits;
}

static void
op_done(struct store_op *sop)
{
    struct op *o = sop->arg;

    assert_int_equal(sop->err, STORE_OK);
    o->done = true;
    o->at = ev_time();
    o->batch = commits(o->fx);
    if (o->then != NULL)
        o->then(o);
    ev_break(o->fx->loop, EVBREAK_ALL);
}

/* Adds `o` (a PURGE: a write, so the batch goes through the writer thread and its flushes) to
 * the filling batch. */
static void
add(struct fx *fx, struct op *o)
{
    memset(&o->op, 0, sizeof o->op);
    o->op.kind = STORE_OP_PURGE;
    o->op.now = 1;
    o->op.in.max = 1;
    o->op.done = op_done;
    o->op.arg = o;
    o->fx = fx;
    o->done = false;
    group_add(fx->g, &o->op);
}

/* Adds `o`, then ends the loop iteration as the server does. */
static void
submit(struct fx *fx, struct op *o)
{
    add(fx, o);
    group_flush(fx->g);
}

/* Runs the loop until every op of `ops` has completed. */
static void
run_until_done(struct fx *fx, struct op **ops, size_t n)
{
    ev_timer_start(fx->loop, &fx->watchdog);
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++)
            left += !ops[i]->done;
        if (left == 0 || fx->timed_out)
            break;
        ev_run(fx->loop, EVRUN_ONCE);
    }
    ev_timer_stop(fx->loop, &fx->watchdog);
    assert_false(fx->timed_out);
}

/* Runs the loop for `seconds`, whatever completes meanwhile. */
static void
run_for(struct fx *fx, double seconds)
{
    double until = ev_time() + seconds;

    while (ev_time() < until) {
        ev_timer t;
        ev_timer_init(&t, watchdog_cb, until - ev_time(), 0.);
        t.data = fx;
        ev_timer_start(fx->loop, &t);
        ev_run(fx->loop, EVRUN_ONCE);
        ev_timer_stop(fx->loop, &t);
    }
    fx->timed_out = false;
}

/* The operations of a test: a1, a2 first; b1 while they are in flight; a1b and a2b as their
 * clients' next requests. */
static struct fx *scene_fx;
static struct op a1, a2, b1, a1b, a2b;

/* a1's client sends its next request (a1b) as soon as a1 is answered. */
static void
a1_sends_again(struct op *o)
{
    (void)o;
    submit(scene_fx, &a1b);
}

/* With no hold, what filled during a commit goes when it is done. */
static void
test_no_hold(void **state)
{
    (void)state;
    struct fx *fx = fx_new(0);
    struct op *all[] = {&a1, &b1};

    a1 = b1 = (struct op){0};
    submit(fx, &a1); /* batch 1 goes */
    submit(fx, &b1); /* fills while batch 1 is in flight */
    run_until_done(fx, all, 2);
    assert_int_equal(a1.batch, 1);
    assert_int_equal(b1.batch, 2);
    assert_int_equal(commits(fx), 2);
    fx_free(fx);
}

/* With a hold, the batch waits for the clients just answered: batch 1 held a1 and a2 and b1
 * filled meanwhile, so the next batch waits for three operations; with a1's next one it has two
 * and stays held, and once a2's comes it goes with all three. */
static void
test_hold_until_back(void **state)
{
    (void)state;
    scene_fx = fx_new(NEVER_S);
    struct fx *fx = scene_fx;
    struct op *first[] = {&a1, &a2};
    struct op *rest[] = {&b1, &a1b, &a2b};

    a1 = (struct op){.then = a1_sends_again};
    a2 = b1 = a1b = a2b = (struct op){0};
    add(fx, &a1);
    submit(fx, &a2); /* batch 1: a1 and a2 */
    submit(fx, &b1); /* fills during batch 1 */
    run_until_done(fx, first, 2);
    assert_int_equal(a2.batch, 1);
    run_for(fx, GLANCE_S);
    assert_int_equal(commits(fx), 1); /* b1 and a1b: held, waiting for 2 + 1 operations */
    assert_false(b1.done);
    assert_false(a1b.done);
    submit(fx, &a2b); /* the third */
    run_until_done(fx, rest, 3);
    assert_int_equal(b1.batch, 2);
    assert_int_equal(a1b.batch, 2);
    assert_int_equal(a2b.batch, 2);
    assert_int_equal(commits(fx), 2);
    fx_free(fx);
}

/* When the answered clients do not come back, the held batch goes once the delay is up. */
static void
test_hold_runs_out(void **state)
{
    (void)state;
    struct fx *fx = fx_new(SHORT_S);
    struct op *first[] = {&a1};
    struct op *rest[] = {&b1};

    a1 = b1 = (struct op){0};
    submit(fx, &a1);
    submit(fx, &b1);
    run_until_done(fx, first, 1);
    double answered = a1.at;
    run_until_done(fx, rest, 1);
    assert_int_equal(b1.batch, 2);
    if (b1.at - answered < SHORT_S - DELAY_SLACK_S)
        fail_msg("b1 went %.3f s after batch 1 was done; the hold is %.3f s", b1.at - answered,
                 SHORT_S);
    fx_free(fx);
}

/* A client alone: its next request goes at once, however long the hold. */
static void
test_alone_not_held(void **state)
{
    (void)state;
    scene_fx = fx_new(NEVER_S);
    struct fx *fx = scene_fx;
    struct op *all[] = {&a1, &a1b};

    a1 = (struct op){.then = a1_sends_again};
    a1b = (struct op){0};
    submit(fx, &a1);
    run_until_done(fx, all, 2); /* the watchdog (10 s) is shorter than the hold (30 s) */
    assert_int_equal(a1b.batch, 2);
    fx_free(fx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_hold),
        cmocka_unit_test(test_hold_until_back),
        cmocka_unit_test(test_hold_runs_out),
        cmocka_unit_test(test_alone_not_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
