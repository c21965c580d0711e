/* engine.c - the load loop of coupond-bench (see engine.h): one epoll loop, level-triggered,
 * one read per ready connection per wakeup so that every connection gets its turn. */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define AUTH_SLOT    UINT16_MAX /* fifo entry of an AUTH command, not a flow */
#define NS_PER_S     1000000000ull
#define KEY_LINE_MAX (PROTO_KEY_MAX + 8)

struct econn {
    struct bconn io;
    struct engine_flow *flows; /* `pipeline` slots */
    uint16_t *fifo;            /* slot of each command in flight, oldest first */
    unsigned head;
    unsigned count;
    unsigned active; /* slots holding a flow in progress */
    bool out_armed;  /* EPOLLOUT requested */
    bool dead;
};

enum phase { PHASE_AUTH, PHASE_LOAD, PHASE_HOLD };

struct run {
    const struct engine_params *p;
    const struct engine_workload *w;
    struct engine_result *r;
    struct econn *conns;
    unsigned fifo_cap;
    int ep;
    enum phase phase;
    uint64_t next_id;
    bool stopping;       /* no more flows start */
    uint64_t deadline;   /* ns; 0: none */
    uint64_t t0;         /* clock start */
    uint64_t last_reply; /* ns of the last status line */
    uint64_t active;     /* flows in progress over all connections */
    unsigned auth_pending;
    bool fatal; /* r->why says why */
};

uint64_t
engine_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static double
cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

uint64_t
engine_errors(const struct engine_result *r)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < ENGINE_ERR_CLASSES; i++)
        n += r->err[i];
    return n;
}

const char *
engine_err_name(unsigned cls)
{
    if (cls < PROTO_NERRS)
        return proto_err_name((enum proto_err)cls);
    if (cls == ENGINE_ERR_BAD_REPLY)
        return "BAD_REPLY";
    if (cls == ENGINE_ERR_LOST)
        return "LOST";
    return "UNSOLICITED";
}

static void
count_err(struct run *run, unsigned cls, uint64_t n, const char *line, size_t len)
{
    struct engine_result *r = run->r;
    if (r->err[cls] == 0)
        snprintf(r->sample[cls], ENGINE_SAMPLE_LEN, "%.*s", (int)len, line);
    r->err[cls] += n;
}

static void
set_fatal(struct run *run, const char *what, const char *line, size_t len)
{
    if (!run->fatal)
        snprintf(run->r->why, sizeof run->r->why, "%s%.*s", what, (int)len, line);
    run->fatal = true;
}

static void
fifo_push(struct run *run, struct econn *ec, uint16_t slot)
{
    ec->fifo[(ec->head + ec->count) % run->fifo_cap] = slot;
    ec->count++;
}

static uint16_t
fifo_pop(struct run *run, struct econn *ec)
{
    uint16_t slot = ec->fifo[ec->head];
    ec->head = (ec->head + 1) % run->fifo_cap;
    ec->count--;
    return slot;
}

static void
send_step(struct run *run, struct econn *ec, unsigned slot)
{
    if (!run->w->send(run->w->ctx, &ec->flows[slot], &ec->io)) {
        set_fatal(run, "out of memory queueing a command", "", 0);
        return;
    }
    fifo_push(run, ec, (uint16_t)slot);
}

static bool
may_start(struct run *run, uint64_t now)
{
    if (run->stopping)
        return false;
    if ((run->p->flows > 0 && run->next_id >= run->p->flows) ||
        (run->deadline > 0 && now >= run->deadline)) {
        run->stopping = true;
        return false;
    }
    return true;
}

/* Starts a new flow in `slot` when the limits allow. */
static void
start_flow(struct run *run, struct econn *ec, unsigned slot, uint64_t now)
{
    if (ec->dead || !may_start(run, now))
        return;
    struct engine_flow *f = &ec->flows[slot];
    memset(f, 0, sizeof *f);
    f->id = run->next_id++;
    f->t_start = now;
    ec->active++;
    run->active++;
    run->r->started++;
    send_step(run, ec, slot);
}

static void
set_out(struct run *run, struct econn *ec, bool want)
{
    if (ec->out_armed == want)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)(ec - run->conns)};
    epoll_ctl(run->ep, EPOLL_CTL_MOD, ec->io.fd, &ev);
    ec->out_armed = want;
}

/* The connection is gone: every flow in flight on it failed, and it takes no more. */
static void
conn_lost(struct run *run, struct econn *ec, const char *why)
{
    if (ec->dead)
        return;
    uint64_t flows = 0;
    while (ec->count > 0) {
        uint16_t slot = fifo_pop(run, ec);
        if (slot == AUTH_SLOT) {
            set_fatal(run, "connection lost before AUTH was answered: ", why, strlen(why));
            continue;
        }
        flows++;
    }
    run->r->failed += flows;
    run->active -= ec->active;
    ec->active = 0;
    /* An idle connection that is closed is an error too, counted once. */
    count_err(run, ENGINE_ERR_LOST, flows > 0 ? flows : 1, why, strlen(why));
    epoll_ctl(run->ep, EPOLL_CTL_DEL, ec->io.fd, NULL);
    bconn_close(&ec->io);
    ec->dead = true;
    run->r->conns_open--;
}

