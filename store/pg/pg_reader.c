/* pg_reader.c - reads on their own pipelined connection (see pg_reader.h). */
#include "pg_reader.h"

#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "pg_ops.h"

/* Takes the oldest read off the list. */
static struct store_op *
take(struct pg_reader *r)
{
    struct store_op *op = r->head;

    if (op == NULL)
        return NULL;
    r->head = op->next;
    if (r->head == NULL)
        r->tail = &r->head;
    op->next = NULL;
    return op;
}

static void
res_read(void *arg, PGresult *res)
{
    struct pg_reader *r = arg;

    if (r->head != NULL)
        pg_ops_result(r->head, res);
}

static void
res_sync(void *arg, PGresult *res)
{
    struct pg_reader *r = arg;
    struct store_op *op = take(r);

    (void)res;
    if (op == NULL)
        return;
    ev_unref(r->loop);
    store_op_complete(op);
}

static void
on_lost(void *arg)
{
    struct pg_reader *r = arg;
    struct store_op *op;

    while ((op = take(r)) != NULL) {
        store_op_fail(op, STORE_UNAVAILABLE, "read: %s", r->conn.why);
        ev_unref(r->loop);
        store_op_complete(op);
    }
}

bool
pg_reader_open(struct pg_reader *r, struct ev_loop *loop, const char *const *keys,
               const char *const *vals, char *why, size_t len)
{
    r->loop = loop;
    r->head = NULL;
    r->tail = &r->head;
    pg_conn_init(&r->conn, loop, keys, vals, "reader", NULL, on_lost, r);
    if (pg_conn_open(&r->conn))
        return true;
    snprintf(why, len, "%s", r->conn.why);
    return false;
}

/* Queues read op with its statement: a prepared one (sql NULL), or sql. */
static void
send_read(struct pg_reader *r, struct store_op *op, const struct pg_call *call, const char *sql)
{
    bool ok;

    if (!pg_conn_ready(&r->conn)) {
        store_op_fail(op, STORE_UNAVAILABLE, "read: %s",
                      r->conn.why[0] != '\0' ? r->conn.why : "not connected");
        store_op_complete(op);
        return;
    }
    op->next = NULL;
    *r->tail = op;
    r->tail = &op->next;
    ev_ref(r->loop); /* owed */
    ok = sql != NULL ? pg_conn_exec_params(&r->conn, sql, call->n, call->v, res_read, r)
                     : pg_conn_query(&r->conn, call->stmt, call->n, call->v, res_read, r);
    if (ok && pg_conn_sync(&r->conn, res_sync, r))
        pg_conn_flush(&r->conn); /* on failure `lost` completes it */
}

void
pg_reader_read(struct pg_reader *r, struct store_op *op)
{
    struct pg_call call;

    if (store_op_writes(op->kind)) {
        store_op_fail(op, STORE_IO, "operation %d writes: it belongs in a batch", (int)op->kind);
        store_op_complete(op);
        return;
    }
    if (!pg_ops_plan(op, &call)) {
        store_op_complete(op);
        return;
    }
    send_read(r, op, &call, NULL);
}

void
pg_reader_read_sql(struct pg_reader *r, struct store_op *op, const char *sql, int n,
                   const char *const *params)
{
    struct pg_call call = {.n = n};

    memset(&op->out, 0, sizeof op->out);
    for (int i = 0; i < n && i < PG_OPS_PARAMS; i++)
        call.v[i] = params[i];
    send_read(r, op, &call, sql);
}

void
pg_reader_close(struct pg_reader *r)
{
    while (take(r) != NULL)
        ev_unref(r->loop);
    pg_conn_stop(&r->conn);
}
