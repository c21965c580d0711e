/* checkout.h - the checkout writes of the exactly-once crash mode: REDEEM (with or without a
 * hold), HOLD, RELEASE and UNREDEEM of the coupons a client holds. A coupon has one op in flight
 * at most (coupon.busy until it is answered, across a kill and the retry after it), so when an
 * op is sent the model knows the coupon's uses and live hold, and predicts the reply exactly:
 * OK with the uses it must show, or ERR EXHAUSTED. A retry after a kill meets the same state,
 * so its reply is the same whether the server replays it or does it only then. */
#ifndef CRASH_CHECKOUT_H
#define CRASH_CHECKOUT_H

#include "model.h"

#define CHECKOUT_TRIES 4 /* random picks for a held coupon with nothing in flight */

/* Chooses a checkout op on a coupon that `client` holds with nothing in flight, logs it as
 * attempted (a HOLD with its new hold) and marks the coupon busy; returns the op, or MODEL_NONE
 * when no coupon was found. */
uint32_t checkout_choose(struct model *m, unsigned client);

/* The status line of checkout op `op`: checked against the prediction, then applied to the
 * model (uses, holds, redemptions); the coupon is free for its next op. */
void checkout_reply(struct model *m, uint32_t op, const char *line);

/* Whether ops of `kind` are checkout ops, in exactly-once mode. */
bool checkout_is_op(const struct model *m, enum op_kind kind);

#endif
