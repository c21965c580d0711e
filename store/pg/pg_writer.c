/* pg_writer.c - batches on the writer connection: plan, stage, pipeline, commit, outcome (see
 * pg_writer.h). */
#include "rules.h"
#include "pg_writer.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "pg_ops.h"
#include "pg_rid.h"
#include "pg_sql.h"

/* Bytes of COPY data handed to libpq at a time: large enough to keep the socket busy, small
 * enough not to double libpq's buffer for a 50,000-record upload at once. */
#define COPY_CHUNK (256 * 1024)

enum step_kind { STEP_OP, STEP_RUN, STEP_UPLOAD };

/* One statement of the batch. */
struct pg_step {
    struct pg_writer *w;
    enum step_kind kind;
    struct store_op *op;   /* the (first) operation */
    struct pg_call call;   /* STEP_OP */
    struct pg_run run;     /* STEP_RUN */
    struct store_op **ops; /* STEP_RUN: its assignments in order */
    struct pg_upload *up;  /* STEP_UPLOAD (an UPLOAD or a GENERATE) */
};

static void run_pipeline(struct pg_writer *w);
static void send_tail(struct pg_writer *w);

/* --- the end of a batch --- */

static void
steps_free(struct pg_writer *w)
{
    for (size_t i = 0; i < w->nsteps; i++) {
        pg_ops_run_free(&w->steps[i].run);
        free(w->steps[i].ops);
    }
    free(w->steps);
    w->steps = NULL;
    w->nsteps = w->asked = w->answered = w->got = 0;
}

static void
head_free(struct pg_writer_head *h)
{
    pg_arr_free(&h->keys);
    pg_arr_free(&h->codes);
    pg_arr_free(&h->holds);
    pg_arr_free(&h->redemptions);
    pg_arr_free(&h->scopes);
    pg_arr_free(&h->ids);
}

/* Frees what a run of the batch planned. */
static void
reset_batch(struct pg_writer *w)
{
    steps_free(w);
    for (size_t i = 0; i < w->nops && w->ups != NULL; i++)
        pg_upload_free(&w->ups[i]);
    free(w->ops);
    free(w->ups);
    free(w->done);
    free(w->dup);
    w->ops = NULL;
    w->ups = NULL;
    w->done = NULL;
    w->dup = NULL;
    w->nops = 0;
    head_free(&w->head);
    w->writes = w->inserts = w->rids = w->commit_sent = w->audited = false;
    w->failed = w->committed = w->have_xid = false;
    w->msg[0] = w->sqlstate[0] = '\0';
}

/* After a batch: its committed claims raise the floors; an insert into the queue, or a
 * failure (a claim whose outcome is unknown), clears them. */
static void
move_floor(struct pg_writer *w, enum store_err err)
{
    if (err != STORE_OK || w->inserts) {
        pg_floor_clear(&w->floor, ev_now(w->loop));
        return;
    }
    for (size_t i = 0; i < w->nsteps; i++)
        if (w->steps[i].kind == STEP_RUN)
            pg_floor_raise(&w->floor, w->steps[i].ops, w->steps[i].run.k);
}

/* Completes the batch with err (b->msg set by the caller on failure). */
static void
finish(struct pg_writer *w, enum store_err err)
{
    struct store_batch *b = w->b;

    move_floor(w, err);
    reset_batch(w);
    pg_buf_free(&w->copy);
    ev_timer_stop(w->loop, &w->later);
    ev_timer_stop(w->loop, &w->deadline);
    w->b = NULL;
    w->phase = PG_WRITER_IDLE;
    ev_unref(w->loop); /* the batch is no longer owed */
    if (!w->closing)
        store_batch_complete(b, err); /* last: its callback may commit again */
}

__attribute__((format(printf, 3, 4))) static void
finish_msg(struct pg_writer *w, enum store_err err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(w->b->msg, sizeof w->b->msg, fmt, ap);
    va_end(ap);
    finish(w, err);
}

/* Completes the batch on the next loop turn with err and msg, without running it. */
static void
refuse(struct pg_writer *w, enum store_err err, const char *msg)
{
    snprintf(w->b->msg, sizeof w->b->msg, "%s", msg);
    w->refusal = err;
    w->phase = PG_WRITER_REFUSE;
    ev_timer_set(&w->later, 0., 0.);
    ev_timer_start(w->loop, &w->later);
}

/* --- planning: what the batch locks and looks up --- */

