/* lmdb_audit.c - the audit chain's records and head in LMDB (see lmdb_audit.h). */
#include "lmdb_audit.h"

#include <inttypes.h>
#include <string.h>

#include "audit.h"
#include "backend.h"
#include "lmdb_codec.h"
#include "lmdb_env.h"

enum store_err
lmdb_audit_append(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    uint8_t kb[LMDB_CODEC_SEQ_KEY_LEN], val[LMDB_CODEC_AUDIT_VAL_MAX];
    struct store_audit_head h = gop->s.audit;
    size_t n = audit_of_op(op, h.seq + 1, val + STORE_AUDIT_HASH_BYTES, STORE_AUDIT_REC_MAX);
    MDB_val k = {sizeof kb, kb}, v;
    int rc;

    if (n == 0)
        return store_op_fail(op, STORE_IO, "audit: no record can be made of this write");
    audit_link(&h, val + STORE_AUDIT_HASH_BYTES, n);
    memcpy(val, h.hash, STORE_AUDIT_HASH_BYTES);
    lmdb_codec_put_be(kb, h.seq, sizeof kb);
    v = (MDB_val){STORE_AUDIT_HASH_BYTES + n, val};
    rc = lmdb_group_op_put(g, gop, LMDB_DB_AUDIT, &k, &v, MDB_APPEND);
    if (rc == MDB_KEYEXIST)
        return store_op_fail(op, STORE_CORRUPT,
                             "audit: record %" PRIu64 " is stored already, beyond the head", h.seq);
    if (rc != 0)
        return lmdb_env_fail(op, rc, "audit: append record");
    gop->s.audit = h;
    return STORE_OK;
}

enum store_err
lmdb_audit_run_note(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    (void)g;
    (void)gop;
    return audit_note_check(op);
}

enum store_err
lmdb_audit_head(const struct lmdb_view *v, struct store_op *op)
{
    memset(&op->out.audit, 0, sizeof op->out.audit);
    if (!v->env->no_audit)
        op->out.audit = v->s->audit;
    return STORE_OK;
}

bool
lmdb_audit_row(const MDB_val *k, const MDB_val *v, struct store_audit_row *row)
{
    const uint8_t *p = v->mv_data;

    if (k->mv_size != LMDB_CODEC_SEQ_KEY_LEN || v->mv_size <= STORE_AUDIT_HASH_BYTES ||
        v->mv_size > LMDB_CODEC_AUDIT_VAL_MAX)
        return false;
    row->seq = lmdb_codec_get_be(k->mv_data, LMDB_CODEC_SEQ_KEY_LEN);
    memcpy(row->hash, p, STORE_AUDIT_HASH_BYTES);
    row->len = v->mv_size - STORE_AUDIT_HASH_BYTES;
    memcpy(row->rec, p + STORE_AUDIT_HASH_BYTES, row->len);
    return true;
}

enum store_err
lmdb_audit_hash_of(const struct lmdb_env *env, MDB_txn *txn, uint64_t seq,
                   uint8_t hash[STORE_AUDIT_HASH_BYTES], struct store_op *op)
{
    uint8_t kb[LMDB_CODEC_SEQ_KEY_LEN];
    MDB_val k = {sizeof kb, kb}, v;
    int rc;

    memset(hash, 0, STORE_AUDIT_HASH_BYTES);
    if (seq == 0 || env->no_audit)
        return STORE_OK;
    lmdb_codec_put_be(kb, seq, sizeof kb);
    rc = mdb_get(txn, env->dbi[LMDB_DB_AUDIT], &k, &v);
    if (rc == MDB_NOTFOUND)
        return STORE_INVALID;
    if (rc != 0)
        return lmdb_env_fail(op, rc, "audit: read record");
    if (v.mv_size <= STORE_AUDIT_HASH_BYTES)
        return store_op_fail(op, STORE_CORRUPT, "audit record %" PRIu64 " is too short", seq);
    memcpy(hash, v.mv_data, STORE_AUDIT_HASH_BYTES);
    return STORE_OK;
}

/* The walk of CHECK: numbering, form, and the last stored hash into last. */
static enum store_err
check_walk(MDB_cursor *cur, uint8_t last[STORE_AUDIT_HASH_BYTES], uint64_t *n, struct store_op *op)
{
    MDB_val k, v;
    uint64_t seq;
    int rc;

    *n = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != LMDB_CODEC_SEQ_KEY_LEN || v.mv_size <= STORE_AUDIT_HASH_BYTES ||
            v.mv_size > LMDB_CODEC_AUDIT_VAL_MAX)
            return store_op_fail(op, STORE_CORRUPT,
                                 "audit entry after record %" PRIu64 " is not a record", *n);
        seq = lmdb_codec_get_be(k.mv_data, LMDB_CODEC_SEQ_KEY_LEN);
        if (seq != *n + 1)
            return store_op_fail(op, STORE_CORRUPT,
                                 "audit record %" PRIu64 " is missing (the next is %" PRIu64 ")",
                                 *n + 1, seq);
        memcpy(last, v.mv_data, STORE_AUDIT_HASH_BYTES);
        (*n)++;
    }
    return rc == MDB_NOTFOUND ? STORE_OK : lmdb_env_fail(op, rc, "check: read audit");
}

enum store_err
lmdb_audit_check(const struct lmdb_view *v, struct store_op *op)
{
    uint8_t last[STORE_AUDIT_HASH_BYTES] = {0};
    const struct store_audit_head *h = &v->s->audit;
    MDB_cursor *cur;
    enum store_err e;
    uint64_t n;
    int rc;

    if (v->env->no_audit)
        return STORE_OK;
    if ((rc = lmdb_view_cursor(v, LMDB_DB_AUDIT, &cur)) != 0)
        return lmdb_env_fail(op, rc, "check: open audit cursor");
    e = check_walk(cur, last, &n, op);
    lmdb_view_cursor_done(v, cur);
    if (e != STORE_OK)
        return e;
    if (n != h->seq)
        return store_op_fail(op, STORE_CORRUPT,
                             "the audit head is record %" PRIu64 ", the chain has %" PRIu64, h->seq,
                             n);
    if (memcmp(last, h->hash, STORE_AUDIT_HASH_BYTES) != 0)
        return store_op_fail(op, STORE_CORRUPT,
                             "the audit head's hash is not record %" PRIu64 "'s stored hash", n);
    return STORE_OK;
}
