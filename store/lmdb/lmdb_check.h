/* lmdb_check.h - the full consistency check of an LMDB store (STORE_OP_CHECK). */
#ifndef COUPOND_LMDB_CHECK_H
#define COUPOND_LMDB_CHECK_H

#include "lmdb_view.h"
#include "store.h"

/* Reads everything in view v and checks: every record decodes; the avail index holds exactly
 * the unassigned coupons and the expiry index exactly the never-redeemed ones, each entry
 * matching its record; no coupon has uses > max_uses; a redeemed or held coupon has a user; the
 * history is numbered without gaps and agrees with the redeemed counters and records; the
 * version 2 indexes and records agree with the records they name (lmdb_check_idx.h): a coupon's
 * uses are its redemptions not undone, its hold count its hold records; the counters of v->s
 * (redeemed - unredeemed = uses, unredeemed = undone records, holds = hold records, and
 * `available` at op->now) equal a recount; outside a batch, the stored meta state equals v->s;
 * the audit chain is numbered without gaps up to its head (lmdb_audit.h).
 * STORE_OK, or STORE_CORRUPT with the first inconsistency in op->out.msg (or STORE_IO when LMDB
 * fails). */
enum store_err lmdb_check_run(const struct lmdb_view *v, struct store_op *op);

#endif
