/* lmdb_view.h - what a read runs in: the loop thread's read snapshot of the last commit, or the
 * writer's group transaction when the read is part of a batch.
 *
 * The snapshot is the loop thread's alone (MDB_NOTLS lets it keep its reader slot across reset
 * and renew): begun on first use, then reset and renewed, never freed before close, so a read
 * allocates nothing. Its cursors are kept too and renewed with it, tracked by generation. */
#ifndef COUPOND_LMDB_VIEW_H
#define COUPOND_LMDB_VIEW_H

#include <lmdb.h>
#include <stdbool.h>

#include "lmdb_codec.h"
#include "lmdb_env.h"

struct lmdb_snap {
    MDB_txn *txn; /* NULL until first used */
    bool live;    /* begun or renewed, not reset */
    unsigned gen; /* bumped at every renew */
    MDB_cursor *cur[LMDB_NDB];
    unsigned cur_gen[LMDB_NDB];
};

/* A read's transaction and the state that goes with it. */
struct lmdb_view {
    const struct lmdb_env *env;
    MDB_txn *txn;
    struct lmdb_snap *snap; /* when txn is the snapshot: its cached cursors; else NULL */
    struct lmdb_state *s;   /* the counters as of txn */
    /* The reader may store the `available` cache it advances into *s (see lmdb_index.h). */
    bool keep_watermark;
    bool in_group; /* txn is the writer's group: the meta record is not yet written */
};

/* Makes the snapshot live on the last commit (begins or renews it); returns LMDB's code. */
int lmdb_view_snap_begin(struct lmdb_snap *snap, const struct lmdb_env *env);

/* Resets a live snapshot, so LMDB may reuse the pages it pins. */
void lmdb_view_snap_reset(struct lmdb_snap *snap);

/* Frees the snapshot and its cursors. */
void lmdb_view_snap_close(struct lmdb_snap *snap);

/* A view of the live snapshot, with the state `s` that matches it. */
struct lmdb_view lmdb_view_of_snap(struct lmdb_snap *snap, const struct lmdb_env *env,
                                   struct lmdb_state *s, bool keep_watermark);

/* A cursor on `db` for reading in the view: the snapshot's own (renewed, not allocated), or a
 * new one in a group transaction, which lmdb_view_cursor_done() closes (an open cursor on the
 * group would be shadowed by every nested transaction). Returns LMDB's code. */
int lmdb_view_cursor(const struct lmdb_view *v, enum lmdb_db db, MDB_cursor **cur);
void lmdb_view_cursor_done(const struct lmdb_view *v, MDB_cursor *cur);

#endif
