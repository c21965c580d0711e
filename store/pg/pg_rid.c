/* pg_rid.c - request ids: lookup results, replays, and what is stored (see pg_rid.h). */
#include "rules.h"
#include "pg_rid.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "pg_val.h"

/* A coupon as the rids table keeps it: its numbers, its code, then its user (the rest of the
 * text: a user may hold spaces). */
#define COUPON_TEXT_MAX (12 * PG_VAL_NUM_LEN + STORE_CODE_MAX + STORE_USER_MAX)

/* FNV-1a 64, the hash of the lock keys: simple and well spread. */
#define FNV_OFFSET UINT64_C(14695981039346656037)
#define FNV_PRIME  UINT64_C(1099511628211)

bool
pg_rid_kept(const struct store_op *op)
{
    if (!rules_rid_carried(op))
        return false;
    if (op->kind == STORE_OP_UPLOAD)
        return !op->in.check_only && op->in.n > 0;
    return op->kind != STORE_OP_GENERATE || op->in.want > 0;
}

bool
pg_rid_valid(const struct store_op *op)
{
    const struct store_rid *rid = &op->in.rid;

    return strnlen(rid->id, STORE_RID_MAX + 1) <= STORE_RID_MAX &&
           strnlen(rid->scope, STORE_SCOPE_MAX + 1) <= STORE_SCOPE_MAX && pg_val_text_ok(rid->id) &&
           pg_val_text_ok(rid->scope);
}

static uint64_t
fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * FNV_PRIME;
    return h;
}

int64_t
pg_rid_key(const struct store_rid *rid)
{
    uint64_t h = fnv(FNV_OFFSET, rid->scope, strlen(rid->scope) + 1);

    h = fnv(h, rid->id, strlen(rid->id));
    return (int64_t)(h & INT64_MAX); /* positive: apart from coupond's own keys' high bytes */
}

bool
pg_rid_same(const struct store_rid *a, const struct store_rid *b)
{
    return strcmp(a->scope, b->scope) == 0 && strcmp(a->id, b->id) == 0;
}

bool
pg_rid_row_is(const PGresult *r, int row, const struct store_op *op)
{
    return strcmp(PQgetvalue(r, row, PG_RID_SCOPE), op->in.rid.scope) == 0 &&
           strcmp(PQgetvalue(r, row, PG_RID_ID), op->in.rid.id) == 0;
}

static void
fp_hex(const uint8_t *fp, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (int i = 0; i < STORE_FP_BYTES; i++) {
        out[2 * i] = hex[fp[i] >> 4];
        out[2 * i + 1] = hex[fp[i] & 15];
    }
    out[2 * STORE_FP_BYTES] = '\0';
}

/* --- the coupon as text --- */

static void
coupon_encode(const struct store_coupon *c, char *out, size_t len)
{
    snprintf(out, len,
             "%u %u %" PRId64 " %" PRId64 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu64
             " %" PRId64 " %s %s",
             (unsigned)c->type, (unsigned)c->kind, c->discount, c->expires, c->uses, c->max_uses,
             c->held, c->seq, c->assigned_at, c->code, c->user);
}

/* The next space-separated number of *p. */
static int64_t
number(const char **p)
{
    char *end;
    int64_t v = strtoll(*p, &end, 10);

    *p = *end == ' ' ? end + 1 : end;
    return v;
}

static void
coupon_decode(const char *s, struct store_coupon *c)
{
    const char *p = s, *sp;

    memset(c, 0, sizeof *c);
    if (*s == '\0')
        return;
    c->type = (uint8_t)number(&p);
    c->kind = (uint8_t)number(&p);
    c->discount = number(&p);
    c->expires = number(&p);
    c->uses = (uint32_t)number(&p);
    c->max_uses = (uint32_t)number(&p);
    c->held = (uint32_t)number(&p);
    c->seq = (uint64_t)number(&p);
    c->assigned_at = number(&p);
    sp = strchr(p, ' ');
    if (sp == NULL)
        sp = p + strlen(p);
    snprintf(c->code, sizeof c->code, "%.*s", (int)(sp - p), p);
    snprintf(c->user, sizeof c->user, "%s", *sp == ' ' ? sp + 1 : "");
}

