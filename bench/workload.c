/* workload.c - the commands of each coupond-bench workload and the checks of their replies. */
#include "workload.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Steps of the multi-command flows. */
enum { STEP_FIRST = 0, STEP_VALIDATE = 1, STEP_REDEEM = 2, STEP_WAIT = 1, STEP_RELEASE = 1 };

/* Record number width in codes: 10 digits hold any store this bench can load. */
#define CODE_DIGITS 10

static const char *const names[] = {
    [WORKLOAD_PING] = "ping",       [WORKLOAD_REQUEST] = "request",
    [WORKLOAD_ASSIGN] = "assign",   [WORKLOAD_VALIDATE] = "validate",
    [WORKLOAD_REDEEM] = "redeem",   [WORKLOAD_CHECKOUT] = "checkout",
    [WORKLOAD_UPLOAD] = "upload",   [WORKLOAD_MEGADEAL] = "megadeal",
    [WORKLOAD_COUPONS] = "coupons", [WORKLOAD_HOLD] = "hold",
};

const char *
workload_name(enum workload_kind k)
{
    return names[k];
}

bool
workload_from_name(const char *name, enum workload_kind *out)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (enum workload_kind)i;
            return true;
        }
    }
    return false;
}

uint64_t
workload_upload_batches(const struct workload_upload *u)
{
    return (u->total + u->batch - 1) / u->batch;
}

void
workload_changes(enum workload_kind kind, enum proto_type type, struct engine_tally *mask)
{
    memset(mask, 0, sizeof *mask);
    switch (kind) {
    case WORKLOAD_REQUEST:
    case WORKLOAD_ASSIGN:
        mask->assigned[type] = 1;
        break;
    case WORKLOAD_CHECKOUT:
        mask->assigned[type] = 1;
        mask->redeemed[type] = 1;
        break;
    case WORKLOAD_REDEEM:
        mask->redeemed[type] = 1;
        break;
    case WORKLOAD_UPLOAD:
        mask->created[type] = 1;
        break;
    case WORKLOAD_MEGADEAL:
        mask->assigned[PROTO_TYPE_MEGADEAL] = 1;
        break;
    case WORKLOAD_PING:
    case WORKLOAD_VALIDATE:
    case WORKLOAD_COUPONS:
    case WORKLOAD_HOLD: /* held goes up and back down: no counter VERIFY checks moves */
        break;
    }
}

static bool
is_ok(const char *line, size_t len)
{
    return proto_reply_kind(line, len) == PROTO_REPLY_OK;
}

static bool
field_is(const char *line, size_t len, const char *key, const char *want)
{
    const char *v;
    size_t vl;
    return proto_reply_field(line, len, key, &v, &vl) && vl == strlen(want) &&
           memcmp(v, want, vl) == 0;
}

/* An OK reply carrying a coupon of the wanted type whose code is this run's. */
static bool
own_coupon(const struct workload_ctx *x, const char *line, size_t len, enum proto_type type,
           struct proto_coupon *c)
{
    size_t pl = strlen(x->code_prefix);
    return proto_reply_coupon(line, len, c) && c->type == type &&
           strncmp(c->code, x->code_prefix, pl) == 0;
}

/* ---- PING ---- */

static bool
ping_send(void *ctx, const struct engine_flow *f, struct bconn *c)
{
    (void)ctx;
    (void)f;
    return bconn_append(c, "PING\n", 5);
}

static enum engine_next
ping_reply(void *ctx, struct engine_flow *f, const char *line, size_t len, struct engine_tally *t)
{
    (void)ctx;
    (void)f;
    (void)t;
    return len == 7 && memcmp(line, "OK PONG", 7) == 0 ? ENGINE_FLOW_OK : ENGINE_FLOW_FAIL;
}

/* ---- REQUEST and ASSIGN ---- */