/* Request id of op i: looked up and locked, or (the same as an earlier one's) copied. */
static void
head_rid(struct pg_writer *w, size_t i)
{
    struct store_op *op = w->ops[i];

    if (!pg_rid_valid(op)) {
        store_op_fail(op, STORE_IO, "request id: not 1 to %d bytes of UTF-8", STORE_RID_MAX);
        w->done[i] = true;
        return;
    }
    for (size_t j = 0; j < i && pg_rid_kept(op); j++)
        if (pg_rid_kept(w->ops[j]) && w->dup[j] == SIZE_MAX && !w->done[j] &&
            pg_rid_same(&w->ops[j]->in.rid, &op->in.rid)) {
            w->dup[i] = j;
            w->done[i] = true;
            return;
        }
    w->rids = true;
    pg_arr_i64(&w->head.keys, pg_rid_key(&op->in.rid));
    pg_arr_text(&w->head.scopes, op->in.rid.scope);
    pg_arr_text(&w->head.ids, op->in.rid.id);
}

/* The rows op i changes that others might change at once: locked first, in code order. */
static void
head_rows(struct pg_writer *w, size_t i)
{
    struct store_op *op = w->ops[i];

    switch (op->kind) {
    case STORE_OP_REDEEM:
    case STORE_OP_HOLD:
        pg_arr_text(&w->head.codes, op->in.code);
        if (op->in.hold_seq != 0 && op->in.hold_seq <= INT64_MAX)
            pg_arr_i64(&w->head.holds, (int64_t)op->in.hold_seq);
        break;
    case STORE_OP_RELEASE:
        if (op->in.hold_seq <= INT64_MAX)
            pg_arr_i64(&w->head.holds, (int64_t)op->in.hold_seq);
        break;
    case STORE_OP_UNREDEEM:
        if (op->in.after <= INT64_MAX)
            pg_arr_i64(&w->head.redemptions, (int64_t)op->in.after);
        break;
    default:
        break;
    }
}

/* An UPLOAD or GENERATE: its C part, then whether it asks and inserts. */
static void
head_upload(struct pg_writer *w, size_t i)
{
    struct pg_upload *u = &w->ups[i];

    if (!pg_upload_begin(u, w->ops[i], (int)i)) {
        w->done[i] = true;
        return;
    }
    if (!pg_upload_asks(u)) {
        pg_upload_end(u); /* every record rejected in C */
        w->done[i] = true;
        return;
    }
    w->inserts |= u->insert;
}

/* Examines the batch: its operations in order, their locks, request ids and uploads; false
 * when out of memory. */
static bool
plan_head(struct pg_writer *w)
{
    size_t n = w->b->n, i = 0;
    bool grants = false;

    reset_batch(w);
    w->ops = calloc(n + 1, sizeof *w->ops);
    w->ups = calloc(n + 1, sizeof *w->ups);
    w->done = calloc(n + 1, sizeof *w->done);
    w->dup = calloc(n + 1, sizeof *w->dup);
    if (w->ops == NULL || w->ups == NULL || w->done == NULL || w->dup == NULL)
        return false;
    for (struct store_op *op = w->b->head; op != NULL && i < n; op = op->next) {
        w->ops[i] = op;
        w->dup[i++] = SIZE_MAX;
    }
    w->nops = i;
    for (i = 0; i < w->nops; i++) {
        struct store_op *op = w->ops[i];

        op->err = STORE_OK;
        memset(&op->out, 0, sizeof op->out);
        w->writes |= store_op_writes(op->kind);
        if (rules_rid_carried(op))
            head_rid(w, i);
        if (w->done[i])
            continue;
        if (pg_audit_plan_op(op)) { /* no statement: answered in C or at the tail */
            w->done[i] = true;
            continue;
        }
        head_rows(w, i);
        if (op->kind == STORE_OP_UPLOAD || op->kind == STORE_OP_GENERATE)
            head_upload(w, i);
        grants |= pg_ops_is_grant(op);
    }
    if (w->inserts)
        pg_arr_i64(&w->head.keys, PG_SQL_LOCK_INSERT);
    if (grants) /* every node's grants, one transaction at a time (pg_sql.h's GRANT) */
        pg_arr_i64(&w->head.keys, PG_SQL_LOCK_GRANT);
    w->audited = pg_audit_begin(&w->audit, w->ops, w->nops);
    return !w->head.keys.b.oom && !w->head.codes.b.oom && !w->head.holds.b.oom &&
           !w->head.redemptions.b.oom && !w->head.scopes.b.oom && !w->head.ids.b.oom;
}

/* --- planning: the operations' statements --- */

