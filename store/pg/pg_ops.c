/* pg_ops.c - operations as statements: checks, parameters, results (see pg_ops.h). */
#include "pg_ops.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "pg_check.h"
#include "rules.h"

/* Room a run's array parameter starts with; it doubles as needed. */
#define RUN_ARRAY_FIRST 256

/* --- decoding --- */

int64_t
pg_ops_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

uint64_t
pg_ops_u64(const PGresult *r, int row, int col)
{
    int64_t v = pg_ops_i64(r, row, col);

    return v < 0 ? 0 : (uint64_t)v;
}

static void
text_col(const PGresult *r, int row, int col, char *out, size_t len)
{
    snprintf(out, len, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

void
pg_ops_coupon(const PGresult *r, int row, int first, struct store_coupon *c)
{
    memset(c, 0, sizeof *c);
    text_col(r, row, first + PG_COL_CODE, c->code, sizeof c->code);
    c->type = (uint8_t)pg_ops_i64(r, row, first + PG_COL_TYPE);
    c->kind = (uint8_t)pg_ops_i64(r, row, first + PG_COL_KIND);
    c->discount = pg_ops_i64(r, row, first + PG_COL_DISCOUNT);
    c->expires = pg_ops_i64(r, row, first + PG_COL_EXPIRES);
    c->uses = (uint32_t)pg_ops_u64(r, row, first + PG_COL_USES);
    c->max_uses = (uint32_t)pg_ops_u64(r, row, first + PG_COL_MAX_USES);
    c->held = (uint32_t)pg_ops_u64(r, row, first + PG_COL_HELD);
    c->seq = pg_ops_u64(r, row, first + PG_COL_SEQ);
    text_col(r, row, first + PG_COL_OWNER, c->user, sizeof c->user);
    c->assigned_at = pg_ops_i64(r, row, first + PG_COL_ASSIGNED_AT);
}

void
pg_ops_fail(struct store_op *op, const char *what, const PGresult *r)
{
    char msg[STORE_ERR_MAX];
    const char *m = r != NULL ? PQresultErrorMessage(r) : "no result";

    snprintf(msg, sizeof msg, "%s", m[0] != '\0' ? m : "unexpected result");
    for (char *p = msg; *p != '\0'; p++)
        if (*p == '\n')
            *p = ' ';
    store_op_fail(op, STORE_IO, "%s: %s", what, msg);
}

/* True when r is a statement's rows with at least `cols` columns. */
static bool
rows_ok(struct store_op *op, const char *what, const PGresult *r, int cols)
{
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) >= cols)
        return true;
    pg_ops_fail(op, what, r);
    return false;
}

/* --- text checks --- */

/* Bytes in the UTF-8 sequence starting with lead byte b, 0 when it cannot start one. */
static int
utf8_len(unsigned char b)
{
    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf)
        return 2;
    if (b >= 0xe0 && b <= 0xef)
        return 3;
    if (b >= 0xf0 && b <= 0xf4)
        return 4;
    return 0;
}

bool
pg_ops_text_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        int n = utf8_len(*p);

        if (n == 0)
            return false;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

static bool
user_ok(const char *user)
{
    return rules_user_len(user) > 0 && pg_ops_text_ok(user);
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

bool
pg_ops_plan(struct store_op *op, struct pg_call *call)
{
    reset(op);
    call->n = 0;
    switch (op->kind) {
    case STORE_OP_REDEEM:
        if (!code_ok(op, "redeem"))
            return false;
        if (!user_ok(op->in.user)) {
            store_op_fail(op, STORE_INVALID, "redeem: %s", store_strerror(STORE_INVALID));
            return false;
        }
        call->stmt = PG_STMT_REDEEM;
        put_i64(call, op->now);
        put_text(call, op->in.code);
        put_text(call, op->in.user);
        return true;
    case STORE_OP_PURGE:
        call->stmt = PG_STMT_PURGE;
        put_i64(call, op->now);
        put_i64(call, clamp_i64(op->in.max) == INT64_MAX ? INT64_MAX - 1 : clamp_i64(op->in.max));
        return true;
    case STORE_OP_VALIDATE:
    case STORE_OP_GET:
        if (!code_ok(op, op->kind == STORE_OP_GET ? "get" : "validate"))
            return false;
        call->stmt = PG_STMT_GET;
        put_i64(call, op->now);
        put_text(call, op->in.code);
        return true;
    case STORE_OP_COUNTERS:
        call->stmt = PG_STMT_COUNTERS;
        put_i64(call, op->now);
        return true;
    case STORE_OP_HISTORY:
        if (op->in.cap == 0 || op->in.rows == NULL || op->in.after >= INT64_MAX)
            return false; /* nothing to read */
        call->stmt = PG_STMT_HISTORY;
        put_i64(call, (int64_t)op->in.after);
        put_i64(call, clamp_i64(op->in.cap));
        return true;
    case STORE_OP_CHECK:
        call->stmt = PG_STMT_CHECK;
        put_i64(call, op->now);
        return true;
    default:
        store_op_fail(op, STORE_IO, "operation %d is not served by the postgresql store",
                      (int)op->kind);
        return false;
    }
}

static void
result_redeem(struct store_op *op, const PGresult *r)
{
    struct store_coupon c;
    enum store_err e;

    if (!rows_ok(op, "redeem", r, 1 + PG_SQL_COUPON_NCOLS))
        return;
    if (PQntuples(r) == 0) {
        store_op_fail(op, STORE_INVALID, "redeem: %s", store_strerror(STORE_INVALID));
        return;
    }
    pg_ops_coupon(r, 0, 1, &c);
    if (!PQgetisnull(r, 0, 0)) {
        op->out.coupon = c;
        op->out.redemption = pg_ops_u64(r, 0, 0);
        return;
    }
    e = rules_usable(&c, op->in.user, op->now);
    if (e == STORE_OK) /* the row was locked: this cannot be */
        e = STORE_IO;
    if (e != STORE_INVALID) /* never show a coupon to a user it does not belong to */
        op->out.coupon = c;
    store_op_fail(op, e, "redeem: %s", store_strerror(e));
}

static void
result_purge(struct store_op *op, const PGresult *r)
{
    if (!rows_ok(op, "purge", r, 2) || PQntuples(r) != 1)
        return;
    op->out.count = pg_ops_u64(r, 0, 0);
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
    pg_ops_coupon(r, 0, 0, &c);
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
        int64_t avail = pg_ops_i64(r, i, 5);

        t->created = pg_ops_u64(r, i, 1);
        t->assigned = pg_ops_u64(r, i, 2);
        t->redeemed = pg_ops_u64(r, i, 3);
        t->purged = pg_ops_u64(r, i, 4);
        t->held = pg_ops_u64(r, i, 6);
        t->unredeemed = pg_ops_u64(r, i, 7);
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
        h->seq = pg_ops_u64(r, i, 0);
        h->time = pg_ops_i64(r, i, 1);
        text_col(r, i, 2, h->code, sizeof h->code);
        h->type = (uint8_t)pg_ops_i64(r, i, 3);
        text_col(r, i, 4, h->user, sizeof h->user);
        h->undone = pg_ops_i64(r, i, 5);
        op->out.count++;
    }
}

