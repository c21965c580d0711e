/* lmdb_export.c - exports held open across calls (see lmdb_export.h). */
#include "lmdb_export.h"

#include <inttypes.h>
#include <string.h>

#include "backend.h"
#include "lmdb_audit.h"
#include "lmdb_hold.h"
#include "lmdb_view.h"
#include "rules.h"

static void
release(struct lmdb_export *ex)
{
    if (ex->cur != NULL)
        mdb_cursor_close(ex->cur);
    if (ex->txn != NULL)
        mdb_txn_abort(ex->txn);
    memset(ex, 0, sizeof *ex);
}

void
lmdb_export_close_all(struct lmdb_exports *x)
{
    for (int i = 0; i < LMDB_EXPORT_MAX; i++)
        if (x->slot[i].used)
            release(&x->slot[i]);
}

/* The open export `cursor` names, or NULL. */
static struct lmdb_export *
find(struct lmdb_exports *x, const void *cursor)
{
    for (int i = 0; i < LMDB_EXPORT_MAX; i++)
        if (cursor == &x->slot[i] && x->slot[i].used)
            return &x->slot[i];
    return NULL;
}

/* What the first call asked, into a free slot *ex; its snapshot begins now. */
static enum store_err
export_open(struct lmdb_exports *x, const struct lmdb_env *env, struct store_op *op,
            struct lmdb_export **out)
{
    static const enum lmdb_db walks[] = {[STORE_EXPORT_COUPONS] = LMDB_DB_COUPONS,
                                         [STORE_EXPORT_HISTORY] = LMDB_DB_HISTORY,
                                         [STORE_EXPORT_CODE_HISTORY] = LMDB_DB_CODE_HIST,
                                         [STORE_EXPORT_AUDIT] = LMDB_DB_AUDIT};
    const unsigned kind = (unsigned)op->in.export_kind;
    struct lmdb_export *ex = NULL;
    enum store_err e;
    int rc;

    for (int i = 0; i < LMDB_EXPORT_MAX && ex == NULL; i++)
        if (!x->slot[i].used)
            ex = &x->slot[i];
    if (ex == NULL)
        return store_op_fail(op, STORE_IO, "export: %d exports are open already, the most at once",
                             LMDB_EXPORT_MAX);
    if (kind > STORE_EXPORT_AUDIT ||
        (kind == STORE_EXPORT_COUPONS && !op->in.any_type && op->in.type >= STORE_NTYPES))
        return store_op_fail(op, STORE_IO, "export: no such kind %u or type %d", kind,
                             (int)op->in.type);
    if ((e = lmdb_env_need(env, walks[kind], "export", op)) != STORE_OK)
        return e;
    *ex = (struct lmdb_export){.used = true,
                               .kind = (enum store_export_kind)kind,
                               .any_type = op->in.any_type,
                               .type = (uint8_t)op->in.type,
                               .after = op->in.after};
    if (kind == STORE_EXPORT_CODE_HISTORY)
        ex->plen = lmdb_codec_code_hist_key(op->in.code, 0, true, ex->prefix);
    if (kind == STORE_EXPORT_AUDIT && env->no_audit) {
        release(ex); /* a store from before the chain: no rows, *out stays NULL */
        return STORE_OK;
    }
    if ((rc = mdb_txn_begin(env->env, NULL, MDB_RDONLY, &ex->txn)) != 0 ||
        (rc = mdb_cursor_open(ex->txn, env->dbi[walks[kind]], &ex->cur)) != 0) {
        release(ex);
        return lmdb_env_fail(op, rc, "export: begin snapshot");
    }
    /* The first row's previous hash; a record `after` that is missing shows as zeros (the rows
     * are given as stored; the verifier names what is missing). */
    e = kind == STORE_EXPORT_AUDIT ? lmdb_audit_hash_of(env, ex->txn, ex->after, ex->prev, op)
                                   : STORE_OK;
    if (e != STORE_OK && e != STORE_INVALID) {
        release(ex);
        return e;
    }
    *out = ex;
    return STORE_OK;
}

/* A coupon's redemptions in the snapshot: its code_hist entries, keys only. */
static enum store_err
count_code_history(struct lmdb_export *ex, const struct lmdb_env *env, struct store_op *op)
{
    MDB_cursor *cur;
    MDB_val k = {ex->plen, ex->prefix}, v;
    int rc;

    if ((rc = mdb_cursor_open(ex->txn, env->dbi[LMDB_DB_CODE_HIST], &cur)) != 0)
        return lmdb_env_fail(op, rc, "export: count");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && lmdb_codec_has_prefix(&k, ex->prefix, ex->plen);
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        op->out.total++;
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? STORE_OK : lmdb_env_fail(op, rc, "export: count");
}

