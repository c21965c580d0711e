/* workload.h - what coupond-bench's flows send and how each reply is judged, per workload:
 * PING, REQUEST, VALIDATE, REDEEM, the checkout flow, UPLOAD batches and the MEGADEAL burst. */
#ifndef COUPOND_BENCH_WORKLOAD_H
#define COUPOND_BENCH_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "proto.h"

#define WORKLOAD_PREFIX_MAX 24 /* characters of a user or code prefix */
/* Every coupon the bench uploads gives 10% off: the value plays no part in any workload. */
#define WORKLOAD_DISCOUNT_CENTS 1000

enum workload_kind {
    WORKLOAD_PING = 0, /* PING: the loop's own limit */
    WORKLOAD_REQUEST,  /* REQUEST user TYPE, a new user per flow */
    WORKLOAD_ASSIGN,   /* REQUEST as above, keeping the codes for VALIDATE/REDEEM */
    WORKLOAD_VALIDATE, /* VALIDATE user code over the assigned coupons, round robin */
    WORKLOAD_REDEEM,   /* REDEEM user code, likewise */
    WORKLOAD_CHECKOUT, /* REQUEST, then VALIDATE, then REDEEM of that coupon */
    WORKLOAD_UPLOAD,   /* UPLOAD of a batch of records per flow */
    WORKLOAD_MEGADEAL, /* REQUEST user MEGADEAL, then WAIT task until granted */
    WORKLOAD_COUPONS,  /* COUPONS user over the assigned coupons' users, round robin */
    WORKLOAD_HOLD      /* HOLD user code 60 over the assigned coupons, then RELEASE the hold */
};

/* The records an UPLOAD flow sends: flow i uploads records [i * batch, (i + 1) * batch) of
 * `total`, coded `prefix` + a 10-digit number counted from `first`. */
struct workload_upload {
    char prefix[WORKLOAD_PREFIX_MAX + 1];
    enum proto_type type;
    int64_t expires;
    uint32_t max_uses;
    uint64_t first;
    uint64_t total;
    unsigned batch;
};

/* Everything a workload reads; set by the caller before the run, except `codes`, which the
 * ASSIGN workload fills. */
struct workload_ctx {
    enum workload_kind kind;
    char user_prefix[WORKLOAD_PREFIX_MAX + 1]; /* users are this + a letter + the flow id */
    char code_prefix[WORKLOAD_PREFIX_MAX + 1]; /* a REQUEST must return a code starting so */
    enum proto_type type;                      /* REQUEST / CHECKOUT type */
    bool ids; /* REQUEST carries a request id, id= the user's name (--ids) */
    /* ASSIGN writes the code of flow i into codes[i]; VALIDATE and REDEEM use coupon
     * i % n_codes for flow i, held by the user ASSIGN gave it. The caller owns the array. */
    char (*codes)[PROTO_CODE_MAX + 1];
    uint64_t n_codes;
    struct workload_upload upload;
};

/* Fills *w with the functions of ctx->kind and ctx; w is valid while ctx is. */
void workload_bind(struct workload_ctx *ctx, struct engine_workload *w);

/* Upload flows needed for u's records. */
uint64_t workload_upload_batches(const struct workload_upload *u);

/* Marks in *mask (1, else 0) the counters that the OK replies of a `kind` run move, for a run
 * whose coupons are of `type` (what REQUEST asks for, REDEEM uses, UPLOAD stores); what the
 * bench loads before the run is not included. A run beside another one leaves these to that
 * run's own VERIFY. */
void workload_changes(enum workload_kind kind, enum proto_type type, struct engine_tally *mask);

/* The workload's name, lower case ("request"), and the inverse; false for an unknown name. */
const char *workload_name(enum workload_kind k);
bool workload_from_name(const char *name, enum workload_kind *out);

#endif
