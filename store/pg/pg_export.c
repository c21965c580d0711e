/* pg_export.c - exports through server-side cursors on connections of their own (see
 * pg_export.h). */
#include "pg_export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "pg_audit.h"
#include "pg_conn.h"
#include "pg_sql.h"
#include "pg_val.h"
#include "rules.h"

#define FETCH_SQL_MAX 64 /* "FETCH <count> FROM coupond_export" */

struct pg_export {
    struct pg_exports *xs;
    struct pg_export *next;
    struct pg_conn conn;
    struct store_op *op; /* the call in flight, or NULL */
    enum store_export_kind kind;
    bool released; /* gone from the caller's hands; freed on the next loop turn */
    ev_timer reap;
    char sql[PG_SQL_EXPORT_MAX];
};

/* --- the end of an export --- */

/* Takes x off the list and frees it. */
static void
destroy(struct pg_export *x)
{
    struct pg_export **pp = &x->xs->list;

    while (*pp != NULL && *pp != x)
        pp = &(*pp)->next;
    if (*pp == x)
        *pp = x->next;
    ev_timer_stop(x->xs->loop, &x->reap);
    pg_conn_stop(&x->conn);
    free(x);
}

static void
on_reap(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    destroy(t->data);
}

/* Closes x's connection and frees it on the next loop turn (its connection may be calling us
 * now). */
static void
release(struct pg_export *x)
{
    if (x->released)
        return;
    x->released = true;
    pg_conn_stop(&x->conn);
    ev_timer_start(x->xs->loop, &x->reap);
}

/* Completes the call in flight. */
static void
complete(struct pg_export *x)
{
    struct store_op *op = x->op;

    x->op = NULL;
    if (op->err != STORE_OK || !op->out.more) {
        op->out.more = false;
        op->out.cursor = NULL;
        release(x);
    } else {
        op->out.cursor = x;
    }
    ev_unref(x->xs->loop); /* no longer owed */
    store_op_complete(op);
}

/* --- results --- */

static void
res_ok(void *arg, PGresult *r)
{
    struct pg_export *x = arg;

    if (x->op != NULL && x->op->err == STORE_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
        pg_val_fail(x->op, "export", r);
}

static void
res_rows(void *arg, PGresult *r)
{
    struct pg_export *x = arg;
    struct store_op *op = x->op;
    int n;

    if (op == NULL || op->err != STORE_OK)
        return;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_val_fail(op, "export", r);
        return;
    }
    if (x->kind == STORE_EXPORT_AUDIT) {
        pg_audit_export_rows(op, r);
        return;
    }
    n = PQntuples(r);
    if ((x->kind == STORE_EXPORT_COUPONS ? (void *)op->in.coupons : (void *)op->in.rows) == NULL)
        n = 0; /* no room given */
    for (int i = 0; i < n && (size_t)i < op->in.cap; i++) {
        if (x->kind == STORE_EXPORT_COUPONS) {
            pg_val_coupon(r, i, 0, &op->in.coupons[i]);
            continue;
        }
        struct store_redemption *h = &op->in.rows[i];

        memset(h, 0, sizeof *h);
        h->seq = pg_val_u64(r, i, 0);
        h->time = pg_val_i64(r, i, 1);
        pg_val_text(r, i, 2, h->code, sizeof h->code);
        h->type = (uint8_t)pg_val_i64(r, i, 3);
        pg_val_text(r, i, 4, h->user, sizeof h->user);
        h->undone = pg_val_i64(r, i, 5);
    }
    op->out.count = (uint64_t)n;
    op->out.more = (size_t)n == op->in.cap; /* a full page: maybe more */
}

static void
res_sync(void *arg, PGresult *r)
{
    struct pg_export *x = arg;

    (void)r;
    if (x->op != NULL)
        complete(x);
}

/* Asks for the next page. */
static void
fetch(struct pg_export *x)
{
    char sql[FETCH_SQL_MAX];

    snprintf(sql, sizeof sql, "FETCH %zu FROM coupond_export", x->op->in.cap);
    if (pg_conn_exec(&x->conn, sql, res_rows, x) && pg_conn_sync(&x->conn, res_sync, x))
        pg_conn_flush(&x->conn); /* on failure `lost` completes the call */
}

static void
on_ready(void *arg)
{
    struct pg_export *x = arg;
    char declare[PG_SQL_EXPORT_MAX + 64];

    snprintf(declare, sizeof declare, "DECLARE coupond_export NO SCROLL CURSOR FOR %s", x->sql);
    if (pg_conn_exec(&x->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", res_ok, x) &&
        pg_conn_exec(&x->conn, declare, res_ok, x))
        fetch(x);
}

static void
on_lost(void *arg)
{
    struct pg_export *x = arg;

    if (x->op == NULL) {
        release(x);
        return;
    }
    if (x->op->err == STORE_OK)
        store_op_fail(x->op, STORE_UNAVAILABLE, "export: %s", x->conn.why);
    complete(x);
}

/* --- calls --- */

/* The first call: a new export, connecting. */
static void
begin(struct pg_exports *xs, struct store_op *op)
{
    struct pg_export *x;

    if (op->in.export_kind == STORE_EXPORT_CODE_HISTORY && rules_code_len(op->in.code) == 0) {
        store_op_complete(op); /* no such coupon: no rows */
        return;
    }
    if ((x = calloc(1, sizeof *x)) == NULL) {
        store_op_fail(op, STORE_IO, "export: out of memory");
        store_op_complete(op);
        return;
    }
    x->xs = xs;
    ev_timer_init(&x->reap, on_reap, 0., 0.);
    x->reap.data = x;
    x->kind = op->in.export_kind;
    x->op = op;
    x->next = xs->list;
    xs->list = x;
    if (x->kind == STORE_EXPORT_AUDIT)
        pg_audit_export_sql(x->sql, sizeof x->sql, xs->node,
                            op->in.after > INT64_MAX ? INT64_MAX : (int64_t)op->in.after);
    else
        pg_sql_export(x->sql, sizeof x->sql, (int)x->kind, op->in.any_type, (int)op->in.type,
                      op->in.after > INT64_MAX ? INT64_MAX : (int64_t)op->in.after, op->in.code,
                      op->now);
    pg_conn_init(&x->conn, xs->loop, xs->keys, xs->vals, "export", on_ready, on_lost, x);
    x->conn.bare = true;
    ev_ref(xs->loop); /* owed */
    pg_conn_start(&x->conn);
}

void
pg_export_read(struct pg_exports *xs, struct store_op *op)
{
    struct pg_export *x = op->in.cursor;

    op->out.count = 0;
    op->out.more = false;
    op->out.cursor = NULL;
    if (x == NULL) {
        if (op->in.close)
            store_op_complete(op);
        else
            begin(xs, op);
        return;
    }
    if (op->in.close || x->op != NULL || x->released) {
        if (x->op != NULL)
            store_op_fail(op, STORE_IO, "export: a call of this export is in flight");
        else
            release(x);
        store_op_complete(op);
        return;
    }
    x->op = op;
    ev_ref(xs->loop); /* owed */
    fetch(x);
}

void
pg_export_close_all(struct pg_exports *xs)
{
    while (xs->list != NULL) {
        if (xs->list->op != NULL)
            ev_unref(xs->loop); /* no longer owed */
        destroy(xs->list);
    }
}
