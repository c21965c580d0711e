/* pg_ops.c - operations as statements: checks, parameters, results (see pg_ops.h). */
#include "pg_ops.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "pg_audit.h"
#include "pg_check.h"
#include "pg_rid.h"
#include "rules.h"

/* True when r is a statement's rows with at least `cols` columns. */
static bool
rows_ok(struct store_op *op, const char *what, const PGresult *r, int cols)
{
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) >= cols)
        return true;
    pg_val_fail(op, what, r);
    return false;
}

static bool
user_ok(const char *user)
{
    return rules_user_len(user) > 0 && pg_val_text_ok(user);
}

/* --- single statements --- */

static const char *
put_i64(struct pg_call *call, int64_t v)
{
    int i = call->n++;

    snprintf(call->buf[i], sizeof call->buf[i], "%" PRId64, v);
    call->v[i] = call->buf[i];
    return call->v[i];
}

static void
put_text(struct pg_call *call, const char *s)
{
    call->v[call->n++] = s;
}

/* A count the store takes as size_t or uint64_t, as an int8 parameter. */
static int64_t
clamp_i64(uint64_t v)
{
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static void
reset(struct store_op *op)
{
    op->err = STORE_OK;
    memset(&op->out, 0, sizeof op->out);
}

/* A code that cannot be stored: its operation is STORE_INVALID without asking. */
static bool
code_ok(struct store_op *op, const char *what)
{
    if (rules_code_len(op->in.code) > 0)
        return true;
    store_op_fail(op, STORE_INVALID, "%s: %s", what, store_strerror(STORE_INVALID));
    return false;
}

/* --- planning: one function per kind --- */

/* A user that cannot hold a coupon: the operation is `e` without asking. */
static bool
user_usable(struct store_op *op, const char *what, enum store_err e)
{
    if (user_ok(op->in.user))
        return true;
    store_op_fail(op, e, "%s: %s", what, store_strerror(e));
    return false;
}

static bool
plan_redeem(struct store_op *op, struct pg_call *call)
{
    if (!code_ok(op, "redeem") || !user_usable(op, "redeem", STORE_INVALID))
        return false;
    put_i64(call, op->now);
    put_text(call, op->in.code);
    put_text(call, op->in.user);
    put_i64(call, clamp_i64(op->in.hold_seq));
    return true;
}

static bool
plan_hold(struct store_op *op, struct pg_call *call)
{
    if (!code_ok(op, "hold") || !user_usable(op, "hold", STORE_INVALID))
        return false;
    put_i64(call, op->now);
    put_text(call, op->in.code);
    put_text(call, op->in.user);
    put_i64(call, op->in.until);
    return true;
}

static bool
plan_release(struct store_op *op, struct pg_call *call)
{
    if (op->in.hold_seq == 0 || op->in.hold_seq > INT64_MAX) {
        store_op_fail(op, STORE_UNKNOWN_HOLD, "release: %s", store_strerror(STORE_UNKNOWN_HOLD));
        return false;
    }
    put_i64(call, op->now);
    put_i64(call, (int64_t)op->in.hold_seq);
    return true;
}

static bool
plan_unredeem(struct store_op *op, struct pg_call *call)
{
    if (op->now == 0) { /* undone 0 means "stands": a caller's mistake, refused alone */
        store_op_fail(op, STORE_IO, "unredeem: time 0 cannot mark an undo");
        return false;
    }
    if (op->in.after == 0 || op->in.after > INT64_MAX) {
        store_op_fail(op, STORE_UNKNOWN_REDEMPTION, "unredeem: %s",
                      store_strerror(STORE_UNKNOWN_REDEMPTION));
        return false;
    }
    if (!user_usable(op, "unredeem", STORE_UNKNOWN_REDEMPTION))
        return false;
    put_i64(call, op->now);
    put_i64(call, (int64_t)op->in.after);
    put_text(call, op->in.user);
    return true;
}

/* PURGE, EXPIRE_HOLDS, EXPIRE_IDS: now and the most to delete (one more is counted). */
static bool
plan_bounded(struct store_op *op, struct pg_call *call)
{
    int64_t max = clamp_i64(op->in.max);

    put_i64(call, op->now);
    put_i64(call, max == INT64_MAX ? INT64_MAX - 1 : max);
    return true;
}

/* GET and VALIDATE. */
static bool
plan_get(struct store_op *op, struct pg_call *call)
{
    if (!code_ok(op, op->kind == STORE_OP_GET ? "get" : "validate"))
        return false;
    put_i64(call, op->now);
    put_text(call, op->in.code);
    return true;
}

/* COUNTERS and CHECK: the time they count at. */
static bool
plan_now(struct store_op *op, struct pg_call *call)
{
    put_i64(call, op->now);
    return true;
}

static bool
plan_history(struct store_op *op, struct pg_call *call)
{
    if (op->in.cap == 0 || op->in.rows == NULL || op->in.after >= INT64_MAX)
        return false; /* nothing to read */
    put_i64(call, (int64_t)op->in.after);
    put_i64(call, clamp_i64(op->in.cap));
    return true;
}

static bool
plan_rid_get(struct store_op *op, struct pg_call *call)
{
    if (op->in.rid.id[0] == '\0' || !pg_rid_valid(op)) {
        store_op_fail(op, STORE_INVALID, "request id %s is not stored", op->in.rid.id);
        return false;
    }
    put_text(call, op->in.rid.scope);
    put_text(call, op->in.rid.id);
    return true;
}

static bool
plan_grant_done(struct store_op *op, struct pg_call *call)
{
    if (op->in.grant == 0 || op->in.grant > INT64_MAX)
        return false; /* no slot: nothing to close */
    put_i64(call, (int64_t)op->in.grant);
    return true;
}

/* NOOP: complete at once; in a batch, with the batch, once it is durable. */
static bool
plan_noop(struct store_op *op, struct pg_call *call)
{
    (void)op;
    (void)call;
    return false;
}

static bool
plan_coupons(struct store_op *op, struct pg_call *call)
{
    if (!user_ok(op->in.user))
        return false; /* only a user has coupons: none */
    put_i64(call, op->now);
    put_text(call, op->in.user);
    put_i64(call, op->in.coupons == NULL ? 0 : clamp_i64(op->in.cap));
    return true;
}

/* Why a redemption (with hold `hold`, found or not) of coupon c did not happen. */
static enum store_err
redeem_refused(const struct store_op *op, const struct store_coupon *c, bool hold_found)
{
    enum store_err e;

    if (op->in.hold_seq == 0)
        e = rules_usable(c, op->in.user, op->now);
    else if (c->user[0] == '\0' || strcmp(c->user, op->in.user) != 0)
        e = STORE_INVALID;
    else if (!hold_found)
        e = STORE_UNKNOWN_HOLD;
    else
        e = op->now > c->expires ? STORE_EXPIRED : STORE_OK;
    return e == STORE_OK ? STORE_IO : e; /* the row was locked: OK cannot be */
}

static void
result_redeem(struct store_op *op, const PGresult *r)
{
    struct store_coupon c;
    enum store_err e;

    if (!rows_ok(op, "redeem", r, 2 + PG_SQL_COUPON_NCOLS))
        return;
    if (PQntuples(r) == 0) {
        store_op_fail(op, STORE_INVALID, "redeem: %s", store_strerror(STORE_INVALID));
        return;
    }
    pg_val_coupon(r, 0, 2, &c);
    if (!PQgetisnull(r, 0, 0)) {
        if (op->in.hold_seq != 0 && c.held > 0)
            c.held--; /* the hold it used is gone */
        op->out.coupon = c;
        op->out.redemption = pg_val_u64(r, 0, 0);
        return;
    }
    e = redeem_refused(op, &c, PQgetvalue(r, 0, 1)[0] == 't');
    if (e != STORE_INVALID) /* never show a coupon to a user it does not belong to */
        op->out.coupon = c;
    store_op_fail(op, e, "redeem: %s", store_strerror(e));
}

static void
result_hold(struct store_op *op, const PGresult *r)
{
    struct store_coupon c;
    enum store_err e;

    if (!rows_ok(op, "hold", r, 2 + PG_SQL_COUPON_NCOLS))
        return;
    if (PQntuples(r) == 0) {
        store_op_fail(op, STORE_INVALID, "hold: %s", store_strerror(STORE_INVALID));
        return;
    }
    pg_val_coupon(r, 0, 2, &c);
    if (!PQgetisnull(r, 0, 0)) {
        op->out.hold.seq = pg_val_u64(r, 0, 0);
        op->out.hold.expires = pg_val_i64(r, 0, 1);
        if (op->out.hold.expires >= op->now)
            c.held++;
        op->out.coupon = c;
        return;
    }
    e = rules_usable(&c, op->in.user, op->now);
    if (e == STORE_OK)
        e = STORE_IO;
    if (e != STORE_INVALID)
        op->out.coupon = c;
    store_op_fail(op, e, "hold: %s", store_strerror(e));
}

/* RELEASE and UNREDEEM: the coupon, or `none` when there was nothing to undo. */
static void
result_undo(struct store_op *op, const PGresult *r, const char *what, enum store_err none)
{
    if (!rows_ok(op, what, r, PG_SQL_COUPON_NCOLS))
        return;
    if (PQntuples(r) == 0) {
        store_op_fail(op, none, "%s: %s", what, store_strerror(none));
        return;
    }
    pg_val_coupon(r, 0, 0, &op->out.coupon);
    if (op->kind == STORE_OP_RELEASE && op->out.coupon.held > 0)
        op->out.coupon.held--; /* counted before the hold was gone */
}

static void
result_coupons(struct store_op *op, const PGresult *r)
{
    int n;

    if (!rows_ok(op, "coupons", r, PG_SQL_COUPON_NCOLS + 1))
        return;
    n = PQntuples(r);
    if (n > 0)
        op->out.count = pg_val_u64(r, 0, PG_SQL_COUPON_NCOLS);
    for (int i = 0; i < n && op->in.coupons != NULL && (size_t)i < op->in.cap; i++)
        pg_val_coupon(r, i, 0, &op->in.coupons[i]);
}

static void
result_purge(struct store_op *op, const PGresult *r)
{
    if (!rows_ok(op, "purge", r, 2) || PQntuples(r) != 1)
        return;
    op->out.count = pg_val_u64(r, 0, 0);
    op->out.more = PQgetvalue(r, 0, 1)[0] == 't';
}

static void
result_get(struct store_op *op, const PGresult *r)
{
    const char *what = op->kind == STORE_OP_GET ? "get" : "validate";
    struct store_coupon c;
    enum store_err e;

    if (!rows_ok(op, what, r, PG_SQL_COUPON_NCOLS))
        return;
    if (PQntuples(r) == 0) {
        store_op_fail(op, STORE_INVALID, "%s: %s", what, store_strerror(STORE_INVALID));
        return;
    }
    pg_val_coupon(r, 0, 0, &c);
    if (op->kind == STORE_OP_GET) {
        op->out.coupon = c;
        return;
    }
    e = rules_usable(&c, op->in.user, op->now);
    if (e != STORE_INVALID)
        op->out.coupon = c;
    if (e != STORE_OK)
        store_op_fail(op, e, "validate: %s", store_strerror(e));
}

static void
result_counters(struct store_op *op, const PGresult *r)
{
    if (!rows_ok(op, "counters", r, 8) || PQntuples(r) != STORE_NTYPES)
        return;
    for (int i = 0; i < STORE_NTYPES; i++) {
        struct store_type_counters *t = &op->out.counters.type[i];
        int64_t avail = pg_val_i64(r, i, 5);

        t->created = pg_val_u64(r, i, 1);
        t->assigned = pg_val_u64(r, i, 2);
        t->redeemed = pg_val_u64(r, i, 3);
        t->purged = pg_val_u64(r, i, 4);
        t->held = pg_val_u64(r, i, 6);
        t->unredeemed = pg_val_u64(r, i, 7);
        if (avail < 0) {
            store_op_fail(op, STORE_CORRUPT, "counters: available.%d is %" PRId64, i, avail);
            return;
        }
        t->available = (uint64_t)avail;
    }
}

static void
result_history(struct store_op *op, const PGresult *r)
{
    int n;

    if (!rows_ok(op, "history", r, 6))
        return;
    n = PQntuples(r);
    for (int i = 0; i < n && (size_t)i < op->in.cap; i++) {
        struct store_redemption *h = &op->in.rows[i];

        memset(h, 0, sizeof *h);
        h->seq = pg_val_u64(r, i, 0);
        h->time = pg_val_i64(r, i, 1);
        pg_val_text(r, i, 2, h->code, sizeof h->code);
        h->type = (uint8_t)pg_val_i64(r, i, 3);
        pg_val_text(r, i, 4, h->user, sizeof h->user);
        h->undone = pg_val_i64(r, i, 5);
        op->out.count++;
    }
}

static void
result_check(struct store_op *op, const PGresult *r)
{
    if (rows_ok(op, "check", r, 10))
        pg_check_result(op, r);
}

/* GRANT_DONE: a slot closed, already closed or gone alike (store.h). */
static void
result_grant_done(struct store_op *op, const PGresult *r)
{
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        pg_val_fail(op, "grant done", r);
}

static void
result_release(struct store_op *op, const PGresult *r)
{
    result_undo(op, r, "release", STORE_UNKNOWN_HOLD);
}

static void
result_unredeem(struct store_op *op, const PGresult *r)
{
    result_undo(op, r, "unredeem", STORE_UNKNOWN_REDEMPTION);
}

/* Each kind with a statement of its own: the statement, how to plan it and read its result.
 * ASSIGN (runs), UPLOAD and GENERATE (staged) and EXPORT (a cursor) are run elsewhere; NOOP has
 * no statement. */
static const struct {
    enum pg_stmt stmt;
    bool (*plan)(struct store_op *op, struct pg_call *call);
    void (*result)(struct store_op *op, const PGresult *r);
} kinds[STORE_NOPS] = {
    [STORE_OP_REDEEM] = {PG_STMT_REDEEM, plan_redeem, result_redeem},
    [STORE_OP_PURGE] = {PG_STMT_PURGE, plan_bounded, result_purge},
    [STORE_OP_VALIDATE] = {PG_STMT_GET, plan_get, result_get},
    [STORE_OP_GET] = {PG_STMT_GET, plan_get, result_get},
    [STORE_OP_COUNTERS] = {PG_STMT_COUNTERS, plan_now, result_counters},
    [STORE_OP_HISTORY] = {PG_STMT_HISTORY, plan_history, result_history},
    [STORE_OP_CHECK] = {PG_STMT_CHECK, plan_now, result_check},
    [STORE_OP_HOLD] = {PG_STMT_HOLD, plan_hold, result_hold},
    [STORE_OP_RELEASE] = {PG_STMT_RELEASE, plan_release, result_release},
    [STORE_OP_UNREDEEM] = {PG_STMT_UNREDEEM, plan_unredeem, result_unredeem},
    [STORE_OP_EXPIRE_HOLDS] = {PG_STMT_EXPIRE_HOLDS, plan_bounded, result_purge},
    [STORE_OP_EXPIRE_IDS] = {PG_STMT_EXPIRE_IDS, plan_bounded, result_purge},
    [STORE_OP_RID_GET] = {PG_STMT_RID_GET, plan_rid_get, pg_rid_get_result},
    [STORE_OP_COUPONS] = {PG_STMT_COUPONS, plan_coupons, result_coupons},
    [STORE_OP_NOOP] = {PG_NSTMTS, plan_noop, NULL},
    [STORE_OP_GRANT_DONE] = {PG_STMT_GRANT_DONE, plan_grant_done, result_grant_done},
    /* Its parameter is the store's node, not op's: run by pg_reader_read_stmt, not planned here. */
    [STORE_OP_AUDIT_HEAD] = {PG_STMT_AUDIT_HEAD, NULL, pg_audit_head_read_result},
};

bool
pg_ops_plan(struct store_op *op, struct pg_call *call)
{
    reset(op);
    call->n = 0;
    if ((unsigned)op->kind >= STORE_NOPS || kinds[op->kind].plan == NULL) {
        store_op_fail(op, STORE_IO, "operation %d is not served by the postgresql store",
                      (int)op->kind);
        return false;
    }
    call->stmt = kinds[op->kind].stmt;
    return kinds[op->kind].plan(op, call);
}

void
pg_ops_result(struct store_op *op, const PGresult *r)
{
    if ((unsigned)op->kind < STORE_NOPS && kinds[op->kind].result != NULL)
        kinds[op->kind].result(op, r);
    else
        store_op_fail(op, STORE_IO, "operation %d has no statement", (int)op->kind);
}

/* --- runs of assignments --- */

bool
pg_ops_assign_ok(struct store_op *op)
{
    reset(op);
    /* The store's own rules: an assigned coupon is one with a user. */
    if ((unsigned)op->in.type < STORE_NTYPES && user_ok(op->in.user))
        return true;
    store_op_fail(op, STORE_INVALID, "assign: %s", store_strerror(STORE_INVALID));
    return false;
}

int64_t
pg_ops_assign_bound(const struct store_op *op)
{
    return op->in.min_expires > op->now ? op->in.min_expires : op->now;
}

bool
pg_ops_run_fits(const struct pg_run *r, const struct store_op *op)
{
    return !r->has[op->in.type] || r->bound[op->in.type] == pg_ops_assign_bound(op);
}

void
pg_floor_clear(struct pg_floor *f, double now)
{
    for (int t = 0; t < STORE_NTYPES; t++)
        f->expires[t] = f->seq[t] = INT64_MIN;
    f->cleared = now;
}

void
pg_floor_raise(struct pg_floor *f, struct store_op *const *ops, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        const struct store_coupon *c = &ops[i]->out.coupon;
        int64_t seq = (int64_t)c->seq;

        if (ops[i]->err != STORE_OK || c->code[0] == '\0' || c->type >= STORE_NTYPES)
            continue;
        if (c->expires > f->expires[c->type] ||
            (c->expires == f->expires[c->type] && seq > f->seq[c->type])) {
            f->expires[c->type] = c->expires;
            f->seq[c->type] = seq;
        }
    }
}

