/* pg_upload.c - an upload's rejects, staging and verdict in C (see pg_upload.h). */
#include "pg_upload.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "pg_val.h"
#include "rules.h"

/* Bytes of one staged row at most: the code and seven numbers with their separators. */
#define ROW_MAX (STORE_CODE_MAX + 8 * PG_VAL_NUM_LEN)

/* A record's index and code, for sorting by code. */
struct by_code {
    const char *code;
    size_t idx;
};

static int
by_code_cmp(const void *a, const void *b)
{
    const struct by_code *x = a, *y = b;
    int c = strcmp(x->code, y->code);

    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Finds each record's first record of its code; false when out of memory. */
static bool
find_firsts(struct pg_upload *u)
{
    const struct store_coupon *recs = u->op->in.recs;
    size_t n = u->op->in.n, m = 0;
    struct by_code *order = malloc(n * sizeof *order);

    if (order == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        u->first[i] = SIZE_MAX;
        if (rules_code_len(recs[i].code) > 0)
            order[m++] = (struct by_code){recs[i].code, i};
    }
    qsort(order, m, sizeof *order, by_code_cmp);
    for (size_t j = 0; j < m; j++) {
        bool same = j > 0 && strcmp(order[j].code, order[j - 1].code) == 0;

        u->first[order[j].idx] = same ? u->first[order[j - 1].idx] : order[j].idx;
        if (!same)
            u->staged++;
    }
    free(order);
    return true;
}

/* GENERATE: fewer than wanted, nothing stored (the message the LMDB backend gives too). */
static void
generate_rejected(struct store_op *op, size_t usable)
{
    store_op_fail(op, STORE_REJECTED,
                  "generate: %zu of %zu candidates usable, %zu wanted: nothing stored", usable,
                  op->in.n, op->in.want);
}

/* GENERATE: fewer usable candidates than wanted, without asking. */
static bool
too_few(struct pg_upload *u)
{
    size_t usable = 0;

    for (size_t i = 0; i < u->op->in.n; i++)
        usable += !u->bad[i] && u->first[i] == i;
    if (usable >= u->op->in.want)
        return false;
    generate_rejected(u->op, usable);
    pg_upload_free(u);
    return true;
}

bool
pg_upload_begin(struct pg_upload *u, struct store_op *op, int tag)
{
    size_t n = op->in.n;

    memset(u, 0, sizeof *u);
    u->op = op;
    u->tag = tag;
    u->generate = op->kind == STORE_OP_GENERATE;
    op->err = STORE_OK;
    memset(&op->out, 0, sizeof op->out);
    if (n == 0 || (u->generate && op->in.want == 0)) {
        if (u->generate && op->in.want > 0)
            generate_rejected(op, 0);
        return false;
    }
    if (u->generate && op->in.chosen == NULL) {
        store_op_fail(op, STORE_IO, "generate: no room for the choice");
        return false;
    }
    u->first = malloc(n * sizeof *u->first);
    u->bad = calloc(n, sizeof *u->bad);
    u->exists = calloc(n, sizeof *u->exists);
    if (u->first == NULL || u->bad == NULL || u->exists == NULL || !find_firsts(u)) {
        pg_upload_free(u);
        store_op_fail(op, STORE_IO, "upload: out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        u->bad[i] = u->first[i] == SIZE_MAX || !rules_record_ok(&op->in.recs[i]);
        if (u->bad[i] || u->first[i] != i)
            u->c_rejects++;
    }
    u->insert = u->generate || (!op->in.check_only && u->c_rejects == 0);
    return !(u->generate && too_few(u));
}

bool
pg_upload_asks(const struct pg_upload *u)
{
    return u->staged > 0;
}

void
pg_upload_copy(const struct pg_upload *u, struct pg_buf *b)
{
    const struct store_coupon *recs = u->op->in.recs;

    for (size_t i = 0; i < u->op->in.n; i++) {
        const struct store_coupon *c = &recs[i];
        char row[ROW_MAX];
        int len;

        if (u->first[i] != i || (u->generate && u->bad[i]))
            continue;
        /* A record with a bad field is staged too, for its code (it is never inserted); its
         * numbers are clamped into the columns' ranges. */
        len = snprintf(row, sizeof row,
                       "%d\t%zu\t%s\t%u\t%u\t%" PRId64 "\t%" PRId64 "\t%" PRIu32 "\n", u->tag, i,
                       c->code, (unsigned)c->type, (unsigned)c->kind, c->discount, c->expires,
                       c->max_uses > INT32_MAX ? (uint32_t)INT32_MAX : c->max_uses);
        pg_buf_put(b, row, (size_t)len);
    }
}

void
pg_upload_result(struct pg_upload *u, const PGresult *r)
{
    int rows;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) < 1) {
        pg_val_fail(u->op, u->generate ? "generate" : "upload", r);
        return;
    }
    rows = PQntuples(r);
    if (u->generate) {
        if (PQnfields(r) < 2) {
            pg_val_fail(u->op, "generate", r);
            return;
        }
        u->usable = rows > 0 ? (size_t)pg_val_u64(r, 0, 0) : 0;
        for (int i = 0; i < rows && u->chosen < u->op->in.want; i++)
            if (!PQgetisnull(r, i, 1))
                u->op->in.chosen[u->chosen++] = (size_t)pg_val_u64(r, i, 1);
        return;
    }
    for (int i = 0; i < rows; i++) {
        int64_t idx = pg_val_i64(r, i, 0);

        if (idx >= 0 && (size_t)idx < u->op->in.n)
            u->exists[idx] = true;
    }
}

