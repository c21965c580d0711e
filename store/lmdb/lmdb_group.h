/* lmdb_group.h - the group: the one write transaction a batch runs in, and how each operation
 * of the batch runs inside it, isolated from the others. Used by the writer thread only.
 *
 * An operation normally runs in a nested transaction, so that its failure undoes it alone. But
 * a nested transaction costs a copy of every page it touches, a 3 MB dirty list and a merge
 * into the group, which is most of the work of a small write. So an operation that makes all
 * its checks before it writes, and can dirty at most `pages` pages, runs directly in the group
 * ("direct") while the map is known to have room for it at its end: its only possible failure
 * after a write, MDB_MAP_FULL, is then ruled out. A direct operation that fails after it may
 * have written "poisons" the group: every later operation of the batch fails, and so does the
 * batch. */
#ifndef COUPOND_LMDB_GROUP_H
#define COUPOND_LMDB_GROUP_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmdb_codec.h"
#include "lmdb_env.h"
#include "store.h"

/* Pages a direct operation may dirty or add at most: a path of copied pages and a split at
 * every level, in each B-tree it writes, for trees far deeper than any we reach. Each may also
 * store its request id: an entry in rids and a record in rid_log (LMDB_GROUP_RID_TREES), and
 * append its audit record (LMDB_GROUP_AUDIT_TREES).
 *   assign    coupons avail users
 *   redeem    coupons expiry history code_hist, and with a hold holds hold_exp hold_code
 *   hold      coupons holds hold_exp hold_code (release: the same)
 *   unredeem  coupons history
 *   note      (the audit record alone) */
#define LMDB_GROUP_TREE_PAGES     48
#define LMDB_GROUP_RID_TREES      2
#define LMDB_GROUP_AUDIT_TREES    1
#define LMDB_GROUP_EXTRA_TREES    (LMDB_GROUP_RID_TREES + LMDB_GROUP_AUDIT_TREES)
#define LMDB_GROUP_ASSIGN_PAGES   ((3 + LMDB_GROUP_EXTRA_TREES) * LMDB_GROUP_TREE_PAGES)
#define LMDB_GROUP_REDEEM_PAGES   ((7 + LMDB_GROUP_EXTRA_TREES) * LMDB_GROUP_TREE_PAGES)
#define LMDB_GROUP_HOLD_PAGES     ((4 + LMDB_GROUP_EXTRA_TREES) * LMDB_GROUP_TREE_PAGES)
#define LMDB_GROUP_UNREDEEM_PAGES ((2 + LMDB_GROUP_EXTRA_TREES) * LMDB_GROUP_TREE_PAGES)
#define LMDB_GROUP_NOTE_PAGES     (LMDB_GROUP_AUDIT_TREES * LMDB_GROUP_TREE_PAGES)
#define LMDB_GROUP_NESTED         0 /* lmdb_group_op_begin: run in a nested transaction */

struct lmdb_group {
    const struct lmdb_env *env;
    MDB_txn *txn; /* the group (write transaction), begun on first need, or NULL */
    size_t ops;   /* write operations folded into txn */
    /* Direct operations: pages the group may still take from the end of the map for them;
     * direct_off once an operation of unbounded size ran; poisoned when a direct operation
     * failed after it may have written. */
    uint64_t direct_pages;
    bool direct_off;
    bool poisoned;
    MDB_cursor *cur[LMDB_NDB]; /* the direct operations' cursors, freed by LMDB with txn */
    struct lmdb_state s;       /* the counters with the batch's operations so far */
    struct lmdb_state base;    /* as of the batch's start: s again when txn is dropped */
};

/* One write operation: its transaction (nested, or the group's when direct), the state it
 * leaves when it commits, and its cursors, opened on first use. Puts go through a cursor
 * because LMDB then skips the descent from the root when the key falls on the page the cursor
 * is on (see the upload). */
struct lmdb_group_op {
    MDB_txn *txn;
    struct lmdb_state s;
    MDB_cursor *cur[LMDB_NDB];
    bool direct;
    /* Set by the operation when it succeeds without anything worth a commit (nothing to purge,
     * a check-only upload): it is then undone rather than committed. */
    bool discard;
};

/* An empty group for a batch that starts from state *from. */
void lmdb_group_init(struct lmdb_group *g, const struct lmdb_env *env,
                     const struct lmdb_state *from);

/* The group's transaction, begun when needed, for a read of the batch; fails op when it cannot
 * be begun or the group is poisoned. */
enum store_err lmdb_group_txn(struct lmdb_group *g, MDB_txn **txn, struct store_op *op);

/* Starts a write operation that dirties at most `pages` pages (LMDB_GROUP_NESTED: unbounded, in
 * a nested transaction; ends direct operations for the rest of the group, whose room can no
 * longer be counted). */
enum store_err lmdb_group_op_begin(struct lmdb_group *g, struct lmdb_group_op *gop, unsigned pages,
                                   struct store_op *op);

/* The operation's cursor on `db`; returns LMDB's code. */
int lmdb_group_op_cursor(struct lmdb_group *g, struct lmdb_group_op *gop, enum lmdb_db db,
                         MDB_cursor **cur);

/* Puts key -> val in `db` through the operation's cursor; returns LMDB's code. */
int lmdb_group_op_put(struct lmdb_group *g, struct lmdb_group_op *gop, enum lmdb_db db,
                      MDB_val *key, MDB_val *val, unsigned flags);

/* Called by lmdb_group_op_drain for each entry it removes: (time, seq) is its key, v its value.
 * It must not move the operation's cursor on the drained database. */
typedef enum store_err lmdb_group_drain_fn(struct lmdb_group *g, struct lmdb_group_op *gop,
                                           struct store_op *op, int64_t time, uint64_t seq,
                                           const MDB_val *v);

/* Removes entries from the head of `db`, whose keys are laid out as expiry keys (time, seq), while
 * their time is before op->now: fn for each, then the entry is deleted; at most op->in.max,
 * their number in op->out.count, op->out.more when one is left ("what" names it in messages).
 * PURGE, EXPIRE_HOLDS and EXPIRE_IDS are such walks. */
enum store_err lmdb_group_op_drain(struct lmdb_group *g, struct lmdb_group_op *gop, enum lmdb_db db,
                                   lmdb_group_drain_fn *fn, const char *what, struct store_op *op);

/* Undoes the operation alone and returns `e`, its outcome. A direct operation that failed with
 * an error of its checks (found before any write: STORE_NO_COUPONS, STORE_INVALID,
 * STORE_EXHAUSTED, STORE_EXPIRED, STORE_ID_CONFLICT, STORE_UNKNOWN_HOLD,
 * STORE_UNKNOWN_REDEMPTION) leaves the group clean; any other failure poisons it. */
enum store_err lmdb_group_op_abort(struct lmdb_group *g, struct lmdb_group_op *gop,
                                   enum store_err e);

/* Folds the operation into the group, and its state into the group's. */
enum store_err lmdb_group_op_commit(struct lmdb_group *g, struct lmdb_group_op *gop,
                                    const char *what, struct store_op *op);

/* Ends the batch's group: writes the meta state once and commits durably (fsync) when an
 * operation wrote, else drops the transaction. Returns the batch's outcome, with a one-line
 * reason in msg on failure (nothing of the batch is then stored, and g->s is back at the
 * batch's start); on success g->s is the state the batch leaves. */
enum store_err lmdb_group_end(struct lmdb_group *g, char *msg, size_t len);

#endif
