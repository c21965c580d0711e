/* purge.h - the purge service: deletes expired, never-redeemed coupons in bounded chunks, one
 * chunk per group commit, so millions of them never freeze the server. A PURGE command gives it
 * a ticket and is answered through the ticket's callback when its run ends. */
#ifndef COUPOND_PURGE_H
#define COUPOND_PURGE_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct group;
struct log;
struct purge;

/* Coupons deleted per chunk: a few milliseconds of store work, so the other members of the
 * chunk's batch wait at most that long for their commit while a big purge runs. */
#define PURGE_CHUNK 5000

/* A PURGE waiting for its run. The service fills the outcome and calls `done`, once. */
struct purge_ticket {
    void (*done)(struct purge_ticket *t);
    void *arg;
    /* outcome */
    bool ok;            /* the run ended; else it failed (`why`) or never started (shutdown) */
    uint64_t purged;    /* coupons deleted and durable */
    bool more;          /* the run was stopped by a shutdown with expired coupons left */
    const char *why;    /* failure: a reason for people; static or valid until done returns */
    enum store_err err; /* failure: the store's error; STORE_OK when the run never started */
    double seconds;     /* how long the run took */
    struct purge_ticket *next;
};

struct purge *purge_new(struct ev_loop *loop, struct group *g, struct log *lg);
void purge_free(struct purge *p);

/* Asks for a purge of what has expired by now. `t` (or NULL for the timer) is answered when
 * the run ends. A request made while a run is going joins the next run. */
void purge_request(struct purge *p, struct purge_ticket *t);

/* Drops a ticket; its callback never runs. */
void purge_cancel(struct purge *p, struct purge_ticket *t);

/* Shutdown: the current run stops after its chunk in flight and answers with more=1 when
 * expired coupons are left; requests not yet started are answered with a failure. */
void purge_stop(struct purge *p);

/* True while a run is going or waiting to start. */
bool purge_busy(const struct purge *p);

#endif
