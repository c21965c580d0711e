/* pg_sql.h - the PostgreSQL backend's SQL: the schema (version PG_SQL_SCHEMA_VERSION), the
 * session set-up of every connection, and the prepared statements the operations run.
 *
 * Schema (created at the first open, under an advisory lock):
 *   coupond_schema  one row: the schema version; a store refuses a newer one
 *   coupons         code -> type, kind, discount, expires, uses, max_uses, seq, owner,
 *                   assigned_at, redeemed (ever: such a coupon is never purged)
 *   avail           (type, expires, seq) -> code: the queue of unassigned coupons; allocation
 *                   claims its head, earliest expiry first, FOR UPDATE SKIP LOCKED
 *   history         redemptions: seq -> time, code, type, owner, undone
 *   counters        (node, type) -> the counters' deltas that node committed; a read sums them
 *   holds           seq -> code, owner, expires
 *   rids            (scope, id) -> fingerprint and the outcome of the write that used the id
 * Every time is an int8 of seconds since the epoch, as store.h passes it.
 *
 * Statements never raise an error for an outcome of the store (no coupon, a rejected record):
 * each returns rows from which pg_ops.c reads the operation's own result, so that one failing
 * operation cannot abort the batch's transaction. Parameters and results are text. */
#ifndef COUPOND_PG_SQL_H
#define COUPOND_PG_SQL_H

#include <stddef.h>
#include <stdint.h>

/* The schema this code creates and knows. A store with a newer one is refused at open. */
#define PG_SQL_SCHEMA_VERSION 1

/* Advisory lock keys (pg_advisory_lock's int8 space): "coupond" in ASCII, then a role byte. */
#define PG_SQL_LOCK_SCHEMA INT64_C(0x636f75706f6e6400) /* schema creation at open */
#define PG_SQL_LOCK_INSERT INT64_C(0x636f75706f6e6401) /* any insert of coupons (upload) */

enum pg_stmt {
    PG_STMT_XID,          /* -> the transaction's id (forces one) */
    PG_STMT_LOCKS,        /* $1 int8[]: advisory xact locks, in ascending order */
    PG_STMT_ROWLOCK,      /* $1 text[]: locks these coupons' rows, in code order */
    PG_STMT_COUNTERS_PUT, /* $1 node: adds the batch's deltas to the node's counter rows */
    PG_STMT_ASSIGN,       /* $1 i[] $2 type[] $3 bound[] $4 owner[] $5 at[]: a run of assigns */
    PG_STMT_REDEEM,       /* $1 now $2 code $3 user */
    PG_STMT_PURGE,        /* $1 now $2 max */
    PG_STMT_UPLOAD,       /* $1 op $2 insert?: publishes a staged upload */
    PG_STMT_GET,          /* $1 now $2 code: the coupon (GET, VALIDATE) */
    PG_STMT_COUNTERS,     /* $1 now: one row per type */
    PG_STMT_HISTORY,      /* $1 after $2 limit */
    PG_STMT_CHECK,        /* $1 now: recounts and the first breach of each invariant */
    PG_STMT_XACT_STATUS,  /* $1 xid: committed, aborted, in progress (or NULL: too old) */
    PG_NSTMTS
};

/* The columns of a coupon in a result, from column `first` on (see PG_SQL_COUPON_NCOLS). */
enum pg_coupon_col {
    PG_COL_CODE,
    PG_COL_TYPE,
    PG_COL_KIND,
    PG_COL_DISCOUNT,
    PG_COL_EXPIRES,
    PG_COL_USES,
    PG_COL_MAX_USES,
    PG_COL_HELD,
    PG_COL_SEQ,
    PG_COL_OWNER,
    PG_COL_ASSIGNED_AT,
    PG_SQL_COUPON_NCOLS
};

/* The prepared statement's name and text. */
const char *pg_sql_name(enum pg_stmt s);
const char *pg_sql_text(enum pg_stmt s);

/* The schema's statements, in order, *n of them; run in one transaction. */
const char *const *pg_sql_schema(size_t *n);

/* The session set-up every connection runs before it prepares the statements: the temporary
 * tables of the staging of uploads and of a batch's counter deltas. */
const char *const *pg_sql_session(size_t *n);

#endif
