/* purge.h - deleting expired, never-redeemed coupons in bounded chunks, one chunk per loop
 * iteration inside its group commit, so millions of them never freeze the server. */
#ifndef COUPOND_PURGE_H
#define COUPOND_PURGE_H

#include <stdbool.h>

struct server;
struct conn;
struct purge;

/* Coupons deleted per loop iteration: a few milliseconds of LMDB work, so other clients wait
 * at most that long for their turn while a big purge runs. */
#define PURGE_CHUNK 5000

struct purge *purge_new(struct server *srv);
void purge_free(struct purge *p);

/* Asks for a purge. `c` (blocked until answered with "OK purged=N") is the PURGE command's
 * connection, or NULL for the timer. A request made while a run is going joins the next run,
 * so that it purges everything expired at the time it was made. */
bool purge_request(struct purge *p, struct conn *c);

/* Forgets a closing connection. */
void purge_cancel(struct purge *p, struct conn *c);

/* Runs one chunk in the current group. The server calls it before committing. */
void purge_step(struct purge *p);

/* Called after the group commit with its outcome: answers the waiters of a finished run. */
void purge_committed(struct purge *p, bool ok, const char *why);

/* True while a run is going or waiting to start. */
bool purge_busy(const struct purge *p);

/* Shutdown: the current run stops after its chunk; its waiters get the count so far. */
void purge_stop(struct purge *p);

#endif