/* Why record i is rejected, 0 when it is not. */
static enum store_reject_reason
why(const struct pg_upload *u, size_t i)
{
    if (u->bad[i])
        return STORE_REJECT_INVALID;
    if (u->exists[u->first[i]])
        return STORE_REJECT_EXISTS;
    if (u->first[i] != i)
        return STORE_REJECT_DUPLICATE;
    return 0;
}

/* GENERATE's outcome: all wanted, their codes in in.codes (when asked), or none stored. */
static void
generate_end(struct pg_upload *u)
{
    struct store_op *op = u->op;

    if (op->err != STORE_OK)
        return;
    if (u->chosen != op->in.want) {
        generate_rejected(op, u->usable);
        return;
    }
    op->out.count = u->chosen;
    for (size_t j = 0; j < u->chosen && op->in.codes != NULL; j++)
        memcpy(op->in.codes[j], op->in.recs[op->in.chosen[j]].code, STORE_CODE_MAX + 1);
}

bool
pg_upload_stores(const struct pg_upload *u)
{
    const struct store_op *op = u->op;

    if (op->err != STORE_OK)
        return false;
    if (u->generate)
        return u->chosen == op->in.want;
    if (!u->insert)
        return false; /* only checks */
    if (u->first == NULL)
        return true; /* pg_upload_end settled it: stored, since op->err is STORE_OK */
    for (size_t i = 0; i < op->in.n; i++)
        if (why(u, i) != 0)
            return false;
    return true;
}

void
pg_upload_end(struct pg_upload *u)
{
    struct store_op *op = u->op;
    size_t m = 0;

    if (u->generate) {
        generate_end(u);
        pg_upload_free(u);
        return;
    }
    if (op->err == STORE_OK && u->first != NULL) {
        for (size_t i = 0; i < op->in.n; i++) {
            enum store_reject_reason reason = why(u, i);

            if (reason == 0)
                continue;
            if (op->in.rejects != NULL && m < op->in.rej_cap)
                op->in.rejects[m++] = (struct store_reject){
                    .index = i,
                    .first = reason == STORE_REJECT_DUPLICATE ? u->first[i] : 0,
                    .reason = reason};
            op->out.n_rejected++;
        }
        if (op->out.n_rejected > 0)
            store_op_fail(op, STORE_REJECTED, "upload: %zu of %zu records rejected",
                          op->out.n_rejected, op->in.n);
        else
            op->out.count = op->in.n; /* stored, or (check_only) all would be */
    }
    pg_upload_free(u);
}

void
pg_upload_free(struct pg_upload *u)
{
    free(u->first);
    free(u->bad);
    free(u->exists);
    u->first = NULL;
    u->bad = u->exists = NULL;
}
