/* lmdb_read.c - the reads of the LMDB backend but EXPORT (lmdb_export.c): validate, get,
 * counters, history, check, coupons of a user, request ids (see lmdb_read.h). */
#include "lmdb_read.h"

#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "lmdb_audit.h"
#include "lmdb_check.h"
#include "lmdb_hold.h"
#include "lmdb_index.h"
#include "lmdb_rid.h"
#include "rules.h"

/* Coupon `code` with its holds live at op->now. */
static enum store_err
coupon_at(const struct lmdb_view *v, const char *code, struct lmdb_coupon *c, struct store_op *op)
{
    enum store_err e = lmdb_env_coupon_get(v->env, v->txn, code, c, op);

    return e == STORE_OK ? lmdb_hold_live_view(v, c, op->now, op) : e;
}

static enum store_err
run_validate(const struct lmdb_view *v, struct store_op *op)
{
    struct lmdb_coupon c;
    enum store_err e = coupon_at(v, op->in.code, &c, op);

    if (e != STORE_OK)
        return e;
    e = rules_usable(&c.pub, op->in.user, op->now);
    if (e != STORE_INVALID) /* never show a coupon to a user it does not belong to */
        op->out.coupon = c.pub;
    return e;
}

static enum store_err
run_get(const struct lmdb_view *v, struct store_op *op)
{
    struct lmdb_coupon c;
    enum store_err e = coupon_at(v, op->in.code, &c, op);

    if (e == STORE_OK)
        op->out.coupon = c.pub;
    return e;
}

static enum store_err
run_counters(const struct lmdb_view *v, struct store_op *op)
{
    return lmdb_index_counters(v, op->now, &op->out.counters, op);
}

/* Copies the redemptions with seq > in.after, in order, into in.rows, at most in.cap. */
static enum store_err
run_history(const struct lmdb_view *v, struct store_op *op)
{
    uint8_t kb[LMDB_CODEC_SEQ_KEY_LEN];
    MDB_val k = {sizeof kb, kb}, val;
    enum store_err e = STORE_OK;
    MDB_cursor *cur;
    int rc;

    op->out.count = 0;
    if (op->in.cap == 0 || op->in.rows == NULL || op->in.after == UINT64_MAX)
        return STORE_OK;
    if ((rc = lmdb_view_cursor(v, LMDB_DB_HISTORY, &cur)) != 0)
        return lmdb_env_fail(op, rc, "history: open cursor");
    lmdb_codec_put_be(kb, op->in.after + 1, LMDB_CODEC_SEQ_KEY_LEN);
    for (rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE); rc == 0 && op->out.count < op->in.cap;
         rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT)) {
        if (!lmdb_codec_history_decode(&k, &val, &op->in.rows[op->out.count])) {
            e = store_op_fail(op, STORE_CORRUPT, "history record does not decode");
            break;
        }
        op->out.count++;
    }
    lmdb_view_cursor_done(v, cur);
    if (e == STORE_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = lmdb_env_fail(op, rc, "history: read");
    return e;
}

/* One users entry of in.user: counted, and while there is room its coupon copied out. */
static enum store_err
coupons_row(const struct lmdb_view *v, const MDB_val *code, struct store_op *op)
{
    char c_code[STORE_CODE_MAX + 1];
    struct lmdb_coupon c;
    enum store_err e;

    if (op->out.count++ >= op->in.cap || op->in.coupons == NULL)
        return STORE_OK;
    if (!lmdb_codec_code_from_val(code, c_code))
        return store_op_fail(op, STORE_CORRUPT, "users entry of %s holds no code", op->in.user);
    if ((e = coupon_at(v, c_code, &c, op)) == STORE_INVALID)
        return store_op_fail(op, STORE_CORRUPT, "users entry names missing coupon %s", c_code);
    if (e == STORE_OK)
        op->in.coupons[op->out.count - 1] = c.pub;
    return e;
}

/* The coupons of in.user, newest first: out.count all of them, the first in.cap in in.coupons.
 * A walk of that user's entries in the users index, and a read of each coupon copied. */
static enum store_err
run_coupons(const struct lmdb_view *v, struct store_op *op)
{
    uint8_t prefix[LMDB_CODEC_USER_KEY_MAX];
    enum store_err e = STORE_OK;
    MDB_cursor *cur;
    MDB_val k, val;
    size_t plen;
    int rc;

    op->out.count = 0;
    if (rules_user_len(op->in.user) == 0) /* no such user can have a coupon */
        return STORE_OK;
    if ((e = lmdb_env_need(v->env, LMDB_DB_USERS, "coupons", op)) != STORE_OK)
        return e;
    if ((rc = lmdb_view_cursor(v, LMDB_DB_USERS, &cur)) != 0)
        return lmdb_env_fail(op, rc, "coupons: open cursor");
    plen = lmdb_codec_user_key(op->in.user, 0, 0, true, prefix);
    k = (MDB_val){plen, prefix};
    for (rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE);
         rc == 0 && e == STORE_OK && lmdb_codec_has_prefix(&k, prefix, plen);
         rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT))
        e = coupons_row(v, &val, op);
    lmdb_view_cursor_done(v, cur);
    if (e == STORE_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = lmdb_env_fail(op, rc, "coupons: read");
    return e;
}

/* EXPORT holds a read transaction of its own across calls, on the loop thread: it is run by
 * store_read (lmdb_store.c), never in a batch's group on the writer thread. */
static enum store_err
run_export_in_batch(const struct lmdb_view *v, struct store_op *op)
{
    (void)v;
    return store_op_fail(op, STORE_IO, "export: runs with store_read, not in a batch");
}

static enum store_err
run_noop(const struct lmdb_view *v, struct store_op *op)
{
    (void)v;
    (void)op;
    return STORE_OK;
}

static const struct {
    const char *name;
    enum store_err (*run)(const struct lmdb_view *v, struct store_op *op);
} reads[STORE_NOPS] = {
    [STORE_OP_VALIDATE] = {"validate", run_validate},
    [STORE_OP_GET] = {"get", run_get},
    [STORE_OP_COUNTERS] = {"counters", run_counters},
    [STORE_OP_HISTORY] = {"history", run_history},
    [STORE_OP_CHECK] = {"check", lmdb_check_run},
    [STORE_OP_RID_GET] = {"request id", lmdb_rid_get},
    [STORE_OP_COUPONS] = {"coupons", run_coupons},
    [STORE_OP_EXPORT] = {"export", run_export_in_batch},
    [STORE_OP_NOOP] = {"no-op", run_noop},
    [STORE_OP_AUDIT_HEAD] = {"audit head", lmdb_audit_head},
};

void
lmdb_read_run(const struct lmdb_view *v, struct store_op *op)
{
    if ((unsigned)op->kind >= STORE_NOPS || reads[op->kind].run == NULL) {
        store_op_fail(op, STORE_IO, "operation %d is not a read", (int)op->kind);
        return;
    }
    op->err = reads[op->kind].run(v, op);
    if (op->err != STORE_OK && op->out.msg[0] == '\0')
        store_op_fail(op, op->err, "%s: %s", reads[op->kind].name, store_strerror(op->err));
}
