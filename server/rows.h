/* rows.h - the data lines of the long replies (COUPONS, COUPON, EXPORT, GENERATE's codes): a
 * block of stored rows written a few at a time, so that a reply of a million lines goes out in
 * parts while the connection drains (cmd.h, streaming replies). Only proto_out_* calls. */
#ifndef COUPOND_ROWS_H
#define COUPOND_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reply.h"
#include "store.h"

enum rows_kind {
    ROWS_CODES,    /* GENERATE: "CODE C", from a block of codes */
    ROWS_ASSIGNED, /* COUPONS user: "COUPON <coupon> assigned=T" */
    ROWS_COUPONS,  /* EXPORT COUPONS: "COUPON <coupon> user=U assigned=T" ("-" unassigned) */
    ROWS_USES,     /* COUPON code: "REDEMPTION seq=S time=T user=U [undone=T]" */
    ROWS_HISTORY,  /* EXPORT HISTORY: "REDEMPTION seq=S time=T code=C type=T user=U [undone=T]" */
    ROWS_AUDIT     /* EXPORT AUDIT: "AUDIT seq=N ..." (auditline.h) */
};

/* A block of rows and how far it is written. The arrays are the caller's and must stay valid
 * and unchanged while rows are left. */
struct rows {
    enum rows_kind kind;
    const struct store_coupon *coupons;      /* CODES, ASSIGNED, COUPONS */
    const size_t *index;                     /* row i is coupons[index[i]]; NULL: coupons[i] */
    const struct store_redemption *reds;     /* USES, HISTORY */
    const char (*codes)[STORE_CODE_MAX + 1]; /* CODES */
    const struct store_audit_row *audit;     /* AUDIT */
    size_t n, next;
};

/* A block of n codes (CODES). */
void rows_of_codes(struct rows *r, const char (*codes)[STORE_CODE_MAX + 1], size_t n);

/* A block of n coupon rows (ASSIGNED, COUPONS); `index` may be NULL. */
void rows_of_coupons(struct rows *r, enum rows_kind kind, const struct store_coupon *coupons,
                     const size_t *index, size_t n);

/* A block of n redemption rows (USES, HISTORY). */
void rows_of_redemptions(struct rows *r, enum rows_kind kind, const struct store_redemption *reds,
                         size_t n);

/* A block of n audit records (AUDIT). */
void rows_of_audit(struct rows *r, const struct store_audit_row *audit, size_t n);

/* True while rows of the block are not written yet. */
bool rows_left(const struct rows *r);

/* Writes the next rows: at least one (when any is left), and more while fewer than `room`
 * bytes went to the writer. Returns how many it wrote. */
size_t rows_write(struct rows *r, struct proto_out *o, uint64_t room);

/* Writes one "COUPON <coupon> user=U assigned=T" line (COUPON code's first line). */
void rows_coupon_line(struct proto_out *o, const struct store_coupon *c);

#endif