/* The rows the export gives (in.count), from its snapshot: the coupons stored (of a type, its
 * counters: every coupon stored is created and not yet purged), the redemptions after `after`
 * or the audit records after `after` (both numbered 1, 2, ... without gaps, lmdb_check.h), or
 * walked, a coupon's own. */
static enum store_err
count_rows(struct lmdb_export *ex, const struct lmdb_env *env, struct store_op *op)
{
    struct lmdb_state st;
    MDB_stat ms;
    enum store_err e;
    int rc;

    if (ex->kind == STORE_EXPORT_CODE_HISTORY)
        return count_code_history(ex, env, op);
    if (ex->kind == STORE_EXPORT_COUPONS && ex->any_type) {
        if ((rc = mdb_stat(ex->txn, env->dbi[LMDB_DB_COUPONS], &ms)) != 0)
            return lmdb_env_fail(op, rc, "export: count");
        op->out.total = ms.ms_entries;
        return STORE_OK;
    }
    if ((e = lmdb_env_state_get(env, ex->txn, &st, op->out.msg, sizeof op->out.msg)) != STORE_OK)
        return e;
    if (ex->kind == STORE_EXPORT_COUPONS) {
        op->out.total = st.t[ex->type].created - st.t[ex->type].purged;
        return STORE_OK;
    }
    uint64_t last = ex->kind == STORE_EXPORT_AUDIT ? st.audit.seq
                                                   : st.next_redemption_seq - LMDB_CODEC_FIRST_SEQ;
    op->out.total = last > ex->after ? last - ex->after : 0;
    return STORE_OK;
}

/* Places the cursor on the first candidate row, or the next one. */
static int
step(struct lmdb_export *ex, MDB_val *k, MDB_val *v)
{
    uint8_t kb[LMDB_CODEC_SEQ_KEY_LEN];

    if (ex->started)
        return mdb_cursor_get(ex->cur, k, v, MDB_NEXT);
    ex->started = true;
    switch (ex->kind) {
    case STORE_EXPORT_HISTORY:
    case STORE_EXPORT_AUDIT:
        if (ex->after == UINT64_MAX)
            return MDB_NOTFOUND;
        lmdb_codec_put_be(kb, ex->after + 1, sizeof kb);
        *k = (MDB_val){sizeof kb, kb};
        return mdb_cursor_get(ex->cur, k, v, MDB_SET_RANGE);
    case STORE_EXPORT_CODE_HISTORY:
        *k = (MDB_val){ex->plen, ex->prefix};
        return mdb_cursor_get(ex->cur, k, v, MDB_SET_RANGE);
    default:
        return mdb_cursor_get(ex->cur, k, v, MDB_FIRST);
    }
}

/* Reads the row under the cursor into ex->row: *take false when the export skips it (a coupon of
 * another type), *end when the code's redemptions are over. */
static enum store_err
load(struct lmdb_export *ex, const struct lmdb_env *env, const MDB_val *k, const MDB_val *v,
     bool *take, bool *end, struct store_op *op)
{
    char code[STORE_CODE_MAX + 1];
    uint64_t seq;
    enum store_err e;

    *take = true;
    *end = false;
    switch (ex->kind) {
    case STORE_EXPORT_COUPONS:
        if (!lmdb_codec_coupon_decode(k, v, &ex->row.coupon))
            return store_op_fail(op, STORE_CORRUPT, "export: a coupon record does not decode");
        *take = ex->any_type || ex->row.coupon.pub.type == ex->type;
        return STORE_OK;
    case STORE_EXPORT_HISTORY:
        if (!lmdb_codec_history_decode(k, v, &ex->row.redemption))
            return store_op_fail(op, STORE_CORRUPT, "export: a history record does not decode");
        return STORE_OK;
    case STORE_EXPORT_AUDIT: /* as stored: judging a record is the verifier's work */
        if (!lmdb_audit_row(k, v, &ex->row.audit))
            return store_op_fail(op, STORE_CORRUPT, "export: an audit entry is not a record");
        return STORE_OK;
    default:
        if (!lmdb_codec_has_prefix(k, ex->prefix, ex->plen)) {
            *end = true;
            return STORE_OK;
        }
        if (!lmdb_codec_code_hist_key_decode(k, code, &seq))
            return store_op_fail(op, STORE_CORRUPT, "export: a code_hist entry does not decode");
        e = lmdb_env_history_get(env, ex->txn, seq, &ex->row.redemption, op);
        return e == STORE_UNKNOWN_REDEMPTION
                   ? store_op_fail(op, STORE_CORRUPT, "export: redemption %" PRIu64 " is missing",
                                   seq)
                   : e;
    }
}