/* Adds assignment op to the open run, or opens one. */
static bool
plan_assign(struct pg_writer *w, struct store_op *op, struct pg_step **run)
{
    struct pg_step *s = *run;

    if (!pg_ops_assign_ok(op))
        return true;
    if (s == NULL || !pg_ops_run_fits(&s->run, op)) {
        s = &w->steps[w->nsteps++];
        *s = (struct pg_step){.w = w, .kind = STEP_RUN, .op = op};
        if ((s->ops = malloc(w->nops * sizeof *s->ops)) == NULL)
            return false;
        *run = s;
    }
    s->ops[s->run.k] = op;
    return pg_ops_run_add(&s->run, op, &w->floor);
}

/* Turns the operations not yet complete into steps; false when out of memory. */
static bool
plan_steps(struct pg_writer *w)
{
    struct pg_step *run = NULL;

    steps_free(w);
    if ((w->steps = calloc(w->nops + 1, sizeof *w->steps)) == NULL)
        return false;
    for (size_t i = 0; i < w->nops; i++) {
        struct store_op *op = w->ops[i];
        struct pg_step *s = &w->steps[w->nsteps];

        if (w->done[i])
            continue;
        if (pg_ops_is_grant(op)) { /* alone: its own statement */
            if (pg_ops_assign_ok(op)) {
                *s = (struct pg_step){.w = w, .kind = STEP_OP, .op = op};
                pg_ops_grant_plan(op, w->node, &s->call);
                w->nsteps++;
                run = NULL;
            }
            continue;
        }
        if (op->kind == STORE_OP_ASSIGN) {
            if (!plan_assign(w, op, &run))
                return false;
            continue;
        }
        *s = (struct pg_step){.w = w, .kind = STEP_OP, .op = op};
        if (op->kind == STORE_OP_UPLOAD || op->kind == STORE_OP_GENERATE) {
            s->kind = STEP_UPLOAD;
            s->up = &w->ups[i];
        } else if (!pg_ops_plan(op, &s->call)) {
            continue; /* complete without a statement */
        }
        w->nsteps++;
        run = NULL; /* a statement between assignments ends their run */
    }
    w->asked = w->nsteps;
    return true;
}

/* --- results --- */

static bool
retryable(const char *sqlstate)
{
    return strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "40001") == 0;
}

/* A statement failed: the batch fails (unless it is run again), with the first reason. */
static void
note_error(struct pg_writer *w, const char *what, const PGresult *r)
{
    char line[STORE_ERR_MAX];
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

    if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED || w->failed)
        return;
    w->failed = true;
    snprintf(w->sqlstate, sizeof w->sqlstate, "%s", st != NULL ? st : "");
    snprintf(w->msg, sizeof w->msg, "commit: %s: %s", what,
             pg_conn_result_error(r, line, sizeof line));
}

static bool
result_ok(const PGresult *r)
{
    return PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
}

static void
res_begin(void *arg, PGresult *r)
{
    if (!result_ok(r))
        note_error(arg, "begin", r);
}

static void
res_lock(void *arg, PGresult *r)
{
    if (!result_ok(r))
        note_error(arg, "lock", r);
}

static void
res_tail(void *arg, PGresult *r)
{
    if (!result_ok(r))
        note_error(arg, "store counters and request ids", r);
}

static void
res_xid(void *arg, PGresult *r)
{
    struct pg_writer *w = arg;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        note_error(w, "transaction id", r);
        return;
    }
    snprintf(w->xid, sizeof w->xid, "%s", PQgetvalue(r, 0, 0));
    w->have_xid = true;
}

/* Ends a pipeline that went wrong before COMMIT was sent: the sync point's handler rolls back. */
static void res_sync(void *arg, PGresult *r);

static void
abandon(struct pg_writer *w)
{
    if (pg_conn_sync(&w->conn, res_sync, w))
        pg_conn_flush(&w->conn);
}

/* A RID_GET in a batch sees an id that a write before it in the batch stores: the rids table
 * gets the batch's ids only at its end (pg_writer.h), so the write's own outcome answers. */
static void
rid_get_in_batch(struct pg_writer *w, struct store_op *get)
{
    const struct store_op *first = NULL;

    for (size_t j = 0; j < w->nops && w->ops[j] != get; j++)
        if (w->dup[j] == SIZE_MAX && pg_rid_kept(w->ops[j]) &&
            pg_rid_same(&w->ops[j]->in.rid, &get->in.rid) && w->ops[j]->err == STORE_OK &&
            !w->ops[j]->out.replayed)
            first = w->ops[j];
    if (first != NULL)
        pg_rid_copy(get, first);
}

