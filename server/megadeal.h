/* megadeal.h - the MEGADEAL queue inside the server: REQUEST, STATUS and WAIT, the timer that
 * drives grants, grants in the group commit, the replies held for WAIT, and the log lines.
 * The queue and its limits are mega.h's; the ids are task.h's. */
#ifndef COUPOND_MEGADEAL_H
#define COUPOND_MEGADEAL_H

#include <stdbool.h>
#include <stddef.h>

#include "mega.h"
#include "proto.h"

struct server;
struct conn;
struct log_note;
struct megadeal;

/* Loads or makes DATADIR/task.key and sets up the queue with the server's --megadeal-* flags.
 * NULL with a one-line reason in errbuf on failure. */
struct megadeal *megadeal_new(struct server *srv, char *errbuf, size_t errlen);

/* Frees the queue (queued tasks are lost, as on any restart) and wipes the key. NULL is a
 * no-op. Call it after every connection is closed. */
void megadeal_free(struct megadeal *md);

/* REQUEST user MEGADEAL: admits a task and writes the reply to c, "OK task=ID status=queued
 * position=P" or an error. Writes nothing to the store, so the reply needs no commit.
 * Returns the reply's error code (PROTO_OK) and adds fields for the command's log line to note. */
enum proto_err megadeal_request(struct megadeal *md, struct conn *c, const char *user,
                                struct log_note *note);

/* STATUS id (wait false) or WAIT id (wait true): writes the task's state to c. For WAIT on a
 * task not yet granted, c is blocked and answered when the task is granted or fails; then
 * *deferred is set. Returns the reply's error code and adds fields for the log line to note. */
enum proto_err megadeal_status(struct megadeal *md, struct conn *c, const char *id, bool wait,
                               bool *deferred, struct log_note *note);

/* Called by the server after each group commit with its outcome: the grants allocated in the
 * group are granted (ok) or go back to the queue, and their waiters are answered. */
void megadeal_committed(struct megadeal *md, bool ok, const char *why);

/* Forgets a closing connection that waits on a task (the task itself goes on). */
void megadeal_conn_closed(struct megadeal *md, struct conn *c);

/* Shutdown: no more grants are started and no more tasks admitted. */
void megadeal_stop(struct megadeal *md);

/* The queue's counters, for STATS. */
void megadeal_counters(const struct megadeal *md, struct mega_counters *out);

#endif