/* Reads the next row of the export into ex->row; ex->on_row false at the end. */
static enum store_err
advance(struct lmdb_export *ex, const struct lmdb_env *env, struct store_op *op)
{
    bool take = false, end = false;
    enum store_err e = STORE_OK;
    MDB_val k, v;
    int rc;

    ex->on_row = false;
    while (!take && !end && e == STORE_OK) {
        if ((rc = step(ex, &k, &v)) == MDB_NOTFOUND)
            return STORE_OK;
        if (rc != 0)
            return lmdb_env_fail(op, rc, "export: read");
        e = load(ex, env, &k, &v, &take, &end, op);
    }
    ex->on_row = e == STORE_OK && take && !end;
    return e;
}

/* Gives out ex->row as row out.count. */
static enum store_err
emit(struct lmdb_export *ex, const struct lmdb_env *env, struct store_op *op)
{
    const struct lmdb_view v = {.env = env, .txn = ex->txn};
    enum store_err e;

    ex->on_row = false;
    if (ex->kind == STORE_EXPORT_AUDIT) {
        struct store_audit_row *row = &op->in.audit[op->out.count++];

        *row = ex->row.audit;
        memcpy(row->prev, ex->prev, sizeof ex->prev);
        memcpy(ex->prev, row->hash, sizeof ex->prev);
        return STORE_OK;
    }
    if (ex->kind != STORE_EXPORT_COUPONS) {
        op->in.rows[op->out.count++] = ex->row.redemption;
        return STORE_OK;
    }
    if ((e = lmdb_hold_live_view(&v, &ex->row.coupon, op->now, op)) != STORE_OK)
        return e;
    op->in.coupons[op->out.count++] = ex->row.coupon.pub;
    return STORE_OK;
}

/* Up to in.cap rows; then whether one is left. */
static enum store_err
fill(struct lmdb_export *ex, const struct lmdb_env *env, struct store_op *op)
{
    const bool room = ex->kind == STORE_EXPORT_COUPONS ? op->in.coupons != NULL
                      : ex->kind == STORE_EXPORT_AUDIT ? op->in.audit != NULL
                                                       : op->in.rows != NULL;
    enum store_err e = STORE_OK;

    if (op->in.cap > 0 && !room)
        return store_op_fail(op, STORE_IO, "export: no room for rows");
    while (op->out.count < op->in.cap && e == STORE_OK) {
        if (!ex->on_row && (e = advance(ex, env, op)) != STORE_OK)
            return e;
        if (!ex->on_row)
            return STORE_OK;
        e = emit(ex, env, op);
    }
    if (e == STORE_OK && !ex->on_row)
        e = advance(ex, env, op);
    op->out.more = e == STORE_OK && ex->on_row;
    return e;
}

void
lmdb_export_run(struct lmdb_exports *x, const struct lmdb_env *env, struct store_op *op)
{
    struct lmdb_export *ex = NULL;
    enum store_err e = STORE_OK;

    op->out.count = 0;
    op->out.total = 0;
    op->out.more = false;
    op->out.cursor = NULL;
    if (op->in.cursor != NULL && (ex = find(x, op->in.cursor)) == NULL) {
        op->err = store_op_fail(op, STORE_IO, "export: no such open export");
        return;
    }
    if (op->in.close) {
        if (ex != NULL)
            release(ex);
        op->err = STORE_OK;
        return;
    }
    if (ex == NULL) {
        e = export_open(x, env, op, &ex);
        if (e == STORE_OK && ex != NULL && op->in.count)
            e = count_rows(ex, env, op);
    }
    if (e == STORE_OK && ex != NULL)
        e = fill(ex, env, op);
    if (ex != NULL && (e != STORE_OK || !op->out.more))
        release(ex); /* finished, or failed: the client starts again */
    else
        op->out.cursor = ex;
    if (e != STORE_OK)
        op->out.count = 0;
    op->err = e;
}
