/* coupon.h - a coupon between the store's model and the wire's: the server's one place that
 * knows both structs. */
#ifndef COUPOND_COUPON_H
#define COUPOND_COUPON_H

#include "proto.h"
#include "store.h"

/* The wire form of a stored coupon (the assigned user stays behind). */
void coupon_to_proto(const struct store_coupon *sc, struct proto_coupon *pc);

/* A parsed upload record as the store takes it: seq, user and assigned_at zero. */
void coupon_from_proto(const struct proto_coupon *pc, struct store_coupon *sc);

#endif
