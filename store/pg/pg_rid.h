/* pg_rid.h - request ids in the PostgreSQL backend: a write that carries one (store.h's struct
 * store_rid) is done at most once. The writer locks each id of a batch (an advisory lock on
 * pg_rid_key, in key order, before anything else), looks them all up in one statement, and
 * completes the writes whose id is stored from the stored outcome (a replay) or with
 * STORE_ID_CONFLICT (another fingerprint or kind), without running them. The ids of the writes
 * that then succeed are stored with their outcomes by one statement before COMMIT. A second
 * write with the same id in one batch is completed from the first's outcome. */
#ifndef COUPOND_PG_RID_H
#define COUPOND_PG_RID_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "pg_arr.h"
#include "store.h"

#define PG_RID_PUT_COLS 14 /* parameters of PG_STMT_RID_PUT */

/* True when op carries an id that its success stores: not an UPLOAD that only checks or has no
 * record, nor a GENERATE of no code (they store nothing, as in the LMDB backend). */
bool pg_rid_kept(const struct store_op *op);

/* True when op's id and scope are text PostgreSQL takes, of store.h's lengths. */
bool pg_rid_valid(const struct store_op *op);

/* The advisory lock key of an id (a hash of scope and id: a collision only serialises two
 * batches). */
int64_t pg_rid_key(const struct store_rid *rid);

/* True when a and b are the same id in the same scope. */
bool pg_rid_same(const struct store_rid *a, const struct store_rid *b);

/* True when row `row` of r (PG_RID_COLS) is op's id. */
bool pg_rid_row_is(const PGresult *r, int row, const struct store_op *op);

/* Completes op from its stored id, row `row` of r: a replay of the stored outcome (a GENERATE's
 * codes into in.codes: STORE_IO when there is no room for them), or STORE_ID_CONFLICT. */
void pg_rid_apply(struct store_op *op, const PGresult *r, int row);

/* Completes op, a later write of the same id in the batch or a RID_GET of it, from the outcome
 * of `first`, the batch's write that stores the id. */
void pg_rid_copy(struct store_op *op, const struct store_op *first);

/* RID_GET's result into op: STORE_INVALID when the id is not stored, STORE_ID_CONFLICT when it
 * is stored with another fingerprint; a GENERATE's codes into in.codes where there is room. */
void pg_rid_get_result(struct store_op *op, const PGresult *r);

/* The ids to store at the end of a batch. */
struct pg_rid_put {
    struct pg_arr a[PG_RID_PUT_COLS];
    size_t n;
};

/* Adds op's id with its outcome (op succeeded). */
void pg_rid_put_add(struct pg_rid_put *p, const struct store_op *op);

/* PG_STMT_RID_PUT's parameters; false when out of memory. */
bool pg_rid_put_params(struct pg_rid_put *p, const char *v[PG_RID_PUT_COLS]);

void pg_rid_put_free(struct pg_rid_put *p);

#endif
