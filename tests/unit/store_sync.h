/* store_sync.h - a synchronous face of store.h for tests: each call submits an operation or a
 * batch, then runs the event loop until it completed. It uses store.h alone, so the tests of
 * every backend can share it.
 *
 * On the way it checks store.h's completion contract for every batch it waits for: one call of
 * the batch's callback, never inside store_commit, and none of its operations' callbacks. A
 * test asks ss_violation() at its end. */
#ifndef COUPOND_STORE_SYNC_H
#define COUPOND_STORE_SYNC_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* How long a wait may take before the shim aborts the test: far beyond the slowest batch of the
 * tests (a 50,000-record upload under ThreadSanitizer takes seconds), within CTest's timeout. */
#define SS_WAIT_MAX_S 120.0

#define SS_VIOLATION_MAX 256 /* bytes of the first contract violation's description */

/* A store and the loop its completions come on. */
struct ss {
    struct ev_loop *loop;
    struct store *st;
    bool in_commit;                   /* inside store_commit: a completion now is a violation */
    char violation[SS_VIOLATION_MAX]; /* the first one seen, "" while none */
};

/* A batch and how it completed. */
struct ss_batch {
    struct store_batch b;
    struct ss *s;
    bool done;
    unsigned calls;     /* of the batch's callback */
    enum store_err err; /* the batch's outcome */
    /* Called at completion, after the above are set (may commit the next batch). */
    void (*then)(struct ss_batch *sb);
    void *arg;
};

/* Opens the store at `uri` with a loop of its own. On failure returns the error, s->st is NULL
 * and err holds store_open's reason. */
enum store_err ss_open(struct ss *s, const char *uri, enum store_open_mode mode, uint64_t map_size,
                       char *err, size_t errlen);

/* Closes the store (a batch in flight finishes, its callback does not run) and the loop. */
void ss_close(struct ss *s);

/* The first violation of the completion contract seen, or NULL. */
const char *ss_violation(const struct ss *s);

/* --- operations: each builder empties *op and fills the inputs of its kind --- */

void ss_op(struct store_op *op, enum store_op_kind kind, int64_t now);
void ss_op_upload(struct store_op *op, const struct store_coupon *recs, size_t n, bool check_only,
                  struct store_reject *rejects, size_t rej_cap);
void ss_op_assign(struct store_op *op, enum store_type type, const char *user, int64_t now);
void ss_op_redeem(struct store_op *op, const char *code, const char *user, int64_t now);
void ss_op_purge(struct store_op *op, int64_t now, size_t max);
void ss_op_validate(struct store_op *op, const char *code, const char *user, int64_t now);
void ss_op_get(struct store_op *op, const char *code);
void ss_op_counters(struct store_op *op, int64_t now);
void ss_op_history(struct store_op *op, uint64_t after, struct store_redemption *rows, size_t cap);
void ss_op_check(struct store_op *op, int64_t now);

/* Version 2. */
void ss_op_hold(struct store_op *op, const char *code, const char *user, int64_t now,
                int64_t until);
void ss_op_release(struct store_op *op, uint64_t hold_seq, int64_t now);
void ss_op_unredeem(struct store_op *op, const char *user, uint64_t redemption, int64_t now);
void ss_op_generate(struct store_op *op, const struct store_coupon *recs, size_t n, size_t want,
                    size_t *chosen);
void ss_op_expire_holds(struct store_op *op, int64_t now, size_t max);
void ss_op_expire_ids(struct store_op *op, int64_t now, size_t max);
void ss_op_rid_get(struct store_op *op, const char *scope, const char *id);
void ss_op_coupons(struct store_op *op, const char *user, int64_t now, struct store_coupon *rows,
                   size_t cap);
/* EXPORT: the first call (cursor NULL) or the next; rows go to coupons (COUPONS) or rows. */
void ss_op_export(struct store_op *op, enum store_export_kind kind, void *cursor, size_t cap,
                  struct store_coupon *coupons, struct store_redemption *rows);

/* Gives a write the request id `id` in `scope`, with a fingerprint made from `request` (the
 * same text: a retry; another text: another request). */
void ss_op_rid(struct store_op *op, const char *scope, const char *id, const char *request);

/* --- batches --- */

void ss_batch_init(struct ss *s, struct ss_batch *sb);

/* Appends op; returns it. */
struct store_op *ss_batch_add(struct ss_batch *sb, struct store_op *op);

/* Commits without waiting (sb must stay alive until it completed). */
void ss_commit_start(struct ss_batch *sb);

/* Runs the loop until sb completed; returns its outcome. */
enum store_err ss_wait(struct ss_batch *sb);

/* ss_commit_start, then ss_wait. */
enum store_err ss_commit(struct ss_batch *sb);

/* Runs a read with store_read and waits for it; returns op->err. */
enum store_err ss_read(struct ss *s, struct store_op *op);

/* A write in a batch of its own, a read with store_read; waits; returns op->err. */
enum store_err ss_run(struct ss *s, struct store_op *op);

/* --- one operation, waited for (outputs may be NULL) --- */

enum store_err ss_upload(struct ss *s, const struct store_coupon *recs, size_t n, bool check_only,
                         struct store_reject *rejects, size_t rej_cap, size_t *n_rejected);
enum store_err ss_assign(struct ss *s, enum store_type type, const char *user, int64_t now,
                         struct store_coupon *out);
enum store_err ss_redeem(struct ss *s, const char *code, const char *user, int64_t now,
                         struct store_coupon *out);
enum store_err ss_purge(struct ss *s, int64_t now, size_t max, uint64_t *count, bool *more);
enum store_err ss_validate(struct ss *s, const char *code, const char *user, int64_t now,
                           struct store_coupon *out);
enum store_err ss_get(struct ss *s, const char *code, struct store_coupon *out);
enum store_err ss_counters(struct ss *s, int64_t now, struct store_counters *out);
enum store_err ss_history(struct ss *s, uint64_t after, struct store_redemption *rows, size_t cap,
                          size_t *count);
/* msg (msglen bytes) gets the reason on failure. */
enum store_err ss_check(struct ss *s, int64_t now, char *msg, size_t msglen);

#endif
