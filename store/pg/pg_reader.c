/* pg_reader.c - reads on their own pipelined connection (see pg_reader.h). */
#include "pg_reader.h"

#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "pg_ops.h"

/* Appends op to a list. */
static void
put(struct store_op ***tail, struct store_op *op)
{
    op->next = NULL;
    **tail = op;
    *tail = &op->next;
}

/* Takes the oldest read off a list. */
static struct store_op *
take_from(struct store_op **head, struct store_op ***tail)
{
    struct store_op *op = *head;

    if (op == NULL)
        return NULL;
    *head = op->next;
    if (*head == NULL)
        *tail = head;
    op->next = NULL;
    return op;
}

/* Takes the oldest read sent. */
static struct store_op *
take(struct pg_reader *r)
{
    return take_from(&r->head, &r->tail);
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

    while ((op = take(r)) != NULL || (op = take_from(&r->held, &r->held_tail)) != NULL) {
        store_op_fail(op, STORE_UNAVAILABLE, "read: %s", r->conn.why);
        ev_unref(r->loop);
        store_op_complete(op);
    }
}

/* The connection is back: the reads that waited for it run, oldest first. */
static void
on_ready(void *arg)
{
    struct pg_reader *r = arg;
    struct store_op *op, *held = r->held;

    r->held = NULL;
    r->held_tail = &r->held;
    while (held != NULL) {
        op = held;
        held = op->next;
        op->next = NULL;
        ev_unref(r->loop);
        r->again(r->arg, op);
    }
}

bool
pg_reader_open(struct pg_reader *r, struct ev_loop *loop, const char *const *keys,
               const char *const *vals, pg_reader_again_fn *again, void *arg, char *why, size_t len)
{
    r->loop = loop;
    r->head = r->held = NULL;
    r->tail = &r->head;
    r->held_tail = &r->held;
    r->again = again;
    r->arg = arg;
    pg_conn_init(&r->conn, loop, keys, vals, "reader", on_ready, on_lost, r);
    if (pg_conn_open(&r->conn))
        return true;
    snprintf(why, len, "%s", r->conn.why);
    return false;
}

/* Queues read op with its statement. */
static void
send_read(struct pg_reader *r, struct store_op *op, const struct pg_call *call)
{
    bool ok;

    if (pg_conn_coming(&r->conn)) {
        put(&r->held_tail, op);
        ev_ref(r->loop); /* owed */
        return;
    }
    if (!pg_conn_ready(&r->conn)) {
        store_op_fail(op, STORE_UNAVAILABLE, "read: %s",
                      r->conn.why[0] != '\0' ? r->conn.why : "not connected");
        store_op_complete(op);
        return;
    }
    put(&r->tail, op);
    ev_ref(r->loop); /* owed */
    ok = pg_conn_query(&r->conn, call->stmt, call->n, call->v, res_read, r);
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
    send_read(r, op, &call);
}

void
pg_reader_read_stmt(struct pg_reader *r, struct store_op *op, enum pg_stmt stmt, int n,
                    const char *const *params)
{
    struct pg_call call = {.stmt = stmt, .n = n};

    memset(&op->out, 0, sizeof op->out);
    for (int i = 0; i < n && i < PG_OPS_PARAMS; i++)
        call.v[i] = params[i];
    send_read(r, op, &call);
}

void
pg_reader_close(struct pg_reader *r)
{
    while (take(r) != NULL || take_from(&r->held, &r->held_tail) != NULL)
        ev_unref(r->loop);
    pg_conn_stop(&r->conn);
}
