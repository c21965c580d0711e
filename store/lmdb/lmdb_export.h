/* lmdb_export.h - EXPORT: a consistent snapshot, read in chunks over many calls while other
 * clients are served. Loop thread only (store_read; never in a batch).
 *
 * An open export is a read transaction of its own with a cursor on the database it walks, both
 * kept between calls; MDB_NOTLS (lmdb_env.c) lets the loop thread hold several read
 * transactions, each in a reader slot of its own. Its snapshot is the newest commit when the
 * export began, which may be a batch in flight that the writer has committed but the loop not
 * yet completed: LMDB shows a commit to new readers only after its meta page is synced, so what
 * an export shows is durable; it may show a write before that write's reply is sent, which
 * promises nothing. */
#ifndef COUPOND_LMDB_EXPORT_H
#define COUPOND_LMDB_EXPORT_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>

#include "lmdb_codec.h"
#include "lmdb_env.h"
#include "store.h"

/* Open exports at most. Each holds a read transaction, which pins the pages of its snapshot:
 * LMDB cannot reuse a page freed after the snapshot began, so while an export is open the file
 * grows with every write. A few admins exporting at once is plenty; 8 keeps that growth bounded
 * and leaves most of LMDB's 126 reader slots (its default) to the loop's snapshot and to other
 * processes (coupond --check, mdb_stat). */
#define LMDB_EXPORT_MAX 8

/* One open export: what it reads and where it stands. */
struct lmdb_export {
    bool used;
    MDB_txn *txn;
    MDB_cursor *cur; /* on coupons, history, code_hist or audit */
    enum store_export_kind kind;
    bool any_type;
    uint8_t type;
    uint8_t prefix[LMDB_CODEC_CODE_HIST_KEY_MAX]; /* CODE_HISTORY: its code's entries */
    size_t plen;
    uint64_t after;                       /* HISTORY, AUDIT: the first row's seq - 1 */
    uint8_t prev[STORE_AUDIT_HASH_BYTES]; /* AUDIT: the stored hash of the row before the next */
    bool started;                         /* the cursor has been placed on the first row */
    bool on_row;                          /* `row` is read and not yet given out */
    union {
        struct lmdb_coupon coupon;
        struct store_redemption redemption;
        struct store_audit_row audit;
    } row;
};

/* The open exports of a store (the loop thread's alone). Zeroed: none open. */
struct lmdb_exports {
    struct lmdb_export slot[LMDB_EXPORT_MAX];
};

/* Runs STORE_OP_EXPORT `op` (store.h): the first call (in.cursor NULL) opens an export (STORE_IO
 * when LMDB_EXPORT_MAX are open), every call fills up to in.cap rows (in.coupons or in.rows)
 * and sets out.count, out.more and out.cursor; at the end, or on failure, or with in.close, the
 * export is released and out.cursor is NULL. A cursor that is not an open export of x is
 * STORE_IO. Sets op->err. */
void lmdb_export_run(struct lmdb_exports *x, const struct lmdb_env *env, struct store_op *op);

/* Releases every open export (store_close). */
void lmdb_export_close_all(struct lmdb_exports *x);

#endif
