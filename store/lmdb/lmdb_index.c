/* lmdb_index.c - the avail and expiry indexes and the `available` cache (see lmdb_index.h). */
#include "lmdb_index.h"

#include <inttypes.h>
#include <string.h>

#include "backend.h"
#include "lmdb_hold.h"

void
lmdb_index_avail_added(struct lmdb_state *s, uint8_t type, int64_t expires)
{
    s->t[type].unassigned++;
    if (expires < s->watermark)
        s->t[type].expired_unassigned++;
}

void
lmdb_index_avail_removed(struct lmdb_state *s, uint8_t type, int64_t expires)
{
    s->t[type].unassigned--;
    if (expires < s->watermark)
        s->t[type].expired_unassigned--;
}

enum store_err
lmdb_index_next(MDB_cursor *avail, uint8_t type, int64_t now, char *code, int64_t *expires,
                uint64_t *seq, struct store_op *op)
{
    uint8_t kb[LMDB_CODEC_AVAIL_KEY_LEN], t;
    MDB_val k = {sizeof kb, kb}, v;
    int rc;

    lmdb_codec_avail_key(type, now, 0, kb);
    rc = mdb_cursor_get(avail, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        return STORE_NO_COUPONS;
    if (rc != 0)
        return lmdb_env_fail(op, rc, "assign: seek");
    if (!lmdb_codec_avail_key_decode(&k, &t, expires, seq) || !lmdb_codec_code_from_val(&v, code))
        return store_op_fail(op, STORE_CORRUPT, "assign: avail index entry does not decode");
    return t == type ? STORE_OK : STORE_NO_COUPONS;
}

/* Deletes the entry `key` of `db`, which must exist. */
static enum store_err
entry_del(const struct lmdb_env *e, MDB_txn *txn, enum lmdb_db db, uint8_t *key, size_t klen,
          const char *code, struct store_op *op)
{
    MDB_val k = {klen, key};
    int rc = mdb_del(txn, e->dbi[db], &k, NULL);

    if (rc == MDB_NOTFOUND)
        return store_op_fail(op, STORE_CORRUPT, "coupon %s has no %s index entry", code,
                             lmdb_env_db_name(db));
    if (rc != 0)
        return store_op_fail(op, lmdb_env_err(rc), "delete %s entry of %s: %s",
                             lmdb_env_db_name(db), code, mdb_strerror(rc));
    return STORE_OK;
}

enum store_err
lmdb_index_avail_del(const struct lmdb_env *e, MDB_txn *txn, const struct store_coupon *c,
                     struct store_op *op)
{
    uint8_t key[LMDB_CODEC_AVAIL_KEY_LEN];

    lmdb_codec_avail_key(c->type, c->expires, c->seq, key);
    return entry_del(e, txn, LMDB_DB_AVAIL, key, sizeof key, c->code, op);
}

enum store_err
lmdb_index_expiry_del(const struct lmdb_env *e, MDB_txn *txn, const struct store_coupon *c,
                      struct store_op *op)
{
    uint8_t key[LMDB_CODEC_EXPIRY_KEY_LEN];

    lmdb_codec_expiry_key(c->expires, c->seq, key);
    return entry_del(e, txn, LMDB_DB_EXPIRY, key, sizeof key, c->code, op);
}

/* Counts the avail entries of `type` with from <= expires < to. */
static enum store_err
avail_count(MDB_cursor *cur, uint8_t type, int64_t from, int64_t to, uint64_t *n,
            struct store_op *op)
{
    uint8_t kb[LMDB_CODEC_AVAIL_KEY_LEN], t;
    MDB_val k = {sizeof kb, kb}, v;
    int64_t expires;
    uint64_t seq;
    int rc;

    *n = 0;
    lmdb_codec_avail_key(type, from, 0, kb);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!lmdb_codec_avail_key_decode(&k, &t, &expires, &seq))
            return store_op_fail(op, STORE_CORRUPT, "avail index key does not decode");
        if (t != type || expires >= to)
            return STORE_OK;
        (*n)++;
    }
    return rc == MDB_NOTFOUND ? STORE_OK : lmdb_env_fail(op, rc, "count avail entries");
}

enum store_err
lmdb_index_expired_unassigned(const struct lmdb_view *v, int64_t now, uint64_t *expired,
                              struct store_op *op)
{
    struct lmdb_state *s = v->s;
    const bool back = now < s->watermark;
    MDB_cursor *cur;
    enum store_err e = STORE_OK;
    int rc;

    for (int t = 0; t < STORE_NTYPES; t++)
        expired[t] = back ? 0 : s->t[t].expired_unassigned;
    if (now == s->watermark)
        return STORE_OK;
    if ((rc = lmdb_view_cursor(v, LMDB_DB_AVAIL, &cur)) != 0)
        return lmdb_env_fail(op, rc, "open avail cursor");
    for (int t = 0; t < STORE_NTYPES && e == STORE_OK; t++) {
        uint64_t n;

        e = avail_count(cur, (uint8_t)t, back ? INT64_MIN : s->watermark, now, &n, op);
        expired[t] += n;
    }
    lmdb_view_cursor_done(v, cur);
    if (e != STORE_OK || back || !v->keep_watermark)
        return e;
    for (int t = 0; t < STORE_NTYPES; t++)
        s->t[t].expired_unassigned = expired[t];
    s->watermark = now;
    return STORE_OK;
}

enum store_err
lmdb_index_counters(const struct lmdb_view *v, int64_t now, struct store_counters *out,
                    struct store_op *op)
{
    uint64_t expired[STORE_NTYPES], ended[STORE_NTYPES];
    enum store_err e = lmdb_index_expired_unassigned(v, now, expired, op);

    if (e == STORE_OK)
        e = lmdb_hold_expired(v, now, ended, op);
    if (e != STORE_OK)
        return e;
    for (int t = 0; t < STORE_NTYPES; t++) {
        const struct lmdb_type_state *ts = &v->s->t[t];

        if (expired[t] > ts->unassigned || ended[t] > ts->holds)
            return store_op_fail(op, STORE_CORRUPT,
                                 "%s: %" PRIu64 " expired of %" PRIu64 " unassigned, %" PRIu64
                                 " ended of %" PRIu64 " holds",
                                 lmdb_codec_type_name((unsigned)t), expired[t], ts->unassigned,
                                 ended[t], ts->holds);
        out->type[t] = (struct store_type_counters){
            .created = ts->created,
            .assigned = ts->assigned,
            .redeemed = ts->redeemed,
            .purged = ts->purged,
            .available = ts->unassigned - expired[t],
            .held = ts->holds - ended[t],
            .unredeemed = ts->unredeemed,
        };
    }
    return STORE_OK;
}
