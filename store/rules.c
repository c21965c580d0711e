/* rules.c - the backend-independent rules of coupons (see rules.h). */
#include "rules.h"

#include <string.h>

static bool
code_char_ok(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
           ch == '.';
}

size_t
rules_code_len(const char *code)
{
    size_t n = strnlen(code, STORE_CODE_MAX + 1);

    if (n > STORE_CODE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!code_char_ok(code[i]))
            return 0;
    return n;
}

size_t
rules_user_len(const char *user)
{
    size_t n = strnlen(user, STORE_USER_MAX + 1);

    return n > STORE_USER_MAX ? 0 : n;
}

bool
rules_record_ok(const struct store_coupon *c)
{
    if (c->type >= STORE_NTYPES || c->kind > STORE_KIND_PERCENT || c->discount <= 0)
        return false;
    if (c->kind == STORE_KIND_PERCENT && c->discount > RULES_PERCENT_MAX)
        return false;
    return c->max_uses >= 1 && c->max_uses <= RULES_MAX_USES_MAX && c->uses == 0;
}

bool
rules_owned_by(const struct store_coupon *c, const char *user)
{
    return c->user[0] != '\0' && strcmp(c->user, user) == 0;
}

bool
rules_expired(const struct store_coupon *c, int64_t now)
{
    return now > c->expires;
}

enum store_err
rules_usable(const struct store_coupon *c, const char *user, int64_t now)
{
    if (!rules_owned_by(c, user))
        return STORE_INVALID;
    if ((uint64_t)c->uses + c->held >= c->max_uses)
        return STORE_EXHAUSTED;
    if (rules_expired(c, now))
        return STORE_EXPIRED;
    return STORE_OK;
}

bool
rules_assignable(const struct store_coupon *c, int64_t now)
{
    return c->user[0] == '\0' && c->expires >= now;
}

bool
rules_rid_carried(const struct store_op *op)
{
    switch (op->kind) {
    case STORE_OP_ASSIGN:
    case STORE_OP_REDEEM:
    case STORE_OP_UPLOAD:
    case STORE_OP_HOLD:
    case STORE_OP_RELEASE:
    case STORE_OP_UNREDEEM:
    case STORE_OP_GENERATE:
        return op->in.rid.id[0] != '\0';
    default:
        return false;
    }
}
