/* lmdb_read.c - validate, get, counters and history in the LMDB backend (see lmdb_read.h). */
#include "lmdb_read.h"

#include <stdint.h>

#include "backend.h"
#include "lmdb_check.h"
#include "lmdb_index.h"
#include "rules.h"

static enum store_err
run_validate(const struct lmdb_view *v, struct store_op *op)
{
    struct store_coupon c;
    enum store_err e = lmdb_env_coupon_get(v->env, v->txn, op->in.code, &c, op);

    if (e != STORE_OK)
        return e;
    e = rules_usable(&c, op->in.user, op->now);
    if (e != STORE_INVALID) /* never show a coupon to a user it does not belong to */
        op->out.coupon = c;
    return e;
}

static enum store_err
run_get(const struct lmdb_view *v, struct store_op *op)
{
    return lmdb_env_coupon_get(v->env, v->txn, op->in.code, &op->out.coupon, op);
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

static const struct {
    const char *name;
    enum store_err (*run)(const struct lmdb_view *v, struct store_op *op);
} reads[STORE_NOPS] = {
    [STORE_OP_VALIDATE] = {"validate", run_validate}, [STORE_OP_GET] = {"get", run_get},
    [STORE_OP_COUNTERS] = {"counters", run_counters}, [STORE_OP_HISTORY] = {"history", run_history},
    [STORE_OP_CHECK] = {"check", lmdb_check_run},
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
