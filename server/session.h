/* session.h - one client's conversation: the protocol state of a connection (AUTH, the first
 * line, an UPLOAD's records) and its requests in arrival order. Requests run as soon as they
 * arrive, several at a time, and their replies are written strictly in order, each as soon as
 * it and every one before it are done. A client that pipelines more than the session lets run
 * at once is simply not read further until replies go out: it is slowed, never dropped. */
#ifndef COUPOND_SESSION_H
#define COUPOND_SESSION_H

#include <stdbool.h>
#include <stddef.h>

struct cmd_env;
struct conn;
struct session;

/* Requests of one connection started and not yet answered at most: beyond this the connection
 * is not read until replies go out. Deep enough for any pipelining client to keep a group
 * commit full; small enough that 10,000 connections cannot pile up gigabytes of requests. */
#define SESSION_PIPELINE_MAX 128
/* Reading resumes when the queue has drained to this. */
#define SESSION_PIPELINE_LOW (SESSION_PIPELINE_MAX / 2)

struct session_set;

/* The server's sessions, sharing `env`. NULL when out of memory. */
struct session_set *session_set_new(struct cmd_env *env);
/* Frees the set; its connections must be closed already (conn_pool_free). */
void session_set_free(struct session_set *set);

/* Starts a session on a new connection; NULL when out of memory (the caller closes it). It
 * leaves the set by itself when its connection closes. */
struct session *session_new(struct session_set *set, struct conn *c);

/* Shutdown: no new request starts anywhere; each connection closes once every reply it is owed
 * is written. */
void session_set_shutdown(struct session_set *set);

/* Sessions open. */
size_t session_set_count(const struct session_set *set);

#endif
