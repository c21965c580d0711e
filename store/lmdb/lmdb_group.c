/* lmdb_group.c - a batch's write transaction and its operations, direct or nested (see
 * lmdb_group.h). */
#include "lmdb_group.h"

#include <stdio.h>
#include <string.h>

#include "backend.h"

/* Room kept for what the commit itself writes: the free-page list (8 bytes a page freed by a
 * large group) and the meta record. 4096 pages is 16 MiB. */
#define DIRECT_MARGIN_PAGES 4096

void
lmdb_group_init(struct lmdb_group *g, const struct lmdb_env *env, const struct lmdb_state *from)
{
    memset(g, 0, sizeof *g);
    g->env = env;
    g->s = *from;
    g->base = *from;
}

/* Pages at the end of the map that no commit has used yet, less a margin for what the commit
 * itself writes: the most the group may take from the end of the map for direct operations
 * without any chance of MDB_MAP_FULL. */
static uint64_t
direct_budget(const struct lmdb_env *e)
{
    MDB_envinfo info;
    MDB_stat stat;

    if (mdb_env_info(e->env, &info) != 0 || mdb_env_stat(e->env, &stat) != 0)
        return 0;
    uint64_t total = info.me_mapsize / stat.ms_psize, used = (uint64_t)info.me_last_pgno + 1;
    return total > used + DIRECT_MARGIN_PAGES ? total - used - DIRECT_MARGIN_PAGES : 0;
}

/* Drops the group's transaction and what belonged to it (LMDB freed its cursors); the state
 * goes back to the batch's start. */
static void
group_drop(struct lmdb_group *g)
{
    if (g->txn != NULL)
        mdb_txn_abort(g->txn);
    g->txn = NULL;
    g->ops = 0;
    g->direct_off = false;
    g->poisoned = false;
    memset(g->cur, 0, sizeof g->cur);
    g->s = g->base;
}

enum store_err
lmdb_group_txn(struct lmdb_group *g, MDB_txn **txn, struct store_op *op)
{
    int rc;

    if (g->poisoned)
        return store_op_fail(op, STORE_IO, "an earlier operation of this batch failed");
    if (g->txn == NULL) {
        rc = mdb_txn_begin(g->env->env, NULL, 0, &g->txn);
        if (rc != 0) {
            g->txn = NULL;
            return lmdb_env_fail(op, rc, "begin group");
        }
        g->direct_pages = direct_budget(g->env); /* counted afresh for every group */
    }
    *txn = g->txn;
    return STORE_OK;
}

enum store_err
lmdb_group_op_begin(struct lmdb_group *g, struct lmdb_group_op *gop, unsigned pages,
                    struct store_op *op)
{
    MDB_txn *parent = NULL;
    enum store_err e;
    int rc;

    if ((e = lmdb_group_txn(g, &parent, op)) != STORE_OK)
        return e;
    gop->s = g->s;
    memset(gop->cur, 0, sizeof gop->cur);
    gop->discard = false;
    gop->direct = pages > 0 && !g->direct_off && g->direct_pages >= pages;
    if (gop->direct) {
        g->direct_pages -= pages;
        gop->txn = parent;
        return STORE_OK;
    }
    if (pages == LMDB_GROUP_NESTED)
        g->direct_off = true;
    if ((rc = mdb_txn_begin(g->env->env, parent, 0, &gop->txn)) != 0) {
        gop->txn = NULL;
        return lmdb_env_fail(op, rc, "begin operation");
    }
    return STORE_OK;
}

int
lmdb_group_op_cursor(struct lmdb_group *g, struct lmdb_group_op *gop, enum lmdb_db db,
                     MDB_cursor **cur)
{
    MDB_cursor **slot = gop->direct ? &g->cur[db] : &gop->cur[db];
    int rc = 0;

    if (*slot == NULL)
        rc = mdb_cursor_open(gop->txn, g->env->dbi[db], slot);
    *cur = *slot;
    return rc;
}

