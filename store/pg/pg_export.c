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

/* Rows a call fills at most, whatever in.cap says: keeps cap + 1 (the row looked ahead) from
 * overflowing; far above any page a caller asks for. */
#define PAGE_MAX ((size_t)1 << 30)

/* One row of an export: a coupon, a redemption or an audit record. */
union pg_export_row {
    struct store_coupon coupon;
    struct store_redemption redemption;
    struct store_audit_row audit;
};

struct pg_export {
    struct pg_exports *xs;
    struct pg_export *next;
    struct pg_conn conn;
    uint64_t id;         /* its cursor, as store.h hands it out */
    struct store_op *op; /* the call in flight, or NULL */
    enum store_export_kind kind;
    bool released; /* gone from the caller's hands; freed on the next loop turn */
    ev_timer reap;
    bool have_row;           /* `row` was fetched and is not yet given out */
    union pg_export_row row; /* the row after the last page */
    char sql[PG_SQL_EXPORT_MAX];
};

/* --- the list --- */

static void *
cursor_of(const struct pg_export *x)
{
    return (void *)(uintptr_t)x->id;
}

/* The open export that `cursor` names, or NULL. */
static struct pg_export *
find(struct pg_exports *xs, const void *cursor)
{
    for (struct pg_export *x = xs->list; x != NULL; x = x->next)
        if (!x->released && cursor_of(x) == cursor)
            return x;
    return NULL;
}

static size_t
open_count(const struct pg_exports *xs)
{
    size_t n = 0;

    for (const struct pg_export *x = xs->list; x != NULL; x = x->next)
        n += !x->released;
    return n;
}

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
    op->out.more = op->err == STORE_OK && x->have_row;
    if (op->err != STORE_OK)
        op->out.count = 0;
    if (!op->out.more) {
        op->out.cursor = NULL;
        release(x);
    } else {
        op->out.cursor = cursor_of(x);
    }
    ev_unref(x->xs->loop); /* no longer owed */
    store_op_complete(op);
}

/* --- rows --- */

/* Row i of r into *row; false when it is not a row of x's kind. */
static bool
read_row(const struct pg_export *x, const PGresult *r, int i, union pg_export_row *row)
{
    struct store_redemption *h = &row->redemption;

    if (x->kind == STORE_EXPORT_AUDIT)
        return pg_audit_export_row(r, i, &row->audit);
    if (x->kind == STORE_EXPORT_COUPONS) {
        pg_val_coupon(r, i, 0, &row->coupon);
        return true;
    }
    memset(h, 0, sizeof *h);
    h->seq = pg_val_u64(r, i, 0);
    h->time = pg_val_i64(r, i, 1);
    pg_val_text(r, i, 2, h->code, sizeof h->code);
    h->type = (uint8_t)pg_val_i64(r, i, 3);
    pg_val_text(r, i, 4, h->user, sizeof h->user);
    h->undone = pg_val_i64(r, i, 5);
    return true;
}

/* The page's room for rows, at most PAGE_MAX. */
static size_t
page_cap(const struct store_op *op)
{
    return op->in.cap < PAGE_MAX ? op->in.cap : PAGE_MAX;
}

/* Gives out `row` as the call's next row when the page has room, else keeps it for the next
 * call. */
static void
place(struct pg_export *x, struct store_op *op, const union pg_export_row *row)
{
    if (op->out.count >= page_cap(op)) {
        x->row = *row;
        x->have_row = true;
    } else if (x->kind == STORE_EXPORT_COUPONS) {
        op->in.coupons[op->out.count++] = row->coupon;
    } else if (x->kind == STORE_EXPORT_AUDIT) {
        op->in.audit[op->out.count++] = row->audit;
    } else {
        op->in.rows[op->out.count++] = row->redemption;
    }
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
    union pg_export_row row;

    if (op == NULL || op->err != STORE_OK)
        return;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_val_fail(op, "export", r);
        return;
    }
    for (int i = 0; i < PQntuples(r) && !x->have_row; i++) {
        if (!read_row(x, r, i, &row)) {
            store_op_fail(op, STORE_CORRUPT, "export: a row of the table is malformed");
            return;
        }
        place(x, op, &row);
    }
}

