/* pg_audit.h - the audit chain in the PostgreSQL backend (store.h, "Audit chain"; the records are
 * audit.h's): one chain per node, in
 *
 *   coupond_audit (node, seq) -> hash, rec    the node's records; its head is its last row
 *
 * created at open when missing (independent of the schema version: a store made before the chain
 * gets it at its first writable open, and its chain starts there).
 *
 * In a batch (pg_writer.h), the head is read in the batch's transaction, right after BEGIN; the
 * records are built in C once every operation's result is in (they say what each write did),
 * chained from that head, and inserted in one statement before the counters and COMMIT. So a
 * batch that writes waits for its operations' results before it sends its tail, as a batch with
 * request ids always did: one round trip more for the others. Two processes that (wrongly)
 * share a node name cannot fork its chain: the second insert of a seq fails its batch.
 * AUDIT_NOTE and AUDIT_HEAD run no statement of their own: a note is checked in C and becomes a
 * record at the tail, AUDIT_HEAD is the head as of the records before it. */
#ifndef COUPOND_PG_AUDIT_H
#define COUPOND_PG_AUDIT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_conn.h"
#include "pg_upload.h"
#include "store.h"

/* The chain's part of a batch in flight (the writer's). */
struct pg_audit {
    const char *node;
    bool wanted;                  /* this run of the batch reads the head */
    bool have_head;               /* the head's result came */
    struct store_audit_head head; /* the node's head as the batch's transaction read it */
    uint64_t last_seq;            /* the seq of the batch's last record sent, 0 when none */
};

/* Creates coupond_audit when it is missing and mode is STORE_OPEN_CREATE, on a connection of its
 * own, under the schema's advisory lock; STORE_OPEN_EXISTING creates nothing. STORE_OK, or
 * STORE_UNAVAILABLE / STORE_IO with a one-line reason naming `where` in msg. */
enum store_err pg_audit_schema(const char *const *keys, const char *const *vals,
                               enum store_open_mode mode, const char *where, char *msg, size_t len);

/* Sets up a writer's part for `node` (the store's, valid as long as a). */
void pg_audit_init(struct pg_audit *a, const char *node);

/* Planning a batch: true when op needs no statement of its own here (AUDIT_NOTE, checked now:
 * its error, if any, is op's; AUDIT_HEAD, answered at the tail). */
bool pg_audit_plan_op(struct store_op *op);

/* A (new) run of a batch of these operations: true when it must read the head (it writes, or
 * asks for the head). */
bool pg_audit_begin(struct pg_audit *a, struct store_op *const *ops, size_t n);

/* Queues the head's query (a->wanted); fn gets its result, which it hands to
 * pg_audit_head_result. False when the connection is broken. */
bool pg_audit_send_head(struct pg_audit *a, struct pg_conn *c, pg_conn_result_fn *fn, void *arg);

/* Takes the head's result; false when it is not one (the statement failed). */
bool pg_audit_head_result(struct pg_audit *a, const PGresult *r);

/* The tail, once every operation's result is in (and the head's): fills each AUDIT_HEAD's
 * out.audit, sets a->last_seq, and queues the insert of the records of the writes that succeeded
 * (audit.h's audit_wanted, not replayed; an UPLOAD or GENERATE, ups[i] with its op set, when
 * pg_upload_stores), in batch order; fn gets its result. True when queued or nothing
 * to insert; false when the connection is broken or out of memory (then it is marked broken:
 * `lost` follows), or a record cannot be made (why says so; the batch must fail). */
bool pg_audit_send_records(struct pg_audit *a, struct pg_conn *c, struct store_op *const *ops,
                           const struct pg_upload *ups, size_t n, pg_conn_result_fn *fn, void *arg,
                           char *why, size_t len);

/* The result of PG_STMT_AUDIT_HEAD (pg_sql.h) into op->out.audit (for the reader). */
void pg_audit_head_read_result(struct store_op *op, const PGresult *r);

/* An export's query of the records of `node` after `after` (for a cursor: the values are
 * written in, the node as hex), with the columns pg_audit_export_row reads. */
void pg_audit_export_sql(char *buf, size_t len, const char *node, int64_t after);

/* Row `row` of such a query's result into *a; false when it is no audit record. */
bool pg_audit_export_row(const PGresult *r, int row, struct store_audit_row *a);

#endif