static void
res_step(void *arg, PGresult *r)
{
    struct pg_step *s = arg;
    struct pg_writer *w = s->w;

    w->got++;
    if (PQresultStatus(r) == PGRES_FATAL_ERROR || PQresultStatus(r) == PGRES_PIPELINE_ABORTED) {
        note_error(w, s->kind == STEP_RUN ? "assign" : "statement", r);
    } else {
        w->answered++;
        if (s->kind == STEP_RUN) {
            pg_ops_run_result(s->ops, s->run.k, r);
        } else if (s->kind == STEP_UPLOAD) {
            pg_upload_result(s->up, r);
            pg_upload_end(s->up); /* its outcome, before its request id is stored */
        } else if (pg_ops_is_grant(s->op)) {
            pg_ops_grant_result(s->op, r);
        } else {
            pg_ops_result(s->op, r);
            if (s->op->kind == STORE_OP_RID_GET)
                rid_get_in_batch(w, s->op);
        }
    }
    if ((w->rids || w->audited) && w->got == w->asked) /* the pipeline waited for these */
        send_tail(w);
}

/* The audit head, read after BEGIN: a batch without statements of its own sends its tail now. */
static void
res_audit_head(void *arg, PGresult *r)
{
    struct pg_writer *w = arg;

    if (!pg_audit_head_result(&w->audit, r))
        note_error(w, "audit head", r);
    if (!w->rids && w->asked == 0)
        send_tail(w);
}

static void
res_commit(void *arg, PGresult *r)
{
    struct pg_writer *w = arg;

    if (PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0)
        w->committed = true;
    else
        note_error(w, "commit", r);
}

static void
res_rolled_back(void *arg, PGresult *r)
{
    struct pg_writer *w = arg;

    (void)r;
    if (retryable(w->sqlstate) && w->tries < PG_WRITER_TRIES) {
        /* Run again once the other side had time to finish: at once, this session could take
         * the same locks back first and meet it again. */
        w->phase = PG_WRITER_RETRY;
        ev_timer_set(&w->later, PG_WRITER_RETRY_DELAY_S * w->tries, 0.);
        ev_timer_start(w->loop, &w->later);
        return;
    }
    snprintf(w->b->msg, sizeof w->b->msg, "%s", w->msg);
    finish(w, STORE_IO);
}

static void
res_sync(void *arg, PGresult *r)
{
    struct pg_writer *w = arg;

    (void)r;
    if (w->committed && !w->failed) {
        finish(w, STORE_OK);
        return;
    }
    if (!w->failed)
        snprintf(w->msg, sizeof w->msg, "commit: the transaction did not commit");
    w->failed = true;
    w->phase = PG_WRITER_ROLLBACK;
    if (pg_conn_exec(&w->conn, "ROLLBACK", res_lock, w) &&
        pg_conn_sync(&w->conn, res_rolled_back, w))
        pg_conn_flush(&w->conn);
}

/* --- the pipeline --- */

static bool
send_step(struct pg_writer *w, struct pg_step *s)
{
    char tag[PG_VAL_NUM_LEN], want[PG_VAL_NUM_LEN];
    const char *v[PG_RUN_PARAMS];

    switch (s->kind) {
    case STEP_RUN:
        if (!pg_ops_run_params(&s->run, v)) {
            pg_conn_break(&w->conn, "out of memory");
            return false;
        }
        return pg_conn_query(&w->conn, PG_STMT_ASSIGN, PG_RUN_PARAMS, v, res_step, s);
    case STEP_UPLOAD:
        snprintf(tag, sizeof tag, "%d", s->up->tag);
        v[0] = tag;
        if (s->up->generate) {
            snprintf(want, sizeof want, "%zu", s->op->in.want);
            v[1] = want;
            return pg_conn_query(&w->conn, PG_STMT_GENERATE, 2, v, res_step, s);
        }
        v[1] = s->up->insert ? "true" : "false";
        return pg_conn_query(&w->conn, PG_STMT_UPLOAD, 2, v, res_step, s);
    default:
        return pg_conn_query(&w->conn, s->call.stmt, s->call.n, s->call.v, res_step, s);
    }
}

/* The operations' statements. */
static bool
send_steps(struct pg_writer *w)
{
    for (size_t i = 0; i < w->nsteps; i++)
        if (!send_step(w, &w->steps[i]))
            return false;
    return true;
}

/* Completes the later writes of a request id from the first one's outcome, and adds the ids of
 * the writes that succeeded to put. */