static bool
request_send(void *ctx, const struct engine_flow *f, struct bconn *c)
{
    const struct workload_ctx *x = ctx;
    char tag = x->kind == WORKLOAD_ASSIGN ? 'k' : 'r';
    unsigned long long id = (unsigned long long)f->id;

    if (x->ids) /* each flow its own id: a fresh one, stored, as a retrying client sends */
        return bconn_printf(c, "REQUEST %s%c%llu %s id=%s%c%llu\n", x->user_prefix, tag, id,
                            proto_type_name(x->type), x->user_prefix, tag, id);
    return bconn_printf(c, "REQUEST %s%c%llu %s\n", x->user_prefix, tag, id,
                        proto_type_name(x->type));
}

/* Judges a REQUEST reply: the server assigned a coupon whenever it said OK, so that is
 * tallied even when the coupon is not the one expected. */
static enum engine_next
request_judge(struct workload_ctx *x, struct engine_flow *f, const char *line, size_t len,
              struct engine_tally *t)
{
    if (!is_ok(line, len))
        return ENGINE_FLOW_FAIL;
    t->assigned[x->type]++;
    struct proto_coupon c;
    if (!own_coupon(x, line, len, x->type, &c) || c.uses != 0)
        return ENGINE_FLOW_FAIL;
    memcpy(f->code, c.code, sizeof f->code);
    return ENGINE_FLOW_OK;
}

static enum engine_next
request_reply(void *ctx, struct engine_flow *f, const char *line, size_t len,
              struct engine_tally *t)
{
    struct workload_ctx *x = ctx;
    enum engine_next r = request_judge(x, f, line, len, t);
    if (r == ENGINE_FLOW_OK && x->kind == WORKLOAD_ASSIGN && f->id < x->n_codes)
        memcpy(x->codes[f->id], f->code, sizeof x->codes[0]);
    return r;
}

/* ---- VALIDATE and REDEEM of assigned coupons ---- */

static bool
use_send(void *ctx, const struct engine_flow *f, struct bconn *c)
{
    const struct workload_ctx *x = ctx;
    uint64_t k = f->id % x->n_codes;
    return bconn_printf(c, "%s %sk%llu %s\n", x->kind == WORKLOAD_REDEEM ? "REDEEM" : "VALIDATE",
                        x->user_prefix, (unsigned long long)k, x->codes[k]);
}

static enum engine_next
use_reply(void *ctx, struct engine_flow *f, const char *line, size_t len, struct engine_tally *t)
{
    const struct workload_ctx *x = ctx;
    if (!is_ok(line, len))
        return ENGINE_FLOW_FAIL;
    if (x->kind == WORKLOAD_REDEEM)
        t->redeemed[x->type]++;
    struct proto_coupon c;
    bool good = proto_reply_coupon(line, len, &c) &&
                strcmp(c.code, x->codes[f->id % x->n_codes]) == 0 &&
                (x->kind == WORKLOAD_REDEEM ? c.uses >= 1 : c.uses < c.max_uses);
    return good ? ENGINE_FLOW_OK : ENGINE_FLOW_FAIL;
}

/* ---- COUPONS and HOLD of assigned coupons ---- */

/* Seconds a bench hold lasts: it is released at once; a hold a broken run leaves expires soon. */
#define HOLD_SECONDS 60

static bool
coupons_send(void *ctx, const struct engine_flow *f, struct bconn *c)
{
    const struct workload_ctx *x = ctx;
    return bconn_printf(c, "COUPONS %sk%llu\n", x->user_prefix,
                        (unsigned long long)(f->id % x->n_codes));
}

/* COUPONS answers its COUPON lines (counted by the engine as data lines), then "OK count=N":
 * each user of this bench holds one coupon. */
static enum engine_next
coupons_reply(void *ctx, struct engine_flow *f, const char *line, size_t len,
              struct engine_tally *t)
{
    (void)ctx;
    (void)f;
    (void)t;
    return is_ok(line, len) && field_is(line, len, "count", "1") ? ENGINE_FLOW_OK
                                                                 : ENGINE_FLOW_FAIL;
}

