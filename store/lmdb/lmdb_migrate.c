/* lmdb_migrate.c - building the version 2 indexes of a version 1 store (see lmdb_migrate.h). */
#include "lmdb_migrate.h"

#include <stdio.h>

#include "lmdb_codec.h"

/* Puts the index entry of one record of `from`; returns LMDB's code. */
typedef int migrate_fn(MDB_txn *txn, const struct lmdb_migrate_dbs *dbs, const MDB_val *k,
                       const MDB_val *v);

static int
user_entry(MDB_txn *txn, const struct lmdb_migrate_dbs *dbs, const MDB_val *k, const MDB_val *v)
{
    uint8_t key[LMDB_CODEC_USER_KEY_MAX];
    struct lmdb_coupon c;
    MDB_val ik, iv;

    if (!lmdb_codec_coupon_decode(k, v, &c))
        return MDB_CORRUPTED;
    if (c.pub.user[0] == '\0')
        return 0;
    ik = (MDB_val){lmdb_codec_user_key(c.pub.user, c.pub.assigned_at, c.pub.seq, false, key), key};
    iv = *k;
    return mdb_put(txn, dbs->users, &ik, &iv, 0);
}

static int
code_hist_entry(MDB_txn *txn, const struct lmdb_migrate_dbs *dbs, const MDB_val *k,
                const MDB_val *v)
{
    uint8_t key[LMDB_CODEC_CODE_HIST_KEY_MAX];
    struct store_redemption h;
    MDB_val ik, iv = {0, ""};

    if (!lmdb_codec_history_decode(k, v, &h))
        return MDB_CORRUPTED;
    ik = (MDB_val){lmdb_codec_code_hist_key(h.code, h.seq, false, key), key};
    return mdb_put(txn, dbs->code_hist, &ik, &iv, 0);
}

/* Walks database `from`, calling fn for every record. */
static int
walk(MDB_txn *txn, const struct lmdb_migrate_dbs *dbs, MDB_dbi from, migrate_fn *fn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, from, &cur);

    if (rc != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if ((rc = fn(txn, dbs, &k, &v)) != 0)
            break;
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Says why building `what` failed: a record that does not decode is the likely MDB_CORRUPTED. */
static int
failed(int rc, const char *what, char *msg, size_t len)
{
    if (rc == MDB_CORRUPTED)
        snprintf(msg, len, "upgrade: %s: a record does not decode, or %s", what, mdb_strerror(rc));
    else
        snprintf(msg, len, "upgrade: %s: %s", what, mdb_strerror(rc));
    return rc;
}

int
lmdb_migrate_v1(MDB_txn *txn, const struct lmdb_migrate_dbs *dbs, char *msg, size_t len)
{
    int rc = walk(txn, dbs, dbs->coupons, user_entry);

    if (rc != 0)
        return failed(rc, "users index", msg, len);
    if ((rc = walk(txn, dbs, dbs->history, code_hist_entry)) != 0)
        return failed(rc, "code history index", msg, len);
    return 0;
}