static void
settle_rids(struct pg_writer *w, struct pg_rid_put *put)
{
    for (size_t i = 0; i < w->nops; i++) {
        struct store_op *op = w->ops[i];

        if (w->dup[i] != SIZE_MAX)
            pg_rid_copy(op, w->ops[w->dup[i]]);
        else if (pg_rid_kept(op) && !w->done[i] && op->err == STORE_OK)
            pg_rid_put_add(put, op);
    }
}

/* The audit records of the batch's writes; false when the batch failed instead (abandoned). */
static bool
send_audit(struct pg_writer *w)
{
    char why[STORE_ERR_MAX];

    if (pg_audit_send_records(&w->audit, &w->conn, w->ops, w->ups, w->nops, res_tail, w, why,
                              sizeof why))
        return true;
    if (why[0] != '\0') { /* never for a write that passed its checks: the batch fails */
        w->failed = true;
        snprintf(w->msg, sizeof w->msg, "%s", why);
        abandon(w);
    }
    return false;
}

/* After the operations: the request ids, the audit records, the counters, COMMIT and the sync
 * point. */
static void
send_tail(struct pg_writer *w)
{
    const char *node[1] = {w->node}, *v[PG_RID_PUT_COLS];
    struct pg_rid_put put;
    bool ok = true;

    if (w->failed) {
        abandon(w);
        return;
    }
    memset(&put, 0, sizeof put);
    if (w->rids)
        settle_rids(w, &put);
    if (put.n > 0) {
        ok = pg_rid_put_params(&put, v) &&
             pg_conn_query(&w->conn, PG_STMT_RID_PUT, PG_RID_PUT_COLS, v, res_tail, w);
        if (!ok && w->conn.state == PG_CONN_READY)
            pg_conn_break(&w->conn, "out of memory");
    }
    pg_rid_put_free(&put);
    if (ok && w->audited && !send_audit(w))
        return;
    if (ok && w->writes)
        ok = pg_conn_query(&w->conn, PG_STMT_COUNTERS_PUT, 1, node, res_tail, w) &&
             pg_conn_flush_request(&w->conn); /* every result is home before COMMIT runs */
    w->commit_sent = ok;
    ok = ok && pg_conn_exec(&w->conn, "COMMIT", res_commit, w) &&
         pg_conn_sync(&w->conn, res_sync, w);
    if (ok)
        pg_conn_flush(&w->conn); /* on failure `lost` follows */
}

/* The stored outcomes of the batch's request ids: those writes complete now. */
static void
res_lookup(void *arg, PGresult *r)
{
    struct pg_writer *w = arg;

    if (!result_ok(r))
        note_error(w, "request ids", r);
    for (int row = 0; !w->failed && row < PQntuples(r); row++)
        for (size_t i = 0; i < w->nops; i++)
            if (rules_rid_carried(w->ops[i]) && !w->done[i] && pg_rid_row_is(r, row, w->ops[i])) {
                pg_rid_apply(w->ops[i], r, row);
                w->done[i] = true;
            }
    if (w->failed) {
        abandon(w);
        return;
    }
    if (!plan_steps(w)) {
        pg_conn_break(&w->conn, "out of memory");
        return;
    }
    if (!send_steps(w))
        return;
    if (w->asked == 0)
        send_tail(w);
    else if (pg_conn_flush_request(&w->conn)) /* their results, before the tail is sent */
        pg_conn_flush(&w->conn);
}

/* The statements before the operations': transaction, its id, the locks, the ids' lookup. */
static bool
send_head(struct pg_writer *w)
{
    const char *v[3];

    if (!pg_conn_exec(&w->conn, "BEGIN", res_begin, w))
        return false;
    if (w->writes && (!pg_conn_query(&w->conn, PG_STMT_XID, 0, NULL, res_xid, w) ||
                      !pg_conn_flush_request(&w->conn)))
        return false;
    if (w->audited && !pg_audit_send_head(&w->audit, &w->conn, res_audit_head, w))
        return false;
    if (w->head.keys.n > 0) {
        v[0] = pg_arr_text_of(&w->head.keys);
        if (!pg_conn_query(&w->conn, PG_STMT_LOCKS, 1, v, res_lock, w))
            return false;
    }
    if (w->head.codes.n + w->head.holds.n + w->head.redemptions.n > 0) {
        v[0] = pg_arr_text_of(&w->head.codes);
        v[1] = pg_arr_text_of(&w->head.holds);
        v[2] = pg_arr_text_of(&w->head.redemptions);
        if (!pg_conn_query(&w->conn, PG_STMT_ROWLOCK, 3, v, res_lock, w))
            return false;
    }
    if (!w->rids)
        return true;
    v[0] = pg_arr_text_of(&w->head.scopes);
    v[1] = pg_arr_text_of(&w->head.ids);
    return pg_conn_query(&w->conn, PG_STMT_RID_LOOKUP, 2, v, res_lookup, w) &&
           pg_conn_flush_request(&w->conn);
}

