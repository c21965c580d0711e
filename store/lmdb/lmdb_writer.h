/* lmdb_writer.h - the writer thread of an LMDB store: it runs each committed batch in one group
 * transaction, commits it (fsync) and hands it back to the loop thread, which completes it.
 *
 * Hand-off. The loop thread and the writer share only the fields marked "under mu", and the
 * batch with its state, which change hands with them: the loop gives a batch by setting `job`
 * (with `work` = the state it starts from) and signalling `wake`; the writer takes it, runs it
 * without the lock, then sets `finished`, `result` and `work` (the state the batch leaves) and
 * wakes the loop with ev_async_send; the loop's async callback takes them back under mu and
 * calls `done`. So every byte of a batch, its operations and its state is touched by one thread
 * at a time, and mu orders each hand-over. */
#ifndef COUPOND_LMDB_WRITER_H
#define COUPOND_LMDB_WRITER_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "lmdb_codec.h"
#include "lmdb_env.h"
#include "store.h"

/* Called on the loop thread for each finished batch: its outcome, and on STORE_OK the state it
 * leaves (valid during the call). */
typedef void lmdb_writer_done_fn(void *arg, struct store_batch *b, enum store_err err,
                                 const struct lmdb_state *s);

struct lmdb_writer {
    const struct lmdb_env *env;
    struct ev_loop *loop;
    ev_async async; /* wakes the loop thread for a finished batch */
    lmdb_writer_done_fn *done;
    void *arg;
    pthread_t thread;
    bool threaded; /* the thread runs (not in a read-only store) */
    pthread_mutex_t mu;
    pthread_cond_t wake;
    struct store_batch *job;      /* under mu: handed over, not yet taken by the writer */
    struct store_batch *finished; /* under mu: finished, not yet taken back by the loop */
    enum store_err result;        /* under mu: the outcome of `finished` */
    bool stop;                    /* under mu: the thread ends once it has no job */
    bool owed; /* loop thread: a batch is handed over and not yet done (the loop is kept alive) */
    struct lmdb_state work; /* under mu: the state `job` starts from / `finished` leaves */
};

/* Sets up the hand-off on `loop` and, when `thread`, starts the writer thread for env. On
 * failure (STORE_IO, msg says why) nothing is left to stop. */
enum store_err lmdb_writer_start(struct lmdb_writer *w, const struct lmdb_env *env,
                                 struct ev_loop *loop, bool thread, lmdb_writer_done_fn *done,
                                 void *arg, char *msg, size_t len);

/* Hands batch b to the writer thread, to run from state *from. Loop thread; no batch may be in
 * flight. */
void lmdb_writer_submit(struct lmdb_writer *w, struct store_batch *b,
                        const struct lmdb_state *from);

/* Finishes batch b with `err` without running it (b->msg says why): `done` is called from the
 * loop later, never inside this call. Loop thread; no batch may be in flight. */
void lmdb_writer_refuse(struct lmdb_writer *w, struct store_batch *b, enum store_err err);

/* True from submit or refuse until the batch's `done` is called. Loop thread. */
bool lmdb_writer_busy(const struct lmdb_writer *w);

/* Lets a batch in flight finish (it is committed, `done` is not called), ends the thread and
 * the hand-off. Loop thread. */
void lmdb_writer_stop(struct lmdb_writer *w);

#endif
