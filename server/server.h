/* server.h - the coupond server: the loop and everything on it, wired together. main() makes
 * one; nothing else sees inside. */
#ifndef COUPOND_SERVER_H
#define COUPOND_SERVER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"

struct log;
struct opts;
struct server;
struct store;

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

/* Takes a connected socket (non-blocking) as a client, as if accepted from `peer`. False when
 * out of memory (the socket is closed). The fuzzers feed the server this way. */
bool server_adopt(struct server *srv, int fd, const char *peer);

/* Clients connected now, and request lines executed since start. */
size_t server_clients(const struct server *srv);
uint64_t server_commands(const struct server *srv);

/* True when no commit is in flight or waiting, and no service has work going. */
bool server_idle(const struct server *srv);

/* Closes every client connection at once, as a crashing client would be. */
void server_close_clients(struct server *srv);

#endif
