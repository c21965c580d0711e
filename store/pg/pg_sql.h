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
 *                   (a GENERATE's: its codes too)
 * Version 2 (limits shared by nodes):
 *   grants          id -> node, task, code, at_ms, done_ms: the MEGADEAL grants of every node
 *                   (store.h, "MEGADEAL grants shared by nodes"), on the database's clock in
 *                   milliseconds; done_ms is NULL while the grant's slot is open. Kept for
 *                   PG_SQL_GRANT_KEEP_MS, then deleted by later grants.
 *   coupond_keys    name -> fingerprint: the task key every node of the store shares
 * Every time is an int8 of seconds since the epoch, as store.h passes it.
 *
 * Statements never raise an error for an outcome of the store (no coupon, a rejected record):
 * each returns rows from which pg_ops.c reads the operation's own result, so that one failing
 * operation cannot abort the batch's transaction. Parameters and results are text. */
#ifndef COUPOND_PG_SQL_H
#define COUPOND_PG_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The schema this code creates and knows. A store with a newer one is refused at open. */
#define PG_SQL_SCHEMA_VERSION 2

/* Milliseconds a grant's slot stays open at most when no GRANT_DONE closes it: a node that died
 * (or lost the outcome of the commit of its grant, or of its GRANT_DONE) cannot close it. Far
 * longer than a live node keeps a slot open (a commit of milliseconds, a lost outcome learned
 * within PG_WRITER_OUTCOME_WAIT_S, then the GRANT_DONE's own batch), so a live node's slot is
 * never taken as closed early; and short enough that a dead node's slots come back well within
 * a queued task's wait (10 s by default) plus one. */
#define PG_SQL_GRANT_LEASE_MS 10000
/* Milliseconds grants are kept after they were made: longer than the lease and any window, and a
 * minute of history for an operator (or a test) to read back how grants went. At the largest
 * rate (MEGA_RATE_MAX, 1000 a second) that is 60,000 rows. */
#define PG_SQL_GRANT_KEEP_MS 60000

/* Advisory lock keys (pg_advisory_lock's int8 space): "coupond" in ASCII, then a role byte. */
#define PG_SQL_LOCK_SCHEMA INT64_C(0x636f75706f6e6400) /* schema creation at open */
#define PG_SQL_LOCK_INSERT INT64_C(0x636f75706f6e6401) /* any insert of coupons (upload) */
#define PG_SQL_LOCK_GRANT  INT64_C(0x636f75706f6e6402) /* a MEGADEAL grant with limits */

enum pg_stmt {
    PG_STMT_XID,          /* -> the transaction's id (forces one) */
    PG_STMT_LOCKS,        /* $1 int8[]: advisory xact locks, in ascending order */
    PG_STMT_ROWLOCK,      /* $1 code[] $2 hold[] $3 redemption[]: locks those coupons' rows */
    PG_STMT_COUNTERS_PUT, /* $1 node: adds the batch's deltas to the node's counter rows */
    PG_STMT_ASSIGN,       /* $1 i[] $2 type[] $3 bound[] $4 owner[] $5 at[]: a run of assigns */
    PG_STMT_REDEEM,       /* $1 now $2 code $3 user $4 hold (0: none) */
    PG_STMT_PURGE,        /* $1 now $2 max */
    PG_STMT_UPLOAD,       /* $1 op $2 insert?: publishes a staged upload */
    PG_STMT_GET,          /* $1 now $2 code: the coupon (GET, VALIDATE) */
    PG_STMT_COUNTERS,     /* $1 now: one row per type */
    PG_STMT_HISTORY,      /* $1 after $2 limit */
    PG_STMT_CHECK,        /* $1 now: recounts and the first breach of each invariant */
    PG_STMT_XACT_STATUS,  /* $1 xid $2 node $3 audit seq: the status (committed, aborted, in
                           * progress, or NULL: too old), and whether the node's audit record
                           * $3 is stored */
    PG_STMT_HOLD,         /* $1 now $2 code $3 user $4 until */
    PG_STMT_RELEASE,      /* $1 now $2 hold */
    PG_STMT_UNREDEEM,     /* $1 now $2 redemption $3 user */
    PG_STMT_GENERATE,     /* $1 op $2 want: publishes the first `want` usable staged codes */
    PG_STMT_EXPIRE_HOLDS, /* $1 now $2 max */
    PG_STMT_EXPIRE_IDS,   /* $1 now $2 max */
    PG_STMT_RID_GET,      /* $1 scope $2 id: the stored outcome (PG_RID_COLS) */
    PG_STMT_RID_LOOKUP,   /* $1 scope[] $2 id[]: the stored outcomes of a batch's ids */
    PG_STMT_RID_PUT,      /* 14 arrays: the batch's request ids and outcomes */
    PG_STMT_COUPONS,      /* $1 now $2 user $3 limit: newest first, with the count of all */
    /* $1 now $2 bound $3 owner $4 node $5 task $6 rate $7 concurrency $8 window_ms: a MEGADEAL
     * grant within the limits shared by nodes, under PG_SQL_LOCK_GRANT */
    PG_STMT_GRANT,
    PG_STMT_GRANT_DONE, /* $1 grant: closes its slot */
    PG_STMT_AUDIT_HEAD, /* $1 node: (seq, hash in hex) of the node's last audit record, if any */
    /* $1 node $2 seq[] $3 hash[] $4 rec[]: a batch's audit records (pg_audit.h) */
    PG_STMT_AUDIT_INSERT,
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

/* The columns of a stored request id (RID_GET, RID_LOOKUP). */
enum pg_rid_col {
    PG_RID_SCOPE,
    PG_RID_ID,
    PG_RID_FP, /* hex */
    PG_RID_KIND,
    PG_RID_DONE_AT,
    PG_RID_CODE,
    PG_RID_HOLD_SEQ,
    PG_RID_HOLD_EXPIRES,
    PG_RID_REDEMPTION,
    PG_RID_TASK_SEQ,
    PG_RID_TASK_STAMP,
    PG_RID_COUNT,
    PG_RID_COUPON, /* the coupon after the write, as pg_rid.c encodes it */
    PG_RID_CODES,  /* a GENERATE's codes, in order, separated by spaces */
    PG_RID_NCOLS
};

/* The prepared statement's name and text. */
const char *pg_sql_name(enum pg_stmt s);
const char *pg_sql_text(enum pg_stmt s);

/* Bytes of an export's query (pg_sql_export). */
#define PG_SQL_EXPORT_MAX 1024

/* An export's query, for a cursor (DECLARE takes no parameters, so the values are written in:
 * numbers, and a code of A-Z 0-9 _ - . checked by the caller): every coupon (of `type` unless
 * any_type), code order, with the coupon columns; the redemptions after `after`, or those of
 * `code`, seq order, with HISTORY's columns. */
void pg_sql_export(char *buf, size_t len, int what, bool any_type, int type, int64_t after,
                   const char *code, int64_t now);

/* The schema's statements, in order, *n of them; run in one transaction. They make version 1;
 * pg_sql_upgrade(1, ...) makes the current version of it. */
const char *const *pg_sql_schema(size_t *n);

/* The statements that turn a schema of version `from` (1 .. PG_SQL_SCHEMA_VERSION) into the
 * current one, in order, *n of them (none from the current); run in one transaction, followed
 * by the new version's row. */
const char *const *pg_sql_upgrade(int64_t from, size_t *n);

/* The session set-up every connection runs before it prepares the statements: the temporary
 * tables of the staging of uploads and of a batch's counter deltas. */
const char *const *pg_sql_session(size_t *n);

#endif
