/* lmdb_backup.h - BACKUP on LMDB (store.h): mdb_env_copy2 with MDB_CP_COMPACT on a thread of
 * its own, completed on the loop thread through an ev_async.
 *
 * Threads. The loop thread starts a backup by copying the operation's path into `path` and
 * creating the thread; pthread_create orders those writes before anything the thread reads. The
 * thread reads only the environment (never written between open and close, lmdb_env.h), `path`,
 * `loop` and `async`; it writes its outcome under `mu` and wakes the loop with ev_async_send.
 * The loop thread takes the outcome under `mu`, joins the thread, and completes the operation,
 * which only the loop thread ever touches. So the store's other state (the writer's batches, the
 * loop's snapshot and exports) is never seen by the backup thread.
 *
 * LMDB. The copy is a read transaction of its own, begun on the backup thread (MDB_NOTLS gives
 * each read transaction its own reader slot, lmdb_env.c): it sees the newest commit when it
 * began, which LMDB shows only once it is synced, so the copy is durable state. The writer and
 * the loop's reads go on meanwhile; the copy's transaction pins the pages of its snapshot, so
 * under writes the data file may grow for as long as the copy runs, as during a long EXPORT.
 * The compacting copy leaves out free pages and writes the tree in order. */
#ifndef COUPOND_LMDB_BACKUP_H
#define COUPOND_LMDB_BACKUP_H

#include <ev.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lmdb_env.h"
#include "store.h"

struct lmdb_backup {
    const struct lmdb_env *env;
    struct ev_loop *loop;
    ev_async async;          /* wakes the loop thread when the copy has ended */
    bool ready;              /* the mutex and the watcher are set up */
    bool running;            /* loop thread: a thread was started and is not yet joined */
    struct store_op *op;     /* loop thread: the operation of the running backup */
    pthread_t thread;        /* loop thread */
    char path[PATH_MAX];     /* the thread's (see above) */
    pthread_mutex_t mu;      /* orders the outcome below */
    bool finished;           /* under mu: the thread has set the outcome */
    enum store_err err;      /* under mu */
    uint64_t bytes;          /* under mu: the size of the copy's data file */
    char msg[STORE_ERR_MAX]; /* under mu: on failure, a one-line reason */
};

/* Sets up backups of env, completed on `loop`. STORE_IO with msg when the mutex cannot be made;
 * nothing is then left to stop. */
enum store_err lmdb_backup_init(struct lmdb_backup *b, const struct lmdb_env *env,
                                struct ev_loop *loop, char *msg, size_t len);

/* Runs STORE_OP_BACKUP `op` (store.h). The copy goes on after this returns, and op completes on
 * the loop thread when it has ended; when it cannot start (another backup runs, the path is too
 * long, no thread) op completes at once with STORE_IO. Loop thread. */
void lmdb_backup_run(struct lmdb_backup *b, struct store_op *op);

/* Waits for a backup in progress to end (its operation is not completed) and frees what init set
 * up. Loop thread; before the environment is closed. */
void lmdb_backup_stop(struct lmdb_backup *b);

#endif
