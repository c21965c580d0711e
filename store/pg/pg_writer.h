/* pg_writer.h - the writer of a PostgreSQL store: one connection (pg_conn.h) that runs each
 * batch in one transaction with one COMMIT (group commit), never blocking the loop.
 *
 * A batch maps to statements in batch order, sent in one pipeline:
 *   [staging, only when the batch uploads or generates: TRUNCATE and COPY of the records into
 *    the session's temporary table coupond_upload, transactions of their own before the
 *    batch's; they change nothing shared]
 *   BEGIN
 *   SELECT pg_current_xact_id()   (when the batch writes; a flush request sends it back early)
 *   the node's audit head          (when the batch writes or asks for it: pg_audit.h)
 *   advisory locks, in key order  (the batch's request ids; the insert lock when it uploads)
 *   SELECT ... FOR UPDATE          (the coupons the batch redeems, holds, releases or unredeems,
 *                                   in code order)
 *   [the stored outcomes of the batch's request ids: the pipeline waits for them (flush
 *    request), so that a write whose id is stored is not run]
 *   one statement per operation, or per run of consecutive assignments (pg_ops.h)
 *   [the request ids of the writes that succeeded, with their outcomes, and the audit records
 *    of those writes (pg_audit.h): the pipeline waits for the operations' results first]
 *   the node's counter rows += the batch's deltas (one upsert per batch, from coupond_delta)
 *   flush request (every result is home before COMMIT runs)
 *   COMMIT
 *   sync
 * A batch without request ids or writes (which the audit chain records) is sent whole at once.
 * A RID_GET in a batch after a write of the same id is answered from that write's outcome, since
 * the ids reach rids only at the end. An UPLOAD's or GENERATE's outcome is settled when its
 * statement's result comes, so that its id is stored only when it succeeded; an UPLOAD that only
 * checks stores no id, as in LMDB. The batch completes after COMMIT's result. Each statement is
 * written so that an outcome of the store (no coupon, a rejected
 * upload, an exhausted coupon) is a result, never an error: an operation that fails changed
 * nothing, the others stay, with no savepoint. A statement that does raise an error (the
 * server's trouble, a deadlock between nodes) fails the batch: ROLLBACK, nothing of it is
 * stored. A deadlock or serialization failure is run again after PG_WRITER_RETRY_DELAY_S, up
 * to PG_WRITER_TRIES times in all, since nothing of it was stored.
 *
 * An upload's COPY cannot be pipelined, so it is staged before the batch's transaction, into a
 * temporary table that only this session sees; the upload's INSERT ... SELECT from it runs at
 * the upload's place in the batch, in the batch's transaction. So an upload is seen by the
 * operations after it in the batch and not by those before, and it is committed with the rest
 * of the batch or not at all.
 *
 * Outages. A batch committed while the connection is down completes (on the next loop turn)
 * with STORE_UNAVAILABLE; while it is coming back because the reader's connection is
 * (pg_conn_coming), the batch waits for it and runs once it is ready, or completes with
 * STORE_UNAVAILABLE (nothing stored) if the attempt fails. When the connection breaks under a
 * batch, the outcome is learned when possible: before COMMIT could have run, the batch failed
 * (STORE_UNAVAILABLE, nothing stored); after it may have, the writer reconnects and asks
 * pg_xact_status() about the transaction id it got first: committed (with every result in hand)
 * completes the batch STORE_OK; aborted, STORE_UNAVAILABLE (nothing stored); not learnable within
 * PG_WRITER_OUTCOME_WAIT_S, STORE_UNAVAILABLE (it may or may not have happened). The reconnection
 * may reach another server, a standby promoted in a failover, where that id can name another
 * transaction: a batch that stored audit records counts as committed only when its last record is
 * there too (else STORE_UNAVAILABLE, nothing stored). */
#ifndef COUPOND_PG_WRITER_H
#define COUPOND_PG_WRITER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "pg_arr.h"
#include "pg_audit.h"
#include "pg_conn.h"
#include "pg_ops.h"
#include "pg_upload.h"
#include "store.h"

/* Runs of a batch in all when a run fails with a deadlock or a serialization failure between
 * nodes: the other transaction has committed by then, so a second run normally passes; a
 * third covers a cycle of three nodes. */
#define PG_WRITER_TRIES 3