int
lmdb_group_op_put(struct lmdb_group *g, struct lmdb_group_op *gop, enum lmdb_db db, MDB_val *key,
                  MDB_val *val, unsigned flags)
{
    MDB_cursor *cur;
    int rc = lmdb_group_op_cursor(g, gop, db, &cur);

    return rc != 0 ? rc : mdb_cursor_put(cur, key, val, flags);
}

enum store_err
lmdb_group_op_drain(struct lmdb_group *g, struct lmdb_group_op *gop, enum lmdb_db db,
                    lmdb_group_drain_fn *fn, const char *what, struct store_op *op)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int64_t time;
    uint64_t seq;
    enum store_err e;
    int rc;

    op->out.count = 0;
    op->out.more = false;
    if ((rc = lmdb_group_op_cursor(g, gop, db, &cur)) != 0)
        return lmdb_env_fail(op, rc, what);
    /* The head again after each delete: it is always the oldest left. */
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        if (!lmdb_codec_expiry_key_decode(&k, &time, &seq))
            return store_op_fail(op, STORE_CORRUPT, "%s: a key of %s does not decode", what,
                                 lmdb_env_db_name(db));
        if (time >= op->now)
            return STORE_OK;
        if (op->out.count == op->in.max) {
            op->out.more = true;
            return STORE_OK;
        }
        if ((e = fn(g, gop, op, time, seq, &v)) != STORE_OK)
            return e;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            return lmdb_env_fail(op, rc, what);
        op->out.count++;
    }
    return rc == MDB_NOTFOUND ? STORE_OK : lmdb_env_fail(op, rc, what);
}

enum store_err
lmdb_group_op_abort(struct lmdb_group *g, struct lmdb_group_op *gop, enum store_err e)
{
    if (gop->direct) {
        /* Checks fail before any write; anything else may have written into the group. */
        bool clean = e == STORE_OK || e == STORE_NO_COUPONS || e == STORE_INVALID ||
                     e == STORE_EXHAUSTED || e == STORE_EXPIRED || e == STORE_ID_CONFLICT ||
                     e == STORE_UNKNOWN_HOLD || e == STORE_UNKNOWN_REDEMPTION;
        if (!clean)
            g->poisoned = true;
    } else if (gop->txn != NULL) {
        mdb_txn_abort(gop->txn); /* its cursors go with it */
    }
    gop->txn = NULL;
    return e;
}

enum store_err
lmdb_group_op_commit(struct lmdb_group *g, struct lmdb_group_op *gop, const char *what,
                     struct store_op *op)
{
    int rc = gop->direct ? 0 : mdb_txn_commit(gop->txn);

    gop->txn = NULL;
    if (rc != 0) {
        /* A failed nested commit may leave the group unusable (LMDB flags it). Without an
         * operation in it yet, start the batch's group afresh; else the commit will fail. */
        if (g->ops == 0)
            group_drop(g);
        return lmdb_env_fail(op, rc, what);
    }
    g->s = gop->s;
    g->ops++;
    return STORE_OK;
}

enum store_err
lmdb_group_end(struct lmdb_group *g, char *msg, size_t len)
{
    int rc;

    if (g->poisoned) {
        group_drop(g);
        snprintf(msg, len, "commit: an operation failed inside the batch after it wrote");
        return STORE_IO;
    }
    if (g->ops == 0) {
        group_drop(g); /* reads only, or nothing stayed: no commit, no fsync */
        return STORE_OK;
    }
    /* The counters go in once per batch, not once per operation. */
    if ((rc = lmdb_env_state_put(g->env, g->txn, &g->s)) != 0) {
        group_drop(g);
        snprintf(msg, len, "commit: write meta state: %s", mdb_strerror(rc));
        return lmdb_env_err(rc);
    }
    rc = mdb_txn_commit(g->txn); /* frees the transaction, committed or not */
    g->txn = NULL;
    if (rc != 0) {
        group_drop(g);
        snprintf(msg, len, "commit: %s", mdb_strerror(rc));
        return lmdb_env_err(rc);
    }
    return STORE_OK;
}