static void
run_pipeline(struct pg_writer *w)
{
    w->phase = PG_WRITER_RUN;
    w->tries++;
    if (!send_head(w))
        return; /* `lost` follows */
    if (w->rids) {
        pg_conn_flush(&w->conn); /* the rest follows the ids' lookup */
        return;
    }
    if (!plan_steps(w)) {
        pg_conn_break(&w->conn, "out of memory");
        return;
    }
    if (!send_steps(w))
        return;
    if (!w->audited)
        send_tail(w);
    else if (pg_conn_flush_request(&w->conn)) /* the tail follows the results (res_step, or */
        pg_conn_flush(&w->conn);              /* res_audit_head when there is no statement) */
}

/* --- staging of uploads (COPY, out of pipeline mode) --- */

static void
stage_fail(struct pg_writer *w, const char *what, const PGresult *r)
{
    char line[STORE_ERR_MAX];

    snprintf(w->msg, sizeof w->msg, "commit: stage upload: %s: %s", what,
             r != NULL ? pg_conn_result_error(r, line, sizeof line) : PQerrorMessage(w->conn.pc));
    pg_conn_break(&w->conn, w->msg + strlen("commit: "));
}

/* Sends COPY data as far as the socket takes it; true when all of it and the end are sent. */
static bool
stage_data(struct pg_writer *w)
{
    PGconn *pc = w->conn.pc;
    int r;

    while (w->copy_off < w->copy.len) {
        size_t n = w->copy.len - w->copy_off;

        r = PQputCopyData(pc, w->copy.p + w->copy_off, (int)(n < COPY_CHUNK ? n : COPY_CHUNK));

        if (r < 0 || (r == 1 && PQflush(pc) < 0)) {
            stage_fail(w, "copy data", NULL);
            return false;
        }
        if (r == 0) { /* libpq's buffer is full: on when the socket takes more */
            pg_conn_want_write(&w->conn);
            return false;
        }
        w->copy_off += n < COPY_CHUNK ? n : COPY_CHUNK;
    }
    r = PQputCopyEnd(pc, NULL);
    if (r < 0) {
        stage_fail(w, "copy end", NULL);
        return false;
    }
    if (r == 0) {
        pg_conn_want_write(&w->conn);
        return false;
    }
    return pg_conn_flush(&w->conn);
}

/* Takes the next result of the staging; false when none is ready (or it failed). */
static bool
stage_result(struct pg_writer *w, ExecStatusType want, bool *end)
{
    PGresult *r;

    *end = false;
    if (PQisBusy(w->conn.pc))
        return false;
    r = PQgetResult(w->conn.pc);
    if (r == NULL) {
        *end = true;
        return true;
    }
    if (PQresultStatus(r) != want) {
        stage_fail(w, w->stage_step == 0 ? "truncate" : "copy", r);
        PQclear(r);
        return false;
    }
    PQclear(r);
    return true;
}

/* The staging's steps, driven by the connection's socket. */
static void
stage_io(void *arg)
{
    struct pg_writer *w = arg;
    bool end;

    for (;;) {
        switch (w->stage_step) {
        case 0: /* TRUNCATE: its result, then its end */
            if (!stage_result(w, PGRES_COMMAND_OK, &end))
                return;
            if (!end)
                continue;
            if (PQsendQuery(w->conn.pc, "COPY coupond_upload FROM STDIN") != 1) {
                stage_fail(w, "copy", NULL);
                return;
            }
            w->stage_step = 1;
            pg_conn_flush(&w->conn);
            return;
        case 1: /* COPY IN */
            if (!stage_result(w, PGRES_COPY_IN, &end) || end)
                return;
            w->stage_step = 2;
            continue;
        case 2:
            if (!stage_data(w))
                return;
            w->stage_step = 3;
            continue;
        default: /* COPY's result, then its end */
            if (!stage_result(w, PGRES_COMMAND_OK, &end))
                return;
            if (!end)
                continue;
            pg_buf_free(&w->copy);
            w->staged = true;
            if (pg_conn_pipeline(&w->conn))
                run_pipeline(w);
            return;
        }
    }
}

/* True when an UPLOAD or GENERATE of the batch asks PostgreSQL: its records are staged. */
static bool
stages(const struct pg_writer *w)
{
    for (size_t i = 0; i < w->nops; i++)
        if (w->ups[i].op != NULL && !w->done[i])
            return true;
    return false;
}

