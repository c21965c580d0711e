/* pg_check.h - CHECK in the PostgreSQL backend: what PG_STMT_CHECK recounts in one snapshot,
 * compared with the counters every node committed (plus, inside a batch, the batch's own).
 *
 * Verified: each coupon row (type, kind, uses <= max_uses, a user when used, a queue entry that
 * matches it when unassigned), each queue entry (names an unassigned coupon of its type, expiry
 * and seq), each redemption (names a coupon of its type and user), uses against the standing
 * redemptions of each coupon, holds (a coupon of their user; uses + live holds <= max_uses),
 * unique coupon seqs and sequences ahead of every seq, and per type the counters: created =
 * coupons + purged, assigned = assigned coupons + purged assigned ones, redeemed = redemptions,
 * redeemed - unredeemed = uses, unredeemed = undone redemptions, unassigned = queue entries =
 * unassigned coupons, and `available` as COUNTERS computes it = the recount. */
#ifndef COUPOND_PG_CHECK_H
#define COUPOND_PG_CHECK_H

#include <libpq-fe.h>

#include "store.h"

/* Reads CHECK's rows (checked to have its columns) into op: STORE_OK, or STORE_CORRUPT with
 * the first inconsistency in op->out.msg. */
void pg_check_result(struct store_op *op, const PGresult *r);

#endif
