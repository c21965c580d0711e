/* pg_ops.h - how each kind of operation maps to a prepared statement (pg_sql.h): the checks
 * made in C before any SQL (a code that cannot exist, an empty user), the statement's
 * parameters, and how its result rows become the operation's outcome and outputs. Used by the
 * reader (store_read) and by the writer (a batch), which run the same statements.
 *
 * An assignment is run by the writer in runs of consecutive assignments (pg_ops_run_*), one
 * statement per run, so that a batch of k assignments claims its k coupons per type at once. */
#ifndef COUPOND_PG_OPS_H
#define COUPOND_PG_OPS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_arr.h"
#include "pg_sql.h"
#include "pg_val.h"
#include "store.h"

#define PG_OPS_PARAMS    9 /* parameters of a single operation's statement, at most (GRANT) */
#define PG_OPS_PARAM_LEN PG_VAL_NUM_LEN

/* A statement call: which statement, and its text parameters (pointing into buf or into the
 * operation, valid while both are). */
struct pg_call {
    enum pg_stmt stmt;
    int n;
    const char *v[PG_OPS_PARAMS];
    char buf[PG_OPS_PARAMS][PG_OPS_PARAM_LEN];
};

/* Resets op's outputs, then decides what it needs: true with *call filled when a statement must
 * run; false when op is complete already (its outcome decided in C: a bad code, nothing to
 * read, a kind this backend does not serve). Not for ASSIGN or UPLOAD (see below). */
bool pg_ops_plan(struct store_op *op, struct pg_call *call);

/* Reads the result of op's statement into op (a failed statement fails op with STORE_IO and the
 * server's message). */
void pg_ops_result(struct store_op *op, const PGresult *r);

/* --- runs of assignments --- */

#define PG_RUN_PARAMS 7 /* PG_STMT_ASSIGN's parameters: seven arrays, one entry per request */

/* Where this node's claims of each type start (PG_STMT_ASSIGN): past the last queue entry its
 * committed claims took, so that a claim does not walk the deleted entries at the queue's
 * head. A claim that finds too few there looks below the floor too, so the floor never costs
 * a coupon; it may cost order: an entry another node inserted below the floor is taken after
 * those above it until the floor is cleared, which happens when this node inserts, when a batch
 * fails, and at least every PG_FLOOR_CLEAR_S. */
#define PG_FLOOR_CLEAR_S 1.0 /* seconds: another node's upload is in order again this soon */

struct pg_floor {
    int64_t expires[STORE_NTYPES]; /* INT64_MIN: no floor, the claim starts at the head */
    int64_t seq[STORE_NTYPES];
    double cleared; /* when, on the loop's clock */
};

/* No floor for any type, as of now. */
void pg_floor_clear(struct pg_floor *f, double now);

/* Raises each type's floor to the last queue entry the k assignments ops[] took (those that
 * took one), once their batch has committed. */
void pg_floor_raise(struct pg_floor *f, struct store_op *const *ops, size_t k);

/* A run's statement parameters: text arrays (see PG_STMT_ASSIGN). */
struct pg_run {
    struct pg_arr arr[PG_RUN_PARAMS];
    size_t k;                    /* assignments in the run */
    int64_t bound[STORE_NTYPES]; /* the run's bound per type (one per type) */
    bool has[STORE_NTYPES];
};

/* Checks an assignment's arguments; false with op complete (STORE_INVALID) when they are bad.
 * Resets op's outputs. */
bool pg_ops_assign_ok(struct store_op *op);

/* The bound an assignment needs: expires >= max(now, min_expires). */
int64_t pg_ops_assign_bound(const struct store_op *op);

/* True when op (checked) may join run r: its type has no bound yet in r, or the same. */
bool pg_ops_run_fits(const struct pg_run *r, const struct store_op *op);

/* Adds op to r, its claim starting past floor f; false when out of memory. */
bool pg_ops_run_add(struct pg_run *r, struct store_op *op, const struct pg_floor *f);

/* The run's parameters; false when out of memory. */
bool pg_ops_run_params(struct pg_run *r, const char *v[PG_RUN_PARAMS]);

/* Reads a run's result into its k operations, ops[0..k-1] in run order. */
void pg_ops_run_result(struct store_op **ops, size_t k, const PGresult *r);

void pg_ops_run_free(struct pg_run *r);

/* --- MEGADEAL grants shared by nodes --- */

/* True when op is an ASSIGN with limits shared by nodes (store.h): it runs alone, as GRANT, in a
 * batch that holds PG_SQL_LOCK_GRANT. */
bool pg_ops_is_grant(const struct store_op *op);

/* Plans such an ASSIGN (checked with pg_ops_assign_ok) as GRANT for node `node` (valid while
 * call is). */
void pg_ops_grant_plan(struct store_op *op, const char *node, struct pg_call *call);

/* Reads GRANT's result into op: the coupon and out.grant; STORE_LIMITED or STORE_NO_COUPONS. */
void pg_ops_grant_result(struct store_op *op, const PGresult *r);

#endif