static bool
hold_send(void *ctx, const struct engine_flow *f, struct bconn *c)
{
    const struct workload_ctx *x = ctx;
    uint64_t k = f->id % x->n_codes;
    if (f->step == STEP_FIRST)
        return bconn_printf(c, "HOLD %sk%llu %s %d\n", x->user_prefix, (unsigned long long)k,
                            x->codes[k], HOLD_SECONDS);
    return bconn_printf(c, "RELEASE %s\n", f->task);
}

/* HOLD's "OK hold=HID ...", kept for the RELEASE that follows; then RELEASE's OK. */
static enum engine_next
hold_reply(void *ctx, struct engine_flow *f, const char *line, size_t len, struct engine_tally *t)
{
    (void)ctx;
    (void)t;
    const char *hid;
    size_t hl;
    if (!is_ok(line, len))
        return ENGINE_FLOW_FAIL;
    if (f->step != STEP_FIRST)
        return ENGINE_FLOW_OK;
    if (!proto_reply_field(line, len, "hold", &hid, &hl) ||
        !proto_parse_task(hid, hl, f->task, NULL))
        return ENGINE_FLOW_FAIL;
    f->step = STEP_RELEASE;
    return ENGINE_FLOW_MORE;
}

/* ---- checkout: REQUEST, VALIDATE, REDEEM ---- */

static bool
checkout_send(void *ctx, const struct engine_flow *f, struct bconn *c)
{
    const struct workload_ctx *x = ctx;
    unsigned long long id = (unsigned long long)f->id;
    switch (f->step) {
    case STEP_FIRST:
        return bconn_printf(c, "REQUEST %sc%llu %s\n", x->user_prefix, id,
                            proto_type_name(x->type));
    case STEP_VALIDATE:
        return bconn_printf(c, "VALIDATE %sc%llu %s\n", x->user_prefix, id, f->code);
    default:
        return bconn_printf(c, "REDEEM %sc%llu %s\n", x->user_prefix, id, f->code);
    }
}

static enum engine_next
checkout_reply(void *ctx, struct engine_flow *f, const char *line, size_t len,
               struct engine_tally *t)
{
    struct workload_ctx *x = ctx;
    if (f->step == STEP_FIRST) {
        if (request_judge(x, f, line, len, t) != ENGINE_FLOW_OK)
            return ENGINE_FLOW_FAIL;
        f->step = STEP_VALIDATE;
        return ENGINE_FLOW_MORE;
    }
    if (!is_ok(line, len))
        return ENGINE_FLOW_FAIL;
    if (f->step == STEP_REDEEM)
        t->redeemed[x->type]++;
    struct proto_coupon c;
    if (!proto_reply_coupon(line, len, &c) || strcmp(c.code, f->code) != 0)
        return ENGINE_FLOW_FAIL;
    if (f->step == STEP_VALIDATE) {
        f->step = STEP_REDEEM;
        return c.uses == 0 ? ENGINE_FLOW_MORE : ENGINE_FLOW_FAIL;
    }
    return c.uses == 1 ? ENGINE_FLOW_OK : ENGINE_FLOW_FAIL;
}

/* ---- UPLOAD ---- */

static uint64_t
batch_size(const struct workload_upload *u, uint64_t flow)
{
    uint64_t from = flow * u->batch;
    if (from >= u->total)
        return 0;
    uint64_t n = u->total - from;
    return n < u->batch ? n : u->batch;
}