static void
stage(struct pg_writer *w)
{
    for (size_t i = 0; i < w->nops; i++)
        if (w->ups[i].op != NULL && !w->done[i])
            pg_upload_copy(&w->ups[i], &w->copy);
    if (w->copy.oom) {
        refuse(w, STORE_IO, "commit: stage upload: out of memory");
        return;
    }
    w->phase = PG_WRITER_STAGE;
    w->stage_step = 0;
    w->copy_off = 0;
    if (!pg_conn_unpipeline(&w->conn, stage_io))
        return; /* `lost` follows */
    if (PQsendQuery(w->conn.pc, "TRUNCATE coupond_upload") != 1) {
        stage_fail(w, "truncate", NULL);
        return;
    }
    pg_conn_flush(&w->conn);
}

/* --- outages --- */

static void
res_status(void *arg, PGresult *r)
{
    struct pg_writer *w = arg;
    const char *st;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 2)
        return; /* asked again at the next connection, until the deadline */
    st = PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0);
    /* After a failover the promoted standby hands out transaction ids from where its replay
     * stopped: a transaction the old primary committed but never sent it is gone, and its id
     * may name another node's committed transaction here. The batch's last audit record tells
     * which: only this batch could have stored it, and it is stored exactly when the batch is. */
    if (strcmp(st, "committed") == 0 && w->audit.last_seq > 0 &&
        strcmp(PQgetvalue(r, 0, 1), "t") != 0) {
        finish_msg(w, STORE_UNAVAILABLE,
                   "commit: the connection broke during COMMIT and the server now connected to "
                   "does not have the batch (a failover lost it): nothing was stored");
        return;
    }
    if (strcmp(st, "committed") == 0) {
        if (w->answered == w->asked)
            finish(w, STORE_OK);
        else
            finish_msg(w, STORE_UNAVAILABLE,
                       "commit: the connection broke; the batch committed but its results were "
                       "lost");
    } else if (strcmp(st, "aborted") == 0) {
        finish_msg(w, STORE_UNAVAILABLE,
                   "commit: the connection broke during the batch; it was rolled back, nothing "
                   "was stored");
    } else if (strcmp(st, "in progress") == 0) {
        ev_timer_set(&w->later, PG_WRITER_OUTCOME_POLL_S, 0.);
        ev_timer_start(w->loop, &w->later);
    } else {
        finish_msg(w, STORE_UNAVAILABLE,
                   "commit: the connection broke during COMMIT; its outcome is unknown");
    }
}

static void
res_status_sync(void *arg, PGresult *r)
{
    (void)arg;
    (void)r;
}

/* Asks about the transaction of the batch whose COMMIT may have run. */
static void
ask_outcome(struct pg_writer *w)
{
    char seq[PG_WRITER_XID_LEN];
    const char *v[3] = {w->xid, w->node, seq};

    snprintf(seq, sizeof seq, "%" PRIu64, w->audit.last_seq);
    if (pg_conn_query(&w->conn, PG_STMT_XACT_STATUS, 3, v, res_status, w) &&
        pg_conn_sync(&w->conn, res_status_sync, w))
        pg_conn_flush(&w->conn);
}

/* Runs the batch again after a deadlock or serialization failure. */
static void
retry(struct pg_writer *w)
{
    if (!pg_conn_ready(&w->conn))
        finish_msg(w, STORE_UNAVAILABLE, "commit: %s; the batch was not committed", w->conn.why);
    else if (!plan_head(w))
        finish_msg(w, STORE_IO, "commit: out of memory");
    else
        run_pipeline(w);
}

static void
on_later(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct pg_writer *w = t->data;

    (void)loop;
    (void)revents;
    if (w->phase == PG_WRITER_REFUSE)
        finish(w, w->refusal);
    else if (w->phase == PG_WRITER_RETRY)
        retry(w);
    else if (w->phase == PG_WRITER_OUTCOME && pg_conn_ready(&w->conn))
        ask_outcome(w);
}

static void
on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct pg_writer *w = t->data;

    (void)loop;
    (void)revents;
    if (w->phase == PG_WRITER_OUTCOME)
        finish_msg(w, STORE_UNAVAILABLE,
                   "commit: the connection broke during COMMIT and its outcome could not be "
                   "learned within %.0f s (%s)",
                   PG_WRITER_OUTCOME_WAIT_S, w->conn.why);
}

