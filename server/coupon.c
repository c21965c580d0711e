/* coupon.c - converting coupons between store/ and protocol/. The enums share their values
 * (store.h and proto.h say so), so types and kinds convert by value. */
#include "coupon.h"

#include <string.h>

void
coupon_to_proto(const struct store_coupon *sc, struct proto_coupon *pc)
{
    memcpy(pc->code, sc->code, sizeof pc->code);
    pc->type = (enum proto_type)sc->type;
    pc->kind = (enum proto_kind)sc->kind;
    pc->discount = sc->discount;
    pc->expires = sc->expires;
    pc->uses = sc->uses;
    pc->max_uses = sc->max_uses;
}

void
coupon_from_proto(const struct proto_coupon *pc, struct store_coupon *sc)
{
    memset(sc, 0, sizeof *sc);
    memcpy(sc->code, pc->code, sizeof sc->code);
    sc->type = (uint8_t)pc->type;
    sc->kind = (uint8_t)pc->kind;
    sc->discount = pc->discount;
    sc->expires = pc->expires;
    sc->uses = pc->uses;
    sc->max_uses = pc->max_uses;
}
