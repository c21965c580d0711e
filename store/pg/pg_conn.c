/* pg_conn.c - an asynchronous libpq connection in pipeline mode, with reconnection (see
 * pg_conn.h). */
#include "pg_conn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Items a connection's queue holds at first; it doubles when full. A batch of a thousand
 * operations needs about as many. */
#define ITEMS_FIRST 64

static void on_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void attempt(struct pg_conn *c);

/* --- watchers: active but unreferenced, so that they never keep ev_run going alone --- */

static void
io_stop(struct pg_conn *c)
{
    if (!c->io_on)
        return;
    ev_ref(c->loop);
    ev_io_stop(c->loop, &c->io);
    c->io_on = false;
}

/* Watches fd for events (none: stops watching). */
static void
io_watch(struct pg_conn *c, int fd, int events)
{
    c->fd = fd;
    c->events = fd < 0 ? 0 : events;
    if (c->io_on && c->io.fd == fd && (c->io.events & (EV_READ | EV_WRITE)) == c->events)
        return;
    io_stop(c);
    if (c->events == 0)
        return;
    ev_io_set(&c->io, fd, c->events);
    ev_io_start(c->loop, &c->io);
    ev_unref(c->loop);
    c->io_on = true;
}

static void
timer_stop(struct pg_conn *c)
{
    if (!c->timer_on)
        return;
    ev_ref(c->loop);
    ev_timer_stop(c->loop, &c->timer);
    c->timer_on = false;
}

static void
timer_start(struct pg_conn *c, double seconds)
{
    timer_stop(c);
    ev_timer_set(&c->timer, seconds, 0.);
    ev_timer_start(c->loop, &c->timer);
    ev_unref(c->loop);
    c->timer_on = true;
}

/* --- messages --- */

