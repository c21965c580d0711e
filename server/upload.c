/* upload.c - UPLOAD batches: per-record parsing as lines arrive, one atomic store_upload, and
 * REJECT lines in line order merged from the parser's and the store's verdicts. */
#include "upload.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "coupon.h"
#include "store.h"

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
};

struct upload *
upload_new(uint64_t count)
{
    struct upload *u = calloc(1, sizeof *u);
    if (u)
        u->expected = count;
    return u;
}

void
upload_free(struct upload *u)
{
    if (!u)
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
    if (!recs)
        return false;
    u->recs = recs;
    uint32_t *lineno = realloc(u->lineno, cap * sizeof *lineno);
    if (!lineno)
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
    if (!line)
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

static void
write_store_reject(struct upload *u, struct conn *c, const struct store_reject *r)
{
    const char *code = u->recs[r->index].code;
    uint32_t lineno = u->lineno[r->index];
    switch (r->reason) {
    case STORE_REJECT_EXISTS:
        conn_printf(c, "REJECT %u code %s already exists\n", lineno, code);
        break;
    case STORE_REJECT_DUPLICATE:
        conn_printf(c, "REJECT %u code %s repeats line %u\n", lineno, code, u->lineno[r->first]);
        break;
    default:
        conn_printf(c, "REJECT %u record out of range\n", lineno);
    }
}

/* Writes the first PROTO_REJECT_SHOWN rejects of both kinds, merged in line order. */
static void
write_rejects(struct upload *u, struct conn *c, const struct store_reject *srej, size_t nsrej)
{
    size_t nbad = u->nbad < PROTO_REJECT_SHOWN ? u->nbad : PROTO_REJECT_SHOWN;
    size_t i = 0, j = 0;
    for (size_t shown = 0; shown < PROTO_REJECT_SHOWN && (i < nbad || j < nsrej); shown++) {
        bool take_bad = j == nsrej || (i < nbad && u->bad[i].lineno < u->lineno[srej[j].index]);
        if (take_bad) {
            conn_printf(c, "REJECT %u %s\n", u->bad[i].lineno, u->bad[i].why);
            i++;
        } else {
            write_store_reject(u, c, &srej[j++]);
        }
    }
}

enum proto_err
upload_finish(struct upload *u, struct store *st, struct conn *c, uint64_t *stored)
{
    struct store_reject srej[PROTO_REJECT_SHOWN];
    size_t nsrej = 0;
    bool check_only = u->nbad > 0;
    *stored = 0;
    enum store_err e = STORE_OK;
    if (u->nrecs > 0)
        e = store_upload(st, u->recs, u->nrecs, check_only, srej, PROTO_REJECT_SHOWN, &nsrej);
    if (e == STORE_OK && !check_only) {
        *stored = u->nrecs;
        conn_printf(c, "OK uploaded=%zu\n", u->nrecs);
        return PROTO_OK;
    }
    if (e != STORE_OK && e != STORE_REJECTED) {
        conn_error(c, PROTO_ERR_INTERNAL, "%s, nothing stored", store_strerror(e));
        return PROTO_ERR_INTERNAL;
    }
    write_rejects(u, c, srej, nsrej < PROTO_REJECT_SHOWN ? nsrej : PROTO_REJECT_SHOWN);
    conn_error(c, PROTO_ERR_BAD_BATCH, "%zu of %llu records rejected, nothing stored",
               u->nbad + nsrej, (unsigned long long)u->expected);
    return PROTO_ERR_BAD_BATCH;
}
