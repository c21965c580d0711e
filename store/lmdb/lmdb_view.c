/* lmdb_view.c - the loop's read snapshot and the cursors reads use (see lmdb_view.h). */
#include "lmdb_view.h"

int
lmdb_view_snap_begin(struct lmdb_snap *snap, const struct lmdb_env *env)
{
    int rc = 0;

    if (snap->live)
        return 0;
    if (snap->txn == NULL)
        rc = mdb_txn_begin(env->env, NULL, MDB_RDONLY, &snap->txn);
    else
        rc = mdb_txn_renew(snap->txn);
    if (rc != 0)
        return rc;
    snap->live = true;
    snap->gen++;
    return 0;
}

void
lmdb_view_snap_reset(struct lmdb_snap *snap)
{
    if (snap->live)
        mdb_txn_reset(snap->txn);
    snap->live = false;
}

void
lmdb_view_snap_close(struct lmdb_snap *snap)
{
    for (int i = 0; i < LMDB_NDB; i++)
        if (snap->cur[i] != NULL)
            mdb_cursor_close(snap->cur[i]);
    if (snap->txn != NULL)
        mdb_txn_abort(snap->txn);
    *snap = (struct lmdb_snap){0};
}

struct lmdb_view
lmdb_view_of_snap(struct lmdb_snap *snap, const struct lmdb_env *env, struct lmdb_state *s,
                  bool keep_watermark)
{
    return (struct lmdb_view){
        .env = env, .txn = snap->txn, .snap = snap, .s = s, .keep_watermark = keep_watermark};
}

int
lmdb_view_cursor(const struct lmdb_view *v, enum lmdb_db db, MDB_cursor **cur)
{
    struct lmdb_snap *snap = v->snap;
    int rc = 0;

    if (snap == NULL)
        return mdb_cursor_open(v->txn, v->env->dbi[db], cur);
    if (snap->cur[db] == NULL)
        rc = mdb_cursor_open(snap->txn, v->env->dbi[db], &snap->cur[db]);
    else if (snap->cur_gen[db] != snap->gen)
        rc = mdb_cursor_renew(snap->txn, snap->cur[db]);
    if (rc == 0) {
        snap->cur_gen[db] = snap->gen;
        *cur = snap->cur[db];
    }
    return rc;
}

void
lmdb_view_cursor_done(const struct lmdb_view *v, MDB_cursor *cur)
{
    if (v->snap == NULL)
        mdb_cursor_close(cur);
}