/* Copies libpq's message into buf as one line. */
static void
one_line(char *buf, size_t len, const char *msg)
{
    size_t n;

    snprintf(buf, len, "%s", msg != NULL && msg[0] != '\0' ? msg : "unknown error");
    for (char *p = buf; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    n = strlen(buf);
    while (n > 0 && buf[n - 1] == ' ')
        buf[--n] = '\0';
}

const char *
pg_conn_result_error(const PGresult *r, char *buf, size_t len)
{
    one_line(buf, len, r != NULL ? PQresultErrorMessage(r) : "no result");
    return buf;
}

static void
set_why(struct pg_conn *c, const char *what, const char *msg)
{
    char line[STORE_ERR_MAX];

    one_line(line, sizeof line, msg);
    snprintf(c->why, sizeof c->why, "%s connection: %s: %.200s", c->who, what, line);
}

/* --- the item queue --- */

static bool
push(struct pg_conn *c, struct pg_conn_item it)
{
    if (c->n == c->cap) {
        size_t cap = c->cap == 0 ? ITEMS_FIRST : 2 * c->cap;
        struct pg_conn_item *items = malloc(cap * sizeof *items);

        if (items == NULL)
            return false;
        for (size_t i = 0; i < c->n; i++)
            items[i] = c->items[(c->head + i) % c->cap];
        free(c->items);
        c->items = items;
        c->cap = cap;
        c->head = 0;
    }
    c->items[(c->head + c->n) % c->cap] = it;
    c->n++;
    return true;
}

static struct pg_conn_item *
front(struct pg_conn *c)
{
    return &c->items[c->head];
}

static void
pop(struct pg_conn *c)
{
    c->head = (c->head + 1) % c->cap;
    c->n--;
}

/* --- failure and reconnection --- */

static double
backoff(unsigned failures)
{
    double s = PG_CONN_BACKOFF_FIRST_S;

    for (unsigned i = 1; i < failures && s < PG_CONN_BACKOFF_MAX_S; i++)
        s *= 2;
    return s < PG_CONN_BACKOFF_MAX_S ? s : PG_CONN_BACKOFF_MAX_S;
}

/* Closes the connection and drops its queue; the state is DOWN. */
static void
teardown(struct pg_conn *c)
{
    io_watch(c, -1, 0);
    timer_stop(c);
    if (c->pc != NULL)
        PQfinish(c->pc);
    c->pc = NULL;
    c->head = c->n = 0;
    c->raw = NULL;
    c->state = PG_CONN_DOWN;
}

/* The connection failed (c->why says how): tear down, schedule the next attempt, tell the
 * owner. */
static void
fail(struct pg_conn *c)
{
    teardown(c);
    c->hurried = false;
    c->failures++;
    if (c->running)
        timer_start(c, backoff(c->failures));
    if (c->lost != NULL)
        c->lost(c->arg);
}

/* Marks the connection broken (c->why says why): it fails on the next loop turn, outside the
 * owner's call. */
static void
mark_broken(struct pg_conn *c)
{
    if (c->state == PG_CONN_BROKEN || c->state == PG_CONN_DOWN)
        return;
    c->state = PG_CONN_BROKEN;
    io_watch(c, -1, 0);
    timer_start(c, 0.);
}

void
pg_conn_break(struct pg_conn *c, const char *why)
{
    if (c->state == PG_CONN_BROKEN || c->state == PG_CONN_DOWN)
        return;
    snprintf(c->why, sizeof c->why, "%s connection: %s", c->who, why);
    mark_broken(c);
}

/* A libpq call failed on an open connection. */
static void
broke(struct pg_conn *c, const char *what)
{
    if (c->state == PG_CONN_BROKEN || c->state == PG_CONN_DOWN)
        return;
    set_why(c, what, c->pc != NULL ? PQerrorMessage(c->pc) : "not connected");
    mark_broken(c);
}

/* --- connecting --- */

/* The peer is ready again: c, if waiting out its backoff, tries now. */
static void
hurry(struct pg_conn *c)
{
    if (c == NULL || !c->running || c->state != PG_CONN_DOWN)
        return;
    attempt(c);
    c->hurried = c->state == PG_CONN_CONNECTING;
}

static void
setup_result(void *arg, PGresult *r)
{
    struct pg_conn *c = arg;
    char msg[STORE_ERR_MAX];

    if (PQresultStatus(r) != PGRES_COMMAND_OK && !c->setup_failed) {
        c->setup_failed = true;
        snprintf(c->why, sizeof c->why, "%s connection: set-up: %s", c->who,
                 pg_conn_result_error(r, msg, sizeof msg));
    }
}

static void
setup_done(void *arg, PGresult *r)
{
    struct pg_conn *c = arg;

    (void)r;
    if (c->setup_failed) {
        mark_broken(c);
        return;
    }
    timer_stop(c);
    c->state = PG_CONN_READY;
    c->failures = 0;
    c->hurried = false;
    hurry(c->peer);
    if (c->ready != NULL)
        c->ready(c->arg);
}

/* Connected: non-blocking pipeline mode, then the session set-up and the prepared statements,
 * all in one pipeline ended by a sync. */
static void
connected(struct pg_conn *c)
{
    const char *const *sql;
    size_t n;
    bool ok;

    c->state = PG_CONN_SETUP;
    c->setup_failed = false;
    if (PQsetnonblocking(c->pc, 1) != 0 || PQenterPipelineMode(c->pc) != 1) {
        broke(c, "pipeline mode");
        return;
    }
    if (c->bare) {
        setup_done(c, NULL);
        return;
    }
    sql = pg_sql_session(&n);
    ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = pg_conn_exec(c, sql[i], setup_result, c);
    for (int s = 0; s < PG_NSTMTS && ok; s++) {
        ok = PQsendPrepare(c->pc, pg_sql_name((enum pg_stmt)s), pg_sql_text((enum pg_stmt)s), 0,
                           NULL) == 1 &&
             push(c, (struct pg_conn_item){.fn = setup_result, .arg = c});
        if (!ok)
            broke(c, "prepare");
    }
    if (ok && pg_conn_sync(c, setup_done, c))
        pg_conn_flush(c);
}

/* One step of PQconnectPoll. */
static void
connect_step(struct pg_conn *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pc);

    /* libpq may have closed its socket and opened another within the step: the next host or
     * address of a multi-host URI (host=a,b), or the same host again without SSL. The new
     * socket often gets the old one's number, which epoll dropped with the close: a watcher
     * kept on "the same" fd would never fire, and every attempt would time out. Watch the
     * socket afresh after every step. */
    io_stop(c);
    switch (st) {
    case PGRES_POLLING_READING:
        io_watch(c, PQsocket(c->pc), EV_READ);
        break;
    case PGRES_POLLING_WRITING:
        io_watch(c, PQsocket(c->pc), EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        io_watch(c, PQsocket(c->pc), EV_READ);
        connected(c);
        break;
    default:
        set_why(c, "connect", PQerrorMessage(c->pc));
        fail(c);
        break;
    }
}

/* libpq prints the server's notices (a WARNING at shutdown) on stderr by default; a library
 * keeps quiet: the store reports through its operations' messages. */
static void
ignore_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* Starts a connection attempt. */
static void
attempt(struct pg_conn *c)
{
    teardown(c);
    c->pc = PQconnectStartParams(c->keys, c->vals, 1);
    if (c->pc == NULL || PQstatus(c->pc) == CONNECTION_BAD) {
        set_why(c, "connect", c->pc != NULL ? PQerrorMessage(c->pc) : "out of memory");
        fail(c);
        return;
    }
    PQsetNoticeProcessor(c->pc, ignore_notice, NULL);
    c->state = PG_CONN_CONNECTING;
    timer_start(c, PG_CONN_CONNECT_TIMEOUT_S);
    /* As if PQconnectPoll had asked to write (libpq's documented start). */
    io_watch(c, PQsocket(c->pc), EV_WRITE);
}

/* --- results --- */

/* True when r is the sync point's that follows the front statement, whose results came but
 * not the NULL that ends them: in an aborted pipeline libpq skips that NULL when the sync point
 * was queued after the statement's last result was taken (from its callback: a batch that
 * failed rolls back once its results are in). */
static bool
ended_unmarked(struct pg_conn *c, const PGresult *r)
{
    const struct pg_conn_item *it = front(c);

    return PQresultStatus(r) == PGRES_PIPELINE_SYNC && !it->sync && it->got && c->n > 1 &&
           c->items[(c->head + 1) % c->cap].sync;
}

/* Hands every result that has arrived to its item, in order. */
static void
drain(struct pg_conn *c)
{
    while (c->n > 0 && (c->state == PG_CONN_READY || c->state == PG_CONN_SETUP)) {
        struct pg_conn_item it = *front(c);
        PGresult *r;

        if (PQisBusy(c->pc))
            return;
        r = PQgetResult(c->pc);
        if (PQstatus(c->pc) == CONNECTION_BAD) {
            PQclear(r);
            set_why(c, "lost", PQerrorMessage(c->pc));
            fail(c);
            return;
        }
        if (r == NULL) {
            if (it.sync || !it.got)
                return; /* nothing more yet */
            pop(c);     /* the end of a statement's results */
            continue;
        }
        if (ended_unmarked(c, r)) {
            pop(c); /* the statement's results are over; r is the sync point's */
            it = *front(c);
        }
        if ((PQresultStatus(r) == PGRES_PIPELINE_SYNC) != it.sync) {
            PQclear(r);
            snprintf(c->why, sizeof c->why, "%s connection: results out of step", c->who);
            fail(c);
            return;
        }
        if (it.sync)
            pop(c);
        else
            front(c)->got = true;
        it.fn(it.arg, r);
        PQclear(r);
    }
}

void
pg_conn_io(struct pg_conn *c, int revents)
{
    if (c->state == PG_CONN_CONNECTING) {
        connect_step(c);
        return;
    }
    if (c->state != PG_CONN_READY && c->state != PG_CONN_SETUP)
        return;
    if ((revents & EV_READ) && PQconsumeInput(c->pc) != 1) {
        set_why(c, "lost", PQerrorMessage(c->pc));
        fail(c);
        return;
    }
    if ((revents & EV_WRITE) || (c->events & EV_WRITE))
        if (!pg_conn_flush(c))
            return;
    if (c->raw != NULL)
        c->raw(c->arg);
    else
        drain(c);
}

static void
on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    pg_conn_io(w->data, revents);
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pg_conn *c = w->data;

    (void)loop;
    (void)revents;
    c->timer_on = false;
    ev_ref(c->loop); /* a stopped one-shot timer gives its unreference back */
    switch (c->state) {
    case PG_CONN_DOWN:
        if (c->running)
            attempt(c);
        break;
    case PG_CONN_BROKEN:
        fail(c);
        break;
    default: /* the connect deadline */
        snprintf(c->why, sizeof c->why, "%s connection: no connection within %.0f s", c->who,
                 PG_CONN_CONNECT_TIMEOUT_S);
        fail(c);
        break;
    }
}