/* --- a GENERATE's codes --- */

/* A GENERATE's codes, `count` of them in text `s` (separated by spaces), into in.codes; false
 * when there is no room for them. Other kinds have none. */
static bool
codes_decode(const char *s, uint64_t count, struct store_op *op)
{
    const char *p = s;

    if (op->out.rid_kind != STORE_OP_GENERATE || count == 0)
        return true;
    if (op->in.codes == NULL || op->in.want < count)
        return false;
    for (uint64_t i = 0; i < count; i++) {
        size_t n = strcspn(p, " ");

        snprintf(op->in.codes[i], sizeof op->in.codes[i], "%.*s",
                 (int)(n < STORE_CODE_MAX ? n : STORE_CODE_MAX), p);
        p += n + (p[n] == ' ');
    }
    return true;
}

/* The codes `first` stored into op's in.codes; false when there is no room for them. */
static bool
codes_copy(const struct store_op *first, struct store_op *op)
{
    if (first->kind != STORE_OP_GENERATE || first->out.count == 0)
        return true;
    if (op->in.codes == NULL || op->in.want < first->out.count)
        return false;
    for (size_t i = 0; i < first->out.count; i++)
        memcpy(op->in.codes[i], first->in.recs[first->in.chosen[i]].code, STORE_CODE_MAX + 1);
    return true;
}

/* --- outcomes --- */

/* True when row `row` of r was stored for op's fingerprint (and, for a write, its kind). */
static bool
row_matches(const struct store_op *op, const PGresult *r, int row)
{
    char hex[2 * STORE_FP_BYTES + 1];

    fp_hex(op->in.rid.fp, hex);
    return strcmp(hex, PQgetvalue(r, row, PG_RID_FP)) == 0 &&
           (op->kind == STORE_OP_RID_GET || pg_val_i64(r, row, PG_RID_KIND) == (int64_t)op->kind);
}

static void
conflict(struct store_op *op)
{
    store_op_fail(op, STORE_ID_CONFLICT, "request id %s was used for another request",
                  op->in.rid.id);
}

/* The stored outcome of row `row` into op's outputs. */
static void
outcome(struct store_op *op, const PGresult *r, int row)
{
    coupon_decode(PQgetvalue(r, row, PG_RID_COUPON), &op->out.coupon);
    op->out.rid_kind = (enum store_op_kind)pg_val_i64(r, row, PG_RID_KIND);
    op->out.done_at = pg_val_i64(r, row, PG_RID_DONE_AT);
    op->out.hold.seq = pg_val_u64(r, row, PG_RID_HOLD_SEQ);
    op->out.hold.expires = pg_val_i64(r, row, PG_RID_HOLD_EXPIRES);
    op->out.redemption = pg_val_u64(r, row, PG_RID_REDEMPTION);
    op->out.task_seq = pg_val_u64(r, row, PG_RID_TASK_SEQ);
    op->out.task_stamp = pg_val_i64(r, row, PG_RID_TASK_STAMP);
    op->out.count = pg_val_u64(r, row, PG_RID_COUNT);
    op->out.replayed = true;
}

void
pg_rid_apply(struct store_op *op, const PGresult *r, int row)
{
    op->err = STORE_OK;
    memset(&op->out, 0, sizeof op->out);
    if (!row_matches(op, r, row)) {
        conflict(op);
        return;
    }
    outcome(op, r, row);
    if (!codes_decode(PQgetvalue(r, row, PG_RID_CODES), op->out.count, op)) {
        memset(&op->out, 0, sizeof op->out);
        store_op_fail(op, STORE_IO, "request id %s: no room for the codes to replay",
                      op->in.rid.id);
    }
}

