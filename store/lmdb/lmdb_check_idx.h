/* lmdb_check_idx.h - the part of the consistency check (lmdb_check.h) that covers the version 2
 * records and indexes: users, code_hist, holds, hold_exp, hold_code, rids, rid_log.
 *
 * Every entry of an index is checked against the record it names, whose own key for that index
 * must be the entry's key, and every record against its entries: so entries and records pair
 * off one to one without a count. The counts that the meta state keeps are returned for
 * lmdb_check.c to compare. Not for a legacy store (lmdb_env.h), which has none of them. */
#ifndef COUPOND_LMDB_CHECK_IDX_H
#define COUPOND_LMDB_CHECK_IDX_H

#include <stdint.h>

#include "lmdb_codec.h"
#include "lmdb_view.h"
#include "store.h"

/* What one coupon's redemptions add up to. */
struct lmdb_check_uses {
    uint64_t standing; /* redemptions not undone: the coupon's uses */
    uint64_t undone;
};

/* The index entries of coupon *c: its users entry when assigned; its hold_code entries, as many
 * as c->holds; its code_hist entries, some exactly when c->redeemed, each naming a redemption of
 * the coupon, which add up to *u. STORE_OK, or STORE_CORRUPT (STORE_IO) with op failed. */
enum store_err lmdb_check_idx_coupon(const struct lmdb_view *v, const struct lmdb_coupon *c,
                                     struct lmdb_check_uses *u, struct store_op *op);

/* The code_hist entry of redemption *h. */
enum store_err lmdb_check_idx_history(const struct lmdb_view *v, const struct store_redemption *h,
                                      struct store_op *op);

/* Walks the version 2 databases: every entry and record decodes and matches what it names;
 * every hold names a coupon of its type and user, with a seq below s->next_hold_seq. The hold
 * records of each type go to holds[STORE_NTYPES]. */
enum store_err lmdb_check_idx_walk(const struct lmdb_view *v, uint64_t *holds, struct store_op *op);

#endif
