/* lmdb_rid.c - request ids: replay, store, expire, look up (see lmdb_rid.h). */
#include "lmdb_rid.h"

#include <string.h>

#include "backend.h"

enum store_err
lmdb_rid_valid(struct store_op *op)
{
    uint8_t key[LMDB_CODEC_RID_KEY_MAX];

    if (lmdb_codec_rid_key(&op->in.rid, key) == 0)
        return store_op_fail(op, STORE_IO, "request id: empty, or id or scope too long");
    return STORE_OK;
}

/* The kinds whose output is a coupon. */
static bool
shows_coupon(enum store_op_kind kind)
{
    return kind == STORE_OP_ASSIGN || kind == STORE_OP_REDEEM || kind == STORE_OP_HOLD ||
           kind == STORE_OP_RELEASE || kind == STORE_OP_UNREDEEM;
}

/* The rids key of op's id; fails op when the id cannot be one. */
static enum store_err
rid_key(struct store_op *op, uint8_t *key, size_t *len)
{
    if ((*len = lmdb_codec_rid_key(&op->in.rid, key)) == 0)
        return lmdb_rid_valid(op);
    return STORE_OK;
}

/* Copies a GENERATE's codes to in.codes; false when there is no room for them. */
static bool
codes_out(const struct lmdb_rid_rec *r, struct store_op *op)
{
    size_t pos = 0;

    if (r->n_codes == 0)
        return true;
    if (op->in.codes == NULL || op->in.want < r->n_codes)
        return false;
    for (uint32_t i = 0; i < r->n_codes; i++)
        lmdb_codec_rid_code_next(r, &pos, op->in.codes[i]);
    return true;
}

/* op's outputs as the record keeps them. */
static void
restore(const struct lmdb_rid_rec *r, struct store_op *op)
{
    op->out.replayed = true;
    op->out.done_at = r->time;
    op->out.rid_kind = (enum store_op_kind)r->kind;
    op->out.redemption = r->redemption;
    op->out.hold = (struct store_hold){.seq = r->hold_seq, .expires = r->hold_expires};
    op->out.count = r->count;
    op->out.task_seq = r->task_seq;
    op->out.task_stamp = r->task_stamp;
    op->out.n_rejected = 0;
    if (r->has_coupon)
        op->out.coupon = r->coupon;
}

/* The record `v` found for op's id (rids key key[klen]), decoded into *r: STORE_CORRUPT when it
 * is not one, or another id's; STORE_ID_CONFLICT when it is another request's. */
static enum store_err
rid_match(const MDB_val *v, const uint8_t *key, size_t klen, struct store_op *op,
          struct lmdb_rid_rec *r)
{
    if (!lmdb_codec_rid_decode(v, r) || r->key_len != klen || memcmp(r->key, key, klen) != 0)
        return store_op_fail(op, STORE_CORRUPT, "request id %s: its record is not one of it",
                             op->in.rid.id);
    if (memcmp(r->fp, op->in.rid.fp, STORE_FP_BYTES) != 0 ||
        (op->kind != STORE_OP_RID_GET && r->kind != op->kind))
        return store_op_fail(op, STORE_ID_CONFLICT, "request id %s was used for another request",
                             op->in.rid.id);
    return STORE_OK;
}

/* The record of the id whose rids entry (key[klen] -> val, its rid_log key) was found, read in
 * txn: as rid_match says, or STORE_CORRUPT when it is missing. */
static enum store_err
rid_record(const struct lmdb_env *env, MDB_txn *txn, const uint8_t *key, size_t klen,
           const MDB_val *val, struct store_op *op, struct lmdb_rid_rec *r)
{
    MDB_val k = *val, v;
    int rc = mdb_get(txn, env->dbi[LMDB_DB_RID_LOG], &k, &v);

    if (rc == MDB_NOTFOUND)
        return store_op_fail(op, STORE_CORRUPT, "request id %s: its record is missing",
                             op->in.rid.id);
    if (rc != 0)
        return lmdb_env_fail(op, rc, "request id: read record");
    return rid_match(&v, key, klen, op, r);
}

enum store_err
lmdb_rid_replay(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op,
                bool *replayed)
{
    uint8_t key[LMDB_CODEC_RID_KEY_MAX];
    struct lmdb_rid_rec r;
    MDB_cursor *cur;
    MDB_val k, v;
    enum store_err e;
    int rc;

    *replayed = false;
    if ((e = rid_key(op, key, &k.mv_size)) != STORE_OK)
        return e;
    k.mv_data = key;
    /* The operation's cursor: left on the spot, the put of a new id skips the descent. */
    if ((rc = lmdb_group_op_cursor(g, gop, LMDB_DB_RIDS, &cur)) != 0)
        return lmdb_env_fail(op, rc, "request id: open cursor");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND)
        return STORE_OK;
    if (rc != 0)
        return lmdb_env_fail(op, rc, "request id: read");
    if ((e = rid_record(g->env, gop->txn, key, k.mv_size, &v, op, &r)) != STORE_OK)
        return e;
    if (!codes_out(&r, op))
        return store_op_fail(op, STORE_IO, "request id %s: no room for the %u codes to replay",
                             op->in.rid.id, (unsigned)r.n_codes);
    restore(&r, op);
    *replayed = true;
    return STORE_OK;
}

/* The record of op's successful run, whose id has rids key key[klen]; the length of its codes in
 * *codes_len. */