/* --- the owner's calls --- */

void
pg_conn_init(struct pg_conn *c, struct ev_loop *loop, const char *const *keys,
             const char *const *vals, const char *who, pg_conn_event_fn *ready,
             pg_conn_event_fn *lost, void *arg)
{
    memset(c, 0, sizeof *c);
    c->loop = loop;
    c->keys = keys;
    c->vals = vals;
    c->who = who;
    c->ready = ready;
    c->lost = lost;
    c->arg = arg;
    c->fd = -1;
    ev_io_init(&c->io, on_io, 0, 0);
    c->io.data = c;
    ev_timer_init(&c->timer, on_timer, 0., 0.);
    c->timer.data = c;
}

bool
pg_conn_open(struct pg_conn *c)
{
    ev_tstamp until = ev_time() + PG_CONN_CONNECT_TIMEOUT_S;

    attempt(c);
    while (c->state == PG_CONN_CONNECTING || c->state == PG_CONN_SETUP) {
        double left = until - ev_time();

        if (left <= 0) {
            snprintf(c->why, sizeof c->why, "%s connection: no connection within %.0f s", c->who,
                     PG_CONN_CONNECT_TIMEOUT_S);
            break;
        }
        pg_conn_wait(c, left);
    }
    if (c->state == PG_CONN_READY) {
        c->running = true;
        return true;
    }
    teardown(c);
    return false;
}

