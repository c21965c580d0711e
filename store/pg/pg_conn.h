/* pg_conn.h - one asynchronous libpq connection on the libev loop, in pipeline mode: a
 * non-blocking connect (PQconnectStartParams, PQconnectPoll) with a deadline, the session
 * set-up (pg_sql.h: temporary tables, prepared statements), a queue of the statements and sync
 * points sent and not yet answered, and reconnection with backoff after any failure.
 *
 * Results are handed to the callback of the item they answer, in order, on the loop's thread.
 * A connection that breaks calls `lost` (never from inside a pg_conn_* call the owner made: a
 * send that finds the connection broken returns false and `lost` comes later) and drops its
 * queue: the owner completes whatever it had sent. It then reconnects by itself after
 * PG_CONN_BACKOFF[k] seconds, k counting the failures since it was last ready, and calls
 * `ready` once it is usable again. Two connections to one server may be paired
 * (pg_conn_pair): when one is ready again, the other, if waiting out its backoff, tries at once,
 * so that a server that is back serves both without a backoff step's lag between them.
 *
 * The watchers never keep ev_run going by themselves (they are unreferenced): the owner holds
 * a reference (ev_ref) while work is owed to its caller. */
#ifndef COUPOND_PG_CONN_H
#define COUPOND_PG_CONN_H

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "pg_sql.h"
#include "store.h"

/* Seconds between a failure and the next connection attempt: fast for a blip (a restarted
 * server is back within a second), doubling to a ceiling that bounds both the load a down
 * server gets from every node and the wait once it is back. */
#define PG_CONN_BACKOFF_FIRST_S 0.1
#define PG_CONN_BACKOFF_MAX_S   2.0

/* Seconds a connection attempt (connect, authentication and set-up) may take: far above a
 * healthy server's few milliseconds, short enough that an unreachable host does not hold the
 * node's writes for long. */
#define PG_CONN_CONNECT_TIMEOUT_S 5.0

/* Called with each result of a statement (status as libpq gives it; the connection clears it
 * after the call), or with the PGRES_PIPELINE_SYNC result of a sync point. */
typedef void pg_conn_result_fn(void *arg, PGresult *r);
typedef void pg_conn_event_fn(void *arg);

enum pg_conn_state {
    PG_CONN_DOWN,       /* waiting to try again (or stopped) */
    PG_CONN_CONNECTING, /* PQconnectPoll in progress */
    PG_CONN_SETUP,      /* connected; the session set-up is running */
    PG_CONN_READY,      /* usable */
    PG_CONN_BROKEN      /* failed inside an owner's call; torn down on the next loop turn */
};

struct pg_conn_item {
    pg_conn_result_fn *fn;
    void *arg;
    bool sync; /* a sync point: answered by PGRES_PIPELINE_SYNC alone */
    bool got;  /* a statement: at least one result came */
};

struct pg_conn {
    struct ev_loop *loop;
    const char *const *keys; /* libpq connection keywords and values (the owner's) */
    const char *const *vals;
    const char *who; /* "writer", "reader": for messages */
    PGconn *pc;
    enum pg_conn_state state;
    bool running; /* reconnects after a failure (false once stopped) */
    bool bare;    /* no session set-up: ready once connected (an export's connection) */
    ev_io io;
    int fd, events; /* what the loop (or a synchronous wait) watches for */
    bool io_on;
    ev_timer timer; /* connect deadline, backoff wait, or deferred teardown */
    bool timer_on;
    unsigned failures;          /* since the connection was last ready */
    struct pg_conn *peer;       /* paired with (pg_conn_pair), or NULL */
    bool hurried;               /* this attempt was started because the peer is ready */
    struct pg_conn_item *items; /* ring of items awaiting results */
    size_t head, n, cap;
    bool setup_failed;
    pg_conn_event_fn *raw; /* out of pipeline mode: the owner's handler, else NULL */
    pg_conn_event_fn *ready;
    pg_conn_event_fn *lost;
    void *arg;
    char why[STORE_ERR_MAX]; /* the last failure, one line */
};

