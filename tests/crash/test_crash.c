/* test_crash.c - the crash loop (issue 6): clients run a mix of UPLOAD, REQUEST, REDEEM and
 * MEGADEAL against the real coupond, which is killed with SIGKILL at a random moment, checked
 * with `coupond --check`, restarted on the same data dir and checked over the protocol: every
 * acknowledged write is there, every unacknowledged one wholly there or wholly absent, the
 * counters agree. Then again, CRASH_CYCLES times.
 *
 * CRASH_MODE=exactly-once gives every write a request id and, after each restart, sends every
 * unanswered write again with its id until it is answered (model.h): then every id must have
 * had exactly one outcome, and the counters must equal the model exactly.
 *
 * Environment: CRASH_MODE (plain, the default, or exactly-once), CRASH_CYCLES (default 20, 8
 * with BB_STORE=postgresql; the long mode is 200 or more), CRASH_SEED (replays the workload's
 * choices and kill moments of a printed seed; the interleaving of the clients still depends on
 * timing), CRASH_CLIENTS (default 6), CRASH_PG_STOP (with BB_STORE=postgresql: one cycle in
 * that many, drawn from the seed, also stops PostgreSQL at once, pg_ctl stop -m immediate,
 * under the clients' load just before the kill, and starts it again before the checks; 0, the
 * default, never). BB_KEEP_DIRS=1 keeps the data dir, with the operation
 * logs of the last two server runs (ops.log.prev, ops.log). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bb.h"
#include "model.h"
#include "verify.h"
#include "workload.h"

#define CRASH_CYCLES_DEFAULT 20
/* On PostgreSQL (BB_STORE=postgresql) each restart connects and prepares the statements, and
 * the check runs on a database server shared by two CTest jobs: fewer cycles keep crash_pg/ to
 * about the time of crash/. */
#define CRASH_CYCLES_PG_DEFAULT 8
#define CRASH_CYCLES_MAX        100000
#define CRASH_CLIENTS_DEFAULT   6
#define CRASH_CLIENTS_MAX       64
#define KILL_MIN_MS             20  /* the kill comes this long after the workload starts, */
#define KILL_MAX_MS             300 /* at the latest this long: during uploads, commits, WAITs */
#define KILL_SALT               0x6b696c6c2d392121ULL /* separates the kill moments' generator */
#define STOP_SALT               0x73746f702d706721ULL /* separates the PostgreSQL stops' generator */
#define PG_STOP_MAX             1000                  /* CRASH_PG_STOP: one cycle in 1..1000 */
#define BULK_LEAD_MAX_MS        40   /* the bulk UPLOAD goes out up to this long before the kill */
#define BULK_MIN                100  /* codes in a bulk UPLOAD: 100.. */
#define BULK_MAX                1500 /* ..1500 */
/* Grants of the MEGADEAL queue per second: above the default 10 so that grants, and their
 * commits, happen in most cycles of a few hundred milliseconds. */
#define MEGADEAL_RATE "200"
/* No automatic purge: the bulk uploads' expired coupons must stay for the probes to find. */
#define PURGE_INTERVAL "0"

struct crash_cfg {
    enum crash_mode mode;
    unsigned cycles;
    unsigned clients;
    uint64_t seed;
    unsigned pg_stop; /* one cycle in this many stops PostgreSQL too; 0: none */
};

static const char *const mode_names[] = {
    [MODE_PLAIN] = "plain", [MODE_EXACTLY_ONCE] = "exactly-once"};

struct crash {
    struct crash_cfg cfg;
    struct model m;
    struct bb_server *s;
};

/* Reads an unsigned number from the environment: `dflt` when unset, false when malformed or
 * outside lo..hi. */
static bool
env_number(const char *name, unsigned long long dflt, unsigned long long lo, unsigned long long hi,
           unsigned long long *out)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        *out = dflt;
        return true;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || v[0] == '-' || n < lo || n > hi) {
        fprintf(stderr, "crash: %s=%s: expected a number from %llu to %llu\n", name, v, lo, hi);
        return false;
    }
    *out = n;
    return true;
}