void
pg_conn_start(struct pg_conn *c)
{
    c->running = false;
    attempt(c);
}

void
pg_conn_stop(struct pg_conn *c)
{
    c->running = false;
    teardown(c);
    free(c->items);
    c->items = NULL;
    c->cap = 0;
}

void
pg_conn_pair(struct pg_conn *a, struct pg_conn *b)
{
    a->peer = b;
    b->peer = a;
}

bool
pg_conn_ready(const struct pg_conn *c)
{
    return c->state == PG_CONN_READY;
}

bool
pg_conn_coming(const struct pg_conn *c)
{
    return c->hurried && (c->state == PG_CONN_CONNECTING || c->state == PG_CONN_SETUP);
}

size_t
pg_conn_pending(const struct pg_conn *c)
{
    return c->n;
}

static bool
usable(const struct pg_conn *c)
{
    return c->state == PG_CONN_READY || c->state == PG_CONN_SETUP;
}

bool
pg_conn_query(struct pg_conn *c, enum pg_stmt s, int n, const char *const *params,
              pg_conn_result_fn *fn, void *arg)
{
    if (!usable(c))
        return false;
    if (PQsendQueryPrepared(c->pc, pg_sql_name(s), n, params, NULL, NULL, 0) != 1) {
        broke(c, pg_sql_name(s));
        return false;
    }
    if (!push(c, (struct pg_conn_item){.fn = fn, .arg = arg})) {
        pg_conn_break(c, "out of memory");
        return false;
    }
    return true;
}

bool
pg_conn_exec(struct pg_conn *c, const char *sql, pg_conn_result_fn *fn, void *arg)
{
    if (!usable(c))
        return false;
    if (PQsendQueryParams(c->pc, sql, 0, NULL, NULL, NULL, NULL, 0) != 1) {
        broke(c, sql);
        return false;
    }
    if (!push(c, (struct pg_conn_item){.fn = fn, .arg = arg})) {
        pg_conn_break(c, "out of memory");
        return false;
    }
    return true;
}

bool
pg_conn_sync(struct pg_conn *c, pg_conn_result_fn *fn, void *arg)
{
    if (!usable(c))
        return false;
    if (PQpipelineSync(c->pc) != 1) {
        broke(c, "sync");
        return false;
    }
    if (!push(c, (struct pg_conn_item){.fn = fn, .arg = arg, .sync = true})) {
        pg_conn_break(c, "out of memory");
        return false;
    }
    return true;
}

bool
pg_conn_flush_request(struct pg_conn *c)
{
    if (!usable(c))
        return false;
    if (PQsendFlushRequest(c->pc) != 1) {
        broke(c, "flush request");
        return false;
    }
    return true;
}

bool
pg_conn_flush(struct pg_conn *c)
{
    int r;

    if (!usable(c))
        return false;
    r = PQflush(c->pc);
    if (r < 0) {
        broke(c, "send");
        return false;
    }
    io_watch(c, PQsocket(c->pc), r == 1 ? EV_READ | EV_WRITE : EV_READ);
    return true;
}

void
pg_conn_want_write(struct pg_conn *c)
{
    if (usable(c))
        io_watch(c, PQsocket(c->pc), EV_READ | EV_WRITE);
}

bool
pg_conn_unpipeline(struct pg_conn *c, pg_conn_event_fn *raw)
{
    if (c->state != PG_CONN_READY || c->n > 0)
        return false;
    if (PQexitPipelineMode(c->pc) != 1) {
        broke(c, "leave pipeline mode");
        return false;
    }
    c->raw = raw;
    return true;
}

bool
pg_conn_pipeline(struct pg_conn *c)
{
    c->raw = NULL;
    if (!usable(c))
        return false;
    if (PQenterPipelineMode(c->pc) != 1) {
        broke(c, "enter pipeline mode");
        return false;
    }
    return true;
}

bool
pg_conn_wait(struct pg_conn *c, double seconds)
{
    struct pollfd p = {.fd = c->fd, .events = 0};
    int ms = seconds <= 0 ? 0 : (int)(seconds * 1e3) + 1, r;

    if (c->state == PG_CONN_BROKEN) {
        fail(c);
        return false;
    }
    if (c->fd < 0 || c->events == 0)
        return false;
    p.events =
        (short)(((c->events & EV_READ) ? POLLIN : 0) | ((c->events & EV_WRITE) ? POLLOUT : 0));
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return false;
    pg_conn_io(c, ((p.revents & (POLLIN | POLLHUP | POLLERR)) ? EV_READ : 0) |
                      ((p.revents & POLLOUT) ? EV_WRITE : 0));
    return true;
}
