/* rules.h - the rules of coupons that hold whatever the backend: which codes, users and
 * records are valid, and in which order VALIDATE and REDEEM check a coupon. Every backend calls
 * these instead of writing its own. */
#ifndef COUPOND_STORE_RULES_H
#define COUPOND_STORE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define RULES_PERCENT_MAX  10000   /* 100.00 % in hundredths */
#define RULES_MAX_USES_MAX 1000000 /* PROTOCOL.md: max_uses is 1 to 1000000 */

/* Length of a valid code (1 to STORE_CODE_MAX of A-Z 0-9 _ - .), 0 when not valid. */
size_t rules_code_len(const char *code);

/* Length of a usable user name (1 to STORE_USER_MAX bytes), 0 when not usable. */
size_t rules_user_len(const char *user);

/* True when an upload record's fields are in range: type, kind, discount > 0 (<= 100.00 for
 * PERCENT), max_uses 1..RULES_MAX_USES_MAX, uses == 0. The code is checked apart. */
bool rules_record_ok(const struct store_coupon *c);

/* The checks of VALIDATE, REDEEM and HOLD, in PROTOCOL.md's order: assigned to `user` (else
 * STORE_INVALID), a use left that no live hold reserves, uses + held < max_uses (else
 * STORE_EXHAUSTED), not expired at `now` (else STORE_EXPIRED). `held` must count the holds
 * live at `now` only. A REDEEM with a hold checks the hold instead of the uses left. */
enum store_err rules_usable(const struct store_coupon *c, const char *user, int64_t now);

/* True when the coupon is assigned to `user` (the first check of rules_usable). */
bool rules_owned_by(const struct store_coupon *c, const char *user);

/* True when the coupon has expired at `now` (the last check of rules_usable). */
bool rules_expired(const struct store_coupon *c, int64_t now);

/* True when an unassigned coupon may be assigned at `now`: it has not expired. */
bool rules_assignable(const struct store_coupon *c, int64_t now);

/* True when `op` is of a kind that takes a request id (store.h, struct store_rid) and carries
 * one: ASSIGN, REDEEM, UPLOAD, HOLD, RELEASE, UNREDEEM and GENERATE. */
bool rules_rid_carried(const struct store_op *op);

#endif
