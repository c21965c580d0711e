/* csvout.h - couponctl's CSV output: the data lines of an EXPORT COUPONS, EXPORT HISTORY or
 * GENERATE reply turned into CSV rows on a stream as they arrive, one line at a time, so that
 * an export of any size needs no more memory than a line. Coupons and generated codes are
 * written in the upload format (csvload.h reads them back); redemptions in a format of their
 * own. No sockets: the caller hands it the reply's lines. */
#ifndef COUPONCTL_CSVOUT_H
#define COUPONCTL_CSVOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto.h"

#define CSVOUT_ERROR_MAX 320 /* bytes of a failure message, NUL included */

enum csvout_kind {
    CSVOUT_COUPONS = 0, /* EXPORT COUPONS: "COUPON" lines */
    CSVOUT_HISTORY,     /* EXPORT HISTORY: "REDEMPTION" lines */
    CSVOUT_CODES        /* GENERATE: "CODE" lines */
};

struct csvout {
    enum csvout_kind kind;
    FILE *out;
    struct proto_coupon gen; /* CODES: the fields every generated code gets */
    uint64_t rows;           /* data rows written */
    uint64_t assigned;       /* COUPONS: rows of assigned coupons */
    uint64_t used;           /* COUPONS: rows of coupons with uses */
    uint64_t undone;         /* HISTORY: rows of undone redemptions */
    bool replayed;           /* the OK line said replayed=1 (GENERATE) */
    char error[CSVOUT_ERROR_MAX];
};

/* Sets up a writer of `kind` on `out`; `gen` (CODES only, else NULL) holds the fields of the
 * generated coupons, its code unused. Writes nothing yet. */
void csvout_init(struct csvout *w, enum csvout_kind kind, FILE *out,
                 const struct proto_coupon *gen);

/* Writes the header row: "code,type,discount,kind,expires,max_uses" (COUPONS, CODES; the
 * upload format's column names, which csvload takes for a header) or
 * "seq,time,code,type,user,undone" (HISTORY). False with w->error when the write failed. */
bool csvout_header(struct csvout *w);

/* One data line of the reply (without LF). Rows:
 *   COUPONS  "COUPON code=C type=T discount=D kind=K expires=E uses=U max_uses=M user=U
 *            assigned=A": the upload record of C (proto_fmt_record()). Its uses, user and
 *            assignment have no column in the upload format and are left out; they are counted
 *            in `used` and `assigned`.
 *   HISTORY  "REDEMPTION seq=S time=T code=C type=T user=U [undone=X]": S,T,C,T,U,X with the
 *            untyped kind's type empty (as in upload files), X empty when not undone, and U in
 *            double quotes, its quotes doubled, when it holds a comma or a quote.
 *   CODES    "CODE C": the upload record of C with the fields of `gen`.
 * Returns false, writing nothing, with w->error naming the line when it is not of the form
 * expected; false with w->error when the write failed. */
bool csvout_line(struct csvout *w, const char *line, size_t len);

/* The OK line that ends the reply: its count (count=N for EXPORT, generated=n for GENERATE)
 * must equal the rows written. Sets w->replayed from replayed=1. False with w->error when the
 * count is missing or differs. */
bool csvout_end(struct csvout *w, const char *line, size_t len);

#endif
