/* mega.h - the MEGADEAL queue and its limiter: FIFO tasks, a sliding one-second window of grant
 * times, a cap on grants in flight, deadlines, and results kept for a while after the end.
 * Pure: no libev, no store, no sockets. Every function takes the current time as a parameter
 * (seconds on any clock that never goes backwards), so tests drive it with a simulated clock. */
#ifndef COUPOND_MEGA_H
#define COUPOND_MEGA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* PROTOCOL.md's limits, which are also the defaults of the server's flags. */
/* Queued tasks: as many as the rate can grant within the wait (rate x wait), so a task admitted
 * has a chance; one more REQUEST is ERR BUSY. A grant whose commit failed goes back to the
 * queue even when it is full, so it may hold up to `concurrency` more for a while.
 * MEGA_QUEUE_MAX is that bound with the default flags. */
#define MEGA_QUEUE_MAX 100
/* The bound whatever the flags: 100,000 tasks of about 300 bytes is 30 MB, and no client waits
 * behind 100,000 others (the largest rate x wait would be 3.6 million). */
#define MEGA_QUEUE_CAP           100000
#define MEGA_RATE_DEFAULT        10   /* grants in any window of MEGA_WINDOW_SECONDS */
#define MEGA_CONCURRENCY_DEFAULT 5    /* grants allocated and not yet committed and answered */
#define MEGA_WAIT_DEFAULT        10   /* seconds from REQUEST to ERR TIMEOUT */
#define MEGA_WINDOW_SECONDS      1.0  /* the sliding window of the rate limit */
#define MEGA_RETAIN_SECONDS      60.0 /* a finished task's result stays readable this long */
/* Ranges of the flags. More than 1000 grants a second would outrun one fsync'd commit per
 * loop iteration on any disk; a wait beyond an hour is a typo for a queue that holds 100. */
#define MEGA_RATE_MAX        1000
#define MEGA_CONCURRENCY_MAX 1000
#define MEGA_WAIT_MAX        3600

struct mega;

struct mega_config {
    unsigned rate;        /* 1..MEGA_RATE_MAX grants per window */
    unsigned concurrency; /* 1..MEGA_CONCURRENCY_MAX grants in flight */
    double wait;          /* seconds from enqueue to the deadline, > 0 */
    double window;        /* seconds, > 0: MEGA_WINDOW_SECONDS */
    double retain;        /* seconds a finished task stays, >= 0: MEGA_RETAIN_SECONDS */
    size_t queue_max;     /* tasks queued at most; 0: MEGA_QUEUE_MAX */
};

enum mega_state {
    MEGA_QUEUED = 0, /* waiting in the queue */
    MEGA_IN_FLIGHT,  /* its coupon is allocated; waiting for the commit */
    MEGA_GRANTED,    /* committed: `coupon` is the user's */
    MEGA_FAILED      /* will never be granted: see `fail` */
};

enum mega_fail {
    MEGA_FAIL_NONE = 0,
    MEGA_FAIL_TIMEOUT,   /* not granted by its deadline */
    MEGA_FAIL_NO_COUPONS /* no coupon was left when its turn came */
};

enum mega_err {
    MEGA_OK = 0,
    MEGA_BUSY,       /* mega_queue_max() tasks are queued */
    MEGA_NO_COUPONS, /* the queue holds as many tasks as there are coupons */
    MEGA_NOMEM
};

/* A task. The caller reads the fields; only this module writes them. Valid until the task is
 * reaped (mega_reap, mega_free): a queued or in-flight task never is. */
struct mega_task {
    uint64_t seq;                  /* 1, 2, ... in arrival order */
    char user[PROTO_USER_MAX + 1]; /* NUL-terminated */
    int64_t stamp;                 /* the caller's value given to mega_enqueue */
    double enqueued, deadline;     /* module clock; deadline = enqueued + wait */
    double finished;               /* GRANTED or FAILED: when */
    enum mega_state state;
    enum mega_fail fail;           /* FAILED: why */
    struct proto_coupon coupon;    /* GRANTED: the coupon */
    struct mega_task *prev, *next; /* private: the list the state puts it on */
};

/* Current sizes and totals since mega_new. */
struct mega_counters {
    uint64_t queued;    /* tasks in the queue now */
    uint64_t in_flight; /* tasks allocated and not yet committed now */
    uint64_t granted;   /* grants committed */
    uint64_t rejected;  /* REQUESTs refused (BUSY, NO_COUPONS) and tasks failed NO_COUPONS */
    uint64_t timed_out; /* tasks failed TIMEOUT */
};