static struct lmdb_rid_rec
record_of(const struct store_op *op, const uint8_t *key, size_t klen, size_t *codes_len)
{
    struct lmdb_rid_rec r = {
        .key = key, .key_len = klen, .kind = (uint8_t)op->kind, .time = op->now};

    memcpy(r.fp, op->in.rid.fp, STORE_FP_BYTES);
    *codes_len = 0;
    if (shows_coupon(op->kind)) {
        r.has_coupon = true;
        r.coupon = op->out.coupon;
    }
    if (op->kind == STORE_OP_REDEEM)
        r.redemption = op->out.redemption;
    if (op->kind == STORE_OP_HOLD) {
        r.hold_seq = op->out.hold.seq;
        r.hold_expires = op->out.hold.expires;
    }
    if (op->kind == STORE_OP_ASSIGN) {
        r.task_seq = op->in.task_seq;
        r.task_stamp = op->in.task_stamp;
    }
    if (op->kind == STORE_OP_UPLOAD || op->kind == STORE_OP_GENERATE)
        r.count = op->out.count;
    if (op->kind == STORE_OP_GENERATE) {
        r.n_codes = (uint32_t)op->out.count;
        for (size_t i = 0; i < op->out.count; i++)
            *codes_len += strnlen(op->in.recs[op->in.chosen[i]].code, STORE_CODE_MAX);
    }
    return r;
}

enum store_err
lmdb_rid_put(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    uint8_t key[LMDB_CODEC_RID_KEY_MAX], lk[LMDB_CODEC_EXPIRY_KEY_LEN];
    size_t codes_len, off, klen;
    struct lmdb_rid_rec r;
    MDB_val k, v = {sizeof lk, lk};
    enum store_err e;
    int rc;

    if (op->kind == STORE_OP_GENERATE && op->out.count > UINT32_MAX)
        return store_op_fail(op, STORE_IO, "request id: too many codes to keep");
    if ((e = rid_key(op, key, &klen)) != STORE_OK)
        return e;
    r = record_of(op, key, klen, &codes_len);
    lmdb_codec_expiry_key(op->now, gop->s.next_rid_seq++, lk);
    k = (MDB_val){klen, key};
    rc = lmdb_group_op_put(g, gop, LMDB_DB_RIDS, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST)
        return store_op_fail(op, STORE_CORRUPT, "request id %s stored twice", op->in.rid.id);
    if (rc != 0)
        return lmdb_env_fail(op, rc, "request id: put");
    /* Reserved, then written in place: a GENERATE's codes need no copy of their own. */
    k = (MDB_val){sizeof lk, lk};
    v = (MDB_val){lmdb_codec_rid_len(&r, codes_len), NULL};
    rc = lmdb_group_op_put(g, gop, LMDB_DB_RID_LOG, &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
    if (rc != 0)
        return rc == MDB_KEYEXIST ? store_op_fail(op, STORE_CORRUPT, "rid sequence reused")
                                  : lmdb_env_fail(op, rc, "request id: put record");
    off = lmdb_codec_rid_encode(&r, v.mv_data);
    for (size_t i = 0; i < r.n_codes; i++)
        off = lmdb_codec_rid_code_put(v.mv_data, off, op->in.recs[op->in.chosen[i]].code);
    return STORE_OK;
}

/* Deletes the rids entry of the id whose record `v` lmdb_group_op_drain then deletes. */
static enum store_err
forget_id(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op, int64_t time,
          uint64_t seq, const MDB_val *v)
{
    uint8_t key[LMDB_CODEC_RID_KEY_MAX];
    struct lmdb_rid_rec r;
    MDB_val k;
    int rc;

    (void)time, (void)seq;
    if (!lmdb_codec_rid_decode(v, &r))
        return store_op_fail(op, STORE_CORRUPT, "rid_log record does not decode");
    memcpy(key, r.key, r.key_len); /* out of a page that the delete may change */
    k = (MDB_val){r.key_len, key};
    rc = mdb_del(gop->txn, g->env->dbi[LMDB_DB_RIDS], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return store_op_fail(op, STORE_CORRUPT, "a request id record has no rids entry");
    return rc == 0 ? STORE_OK : lmdb_env_fail(op, rc, "expire ids: delete");
}

enum store_err
lmdb_rid_run_expire(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    return lmdb_group_op_drain(g, gop, LMDB_DB_RID_LOG, forget_id, "expire ids", op);
}

enum store_err
lmdb_rid_get(const struct lmdb_view *v, struct store_op *op)
{
    uint8_t key[LMDB_CODEC_RID_KEY_MAX];
    struct lmdb_rid_rec r;
    MDB_val k = {0, key}, val;
    enum store_err e;
    int rc;

    if ((e = rid_key(op, key, &k.mv_size)) != STORE_OK)
        return e;
    if (v->env->legacy) /* the previous release stored no ids */
        return STORE_INVALID;
    rc = mdb_get(v->txn, v->env->dbi[LMDB_DB_RIDS], &k, &val);
    if (rc == MDB_NOTFOUND)
        return STORE_INVALID;
    if (rc != 0)
        return lmdb_env_fail(op, rc, "request id: read");
    if ((e = rid_record(v->env, v->txn, key, k.mv_size, &val, op, &r)) != STORE_OK)
        return e;
    (void)codes_out(&r, op); /* only where the caller made room for them */
    restore(&r, op);
    return STORE_OK;
}
