/* megadeal.h - the MEGADEAL service: admitting REQUESTs to the queue, STATUS and WAIT, the timer
 * that drives grants, and grants committed through the group. It answers through views and
 * tickets, never by writing to a connection: a WAIT gives it a ticket, and the ticket's
 * callback runs when the task finishes. The queue and its limits are mega.h's; the ids are
 * task.h's. */
#ifndef COUPOND_MEGADEAL_H
#define COUPOND_MEGADEAL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "mega.h"
#include "proto.h"
#include "store.h"
#include "task.h"

struct group;
struct log;
struct megadeal;

#define MEGADEAL_MSG_MAX 96 /* an error's message */
/* Request ids of MEGADEAL REQUESTs kept at most: one per task alive (queued, in flight, or
 * finished and kept MEGA_RETAIN_SECONDS), and a few more when a user asks again with another id;
 * past this a REQUEST with an id is ERR BUSY, so ids cannot grow memory without end (100,000
 * ids of about 200 bytes is 20 MB). */
#define MEGADEAL_RIDS_MAX MEGA_QUEUE_CAP
/* Seconds a node waits before it tries a grant again when the limits shared by the nodes of a
 * PostgreSQL store were taken (STORE_LIMITED): a slot frees when a grant leaves the one-second
 * window or an open one is answered, every 0.1 s on average at the default rate of 10; trying
 * twice as often keeps the shared rate near its limit, and a node asks at most 20 times a
 * second while it waits. */
#define MEGADEAL_LIMITED_RETRY_S 0.05
/* Grant slots per allowed grant in flight: one for the grant's ASSIGN, one for the close of its
 * shared slot (GRANT_DONE) that follows the answer while the next grant may already start. */
#define MEGADEAL_SLOTS_PER_GRANT 2

/* A task as a reply shows it, or the error that answers instead. */
struct megadeal_view {
    enum proto_err err; /* PROTO_OK: the fields below; else msg */
    char msg[MEGADEAL_MSG_MAX];
    char id[TASK_ID_BUF];
    bool granted;               /* else queued */
    unsigned position;          /* queued: 1 is next */
    struct proto_coupon coupon; /* granted */
    struct log_note note;       /* the command's log line: task=, position=, again=, held= */
    bool replayed;              /* a REQUEST's id named this task already */
};

/* What a MEGADEAL REQUEST's id names (megadeal_rid_find). */
enum megadeal_rid {
    MEGADEAL_RID_NONE = 0, /* nothing the service knows: ask the store, then enqueue */
    MEGADEAL_RID_FOUND,    /* the task it was given */
    MEGADEAL_RID_CONFLICT  /* a task of another request */
};

/* A WAIT held until its task finishes. The service fills `view` and calls `done`, once. */
struct megadeal_ticket {
    void (*done)(struct megadeal_ticket *t);
    void *arg;
    struct megadeal_view view;
    uint64_t seq; /* the service's */
    struct megadeal_ticket *prev, *next;
};

struct megadeal_config {
    unsigned rate, concurrency, wait; /* the --megadeal-* flags */
    unsigned min_validity;            /* --min-validity: a grant's coupon lasts at least this */
    const char *data_dir;             /* where task.key is */
};

/* Loads or makes DATADIR/task.key and sets up the queue. NULL with a one-line reason in errbuf
 * on failure. */
struct megadeal *megadeal_new(struct ev_loop *loop, const struct megadeal_config *cfg,
                              struct group *g, struct log *lg, char *errbuf, size_t errlen);

/* Frees the queue (queued tasks are lost, as on any restart) and wipes the key. NULL is a
 * no-op. No ticket may be held. */
void megadeal_free(struct megadeal *md);

/* REQUEST user MEGADEAL, with `available` unassigned, unexpired MEGADEAL coupons: admits a task
 * (or finds the user's queued one) and fills *v. `conn`/`peer` name the client in the log.
 * `rid` (NULL: none) is the request's id: the task keeps it, so a retry with it gets the same
 * task (megadeal_rid_find), and the task's grant stores it with the assignment (with the task's
 * sequence and stamp), so that a retry after a restart finds the grant in the store. When the id
 * names a task already, that task is the answer (v->replayed), or ERR ID_CONFLICT. */
void megadeal_enqueue(struct megadeal *md, const char *user, uint64_t available, uint64_t conn,
                      const char *peer, const struct store_rid *rid, struct megadeal_view *v);

/* The task a MEGADEAL REQUEST's id names, while the service has it: queued, in flight, or
 * granted within MEGA_RETAIN_SECONDS. A task that failed (TIMEOUT, NO_COUPONS) forgets its ids:
 * an ERR changed nothing, so a retry runs again. FOUND fills *v (v->replayed). */
enum megadeal_rid megadeal_rid_find(struct megadeal *md, const struct store_rid *rid,
                                    struct megadeal_view *v);

/* True when a task holds this id (any fingerprint): another write with it is ID_CONFLICT, since
 * the store learns a MEGADEAL REQUEST's id only with its grant. */
bool megadeal_rid_taken(struct megadeal *md, const struct store_rid *rid);

/* The view of a grant the store kept under a request id (STORE_OP_RID_GET, after a restart):
 * task `seq` made at `stamp` for `user`, granted coupon c. Its id is rebuilt as the task's was
 * (the same while --megadeal-wait is). */
void megadeal_view_granted(const struct megadeal *md, uint64_t seq, int64_t stamp, const char *user,
                           const struct proto_coupon *c, struct megadeal_view *v);

/* STATUS id: fills *v with the task's state. */
void megadeal_status(struct megadeal *md, const char *id, struct megadeal_view *v);

/* WAIT id: like STATUS for a task that finished; for a queued one the ticket is held, and true
 * is returned: t->done runs when the task finishes (or the service stops). */
bool megadeal_wait(struct megadeal *md, const char *id, struct megadeal_ticket *t);

/* Drops a held ticket; its callback never runs. */
void megadeal_cancel(struct megadeal *md, struct megadeal_ticket *t);

/* Shutdown: no more grants or admissions; every held ticket is answered at once with
 * ERR BUSY. */
void megadeal_stop(struct megadeal *md);

/* True while grants are being committed. */
bool megadeal_busy(const struct megadeal *md);

/* The queue's counters, for STATS. */
void megadeal_counters(const struct megadeal *md, struct mega_counters *out);

#endif