static void
flush_conn(struct run *run, struct econn *ec)
{
    if (ec->dead || !bconn_has_output(&ec->io)) {
        if (!ec->dead)
            set_out(run, ec, false);
        return;
    }
    enum bconn_io r = bconn_flush(&ec->io);
    if (r == BCONN_IO_FAIL) {
        conn_lost(run, ec, strerror(errno));
        return;
    }
    set_out(run, ec, r == BCONN_IO_AGAIN);
}

static void
finish_flow(struct run *run, struct econn *ec, unsigned slot, enum engine_next nx, const char *line,
            size_t len, uint64_t now)
{
    struct engine_result *r = run->r;
    if (nx == ENGINE_FLOW_OK) {
        /* Latency is that of the flows that succeeded: a quick refusal is not a fast answer. */
        hist_record(&r->hist, now - ec->flows[slot].t_start);
        r->ok++;
    } else {
        r->failed++;
        unsigned cls = proto_reply_kind(line, len) == PROTO_REPLY_ERR
                           ? (unsigned)proto_reply_err(line, len)
                           : ENGINE_ERR_BAD_REPLY;
        count_err(run, cls, 1, line, len);
    }
    ec->active--;
    run->active--;
    start_flow(run, ec, slot, now);
}

static void
handle_line(struct run *run, struct econn *ec, const char *line, size_t len, uint64_t now)
{
    enum proto_reply_kind kind = proto_reply_kind(line, len);
    if (kind == PROTO_REPLY_DATA) {
        run->r->data_lines++;
        return;
    }
    run->last_reply = now;
    if (ec->count == 0) {
        count_err(run, ENGINE_ERR_UNSOLICITED, 1, line, len);
        return;
    }
    uint16_t slot = fifo_pop(run, ec);
    if (slot == AUTH_SLOT) {
        if (kind == PROTO_REPLY_OK)
            run->auth_pending--;
        else
            set_fatal(run, "AUTH refused: ", line, len);
        return;
    }
    struct engine_flow *f = &ec->flows[slot];
    enum engine_next nx = run->w->reply(run->w->ctx, f, line, len, &run->r->tally);
    if (nx == ENGINE_FLOW_MORE)
        send_step(run, ec, slot);
    else
        finish_flow(run, ec, slot, nx, line, len, now);
}

static void
on_readable(struct run *run, struct econn *ec)
{
    /* Over TLS, text already decrypted is read at once: epoll would not report it. */
    do {
        enum bconn_io r = bconn_fill(&ec->io);
        if (r == BCONN_IO_AGAIN)
            return;
        if (r != BCONN_IO_OK) {
            conn_lost(run, ec,
                      r == BCONN_IO_CLOSED ? "connection closed by the server" : strerror(errno));
            return;
        }
        uint64_t now = engine_now_ns();
        const char *line;
        size_t len;
        while (!ec->dead && bconn_line(&ec->io, &line, &len))
            handle_line(run, ec, line, len, now);
    } while (!ec->dead && bconn_pending(&ec->io));
}

static bool
done(struct run *run, uint64_t now)
{
    switch (run->phase) {
    case PHASE_AUTH:
        return run->auth_pending == 0;
    case PHASE_LOAD:
        (void)may_start(run, now);
        return (run->stopping && run->active == 0) || run->r->conns_open == 0;
    case PHASE_HOLD:
        return now >= run->deadline;
    }
    return true;
}

/* Turns every request still in flight into a LOST error: the server did not answer in time. */
static void
give_up(struct run *run)
{
    for (unsigned i = 0; i < run->p->conns; i++) {
        struct econn *ec = &run->conns[i];
        if (!ec->dead && ec->count > 0)
            conn_lost(run, ec, "no reply within the drain time");
    }
}

static void
loop(struct run *run)
{
    struct epoll_event ev[ENGINE_EVENTS];
    uint64_t watchdog_ns = (uint64_t)(ENGINE_DRAIN_S * NS_PER_S);
    run->last_reply = engine_now_ns();
    while (!run->fatal) {
        uint64_t now = engine_now_ns();
        if (done(run, now))
            return;
        /* No reply for the drain time while requests are in flight: the server is stuck. */
        if (run->phase != PHASE_HOLD && now - run->last_reply > watchdog_ns) {
            give_up(run);
            if (run->phase == PHASE_AUTH)
                set_fatal(run, "no reply to AUTH within the drain time", "", 0);
            return;
        }
        int n = epoll_wait(run->ep, ev, ENGINE_EVENTS, ENGINE_TICK_MS);
        if (n < 0 && errno != EINTR) {
            set_fatal(run, "epoll_wait: ", strerror(errno), strlen(strerror(errno)));
            return;
        }
        for (int i = 0; i < n; i++) {
            struct econn *ec = &run->conns[ev[i].data.u32];
            if (ec->dead)
                continue;
            if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(run, ec);
            if (!ec->dead)
                flush_conn(run, ec);
        }
    }
}