bool
pg_ops_run_add(struct pg_run *r, struct store_op *op, const struct pg_floor *f)
{
    int64_t bound = pg_ops_assign_bound(op);

    pg_arr_i64(&r->arr[0], (int64_t)r->k);
    pg_arr_i64(&r->arr[1], op->in.type);
    pg_arr_i64(&r->arr[2], bound);
    pg_arr_text(&r->arr[3], op->in.user);
    pg_arr_i64(&r->arr[4], op->now);
    pg_arr_i64(&r->arr[5], f->expires[op->in.type]);
    pg_arr_i64(&r->arr[6], f->seq[op->in.type]);
    r->has[op->in.type] = true;
    r->bound[op->in.type] = bound;
    r->k++;
    for (int i = 0; i < PG_RUN_PARAMS; i++)
        if (r->arr[i].b.oom)
            return false;
    return true;
}

bool
pg_ops_run_params(struct pg_run *r, const char *v[PG_RUN_PARAMS])
{
    for (int i = 0; i < PG_RUN_PARAMS; i++)
        if ((v[i] = pg_arr_text_of(&r->arr[i])) == NULL)
            return false;
    return true;
}

void
pg_ops_run_result(struct store_op **ops, size_t k, const PGresult *r)
{
    int n;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) < 1 + PG_SQL_COUPON_NCOLS) {
        for (size_t i = 0; i < k; i++)
            pg_val_fail(ops[i], "assign", r);
        return;
    }
    n = PQntuples(r);
    for (int row = 0; row < n; row++) {
        int64_t i = pg_val_i64(r, row, 0);

        if (i >= 0 && (size_t)i < k)
            pg_val_coupon(r, row, 1, &ops[i]->out.coupon);
    }
    for (size_t i = 0; i < k; i++)
        if (ops[i]->out.coupon.code[0] == '\0')
            store_op_fail(ops[i], STORE_NO_COUPONS, "assign: %s", store_strerror(STORE_NO_COUPONS));
}