/* The count of the export's rows (in.count), in its snapshot. */
static void
res_total(void *arg, PGresult *r)
{
    struct pg_export *x = arg;

    if (x->op == NULL || x->op->err != STORE_OK)
        return;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        pg_val_fail(x->op, "export: count", r);
        return;
    }
    x->op->out.total = pg_val_u64(r, 0, 0);
}

static void
res_sync(void *arg, PGresult *r)
{
    struct pg_export *x = arg;

    (void)r;
    if (x->op != NULL)
        complete(x);
}

/* Fills the call's page: the row kept from the last call first, then a FETCH of the rest and
 * one row more. */
static void
fetch(struct pg_export *x)
{
    struct store_op *op = x->op;
    char sql[FETCH_SQL_MAX];

    if (x->have_row && page_cap(op) > 0) {
        x->have_row = false;
        place(x, op, &x->row);
    }
    if (x->have_row) { /* an empty page: the kept row says there is more */
        complete(x);
        return;
    }
    snprintf(sql, sizeof sql, "FETCH %zu FROM coupond_export", page_cap(op) - op->out.count + 1);
    if (pg_conn_exec(&x->conn, sql, res_rows, x) && pg_conn_sync(&x->conn, res_sync, x))
        pg_conn_flush(&x->conn); /* on failure `lost` completes the call */
}

static void
on_ready(void *arg)
{
    struct pg_export *x = arg;
    char declare[PG_SQL_EXPORT_MAX + 64], count[PG_SQL_EXPORT_MAX + 64];

    snprintf(declare, sizeof declare, "DECLARE coupond_export NO SCROLL CURSOR FOR %s", x->sql);
    snprintf(count, sizeof count, "SELECT count(*) FROM (%s) AS export", x->sql);
    if (pg_conn_exec(&x->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", res_ok, x) &&
        (x->op == NULL || !x->op->in.count || pg_conn_exec(&x->conn, count, res_total, x)) &&
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

/* Fails op, a call that cannot run, at once, saying why. */
static void
refuse(struct store_op *op, const char *why)
{
    store_op_fail(op, STORE_IO, "export: %s", why);
    store_op_complete(op);
}

/* True when op gives room for the rows it asks for. */
static bool
has_room(const struct store_op *op)
{
    const void *room = op->in.export_kind == STORE_EXPORT_COUPONS ? (const void *)op->in.coupons
                       : op->in.export_kind == STORE_EXPORT_AUDIT ? (const void *)op->in.audit
                                                                  : (const void *)op->in.rows;

    return op->in.cap == 0 || room != NULL;
}

/* The first call: a new export, connecting. */
static void
begin(struct pg_exports *xs, struct store_op *op)
{
    struct pg_export *x;

    if ((unsigned)op->in.export_kind > STORE_EXPORT_AUDIT ||
        (op->in.export_kind == STORE_EXPORT_COUPONS && !op->in.any_type &&
         (unsigned)op->in.type >= STORE_NTYPES)) {
        refuse(op, "no such kind or type");
        return;
    }
    if (op->in.export_kind == STORE_EXPORT_CODE_HISTORY && rules_code_len(op->in.code) == 0) {
        store_op_complete(op); /* no such coupon: no rows */
        return;
    }
    if (open_count(xs) >= PG_EXPORT_MAX) {
        store_op_fail(op, STORE_IO, "export: %d exports are open already, the most at once",
                      PG_EXPORT_MAX);
        store_op_complete(op);
        return;
    }
    if ((x = calloc(1, sizeof *x)) == NULL) {
        refuse(op, "out of memory");
        return;
    }
    x->xs = xs;
    x->id = ++xs->last_id;
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
    struct pg_export *x = NULL;

    op->err = STORE_OK;
    op->out.count = 0;
    op->out.total = 0;
    op->out.more = false;
    op->out.cursor = NULL;
    if (op->in.cursor != NULL && (x = find(xs, op->in.cursor)) == NULL) {
        refuse(op, "no such open export");
        return;
    }
    if (x != NULL && x->op != NULL) {
        refuse(op, "a call of this export is in flight");
        return;
    }
    if (op->in.close) {
        if (x != NULL)
            release(x);
        store_op_complete(op);
        return;
    }
    if (!has_room(op)) {
        if (x != NULL)
            release(x); /* a failed call ends its export */
        refuse(op, "no room for rows");
        return;
    }
    if (x == NULL) {
        begin(xs, op);
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
