/* lmdb_index.h - the avail and expiry indexes: the next-coupon seek, entries of one coupon, and
 * the `available` count kept without a scan.
 *
 * `available` = unassigned - (avail entries with expires < now), exact and without a scan of the
 * coupons. The state keeps a watermark T and, per type, expired_unassigned = the number of avail
 * entries with expires < T. A read at now > T walks only the entries in [T, now), adds them and
 * moves T to now, so each coupon is visited about once, when it has expired. Writes that add or
 * remove an avail entry below T adjust the count in their operation's state, so a failed
 * operation or batch restores it with the rest. A read at now < T (the clock went back) counts
 * [INT64_MIN, now) afresh for that call and leaves T alone. The walk reads the transaction its
 * state belongs to: the group with the batch's copy, or the loop's snapshot with the committed
 * copy. */
#ifndef COUPOND_LMDB_INDEX_H
#define COUPOND_LMDB_INDEX_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "lmdb_codec.h"
#include "lmdb_env.h"
#include "lmdb_view.h"
#include "store.h"

/* An avail entry of (type, expires) was added or removed: keep `unassigned` and the
 * `available` cache of *s in step. */
void lmdb_index_avail_added(struct lmdb_state *s, uint8_t type, int64_t expires);
void lmdb_index_avail_removed(struct lmdb_state *s, uint8_t type, int64_t expires);

/* The next coupon of `type` at `now`: the first avail entry at or after (type, now, 0), when it
 * is of `type`. It expires first among the unexpired, ties broken by seq (upload order). One
 * cursor seek: expired entries are skipped, never walked. On STORE_OK the cursor `avail` is on
 * the entry and code, *expires and *seq are its. STORE_NO_COUPONS when there is none; STORE_IO
 * or STORE_CORRUPT with op failed. */
enum store_err lmdb_index_next(MDB_cursor *avail, uint8_t type, int64_t now, char *code,
                               int64_t *expires, uint64_t *seq, struct store_op *op);

/* Deletes the avail (or expiry) entry of coupon *c in txn; a missing entry is STORE_CORRUPT. */
enum store_err lmdb_index_avail_del(const struct lmdb_env *e, MDB_txn *txn,
                                    const struct store_coupon *c, struct store_op *op);
enum store_err lmdb_index_expiry_del(const struct lmdb_env *e, MDB_txn *txn,
                                     const struct store_coupon *c, struct store_op *op);

/* Per type, the avail entries with expires < now, in expired[STORE_NTYPES], from the cache in
 * v->s and a walk of the entries in between (see the top of this file). Moves the cache to now
 * when v->keep_watermark. */
enum store_err lmdb_index_expired_unassigned(const struct lmdb_view *v, int64_t now,
                                             uint64_t *expired, struct store_op *op);

/* The counters of v->s with `available` and `held` as of `now` (through
 * lmdb_index_expired_unassigned and lmdb_hold_expired); STORE_CORRUPT when more entries expired
 * than there are. */
enum store_err lmdb_index_counters(const struct lmdb_view *v, int64_t now,
                                   struct store_counters *out, struct store_op *op);

#endif