static bool
upload_send(void *ctx, const struct engine_flow *f, struct bconn *c)
{
    const struct workload_ctx *x = ctx;
    const struct workload_upload *u = &x->upload;
    uint64_t n = batch_size(u, f->id);
    if (!bconn_printf(c, "UPLOAD %llu\n", (unsigned long long)n))
        return false;
    struct proto_coupon cp = {.type = u->type,
                              .kind = PROTO_KIND_PERCENT,
                              .discount = WORKLOAD_DISCOUNT_CENTS,
                              .expires = u->expires,
                              .max_uses = u->max_uses};
    uint64_t base = u->first + f->id * u->batch;
    for (uint64_t i = 0; i < n; i++) {
        snprintf(cp.code, sizeof cp.code, "%s%0*llu", u->prefix, CODE_DIGITS,
                 (unsigned long long)(base + i));
        char *p = bconn_reserve(c, PROTO_RECORD_BUF + 1);
        if (!p)
            return false;
        size_t len = proto_fmt_record(p, &cp);
        p[len] = '\n';
        bconn_commit(c, len + 1);
    }
    return true;
}

static enum engine_next
upload_reply(void *ctx, struct engine_flow *f, const char *line, size_t len, struct engine_tally *t)
{
    const struct workload_ctx *x = ctx;
    if (!is_ok(line, len))
        return ENGINE_FLOW_FAIL;
    uint64_t n = batch_size(&x->upload, f->id);
    /* The batch is stored whole or not at all; OK means all of it. */
    t->created[x->upload.type] += n;
    char want[24];
    snprintf(want, sizeof want, "%llu", (unsigned long long)n);
    return field_is(line, len, "uploaded", want) ? ENGINE_FLOW_OK : ENGINE_FLOW_FAIL;
}

/* ---- MEGADEAL: REQUEST, then WAIT until granted ---- */

static bool
megadeal_send(void *ctx, const struct engine_flow *f, struct bconn *c)
{
    const struct workload_ctx *x = ctx;
    if (f->step == STEP_FIRST)
        return bconn_printf(c, "REQUEST %sm%llu MEGADEAL\n", x->user_prefix,
                            (unsigned long long)f->id);
    return bconn_printf(c, "WAIT %s\n", f->task);
}

static enum engine_next
megadeal_reply(void *ctx, struct engine_flow *f, const char *line, size_t len,
               struct engine_tally *t)
{
    const struct workload_ctx *x = ctx;
    if (!is_ok(line, len))
        return ENGINE_FLOW_FAIL;
    const char *task;
    size_t tl;
    if (!proto_reply_field(line, len, "task", &task, &tl) ||
        !proto_parse_task(task, tl, f->task, NULL))
        return ENGINE_FLOW_FAIL;
    if (field_is(line, len, "status", "queued")) {
        /* WAIT answers when the task is granted or timed out; a queued answer is only
         * expected from REQUEST, but waiting again is what a client would do. */
        f->step = STEP_WAIT;
        return ENGINE_FLOW_MORE;
    }
    if (!field_is(line, len, "status", "granted"))
        return ENGINE_FLOW_FAIL;
    t->assigned[PROTO_TYPE_MEGADEAL]++;
    struct proto_coupon c;
    return own_coupon(x, line, len, PROTO_TYPE_MEGADEAL, &c) ? ENGINE_FLOW_OK : ENGINE_FLOW_FAIL;
}

void
workload_bind(struct workload_ctx *ctx, struct engine_workload *w)
{
    static const struct engine_workload table[] = {
        [WORKLOAD_PING] = {ping_send, ping_reply, NULL},
        [WORKLOAD_REQUEST] = {request_send, request_reply, NULL},
        [WORKLOAD_ASSIGN] = {request_send, request_reply, NULL},
        [WORKLOAD_VALIDATE] = {use_send, use_reply, NULL},
        [WORKLOAD_REDEEM] = {use_send, use_reply, NULL},
        [WORKLOAD_CHECKOUT] = {checkout_send, checkout_reply, NULL},
        [WORKLOAD_UPLOAD] = {upload_send, upload_reply, NULL},
        [WORKLOAD_MEGADEAL] = {megadeal_send, megadeal_reply, NULL},
        [WORKLOAD_COUPONS] = {coupons_send, coupons_reply, NULL},
        [WORKLOAD_HOLD] = {hold_send, hold_reply, NULL},
    };
    *w = table[ctx->kind];
    w->ctx = ctx;
}