void
pg_ops_result(struct store_op *op, const PGresult *r)
{
    switch (op->kind) {
    case STORE_OP_REDEEM:
        result_redeem(op, r);
        break;
    case STORE_OP_PURGE:
        result_purge(op, r);
        break;
    case STORE_OP_VALIDATE:
    case STORE_OP_GET:
        result_get(op, r);
        break;
    case STORE_OP_COUNTERS:
        result_counters(op, r);
        break;
    case STORE_OP_HISTORY:
        result_history(op, r);
        break;
    case STORE_OP_CHECK:
        if (rows_ok(op, "check", r, 10))
            pg_check_result(op, r);
        break;
    default:
        store_op_fail(op, STORE_IO, "operation %d has no statement", (int)op->kind);
        break;
    }
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

/* Appends "," (unless first) and s to array a of r. */
static bool
arr_put(struct pg_run *r, int a, const char *s, size_t n)
{
    size_t need = r->len[a] + n + 3; /* separator, closing brace, NUL */

    if (need > r->cap[a]) {
        size_t cap = r->cap[a] == 0 ? RUN_ARRAY_FIRST : r->cap[a];
        char *p;

        while (cap < need)
            cap *= 2;
        if ((p = realloc(r->arr[a], cap)) == NULL)
            return false;
        r->arr[a] = p;
        r->cap[a] = cap;
    }
    if (r->len[a] == 0)
        r->arr[a][r->len[a]++] = '{';
    else
        r->arr[a][r->len[a]++] = ',';
    memcpy(r->arr[a] + r->len[a], s, n);
    r->len[a] += n;
    memcpy(r->arr[a] + r->len[a], "}", 2); /* kept closed: usable at any time */
    return true;
}

static bool
arr_i64(struct pg_run *r, int a, int64_t v)
{
    char buf[PG_OPS_PARAM_LEN];
    int n = snprintf(buf, sizeof buf, "%" PRId64, v);

    return arr_put(r, a, buf, (size_t)n);
}

/* A user as an array element: quoted, with " and \ escaped. */
static bool
arr_text(struct pg_run *r, int a, const char *s)
{
    char buf[2 * STORE_USER_MAX + 3];
    size_t n = 0;

    buf[n++] = '"';
    for (; *s != '\0' && n < sizeof buf - 2; s++) {
        if (*s == '"' || *s == '\\')
            buf[n++] = '\\';
        buf[n++] = *s;
    }
    buf[n++] = '"';
    return arr_put(r, a, buf, n);
}

bool
pg_ops_run_add(struct pg_run *r, struct store_op *op)
{
    int64_t bound = pg_ops_assign_bound(op);

    if (!arr_i64(r, 0, (int64_t)r->k) || !arr_i64(r, 1, op->in.type) || !arr_i64(r, 2, bound) ||
        !arr_text(r, 3, op->in.user) || !arr_i64(r, 4, op->now))
        return false;
    r->has[op->in.type] = true;
    r->bound[op->in.type] = bound;
    r->k++;
    return true;
}

void
pg_ops_run_params(const struct pg_run *r, const char *v[5])
{
    for (int i = 0; i < 5; i++)
        v[i] = r->arr[i];
}

void
pg_ops_run_result(struct store_op **ops, size_t k, const PGresult *r)
{
    int n;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) < 1 + PG_SQL_COUPON_NCOLS) {
        for (size_t i = 0; i < k; i++)
            pg_ops_fail(ops[i], "assign", r);
        return;
    }
    n = PQntuples(r);
    for (int row = 0; row < n; row++) {
        int64_t i = pg_ops_i64(r, row, 0);

        if (i >= 0 && (size_t)i < k)
            pg_ops_coupon(r, row, 1, &ops[i]->out.coupon);
    }
    for (size_t i = 0; i < k; i++)
        if (ops[i]->out.coupon.code[0] == '\0')
            store_op_fail(ops[i], STORE_NO_COUPONS, "assign: %s", store_strerror(STORE_NO_COUPONS));
}

void
pg_ops_run_free(struct pg_run *r)
{
    for (int i = 0; i < 5; i++)
        free(r->arr[i]);
    memset(r, 0, sizeof *r);
}
