/* upload.c - UPLOAD batches: per-record parsing as lines arrive, one atomic store operation, and
 * REJECT lines in line order merged from the parser's and the store's verdicts. */
#include "upload.h"

#include <stdlib.h>
#include <string.h>

#include "coupon.h"
#include "rid.h"

/* A record the parser refused. */
struct bad_line {
    uint32_t lineno; /* 1-based within the batch */
    const char *why; /* static text from protocol/ */
};

struct upload {
    uint64_t expected, received;
    struct store_coupon *recs; /* records that parsed */
    uint32_t *lineno;          /* the batch line of each of recs */
    size_t nrecs, cap;
    struct bad_line bad[PROTO_REJECT_SHOWN]; /* the first parser rejects */
    size_t nbad;                             /* all parser rejects */
    struct store_reject srej[PROTO_REJECT_SHOWN];
};

struct upload *
upload_new(uint64_t count)
{
    struct upload *u = calloc(1, sizeof *u);

    if (u != NULL)
        u->expected = count;
    return u;
}

void
upload_free(struct upload *u)
{
    if (u == NULL)
        return;
    free(u->recs);
    free(u->lineno);
    free(u);
}

static void
reject_line(struct upload *u, uint32_t lineno, const char *why)
{
    if (u->nbad < PROTO_REJECT_SHOWN)
        u->bad[u->nbad] = (struct bad_line){lineno, why};
    u->nbad++;
}

static bool
grow(struct upload *u)
{
    size_t cap = u->cap ? u->cap * 2 : UPLOAD_INITIAL_RECORDS;

    if (cap > u->expected)
        cap = (size_t)u->expected;
    struct store_coupon *recs = realloc(u->recs, cap * sizeof *recs);
    if (recs == NULL)
        return false;
    u->recs = recs;
    uint32_t *lineno = realloc(u->lineno, cap * sizeof *lineno);
    if (lineno == NULL)
        return false;
    u->lineno = lineno;
    u->cap = cap;
    return true;
}

bool
upload_line(struct upload *u, const char *line, size_t len)
{
    uint32_t lineno = (uint32_t)++u->received;
    struct proto_coupon pc;
    const char *why = NULL;

    if (line == NULL)
        reject_line(u, lineno, "record longer than 4096 bytes");
    else if (!proto_parse_record(line, len, &pc, &why))
        reject_line(u, lineno, why);
    else if (u->nrecs == u->cap && !grow(u))
        reject_line(u, lineno, "server out of memory");
    else {
        coupon_from_proto(&pc, &u->recs[u->nrecs]);
        u->lineno[u->nrecs++] = lineno;
    }
    return u->received == u->expected;
}

bool
upload_has_records(const struct upload *u)
{
    return u->nrecs > 0;
}

void
upload_op(struct upload *u, int64_t now, struct store_op *op)
{
    memset(&op->in, 0, sizeof op->in);
    op->kind = STORE_OP_UPLOAD;
    op->now = now;
    op->in.recs = u->recs;
    op->in.n = u->nrecs;
    /* With parser rejects nothing is stored, but the store still names its own rejects. */
    op->in.check_only = u->nbad > 0;
    op->in.rejects = u->srej;
    op->in.rej_cap = PROTO_REJECT_SHOWN;
}

void
upload_fingerprint(const struct upload *u, struct rid_fp *h)
{
    for (size_t i = 0; i < u->nrecs; i++)
        rid_fp_record(h, &u->recs[i]);
}

static void
reject_store(const struct upload *u, struct proto_out *o, const struct store_reject *r)
{
    const char *code = u->recs[r->index].code;

    proto_out_begin(o, "REJECT");
    proto_out_u64(o, u->lineno[r->index]);
    switch (r->reason) {
    case STORE_REJECT_EXISTS:
        proto_out_word(o, "code");
        proto_out_word(o, code);
        proto_out_text(o, "already exists");
        break;
    case STORE_REJECT_DUPLICATE:
        proto_out_word(o, "code");
        proto_out_word(o, code);
        proto_out_word(o, "repeats");
        proto_out_word(o, "line");
        proto_out_u64(o, u->lineno[r->first]);
        break;
    default:
        proto_out_text(o, "record out of range");
    }
    proto_out_end(o);
}

