/* server.h - the coupond server: the loop and everything on it, wired together. main() makes
 * one; nothing else sees inside. */
#ifndef COUPOND_SERVER_H
#define COUPOND_SERVER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "keys.h"

struct log;
struct opts;
struct server;
struct store;

/* Accepting stops this long after accept() fails for lack of descriptors (EMFILE), so a full
 * table does not spin the loop; by then some connection has usually gone. */
#define SERVER_ACCEPT_PAUSE   0.1
#define SERVER_ACCEPT_BATCH   64  /* accepts per readiness event, so a flood can't starve others */
#define SERVER_SHUTDOWN_GRACE 5.0 /* seconds to deliver the last replies on SIGTERM */
#define SERVER_FD_RESERVE     64  /* descriptors beyond the clients: listener, store, log, ... */

/* Sets up the server on `loop`: listener, signals, timers, the MEGADEAL queue and its key
 * file. The store and log must be open. NULL with a one-line reason in errbuf (port in use,
 * bad address, task.key refused, ...). */
struct server *server_new(struct ev_loop *loop, const struct opts *opts, struct store *store,
                          struct log *lg, const unsigned char admin_key[KEYS_BYTES], char *errbuf,
                          size_t errlen);

/* Runs the loop until SIGINT/SIGTERM has been handled and every reply owed is written. */
void server_run(struct server *srv);

/* Closes every connection and frees the server (not the store or log). */
void server_free(struct server *srv);

/* Starts the graceful shutdown, as SIGTERM does. */
void server_shutdown(struct server *srv);

/* The port it listens on (the one picked, with port 0). */
unsigned server_port(const struct server *srv);

#endif