static uint64_t
fresh_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct rng r = {(uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
                    ((uint64_t)getpid() << 32)};
    /* Seeds stay below 2^53 so that they survive being pasted through any tool. */
    return rng_next(&r) >> 11;
}

static int
crash_setup(void **state)
{
    const struct crash_cfg *cfg = *state;
    struct crash *cr = calloc(1, sizeof *cr);
    if (cr == NULL)
        return -1;
    cr->cfg = *cfg;
    model_init(&cr->m, cfg->mode, cfg->seed, cfg->clients);
    static const char *const args[] = {"--megadeal-rate", MEGADEAL_RATE, "--purge-interval",
                                       PURGE_INTERVAL, NULL};
    cr->s = bb_server_start(args);
    if (cr->s == NULL) {
        model_free(&cr->m);
        free(cr);
        return -1;
    }
    *state = cr;
    return 0;
}

static int
crash_teardown(void **state)
{
    struct crash *cr = *state;
    if (cr == NULL)
        return 0;
    bb_server_free(cr->s);
    model_free(&cr->m);
    free(cr);
    return 0;
}

/* Keeps the killed server's operation log as ops.log.prev; the restarted server starts a new
 * ops.log. So the data dir holds two runs' logs, not two hundred. */
static void
rotate_ops_log(const struct bb_server *s)
{
    char log[BB_PATH_MAX + 16], prev[BB_PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/ops.log", s->dir);
    snprintf(prev, sizeof prev, "%s/ops.log.prev", s->dir);
    if (rename(log, prev) != 0 && errno != ENOENT)
        fail_msg("crash: rename %s: %s", log, strerror(errno));
}

/* Draws the next cycle's kill moment and bulk upload. */
static void
draw_plan(struct rng *r, unsigned n_clients, struct workload_plan *p)
{
    p->kill_after_ms = KILL_MIN_MS + (int)rng_below(r, KILL_MAX_MS - KILL_MIN_MS + 1);
    p->bulk_lead_ms = (int)rng_below(r, BULK_LEAD_MAX_MS + 1);
    p->bulk_client = rng_below(r, n_clients);
    p->bulk_n = BULK_MIN + rng_below(r, BULK_MAX - BULK_MIN + 1);
    p->bulk_type = (enum proto_type)rng_below(r, PROTO_NTYPES);
}

/* One line per cycle: ops sent and answered before the kill (`at_kill` is the tally then), the
 * ops in flight at the kill by kind; in exactly-once mode the retries and their replays. */
static void
print_cycle(const struct crash *cr, int kill_ms, const struct tally *before,
            const struct tally *at_kill, int64_t ms)
{
    const struct tally *t = &cr->m.tally;
    uint64_t sent = 0, answered = 0, retried = 0, replayed = 0;
    char open[192], again[64] = "";
    size_t len = 0;
    for (int k = 0; k < OP_NKINDS; k++) {
        uint64_t a = at_kill->attempted[k] - before->attempted[k];
        uint64_t b = at_kill->acked[k] - before->acked[k];
        sent += a;
        answered += b;
        retried += t->retried[k] - before->retried[k];
        replayed += t->replayed[k] - before->replayed[k];
        if (a > 0 || k < OP_HOLD)
            len += (size_t)snprintf(open + len, sizeof open - len, "%s%s %llu", k > 0 ? ", " : "",
                                    model_op_name((enum op_kind)k), (unsigned long long)(a - b));
    }
    if (cr->cfg.mode == MODE_EXACTLY_ONCE)
        snprintf(again, sizeof again, "; %llu sent again, %llu of them replayed",
                 (unsigned long long)retried, (unsigned long long)replayed);
    printf("crash: cycle %u/%u: kill -9 after %d ms; ops %llu attempted, %llu acknowledged; "
           "in flight at the kill: %s%s; %llu checks; %lld ms\n",
           (unsigned)cr->m.cycle, cr->cfg.cycles, kill_ms, (unsigned long long)sent,
           (unsigned long long)answered, open, again,
           (unsigned long long)(t->checks - before->checks), (long long)ms);
    fflush(stdout);
}

/* Exactly-once mode: the ids, and what became of the writes sent again after a restart. */
static void
print_exactly_once(const struct crash *cr)
{
    const struct tally *t = &cr->m.tally;
    uint64_t ids = 0, retried = 0, replayed = 0, afresh = 0;
    for (int k = 0; k < OP_NKINDS; k++) {
        if (!model_op_is_write((enum op_kind)k))
            continue;
        ids += t->attempted[k];
        retried += t->retried[k];
        replayed += t->replayed[k];
        afresh += t->afresh[k];
        if (t->retried[k] > 0)
            printf("crash:   %-8s %8llu ids, %llu sent again after a restart: %llu replayed, "
                   "%llu done afresh\n",
                   model_op_name((enum op_kind)k), (unsigned long long)t->attempted[k],
                   (unsigned long long)t->retried[k], (unsigned long long)t->replayed[k],
                   (unsigned long long)t->afresh[k]);
    }
    printf("crash: exactly-once: %llu request ids, %llu retries (%llu replayed, %llu done afresh), "
           "%llu acknowledged writes replayed to check their one outcome\n",
           (unsigned long long)ids, (unsigned long long)retried, (unsigned long long)replayed,
           (unsigned long long)afresh, (unsigned long long)t->replay_checks);
}

static void
print_summary(const struct crash *cr, int64_t ms)
{
    const struct tally *t = &cr->m.tally;
    uint64_t sent = 0, answered = 0;
    printf("crash: seed %llu, %s, %u cycles, %u clients, %lld ms\n",
           (unsigned long long)cr->cfg.seed, mode_names[cr->cfg.mode], cr->cfg.cycles,
           cr->cfg.clients, (long long)ms);
    for (int k = 0; k < OP_NKINDS; k++) {
        if (t->attempted[k] == 0 && cr->cfg.mode == MODE_PLAIN)
            continue;
        if (cr->cfg.mode == MODE_EXACTLY_ONCE)
            printf("crash:   %-8s %8llu attempted %8llu acknowledged (after the retries)\n",
                   model_op_name((enum op_kind)k), (unsigned long long)t->attempted[k],
                   (unsigned long long)t->acked[k]);
        else
            printf("crash:   %-8s %8llu attempted %8llu acknowledged; of the rest %llu found "
                   "done, %llu without a trace\n",
                   model_op_name((enum op_kind)k), (unsigned long long)t->attempted[k],
                   (unsigned long long)t->acked[k], (unsigned long long)t->landed[k],
                   (unsigned long long)t->vanished[k]);
        sent += t->attempted[k];
        answered += t->acked[k];
    }
    printf("crash:   %-8s %8llu attempted %8llu acknowledged\n", "all", (unsigned long long)sent,
           (unsigned long long)answered);
    if (cr->cfg.mode == MODE_EXACTLY_ONCE)
        print_exactly_once(cr);
    else
        printf("crash:   MEGADEAL tasks queued at a kill before their WAIT was sent: %llu "
               "granted, %llu lost\n",
               (unsigned long long)t->idle_landed, (unsigned long long)t->idle_vanished);
    printf("crash: %zu batches (%zu codes), %zu users; invariants checked %llu, violations %llu, "
           "ERR INTERNAL replies %llu\n",
           cr->m.n_batches, cr->m.n_coupons, cr->m.n_users, (unsigned long long)t->checks,
           (unsigned long long)t->violations, (unsigned long long)t->internal);
    fflush(stdout);
}

/* After a cycle that stopped PostgreSQL: it starts again (crash recovery) before the checks. */
static void
start_store(const struct crash *cr, unsigned cycle)
{
    if (!bb_pg_cluster("start"))
        fail_msg("crash: seed %llu, cycle %u: PostgreSQL did not start again",
                 (unsigned long long)cr->cfg.seed, cycle);
    printf("crash: cycle %u: PostgreSQL was stopped at once under load, and started again\n",
           cycle);
}

static void
test_crash_loop(void **state)
{
    struct crash *cr = *state;
    struct model *m = &cr->m;
    struct rng kills = {cr->cfg.seed ^ KILL_SALT}, stops = {cr->cfg.seed ^ STOP_SALT};
    int64_t t0 = bb_now_ms();
    for (unsigned cycle = 1; cycle <= cr->cfg.cycles; cycle++) {
        int64_t c0 = bb_now_ms();
        struct tally before = m->tally;
        struct workload_plan plan;
        draw_plan(&kills, cr->cfg.clients, &plan);
        plan.stop_store = cr->cfg.pg_stop > 0 && rng_below(&stops, cr->cfg.pg_stop) == 0;
        m->cycle = cycle;
        workload_run(m, cr->s, &plan);
        struct tally at_kill = m->tally;
        if (plan.stop_store)
            start_store(cr, cycle);
        rotate_ops_log(cr->s);
        verify_store_check(m, cr->s);
        if (!bb_server_restart_any_port(cr->s))
            fail_msg("crash: seed %llu, cycle %u: coupond did not start again on %s",
                     (unsigned long long)cr->cfg.seed, cycle, cr->s->dir);
        if (cr->cfg.mode == MODE_EXACTLY_ONCE)
            verify_exactly_once(m, cr->s, cycle == cr->cfg.cycles);
        else
            verify_after_restart(m, cr->s, cycle == cr->cfg.cycles);
        print_cycle(cr, plan.kill_after_ms, &before, &at_kill, bb_now_ms() - c0);
        if (m->tally.violations > 0)
            fail_msg("crash: %llu violations in cycle %u; replay with CRASH_SEED=%llu "
                     "CRASH_CYCLES=%u (BB_KEEP_DIRS=1 keeps %s)",
                     (unsigned long long)m->tally.violations, cycle,
                     (unsigned long long)cr->cfg.seed, cycle, cr->s->dir);
    }
    /* A clean stop after all that: exit status 0 (and no sanitizer report), still consistent. */
    assert_int_equal(bb_server_stop(cr->s), 0);
    verify_store_check(m, cr->s);
    print_summary(cr, bb_now_ms() - t0);
    assert_int_equal(m->tally.violations, 0);
}

/* CRASH_MODE: plain (the default) or exactly-once. */
static bool
env_mode(enum crash_mode *out)
{
    const char *v = getenv("CRASH_MODE");
    *out = MODE_PLAIN;
    if (v == NULL || v[0] == '\0')
        return true;
    for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++)
        if (strcmp(v, mode_names[i]) == 0) {
            *out = (enum crash_mode)i;
            return true;
        }
    fprintf(stderr, "crash: CRASH_MODE=%s: expected plain or exactly-once\n", v);
    return false;
}

