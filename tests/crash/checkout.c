/* checkout.c - HOLD, RELEASE, REDEEM [hold=] and UNREDEEM with predicted replies. */
#include "checkout.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define CO_PERCENT         100
#define CO_USE_HOLD_PCT    50 /* a live hold: redeemed with it this often, else released */
#define CO_UNDO_PCT        30 /* a coupon with uses left: UNREDEEM this often, */
#define CO_REDEEM_PCT      75 /* REDEEM up to here, HOLD the rest */
#define CO_FULL_UNDO_PCT   60 /* a coupon without uses left: UNREDEEM this often, */
#define CO_FULL_REDEEM_PCT 80 /* REDEEM (EXHAUSTED) up to here, HOLD (EXHAUSTED) the rest */
#define CO_SEQ_DIGITS      20

/* Uses that a REDEEM or HOLD without a hold may still take: max_uses less uses and holds. */
static uint32_t
uses_left(const struct coupon *c)
{
    uint32_t taken = c->uses + (c->live_hold != MODEL_NONE);
    return taken < c->max_uses ? c->max_uses - taken : 0;
}

bool
checkout_is_op(const struct model *m, enum op_kind kind)
{
    return m->mode == MODE_EXACTLY_ONCE &&
           (kind == OP_REDEEM || kind == OP_HOLD || kind == OP_RELEASE || kind == OP_UNREDEEM);
}

/* The op for coupon c, and its hold or redemption. */
static enum op_kind
pick(struct rng *r, const struct coupon *c, uint32_t *arg)
{
    uint32_t p = rng_below(r, CO_PERCENT);
    *arg = MODEL_NONE;
    if (c->live_hold != MODEL_NONE) {
        *arg = c->live_hold;
        return p < CO_USE_HOLD_PCT ? OP_REDEEM : OP_RELEASE;
    }
    bool full = uses_left(c) == 0;
    if (c->last_use != MODEL_NONE && p < (full ? CO_FULL_UNDO_PCT : CO_UNDO_PCT)) {
        *arg = c->last_use;
        return OP_UNREDEEM;
    }
    return p < (full ? CO_FULL_REDEEM_PCT : CO_REDEEM_PCT) ? OP_REDEEM : OP_HOLD;
}

uint32_t
checkout_choose(struct model *m, unsigned client)
{
    struct mclient *mc = &m->clients[client];
    for (int i = 0; i < CHECKOUT_TRIES && mc->n_owned > 0; i++) {
        uint32_t c = mc->owned[rng_below(&mc->rng, (uint32_t)mc->n_owned)];
        struct coupon *cp = &m->coupons[c];
        if (cp->busy)
            continue;
        uint32_t arg;
        enum op_kind kind = pick(&mc->rng, cp, &arg);
        uint32_t op = model_op_attempt(m, kind, client, c);
        m->ops[op].arg = kind == OP_HOLD ? model_hold_add(m, c) : arg;
        cp->busy = true;
        cp->touched = m->cycle;
        return op;
    }
    return MODEL_NONE;
}

/* ---- replies ---- */

/* What the reply of a checkout op is checked against. */
struct expect {
    struct model *m;
    uint32_t op;
    const char *line;
    size_t len;
    char code[MODEL_CODE_MAX];
};

static bool
violation(struct expect *e, const char *what)
{
    const struct op *o = &e->m->ops[e->op];
    const struct coupon *c = &e->m->coupons[o->target];
    model_check(e->m, false, "%s u%u %s (uses %u of %u, %s): %s, got \"%s\"",
                model_op_name((enum op_kind)o->kind), (unsigned)c->user, e->code, (unsigned)c->uses,
                (unsigned)c->max_uses, c->live_hold != MODEL_NONE ? "held" : "not held", what,
                e->line);
    model_history(e->m, o->target);
    return false;
}

/* ERR EXHAUSTED, or ERR INTERNAL ("nothing was changed"), when the op must fail. */
static bool
expect_exhausted(struct expect *e)
{
    enum proto_err err = proto_reply_err(e->line, e->len);
    if (proto_reply_kind(e->line, e->len) == PROTO_REPLY_ERR &&
        (err == PROTO_ERR_EXHAUSTED || err == PROTO_ERR_INTERNAL))
        return true;
    return violation(e, "expected ERR EXHAUSTED: no use left");
}