void
pg_ops_run_free(struct pg_run *r)
{
    for (int i = 0; i < PG_RUN_PARAMS; i++)
        pg_arr_free(&r->arr[i]);
    memset(r, 0, sizeof *r);
}

/* --- MEGADEAL grants shared by nodes --- */

bool
pg_ops_is_grant(const struct store_op *op)
{
    return op->kind == STORE_OP_ASSIGN && op->in.limit.rate > 0;
}

void
pg_ops_grant_plan(struct store_op *op, const char *node, struct pg_call *call)
{
    call->stmt = PG_STMT_GRANT;
    call->n = 0;
    put_i64(call, op->now);
    put_i64(call, op->in.type);
    put_i64(call, pg_ops_assign_bound(op));
    put_text(call, op->in.user);
    put_text(call, node);
    put_i64(call, clamp_i64(op->in.task_seq));
    put_i64(call, op->in.limit.rate);
    put_i64(call, op->in.limit.concurrency);
    put_i64(call, op->in.limit.window_ms > 0 ? op->in.limit.window_ms : 1);
}

void
pg_ops_grant_result(struct store_op *op, const PGresult *r)
{
    if (!rows_ok(op, "grant", r, 2 + PG_SQL_COUPON_NCOLS))
        return;
    if (PQntuples(r) != 1) {
        store_op_fail(op, STORE_IO, "grant: %d rows instead of one", PQntuples(r));
        return;
    }
    if (PQgetvalue(r, 0, 0)[0] != 't') {
        store_op_fail(op, STORE_LIMITED, "grant: %s", store_strerror(STORE_LIMITED));
        return;
    }
    if (PQgetisnull(r, 0, 1)) {
        store_op_fail(op, STORE_NO_COUPONS, "assign: %s", store_strerror(STORE_NO_COUPONS));
        return;
    }
    op->out.grant = pg_val_u64(r, 0, 1);
    pg_val_coupon(r, 0, 2, &op->out.coupon);
}