static bool
open_conns(struct run *run)
{
    const struct engine_params *p = run->p;
    for (unsigned i = 0; i < p->conns; i++) {
        struct econn *ec = &run->conns[i];
        ec->flows = calloc(p->pipeline, sizeof *ec->flows);
        ec->fifo = calloc(run->fifo_cap, sizeof *ec->fifo);
        if (!ec->flows || !ec->fifo) {
            snprintf(run->r->why, sizeof run->r->why, "out of memory for %u connections", p->conns);
            return false;
        }
        if (!bconn_connect(&ec->io, p->addr, p->addrlen, p->tls)) {
            snprintf(run->r->why, sizeof run->r->why, "connection %u of %u: connect: %s", i + 1,
                     p->conns, strerror(errno));
            return false;
        }
        ec->dead = false;
        run->r->conns_open++;
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = i};
        if (epoll_ctl(run->ep, EPOLL_CTL_ADD, ec->io.fd, &e) < 0) {
            snprintf(run->r->why, sizeof run->r->why, "epoll_ctl: %s", strerror(errno));
            return false;
        }
    }
    return true;
}

static bool
authenticate(struct run *run)
{
    char line[KEY_LINE_MAX];
    int n = snprintf(line, sizeof line, "AUTH %s\n", run->p->key);
    if (n < 0 || (size_t)n >= sizeof line) {
        snprintf(run->r->why, sizeof run->r->why, "admin key too long");
        return false;
    }
    for (unsigned i = 0; i < run->p->conns; i++) {
        struct econn *ec = &run->conns[i];
        if (!bconn_append(&ec->io, line, (size_t)n)) {
            snprintf(run->r->why, sizeof run->r->why, "out of memory");
            return false;
        }
        fifo_push(run, ec, AUTH_SLOT);
        run->auth_pending++;
        flush_conn(run, ec);
    }
    run->phase = PHASE_AUTH;
    loop(run);
    return !run->fatal;
}

static void
measure(struct run *run)
{
    const struct engine_params *p = run->p;
    double cpu0 = cpu_now();
    run->t0 = engine_now_ns();
    run->last_reply = run->t0;
    if (p->flows == 0 && p->seconds <= 0) {
        run->phase = PHASE_HOLD;
        run->deadline = run->t0 + (uint64_t)(p->hold_seconds * NS_PER_S);
        loop(run);
        run->last_reply = engine_now_ns();
    } else {
        run->phase = PHASE_LOAD;
        run->deadline = p->seconds > 0 ? run->t0 + (uint64_t)(p->seconds * NS_PER_S) : 0;
        for (unsigned s = 0; s < p->pipeline; s++)
            for (unsigned i = 0; i < p->conns; i++)
                start_flow(run, &run->conns[i], s, run->t0);
        for (unsigned i = 0; i < p->conns; i++)
            flush_conn(run, &run->conns[i]);
        loop(run);
    }
    run->r->seconds = (double)(run->last_reply - run->t0) / 1e9;
    run->r->cpu_seconds = cpu_now() - cpu0;
}

bool
engine_run(const struct engine_params *p, const struct engine_workload *w, struct engine_result *r)
{
    memset(r, 0, sizeof *r);
    hist_init(&r->hist);
    if (p->conns == 0 || p->pipeline == 0 || p->pipeline > ENGINE_PIPELINE_MAX) {
        snprintf(r->why, sizeof r->why, "connections and pipeline must be at least 1");
        return false;
    }
    struct run run = {.p = p, .w = w, .r = r, .fifo_cap = p->pipeline + 1, .ep = -1};
    run.conns = calloc(p->conns, sizeof *run.conns);
    run.ep = epoll_create1(EPOLL_CLOEXEC);
    for (unsigned i = 0; run.conns && i < p->conns; i++) {
        run.conns[i].io.fd = -1; /* closed until connected */
        run.conns[i].dead = true;
    }
    bool ok = run.conns && run.ep >= 0;
    if (!ok)
        snprintf(r->why, sizeof r->why, "cannot set up the loop: %s", strerror(errno));
    ok = ok && open_conns(&run) && (!p->key || authenticate(&run));
    ok = ok && (!p->ready || p->ready(p->ready_arg, r->why, sizeof r->why));
    if (ok) {
        measure(&run);
        ok = !run.fatal;
    }
    for (unsigned i = 0; run.conns && i < p->conns; i++) {
        bconn_close(&run.conns[i].io);
        free(run.conns[i].flows);
        free(run.conns[i].fifo);
    }
    free(run.conns);
    if (run.ep >= 0)
        close(run.ep);
    return ok;
}