/* The connection broke under the batch in flight. */
static void
on_lost(void *arg)
{
    struct pg_writer *w = arg;

    switch (w->phase) {
    case PG_WRITER_WAIT:
    case PG_WRITER_STAGE:
        finish_msg(w, STORE_UNAVAILABLE, "commit: %s; nothing was stored", w->conn.why);
        break;
    case PG_WRITER_ROLLBACK:
        snprintf(w->b->msg, sizeof w->b->msg, "%s", w->msg);
        finish(w, STORE_IO);
        break;
    case PG_WRITER_RUN:
        if (w->committed || (!w->writes && w->commit_sent && w->answered == w->asked && !w->failed))
            finish(w, STORE_OK); /* nothing left to learn */
        else if (w->failed)
            finish_msg(w, STORE_IO, "%s", w->msg); /* it failed anyway: rolled back */
        else if (!w->commit_sent)
            finish_msg(w, STORE_UNAVAILABLE, "commit: %s; the batch was not committed",
                       w->conn.why);
        else if (!w->have_xid) /* COMMIT may have run, under an id that never came back */
            finish_msg(w, STORE_UNAVAILABLE, "commit: %s; the outcome is unknown", w->conn.why);
        else {
            w->phase = PG_WRITER_OUTCOME;
            ev_timer_set(&w->deadline, PG_WRITER_OUTCOME_WAIT_S, 0.);
            ev_timer_start(w->loop, &w->deadline);
        }
        break;
    default:
        break;
    }
}

/* Runs the batch, or refuses it when the connection is not there. */
static void
start(struct pg_writer *w)
{
    if (!pg_conn_ready(&w->conn))
        refuse(w, STORE_UNAVAILABLE, w->conn.why[0] != '\0' ? w->conn.why : "not connected");
    else if (!plan_head(w))
        refuse(w, STORE_IO, "commit: out of memory");
    else if (stages(w))
        stage(w);
    else
        run_pipeline(w);
}

static void
on_ready(void *arg)
{
    struct pg_writer *w = arg;

    if (w->phase == PG_WRITER_OUTCOME)
        ask_outcome(w);
    else if (w->phase == PG_WRITER_WAIT)
        start(w);
}

/* --- the writer's calls --- */

bool
pg_writer_open(struct pg_writer *w, struct ev_loop *loop, const char *const *keys,
               const char *const *vals, const char *node, bool readonly, char *why, size_t len)
{
    memset(w, 0, sizeof *w);
    w->loop = loop;
    w->node = node;
    w->readonly = readonly;
    pg_audit_init(&w->audit, node);
    pg_floor_clear(&w->floor, ev_now(loop));
    ev_timer_init(&w->later, on_later, 0., 0.);
    w->later.data = w;
    ev_timer_init(&w->deadline, on_deadline, 0., 0.);
    w->deadline.data = w;
    pg_conn_init(&w->conn, loop, keys, vals, "writer", on_ready, on_lost, w);
    if (readonly || pg_conn_open(&w->conn))
        return true;
    snprintf(why, len, "%s", w->conn.why);
    return false;
}

void
pg_writer_commit(struct pg_writer *w, struct store_batch *b)
{
    if (w->b != NULL)
        abort(); /* the caller broke store.h's rule: one batch in flight at a time */
    w->b = b;
    w->tries = 0;
    w->staged = false;
    if (ev_now(w->loop) - w->floor.cleared >= PG_FLOOR_CLEAR_S)
        pg_floor_clear(&w->floor, ev_now(w->loop));
    ev_ref(w->loop); /* owed: keeps ev_run going until it completes */
    if (w->readonly)
        refuse(w, STORE_IO, "commit: the store is open read-only");
    else if (pg_conn_coming(&w->conn))
        w->phase = PG_WRITER_WAIT; /* on_ready or on_lost goes on */
    else
        start(w);
}

void
pg_writer_close(struct pg_writer *w)
{
    ev_tstamp until = ev_time() + PG_WRITER_CLOSE_WAIT_S;

    w->closing = true;
    while (w->b != NULL && (w->phase == PG_WRITER_STAGE || w->phase == PG_WRITER_RUN ||
                            w->phase == PG_WRITER_ROLLBACK || w->phase == PG_WRITER_RETRY)) {
        double left = until - ev_time();

        if (w->phase == PG_WRITER_RETRY) {
            ev_timer_stop(w->loop, &w->later);
            retry(w); /* no loop runs now to wait for */
            continue;
        }
        if (left <= 0 || !pg_conn_wait(&w->conn, left))
            break;
    }
    if (w->b != NULL)
        finish(w, STORE_UNAVAILABLE);
    pg_conn_stop(&w->conn);
    reset_batch(w);
}