/* OK with the coupon's fields and `uses`; false (a violation, unless ERR INTERNAL) otherwise. */
static bool
expect_ok(struct expect *e, uint32_t uses, bool *internal)
{
    struct proto_coupon pc;
    const struct coupon *c = &e->m->coupons[e->m->ops[e->op].target];
    *internal = proto_reply_kind(e->line, e->len) == PROTO_REPLY_ERR &&
                proto_reply_err(e->line, e->len) == PROTO_ERR_INTERNAL;
    if (*internal)
        return false;
    if (proto_reply_kind(e->line, e->len) == PROTO_REPLY_OK &&
        proto_reply_coupon(e->line, e->len, &pc) && strcmp(pc.code, e->code) == 0 &&
        pc.uses == uses && pc.max_uses == c->max_uses)
        return true;
    char want[64];
    snprintf(want, sizeof want, "expected OK with uses=%u", (unsigned)uses);
    return violation(e, want);
}

static bool
field_seq(const char *line, size_t len, const char *key, uint64_t *out)
{
    const char *v;
    size_t n;
    uint64_t x = 0;
    if (!proto_reply_field(line, len, key, &v, &n) || n == 0 || n > CO_SEQ_DIGITS)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return true;
}

/* REDEEM: with its hold it always succeeds; without one, while a use is left. */
static void
on_redeem(struct expect *e)
{
    struct model *m = e->m;
    const struct op *o = &m->ops[e->op];
    struct coupon *c = &m->coupons[o->target];
    bool internal;
    uint64_t seq;
    if (o->arg == MODEL_NONE && uses_left(c) == 0) {
        expect_exhausted(e);
        return;
    }
    if (!expect_ok(e, c->uses + 1, &internal))
        return;
    if (!field_seq(e->line, e->len, "redemption", &seq)) {
        violation(e, "expected redemption=SEQ");
        return;
    }
    c->uses++;
    if (o->arg != MODEL_NONE) {
        m->holds[o->arg].state = HOLD_ENDED;
        c->live_hold = MODEL_NONE;
    }
    model_redemption_add(m, o->target, seq);
}

static void
on_hold(struct expect *e)
{
    struct model *m = e->m;
    const struct op *o = &m->ops[e->op];
    struct coupon *c = &m->coupons[o->target];
    struct hold *h = &m->holds[o->arg];
    const char *id;
    size_t n;
    bool internal;
    h->state = HOLD_REFUSED;
    if (uses_left(c) == 0) {
        expect_exhausted(e);
        return;
    }
    if (!expect_ok(e, c->uses, &internal))
        return;
    if (!proto_reply_field(e->line, e->len, "hold", &id, &n) || n == 0 || n > PROTO_HOLD_MAX) {
        violation(e, "expected hold=HID");
        return;
    }
    memcpy(h->id, id, n);
    h->id[n] = '\0';
    h->state = HOLD_LIVE;
    c->live_hold = o->arg;
}

static void
on_release(struct expect *e)
{
    struct model *m = e->m;
    const struct op *o = &m->ops[e->op];
    struct coupon *c = &m->coupons[o->target];
    if (proto_reply_kind(e->line, e->len) == PROTO_REPLY_ERR &&
        proto_reply_err(e->line, e->len) == PROTO_ERR_INTERNAL)
        return;
    if (strncmp(e->line, "OK released=1", strlen("OK released=1")) != 0) {
        violation(e, "expected OK released=1 for its live hold");
        return;
    }
    m->holds[o->arg].state = HOLD_ENDED;
    c->live_hold = MODEL_NONE;
}

static void
on_unredeem(struct expect *e)
{
    struct model *m = e->m;
    const struct op *o = &m->ops[e->op];
    struct coupon *c = &m->coupons[o->target];
    struct redemption *r = &m->redemptions[o->arg];
    bool internal;
    if (!expect_ok(e, c->uses - 1, &internal))
        return;
    c->uses--;
    c->undone++;
    r->undone = true;
    c->last_use = r->prev;
}

void
checkout_reply(struct model *m, uint32_t op, const char *line)
{
    struct expect e = {.m = m, .op = op, .line = line, .len = strlen(line)};
    const struct op *o = &m->ops[op];
    model_code(m, o->target, e.code);
    m->coupons[o->target].busy = false;
    switch ((enum op_kind)o->kind) {
    case OP_REDEEM:
        on_redeem(&e);
        break;
    case OP_HOLD:
        on_hold(&e);
        break;
    case OP_RELEASE:
        on_release(&e);
        break;
    case OP_UNREDEEM:
        on_unredeem(&e);
        break;
    default:
        fail_msg("crash: op %u is no checkout op", (unsigned)op);
    }
}
