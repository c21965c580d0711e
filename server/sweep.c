/* sweep.c - timer-driven expiry in chunks (see sweep.h). */
#include "sweep.h"

#include <math.h>
#include <stdlib.h>

#include "group.h"
#include "log.h"

struct sweep {
    struct ev_loop *loop;
    struct group *group;
    struct log *log;
    struct sweep_config cfg;
    ev_timer timer_w;
    struct store_op op; /* the chunk in flight */
    bool busy;
    bool failing; /* the last chunk failed: logged once, not every run */
    bool stopping;
    uint64_t removed; /* by the run going */
    int64_t cutoff;   /* of the run going */
};

double
sweep_ids_interval(uint32_t retention)
{
    double every = (double)retention / SWEEP_IDS_PER_RETENTION;

    if (every < SWEEP_IDS_MIN)
        return SWEEP_IDS_MIN;
    return every > SWEEP_IDS_MAX ? SWEEP_IDS_MAX : every;
}

static void start_chunk(struct sweep *s);

/* A run's line in the log: only runs that removed something, or a failure's first time. */
static void
log_run(struct sweep *s, const struct store_op *op)
{
    if (op->err != STORE_OK) {
        const struct log_field f[] = {log_str("error", store_strerror(op->err)),
                                      log_str("reason", op->out.msg)};
        if (!s->failing)
            log_event(s->log, ev_now(s->loop), s->cfg.name, f, LOG_NFIELDS(f));
        s->failing = true;
        return;
    }
    s->failing = false;
    if (s->removed > 0 && !op->out.more) {
        const struct log_field f[] = {log_uint("removed", s->removed)};
        log_event(s->log, ev_now(s->loop), s->cfg.name, f, LOG_NFIELDS(f));
    }
}

static void
chunk_done(struct store_op *op)
{
    struct sweep *s = op->arg;

    s->busy = false;
    if (op->err == STORE_OK)
        s->removed += op->out.count;
    log_run(s, op);
    if (op->err == STORE_OK && op->out.more && !s->stopping)
        start_chunk(s);
}

static void
start_chunk(struct sweep *s)
{
    s->op = (struct store_op){.kind = s->cfg.kind, .now = s->cutoff, .done = chunk_done, .arg = s};
    s->op.in.max = SWEEP_CHUNK;
    s->busy = true;
    group_add(s->group, &s->op);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct sweep *s = w->data;

    if (s->busy || s->stopping)
        return;
    s->removed = 0;
    s->cutoff = (int64_t)floor(ev_now(s->loop)) - s->cfg.age;
    start_chunk(s);
}

struct sweep *
sweep_new(struct ev_loop *loop, struct group *g, struct log *lg, const struct sweep_config *cfg)
{
    struct sweep *s = calloc(1, sizeof *s);

    if (s == NULL)
        return NULL;
    s->loop = loop;
    s->group = g;
    s->log = lg;
    s->cfg = *cfg;
    ev_timer_init(&s->timer_w, timer_cb, cfg->every, cfg->every);
    s->timer_w.data = s;
    ev_timer_start(loop, &s->timer_w);
    return s;
}

void
sweep_free(struct sweep *s)
{
    if (s == NULL)
        return;
    ev_timer_stop(s->loop, &s->timer_w);
    free(s);
}

void
sweep_stop(struct sweep *s)
{
    s->stopping = true;
    ev_timer_stop(s->loop, &s->timer_w);
}

bool
sweep_busy(const struct sweep *s)
{
    return s->busy;
}
