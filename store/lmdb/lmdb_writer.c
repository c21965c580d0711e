/* lmdb_writer.c - the writer thread and how it runs a batch (see lmdb_writer.h). */
#include "lmdb_writer.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "lmdb_group.h"
#include "lmdb_read.h"
#include "lmdb_view.h"
#include "lmdb_write.h"

/* A read of the batch runs in the group, so it sees the batch's writes before it. */
static void
batch_read(struct lmdb_group *g, struct store_op *op)
{
    struct lmdb_view v = {.env = g->env, .s = &g->s, .keep_watermark = true, .in_group = true};

    if (lmdb_group_txn(g, &v.txn, op) == STORE_OK)
        lmdb_read_run(&v, op);
}

/* Runs every operation of b in order in group g, then ends the group (the commit). */
static enum store_err
batch_run(struct lmdb_group *g, struct store_batch *b)
{
    for (struct store_op *op = b->head; op != NULL; op = op->next) {
        if (store_op_writes(op->kind))
            lmdb_write_run(g, op);
        else
            batch_read(g, op);
    }
    return lmdb_group_end(g, b->msg, sizeof b->msg);
}

static void *
writer_main(void *arg)
{
    struct lmdb_writer *w = arg;
    struct lmdb_group g;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->job == NULL && !w->stop)
            pthread_cond_wait(&w->wake, &w->mu);
        struct store_batch *b = w->job;
        if (b == NULL)
            break; /* stopped, with nothing left to run */
        w->job = NULL;
        lmdb_group_init(&g, w->env, &w->work);
        pthread_mutex_unlock(&w->mu);

        enum store_err err = batch_run(&g, b);

        pthread_mutex_lock(&w->mu);
        w->work = g.s;
        w->finished = b;
        w->result = err;
        ev_async_send(w->loop, &w->async);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The async watcher keeps the loop running only while a batch is owed: an idle store does not
 * keep ev_run from returning, a batch in flight does. */
static void
owe(struct lmdb_writer *w, bool owed)
{
    if (owed && !w->owed)
        ev_ref(w->loop);
    else if (!owed && w->owed)
        ev_unref(w->loop);
    w->owed = owed;
}

/* Loop thread: takes a finished batch back and completes it through `done`. */
static void
on_async(struct ev_loop *loop, ev_async *a, int revents)
{
    struct lmdb_writer *w = a->data;
    struct lmdb_state s;
    struct store_batch *b;
    enum store_err err;

    (void)loop;
    (void)revents;
    pthread_mutex_lock(&w->mu);
    b = w->finished;
    err = w->result;
    s = w->work;
    w->finished = NULL;
    pthread_mutex_unlock(&w->mu);
    if (b == NULL)
        return;
    owe(w, false);
    w->done(w->arg, b, err, &s); /* last: it may close the store */
}

/* Starts the thread with every signal blocked, so that signals go to the loop thread, which
 * handles them (a signal the loop blocks for its signalfd would otherwise kill the process when
 * delivered to the writer). */
static int
thread_start(struct lmdb_writer *w)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->thread, NULL, writer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

enum store_err
lmdb_writer_start(struct lmdb_writer *w, const struct lmdb_env *env, struct ev_loop *loop,
                  bool thread, lmdb_writer_done_fn *done, void *arg, char *msg, size_t len)
{
    int rc;

    memset(w, 0, sizeof *w);
    w->env = env;
    w->loop = loop;
    w->done = done;
    w->arg = arg;
    if ((rc = pthread_mutex_init(&w->mu, NULL)) != 0) {
        snprintf(msg, len, "writer lock: %s", strerror(rc));
        return STORE_IO;
    }
    if ((rc = pthread_cond_init(&w->wake, NULL)) != 0) {
        pthread_mutex_destroy(&w->mu);
        snprintf(msg, len, "writer condition: %s", strerror(rc));
        return STORE_IO;
    }
    if (thread && (rc = thread_start(w)) != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->mu);
        snprintf(msg, len, "writer thread: %s", strerror(rc));
        return STORE_IO;
    }
    w->threaded = thread;
    ev_async_init(&w->async, on_async);
    w->async.data = w;
    ev_async_start(loop, &w->async);
    ev_unref(loop); /* see owe() */
    return STORE_OK;
}

void
lmdb_writer_submit(struct lmdb_writer *w, struct store_batch *b, const struct lmdb_state *from)
{
    owe(w, true);
    pthread_mutex_lock(&w->mu);
    w->work = *from;
    w->job = b;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

void
lmdb_writer_refuse(struct lmdb_writer *w, struct store_batch *b, enum store_err err)
{
    owe(w, true);
    pthread_mutex_lock(&w->mu);
    w->finished = b;
    w->result = err;
    pthread_mutex_unlock(&w->mu);
    ev_async_send(w->loop, &w->async);
}

bool
lmdb_writer_busy(const struct lmdb_writer *w)
{
    return w->owed;
}

void
lmdb_writer_stop(struct lmdb_writer *w)
{
    if (w->threaded) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    if (!w->owed)
        ev_ref(w->loop); /* libev wants the reference back before the watcher stops */
    ev_async_stop(w->loop, &w->async);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
}