int
main(void)
{
    unsigned long long cycles, clients, seed, pg_stop;
    enum crash_mode mode;
    if (!env_mode(&mode) ||
        !env_number("CRASH_CYCLES", bb_on_pg() ? CRASH_CYCLES_PG_DEFAULT : CRASH_CYCLES_DEFAULT, 1,
                    CRASH_CYCLES_MAX, &cycles) ||
        !env_number("CRASH_CLIENTS", CRASH_CLIENTS_DEFAULT, 1, CRASH_CLIENTS_MAX, &clients) ||
        !env_number("CRASH_SEED", fresh_seed(), 0, UINT64_MAX, &seed) ||
        !env_number("CRASH_PG_STOP", 0, 0, PG_STOP_MAX, &pg_stop))
        return 2;
    if (pg_stop > 0 && !bb_on_pg()) {
        fprintf(stderr, "crash: CRASH_PG_STOP needs BB_STORE=postgresql\n");
        return 2;
    }
    struct crash_cfg cfg = {mode, (unsigned)cycles, (unsigned)clients, seed, (unsigned)pg_stop};
    printf("crash: seed %llu, %s, %u cycles, %u clients (replay: CRASH_MODE=%s CRASH_SEED=%llu "
           "CRASH_CYCLES=%u)\n",
           seed, mode_names[mode], cfg.cycles, cfg.clients, mode_names[mode], seed, cfg.cycles);
    fflush(stdout);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_crash_loop, crash_setup, crash_teardown,
                                                 &cfg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
