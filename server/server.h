/* server.h - the coupond server context: the loop, the listener, the store, the group commit.
 * Shared by the server's modules (conn, cmd, purge); main() owns the one instance. */
#ifndef COUPOND_SERVER_H
#define COUPOND_SERVER_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "keys.h"
#include "opts.h"
#include "store.h"

struct conn;
struct listener;
struct log;
struct megadeal;
struct purge;

#define SERVER_SHUTDOWN_GRACE 5.0 /* seconds to deliver the last replies on SIGTERM */
#define SERVER_FD_RESERVE     64  /* descriptors beyond the clients: listener, store, log, ... */

/* An intrusive doubly linked list of connections. */
struct conn_list {
    struct conn *head;
    size_t count;
};

struct server_stats {
    uint64_t commands;
    uint64_t connections_total;
    uint64_t rejected_clients; /* turned away at --max-clients */
    uint64_t commits;
    uint64_t commit_failures;
};

struct server {
    struct ev_loop *loop;
    const struct opts *opts;
    struct store *store;
    struct log *log;
    struct purge *purge;
    struct megadeal *mega; /* the MEGADEAL queue */
    unsigned char admin_key[KEYS_BYTES];

    struct listener *listener;
    ev_prepare prepare_w;   /* end of each loop iteration: group commit, then flush */
    ev_timer defer_w;       /* run deferred work at the next iteration without blocking */
    ev_timer purge_timer_w; /* --purge-interval */
    ev_timer shutdown_w;    /* grace period on SIGTERM */
    ev_signal sigint_w, sigterm_w, sighup_w;

    struct conn_list conns; /* every open connection */
    struct conn *group;     /* connections with replies waiting for the group commit */
    struct conn *flush;     /* connections with output to write at the iteration's end */
    struct conn *resume;    /* unblocked connections whose buffered input waits */
    struct conn *graveyard; /* closed connections, freed at the iteration's end */
    char *read_buf;         /* scratch for one read() */
    uint64_t next_conn_id;
    double started; /* wall-clock start time */
    bool shutting_down;
    struct server_stats stats;
};

/* Sets up the server: listener, signals, timers, the MEGADEAL queue and its key file. The store
 * and log must be open. Returns false with a one-line reason in errbuf (port in use, bad
 * address, task.key refused, ...). */
bool server_init(struct server *srv, struct ev_loop *loop, const struct opts *opts,
                 struct store *store, struct log *lg, const unsigned char admin_key[KEYS_BYTES],
                 char *errbuf, size_t errlen);

/* Runs the loop until SIGINT/SIGTERM has been handled. */
void server_run(struct server *srv);

/* Closes every connection and frees what server_init made (not the store or log). */
void server_free(struct server *srv);

/* Wall-clock time of the current loop iteration, in seconds, and as whole seconds for the
 * store. */
double server_now(const struct server *srv);
int64_t server_now_sec(const struct server *srv);
/* The exact wall-clock time now (not cached per iteration), for measuring durations. */
double server_now_precise(const struct server *srv);

/* Arms the zero-delay timer, so deferred work (resumed connections, purge chunks) runs at the
 * next iteration and the loop does not block meanwhile. */
void server_defer(struct server *srv);

#endif