/* Sets up c (not connected). keys/vals must outlive it. */
void pg_conn_init(struct pg_conn *c, struct ev_loop *loop, const char *const *keys,
                  const char *const *vals, const char *who, pg_conn_event_fn *ready,
                  pg_conn_event_fn *lost, void *arg);

/* Connects, blocking up to PG_CONN_CONNECT_TIMEOUT_S, without running the loop (for open).
 * False on failure, with c->why; c is then down and not running. On success it is ready and
 * from now on reconnects by itself (`ready` is not called for this first connection). */
bool pg_conn_open(struct pg_conn *c);

/* Starts connecting without blocking, once: `ready` or `lost` follows, and a failure is not
 * retried (an export's connection). */
void pg_conn_start(struct pg_conn *c);

/* Closes the connection and its watchers; no callback runs afterwards. */
void pg_conn_stop(struct pg_conn *c);

/* Pairs a and b, two connections to one server: when either becomes ready again, the other
 * tries at once if it is waiting out its backoff. */
void pg_conn_pair(struct pg_conn *a, struct pg_conn *b);

/* True when statements can be sent. */
bool pg_conn_ready(const struct pg_conn *c);

/* True while an attempt is under way that was started because the peer became ready: the
 * server was reachable a moment ago, so work may wait for `ready` (or `lost`) rather than fail
 * at once. */
bool pg_conn_coming(const struct pg_conn *c);

/* Queues prepared statement s with text parameters; fn gets its results. False when the
 * connection is broken (then `lost` follows). */
bool pg_conn_query(struct pg_conn *c, enum pg_stmt s, int n, const char *const *params,
                   pg_conn_result_fn *fn, void *arg);

/* Queues a statement that is not prepared, without parameters (BEGIN, COMMIT, ...). */
bool pg_conn_exec(struct pg_conn *c, const char *sql, pg_conn_result_fn *fn, void *arg);

/* Queues a sync point (the end of an implicit transaction); fn gets PGRES_PIPELINE_SYNC. */
bool pg_conn_sync(struct pg_conn *c, pg_conn_result_fn *fn, void *arg);

/* Asks the server to send what it has so far (PQsendFlushRequest). */
bool pg_conn_flush_request(struct pg_conn *c);

/* Sends what is queued; what does not fit now goes when the socket is writable. */
bool pg_conn_flush(struct pg_conn *c);

/* Items sent and not yet answered. */
size_t pg_conn_pending(const struct pg_conn *c);

/* Leaves pipeline mode (nothing may be pending), for a COPY: until pg_conn_pipeline, the owner
 * drives the connection with libpq directly, and `raw` is called whenever the socket had
 * something (input consumed, output flushed). */
bool pg_conn_unpipeline(struct pg_conn *c, pg_conn_event_fn *raw);
bool pg_conn_pipeline(struct pg_conn *c);

/* Watches for writability too (a COPY's data did not all fit). */
void pg_conn_want_write(struct pg_conn *c);

/* Marks the connection broken with reason `why` (the owner found it unusable): `lost` comes
 * on the next loop turn. */
void pg_conn_break(struct pg_conn *c, const char *why);

/* Processes what the socket has ready, as the loop would (used while not in pipeline mode by
 * the owner's own driving, and by synchronous waits). */
void pg_conn_io(struct pg_conn *c, int revents);

/* Waits, blocking up to `seconds`, for the socket to be ready for what c watches, and processes
 * it; false on timeout or when c is not connected. For close, which must finish a batch. */
bool pg_conn_wait(struct pg_conn *c, double seconds);

/* The one-line reason of a result's error (libpq's message, newlines made spaces), into buf. */
const char *pg_conn_result_error(const PGresult *r, char *buf, size_t len);

#endif
