/* lmdb_store.c - the LMDB backend's table: open, close, read, commit, release (see
 * lmdb_store.h). */
#include "lmdb_store.h"

#include <stdio.h>
#include <stdlib.h>

#include "lmdb_backup.h"
#include "lmdb_codec.h"
#include "lmdb_env.h"
#include "lmdb_export.h"
#include "lmdb_read.h"
#include "lmdb_view.h"
#include "lmdb_writer.h"

struct lmdb_store {
    struct store base; /* first: store.c hands this pointer back */
    struct lmdb_env env;
    struct lmdb_writer writer;
    /* The loop thread's alone (see lmdb_store.h). */
    struct lmdb_snap snap;
    struct lmdb_state committed; /* the state of the last completed commit */
    struct lmdb_exports exports;
    struct lmdb_backup backup; /* BACKUP's thread (lmdb_backup.h) */
};

static struct lmdb_store *
lmdb_of(struct store *st)
{
    return (struct lmdb_store *)(void *)st;
}

/* The writer finished a batch (loop thread). */
static void
batch_done(void *arg, struct store_batch *b, enum store_err err, const struct lmdb_state *s)
{
    struct lmdb_store *st = arg;

    if (err == STORE_OK)
        st->committed = *s;
    lmdb_view_snap_reset(&st->snap); /* the next read sees this commit */
    store_batch_complete(b, err);    /* last: its callback may commit again, or close */
}

static enum store_err
lmdb_open(const char *dir, const struct store_config *cfg, struct store **out, char *errbuf,
          size_t errlen)
{
    char why[STORE_ERR_MAX];
    struct lmdb_store *st;
    enum store_err e;

    if (cfg->loop == NULL) {
        snprintf(errbuf, errlen, "store %s: no event loop to complete operations on", dir);
        return STORE_IO;
    }
    if ((st = calloc(1, sizeof *st)) == NULL) {
        snprintf(errbuf, errlen, "store %s: out of memory", dir);
        return STORE_IO;
    }
    st->base.backend = &store_lmdb_backend;
    if ((e = lmdb_env_open(&st->env, dir, cfg, &st->committed, errbuf, errlen)) != STORE_OK) {
        free(st);
        return e;
    }
    e = lmdb_writer_start(&st->writer, &st->env, cfg->loop, !st->env.rdonly, batch_done, st, why,
                          sizeof why);
    if (e != STORE_OK) {
        snprintf(errbuf, errlen, "store %s: %s", dir, why);
        lmdb_env_close(&st->env);
        free(st);
        return e;
    }
    if ((e = lmdb_backup_init(&st->backup, &st->env, cfg->loop, why, sizeof why)) != STORE_OK) {
        snprintf(errbuf, errlen, "store %s: %s", dir, why);
        lmdb_writer_stop(&st->writer);
        lmdb_env_close(&st->env);
        free(st);
        return e;
    }
    *out = &st->base;
    return STORE_OK;
}

static void
lmdb_close(struct store *base)
{
    struct lmdb_store *st = lmdb_of(base);

    lmdb_writer_stop(&st->writer);
    lmdb_backup_stop(&st->backup);
    lmdb_export_close_all(&st->exports);
    lmdb_view_snap_close(&st->snap);
    lmdb_env_close(&st->env);
    free(st);
}

static void
lmdb_read(struct store *base, struct store_op *op)
{
    struct lmdb_store *st = lmdb_of(base);
    struct lmdb_view v;
    int rc;

    if (op->kind == STORE_OP_BACKUP) {
        lmdb_backup_run(&st->backup, op); /* on a thread of its own; completes later */
        return;
    }
    if (store_op_writes(op->kind)) {
        store_op_fail(op, STORE_IO, "operation %d writes: it belongs in a batch", (int)op->kind);
    } else if (op->kind == STORE_OP_EXPORT) {
        lmdb_export_run(&st->exports, &st->env, op); /* a snapshot of its own */
    } else if (lmdb_writer_busy(&st->writer) && !st->snap.live) {
        /* A snapshot begun now might already show the batch in flight. */
        store_op_fail(op, STORE_IO, "no read snapshot while a batch commits");
    } else if ((rc = lmdb_view_snap_begin(&st->snap, &st->env)) != 0) {
        lmdb_env_fail(op, rc, "begin read snapshot");
    } else {
        v = lmdb_view_of_snap(&st->snap, &st->env, &st->committed, !lmdb_writer_busy(&st->writer));
        lmdb_read_run(&v, op);
    }
    store_op_complete(op);
}

static void
lmdb_commit(struct store *base, struct store_batch *b)
{
    struct lmdb_store *st = lmdb_of(base);

    if (lmdb_writer_busy(&st->writer))
        abort(); /* the caller broke store.h's rule: one batch in flight at a time */
    if (st->env.rdonly) {
        snprintf(b->msg, sizeof b->msg, "commit: the store is open read-only");
        lmdb_writer_refuse(&st->writer, b, STORE_IO);
        return;
    }
    /* Pin the last commit for the reads made while the batch runs. Should it fail, those reads
     * fail rather than see the batch before it completes. */
    (void)lmdb_view_snap_begin(&st->snap, &st->env);
    lmdb_writer_submit(&st->writer, b, &st->committed);
}

static void
lmdb_release(struct store *base)
{
    struct lmdb_store *st = lmdb_of(base);

    /* In flight, the snapshot must stay on the last completed commit. */
    if (!lmdb_writer_busy(&st->writer))
        lmdb_view_snap_reset(&st->snap);
}

const struct store_backend store_lmdb_backend = {
    .version = STORE_BACKEND_VERSION,
    .name = "lmdb",
    .scheme = "lmdb",
    .open = lmdb_open,
    .close = lmdb_close,
    .read = lmdb_read,
    .commit = lmdb_commit,
    .release = lmdb_release,
    .commit_delay_us = 0, /* see store_commit_delay */
};
