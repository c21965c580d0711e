/* lmdb_hold.h - holds: one use of a coupon reserved for its user until a time (HOLD, RELEASE,
 * REDEEM with a hold, EXPIRE_HOLDS), and how many of a coupon's holds are live at a time.
 *
 * A hold is a record in `holds` and an entry in each of `hold_exp` and `hold_code`
 * (lmdb_codec.h); the coupon record counts its hold records (`holds`) and the state counts them
 * per type. A hold is live while now <= expires. One past its end counts for nothing at once,
 * whether or not EXPIRE_HOLDS removed it yet: the live count of a coupon is its stored count
 * less its entries in hold_code before now, which is one seek when EXPIRE_HOLDS keeps up (and
 * none when the coupon has no hold record, the common case); likewise per type with hold_exp.
 *
 * The writing functions run in the writer's group operation (lmdb_group.h) and make every check
 * before their first write, so a direct operation that fails leaves the group clean. */
#ifndef COUPOND_LMDB_HOLD_H
#define COUPOND_LMDB_HOLD_H

#include <stdint.h>

#include "lmdb_codec.h"
#include "lmdb_group.h"
#include "lmdb_view.h"
#include "store.h"

/* Sets c->pub.held to the coupon's holds live at `now`, reading in view v / in operation gop. */
enum store_err lmdb_hold_live_view(const struct lmdb_view *v, struct lmdb_coupon *c, int64_t now,
                                   struct store_op *op);
enum store_err lmdb_hold_live_op(struct lmdb_group *g, struct lmdb_group_op *gop,
                                 struct lmdb_coupon *c, int64_t now, struct store_op *op);

/* Per type, the hold records with expires < now, in expired[STORE_NTYPES]. */
enum store_err lmdb_hold_expired(const struct lmdb_view *v, int64_t now, uint64_t *expired,
                                 struct store_op *op);

/* HOLD: in.code, in.user, in.until -> out.coupon, out.hold (see store.h). */
enum store_err lmdb_hold_run_hold(struct lmdb_group *g, struct lmdb_group_op *gop,
                                  struct store_op *op);

/* RELEASE: in.hold_seq -> out.coupon; STORE_UNKNOWN_HOLD unless that hold is live. */
enum store_err lmdb_hold_run_release(struct lmdb_group *g, struct lmdb_group_op *gop,
                                     struct store_op *op);

/* EXPIRE_HOLDS: removes the holds with expires < now, oldest end first, at most in.max ->
 * out.count, out.more (one is left). */
enum store_err lmdb_hold_run_expire(struct lmdb_group *g, struct lmdb_group_op *gop,
                                    struct store_op *op);

/* REDEEM with in.hold_seq, for coupon *c (assigned to in.user, live count set): checks that the
 * hold is live and is of in.code and in.user (else STORE_UNKNOWN_HOLD, nothing written), then
 * ends it: *c loses it (the caller writes *c). */
enum store_err lmdb_hold_redeem(struct lmdb_group *g, struct lmdb_group_op *gop,
                                struct store_op *op, struct lmdb_coupon *c);

/* Removes every hold of coupon *c (which PURGE deletes). */
enum store_err lmdb_hold_drop_all(struct lmdb_group *g, struct lmdb_group_op *gop,
                                  struct store_op *op, struct lmdb_coupon *c);

#endif
