/* rows.c - the data lines of long replies (see rows.h). */
#include "rows.h"

#include "auditline.h"
#include "coupon.h"

void
rows_of_coupons(struct rows *r, enum rows_kind kind, const struct store_coupon *coupons,
                const size_t *index, size_t n)
{
    *r = (struct rows){.kind = kind, .coupons = coupons, .index = index, .n = n};
}

void
rows_of_codes(struct rows *r, const char (*codes)[STORE_CODE_MAX + 1], size_t n)
{
    *r = (struct rows){.kind = ROWS_CODES, .codes = codes, .n = n};
}

void
rows_of_redemptions(struct rows *r, enum rows_kind kind, const struct store_redemption *reds,
                    size_t n)
{
    *r = (struct rows){.kind = kind, .reds = reds, .n = n};
}

void
rows_of_audit(struct rows *r, const struct store_audit_row *audit, size_t n)
{
    *r = (struct rows){.kind = ROWS_AUDIT, .audit = audit, .n = n};
}

bool
rows_left(const struct rows *r)
{
    return r->next < r->n;
}

/* "COUPON <coupon>", the line's start for the coupon kinds. */
static void
coupon_start(struct proto_out *o, const struct store_coupon *c)
{
    struct proto_coupon pc;

    coupon_to_proto(c, &pc);
    proto_out_begin(o, "COUPON");
    proto_out_coupon(o, &pc);
}

void
rows_coupon_line(struct proto_out *o, const struct store_coupon *c)
{
    coupon_start(o, c);
    /* A user name is printable ASCII without spaces, so it is a word; "-" is none. */
    if (c->user[0] != '\0') {
        proto_out_field(o, "user", c->user);
        proto_out_field_time(o, "assigned", c->assigned_at);
    } else {
        proto_out_field(o, "user", "-");
        proto_out_field(o, "assigned", "-");
    }
    proto_out_end(o);
}

static void
redemption_line(struct proto_out *o, const struct store_redemption *d, bool full)
{
    proto_out_begin(o, "REDEMPTION");
    proto_out_field_u64(o, "seq", d->seq);
    proto_out_field_time(o, "time", d->time);
    if (full) {
        proto_out_field(o, "code", d->code);
        proto_out_field(o, "type", proto_type_name((enum proto_type)d->type));
    }
    proto_out_field(o, "user", d->user);
    if (d->undone != 0)
        proto_out_field_time(o, "undone", d->undone);
    proto_out_end(o);
}

static void
write_one(const struct rows *r, size_t i, struct proto_out *o)
{
    const struct store_coupon *c = NULL;

    if (r->kind == ROWS_ASSIGNED || r->kind == ROWS_COUPONS)
        c = &r->coupons[r->index != NULL ? r->index[i] : i];
    switch (r->kind) {
    case ROWS_CODES:
        proto_out_begin(o, "CODE");
        proto_out_word(o, r->codes[i]);
        proto_out_end(o);
        return;
    case ROWS_ASSIGNED:
        coupon_start(o, c);
        proto_out_field_time(o, "assigned", c->assigned_at);
        proto_out_end(o);
        return;
    case ROWS_COUPONS:
        rows_coupon_line(o, c);
        return;
    case ROWS_USES:
    case ROWS_HISTORY:
        redemption_line(o, &r->reds[i], r->kind == ROWS_HISTORY);
        return;
    case ROWS_AUDIT:
        auditline_write(o, &r->audit[i]);
        return;
    }
}

size_t
rows_write(struct rows *r, struct proto_out *o, uint64_t room)
{
    uint64_t start = o->sent;
    size_t wrote = 0;

    while (r->next < r->n && (wrote == 0 || o->sent - start < room)) {
        write_one(r, r->next++, o);
        wrote++;
    }
    return wrote;
}