/* Makes an empty queue; NULL when out of memory or when `cfg` is out of range. */
struct mega *mega_new(const struct mega_config *cfg);

/* Frees the queue and every task. NULL is a no-op. */
void mega_free(struct mega *m);

/* Admits a REQUEST of `user` at `now`, checked in this order: when the user already has a task
 * queued or in flight, that task (*fresh = false); MEGA_BUSY when mega_queue_max tasks are
 * waiting (queued or in flight); MEGA_NO_COUPONS when at least `available` tasks are waiting
 * (the unassigned, unexpired MEGADEAL coupons as last committed, which still counts those of
 * the grants in flight); otherwise a new task at the tail
 * (*fresh = true) with `stamp` kept in it. On MEGA_OK, *out is the task and *position its
 * place (see mega_position). BUSY and NO_COUPONS count as rejected. Outputs are untouched on
 * an error. `user` must be 1..PROTO_USER_MAX bytes. */
enum mega_err mega_enqueue(struct mega *m, const char *user, double now, int64_t stamp,
                           uint64_t available, struct mega_task **out, unsigned *position,
                           bool *fresh);

/* Takes out one queued task whose deadline has come (deadline <= now), marks it FAILED with
 * MEGA_FAIL_TIMEOUT, and returns it; NULL when there is none. Call it until NULL before
 * mega_next_grant. */
struct mega_task *mega_expire(struct mega *m, double now);

/* The task to allocate a coupon for at `now`: the head of the queue, when its deadline is
 * still ahead, fewer than `concurrency` grants are in flight, and the grants committed in the
 * window (now - window, now] plus those in flight are fewer than `rate`. NULL otherwise.
 * The caller then calls mega_grant_started or mega_grant_failed on it before anything else. */
struct mega_task *mega_next_grant(struct mega *m, double now);

/* The task's coupon is being allocated and committed: it leaves the queue and is in flight. */
void mega_grant_started(struct mega *m, struct mega_task *t);

/* The commit holding an in-flight task's coupon `c` is durable at `now`: the task is GRANTED
 * with it, and `now` is its grant time in the window. */
void mega_grant_committed(struct mega *m, struct mega_task *t, double now,
                          const struct proto_coupon *c);

/* A task from mega_next_grant (queued, or in flight) will never be granted: it fails with `why`,
 * MEGA_FAIL_NO_COUPONS when the store found no coupon for it. */
void mega_grant_failed(struct mega *m, struct mega_task *t, double now, enum mega_fail why);

/* The allocation of a queued or in-flight task was lost (the commit failed, or the store could
 * not write). The attempt uses up its slot in the window, so a failing disk is retried at most
 * `rate` times a window. The task goes back to its place at the head of the queue and true is
 * returned; or, when its deadline has come, it fails with MEGA_FAIL_TIMEOUT and false is
 * returned. */
bool mega_grant_retry(struct mega *m, struct mega_task *t, double now);

/* As mega_grant_retry, but the attempt uses up no slot in the window: nothing was granted and
 * nothing was tried that could fail again (the limits shared with other nodes were taken). */
bool mega_grant_requeue(struct mega *m, struct mega_task *t, double now);

/* The earliest time after which something is due: the next window slot when a task waits and
 * fewer than `concurrency` are in flight, the head's deadline, or the end of the oldest
 * finished task's retention. False when nothing is ever due without another call (an empty
 * queue waiting for commits and nothing finished). `now` itself means work is due now. */
bool mega_next_event(const struct mega *m, double now, double *when);

/* Frees the finished tasks whose retention ended (finished + retain <= now); returns how many. */
size_t mega_reap(struct mega *m, double now);

/* The task with sequence `seq`, or NULL when there is none or its retention ended by `now`. */
struct mega_task *mega_lookup(const struct mega *m, uint64_t seq, double now);

/* A queued or in-flight task's place among the tasks not yet granted, 1 being the next:
 * in-flight tasks first, in allocation order, then the queue. 0 for a finished task. */
unsigned mega_position(const struct mega *m, const struct mega_task *t);

/* The counters. */
void mega_counters(const struct mega *m, struct mega_counters *out);

/* Tasks the queue holds at most: cfg.queue_max, or MEGA_QUEUE_MAX when that is 0. */
size_t mega_queue_max(const struct mega *m);

/* The queue that `rate` grants per `window` can serve within `wait` seconds: rate x wait, at
 * least 1, at most MEGA_QUEUE_CAP. The server sizes its queue with it. */
size_t mega_queue_for(unsigned rate, double window, double wait);

/* The configuration in force. */
const struct mega_config *mega_config(const struct mega *m);

#endif