/* Writes the first PROTO_REJECT_SHOWN rejects of both kinds, merged in line order. */
static void
reject_lines(const struct upload *u, struct proto_out *o, size_t nsrej)
{
    size_t nbad = u->nbad < PROTO_REJECT_SHOWN ? u->nbad : PROTO_REJECT_SHOWN;
    size_t i = 0, j = 0;

    for (size_t shown = 0; shown < PROTO_REJECT_SHOWN && (i < nbad || j < nsrej); shown++) {
        bool take_bad = j == nsrej || (i < nbad && u->bad[i].lineno < u->lineno[u->srej[j].index]);
        if (take_bad) {
            proto_out_begin(o, "REJECT");
            proto_out_u64(o, u->bad[i].lineno);
            proto_out_text(o, u->bad[i].why);
            proto_out_end(o);
            i++;
        } else {
            reject_store(u, o, &u->srej[j++]);
        }
    }
}

/* Records stored that had expired already when they arrived. */
static uint64_t
expired_on_arrival(const struct upload *u, int64_t now)
{
    uint64_t n = 0;

    for (size_t i = 0; i < u->nrecs; i++)
        n += u->recs[i].expires < now;
    return n;
}

/* The store's verdict on the batch; a batch with no parsed record never reached it. */
static enum store_err
store_verdict(const struct upload *u, const struct store_op *op)
{
    return u->nrecs > 0 ? op->err : STORE_OK;
}

enum proto_err
upload_result(const struct upload *u, const struct store_op *op, uint64_t *stored)
{
    enum store_err e = store_verdict(u, op);

    *stored = 0;
    if (e == STORE_OK && u->nbad == 0) {
        *stored = u->nrecs;
        return PROTO_OK;
    }
    if (e == STORE_ID_CONFLICT)
        return PROTO_ERR_ID_CONFLICT;
    return e != STORE_OK && e != STORE_REJECTED ? PROTO_ERR_INTERNAL : PROTO_ERR_BAD_BATCH;
}

void
upload_reply(const struct upload *u, const struct store_op *op, struct proto_out *o)
{
    uint64_t stored;

    switch (upload_result(u, op, &stored)) {
    case PROTO_OK: {
        bool replayed = op->out.replayed;
        uint64_t expired =
            expired_on_arrival(u, replayed && op->out.done_at != 0 ? op->out.done_at : op->now);
        proto_out_begin(o, "OK");
        proto_out_field_u64(o, "uploaded", u->nrecs);
        if (expired > 0)
            proto_out_field_u64(o, "expired", expired);
        if (replayed)
            proto_out_field(o, "replayed", "1");
        proto_out_end(o);
        return;
    }
    case PROTO_ERR_ID_CONFLICT:
        proto_out_error(o, PROTO_ERR_ID_CONFLICT,
                        "request id used for another request, nothing stored");
        return;
    case PROTO_ERR_INTERNAL:
        proto_out_error(o, PROTO_ERR_INTERNAL, "%s, nothing stored",
                        store_strerror(store_verdict(u, op)));
        return;
    default:
        break;
    }
    size_t nsrej = u->nrecs > 0 ? op->out.n_rejected : 0;
    reject_lines(u, o, nsrej < PROTO_REJECT_SHOWN ? nsrej : PROTO_REJECT_SHOWN);
    proto_out_error(o, PROTO_ERR_BAD_BATCH, "%zu of %llu records rejected, nothing stored",
                    u->nbad + nsrej, (unsigned long long)u->expected);
}