/* Seconds before the k-th run again, times k: long enough for the other transaction of a
 * deadlock to take the locks it waited for and commit (milliseconds), short against a batch's
 * latency budget. */
#define PG_WRITER_RETRY_DELAY_S 0.02

/* Seconds a batch whose COMMIT outcome is unknown waits to learn it: several reconnection
 * attempts of the backoff schedule (0.1 + 0.2 + 0.4 + 0.8 s), short enough to answer clients
 * promptly during an outage. */
#define PG_WRITER_OUTCOME_WAIT_S 2.0

/* Seconds between two questions about a transaction still "in progress": the old session has
 * not noticed it lost its client yet. */
#define PG_WRITER_OUTCOME_POLL_S 0.05

/* Seconds close waits for a batch in flight to commit: a batch's commit takes milliseconds; a
 * large upload, seconds. */
#define PG_WRITER_CLOSE_WAIT_S 30.0

#define PG_WRITER_XID_LEN 32 /* an xid8 in decimal */

enum pg_writer_phase {
    PG_WRITER_IDLE,
    PG_WRITER_REFUSE,   /* completing at the next loop turn without running */
    PG_WRITER_WAIT,     /* waiting for the connection that is coming back */
    PG_WRITER_STAGE,    /* COPY of the upload records */
    PG_WRITER_RUN,      /* the pipeline is sent; results coming */
    PG_WRITER_ROLLBACK, /* a statement failed: ROLLBACK sent */
    PG_WRITER_RETRY,    /* rolled back after a deadlock: running again soon */
    PG_WRITER_OUTCOME   /* the connection broke after COMMIT may have run: learning */
};

struct pg_step;

/* What the batch's operations need before they run: locks and request ids. */
struct pg_writer_head {
    struct pg_arr keys;        /* advisory lock keys */
    struct pg_arr codes;       /* coupon rows to lock */
    struct pg_arr holds;       /* ... of these holds' coupons */
    struct pg_arr redemptions; /* ... of these redemptions' coupons */
    struct pg_arr scopes, ids; /* request ids to look up */
};

struct pg_writer {
    struct pg_conn conn;
    struct ev_loop *loop;
    const char *node; /* counter rows' node name (the store's) */
    bool readonly;
    struct store_batch *b; /* in flight, or NULL */
    enum pg_writer_phase phase;
    /* The batch's operations in order, and per operation: */
    struct store_op **ops;
    size_t nops;
    struct pg_upload *ups; /* UPLOAD, GENERATE: the part done in C */
    bool *done;            /* complete before any statement (a replay, a bad argument) */
    size_t *dup;           /* an earlier operation with the same request id, or SIZE_MAX */
    struct pg_step *steps;
    size_t nsteps, asked, answered, got; /* steps; sent as statements; answered; any result */
    struct pg_writer_head head;
    bool writes, inserts, rids, staged, commit_sent;
    bool audited;          /* the batch reads the audit head; its tail waits for the results */
    struct pg_audit audit; /* the audit chain's part (pg_audit.h) */
    struct pg_floor floor; /* where claims start (pg_ops.h) */
    enum store_err refusal;
    bool failed; /* a statement failed: msg, sqlstate */
    char msg[STORE_ERR_MAX];
    char sqlstate[6];
    bool committed;
    bool have_xid;
    char xid[PG_WRITER_XID_LEN];
    unsigned tries;
    int stage_step;     /* staging: 0 truncating, 1 starting COPY, 2 sending data, 3 ending */
    struct pg_buf copy; /* the COPY data */
    size_t copy_off;
    ev_timer later;    /* refusal; the next question about an outcome */
    ev_timer deadline; /* the end of the wait for an outcome */
    bool closing;      /* in close: batches complete without their callbacks */
};

/* Opens the writer's connection (blocking, for open); false with why on failure. A read-only
 * writer connects nowhere and refuses every batch. */
bool pg_writer_open(struct pg_writer *w, struct ev_loop *loop, const char *const *keys,
                    const char *const *vals, const char *node, bool readonly, char *why,
                    size_t len);

/* Runs batch b (see the top of this file); it completes through store_batch_complete on the
 * loop's thread, never inside this call. One batch at a time. */
void pg_writer_commit(struct pg_writer *w, struct store_batch *b);

/* Lets a batch in flight finish (committed or not, its callback does not run), then closes. */
void pg_writer_close(struct pg_writer *w);

#endif