void
pg_rid_copy(struct store_op *op, const struct store_op *first)
{
    bool get = op->kind == STORE_OP_RID_GET;

    if (first->err != STORE_OK) {
        op->err = first->err;
        snprintf(op->out.msg, sizeof op->out.msg, "%s", first->out.msg);
        return;
    }
    op->err = STORE_OK;
    memset(&op->out, 0, sizeof op->out);
    if ((!get && first->kind != op->kind) ||
        memcmp(first->in.rid.fp, op->in.rid.fp, STORE_FP_BYTES) != 0) {
        conflict(op);
        return;
    }
    if (!codes_copy(first, op) && !get) { /* RID_GET: the codes only where there is room */
        store_op_fail(op, STORE_IO, "request id %s: no room for the codes to replay",
                      op->in.rid.id);
        return;
    }
    op->out = first->out;
    op->out.replayed = true;
    op->out.done_at = first->now;
    op->out.rid_kind = first->kind;
    if (first->kind == STORE_OP_ASSIGN) {
        op->out.task_seq = first->in.task_seq;
        op->out.task_stamp = first->in.task_stamp;
    }
}

void
pg_rid_get_result(struct store_op *op, const PGresult *r)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) < PG_RID_NCOLS) {
        pg_val_fail(op, "request id", r);
        return;
    }
    if (PQntuples(r) == 0) {
        store_op_fail(op, STORE_INVALID, "request id %s is not stored", op->in.rid.id);
        return;
    }
    if (!row_matches(op, r, 0)) {
        conflict(op);
        return;
    }
    outcome(op, r, 0);
    (void)codes_decode(PQgetvalue(r, 0, PG_RID_CODES), op->out.count, op); /* where there is room */
}

/* --- storing --- */

/* A GENERATE's codes as one text element, separated by spaces (codes hold none); "" for other
 * kinds. */
static void
codes_put(struct pg_arr *a, const struct store_op *op)
{
    struct pg_buf b = {0};

    for (size_t i = 0; op->kind == STORE_OP_GENERATE && i < op->out.count; i++) {
        if (i > 0)
            pg_buf_put(&b, " ", 1);
        pg_buf_put(&b, op->in.recs[op->in.chosen[i]].code,
                   strlen(op->in.recs[op->in.chosen[i]].code));
    }
    if (b.oom) {
        a->b.oom = true; /* the parameters fail as a whole */
        pg_buf_free(&b);
        return;
    }
    pg_arr_text(a, b.len > 0 ? b.p : "");
    pg_buf_free(&b);
}

void
pg_rid_put_add(struct pg_rid_put *p, const struct store_op *op)
{
    char coupon[COUPON_TEXT_MAX];
    bool assign = op->kind == STORE_OP_ASSIGN;

    coupon_encode(&op->out.coupon, coupon, sizeof coupon);
    pg_arr_text(&p->a[0], op->in.rid.scope);
    pg_arr_text(&p->a[1], op->in.rid.id);
    pg_arr_bytea(&p->a[2], op->in.rid.fp, STORE_FP_BYTES);
    pg_arr_i64(&p->a[3], op->kind);
    pg_arr_i64(&p->a[4], op->now);
    pg_arr_text(&p->a[5], op->out.coupon.code);
    pg_arr_i64(&p->a[6], (int64_t)op->out.hold.seq);
    pg_arr_i64(&p->a[7], op->out.hold.expires);
    pg_arr_i64(&p->a[8], (int64_t)op->out.redemption);
    pg_arr_i64(&p->a[9], assign ? (int64_t)op->in.task_seq : 0);
    pg_arr_i64(&p->a[10], assign ? op->in.task_stamp : 0);
    pg_arr_i64(&p->a[11], (int64_t)op->out.count);
    pg_arr_text(&p->a[12], op->out.coupon.code[0] != '\0' ? coupon : "");
    codes_put(&p->a[13], op);
    p->n++;
}

bool
pg_rid_put_params(struct pg_rid_put *p, const char *v[PG_RID_PUT_COLS])
{
    for (int i = 0; i < PG_RID_PUT_COLS; i++)
        if ((v[i] = pg_arr_text_of(&p->a[i])) == NULL)
            return false;
    return true;
}

void
pg_rid_put_free(struct pg_rid_put *p)
{
    for (int i = 0; i < PG_RID_PUT_COLS; i++)
        pg_arr_free(&p->a[i]);
    p->n = 0;
}
