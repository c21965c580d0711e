/* rid.c - request id fingerprints (see rid.h). */
#include "rid.h"

#include <stdio.h>
#include <string.h>

_Static_assert(STORE_FP_BYTES >= crypto_generichash_BYTES_MIN &&
                   STORE_FP_BYTES <= crypto_generichash_BYTES_MAX,
               "a fingerprint is a BLAKE2b output");

void
rid_fp_begin(struct rid_fp *h, const struct proto_request *req)
{
    char line[PROTO_REQUEST_BUF];
    size_t n = proto_fmt_request(line, req, false);

    crypto_generichash_init(&h->st, NULL, 0, STORE_FP_BYTES);
    crypto_generichash_update(&h->st, (const unsigned char *)line, n);
}

static void
put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

void
rid_fp_record(struct rid_fp *h, const struct store_coupon *c)
{
    /* A fixed binary form of the fields a record sets: a record as parsed has one. */
    unsigned char b[STORE_CODE_MAX + 1 + 2 + 8 + 8 + 8];
    size_t n = strnlen(c->code, STORE_CODE_MAX);

    memcpy(b, c->code, n);
    b[n++] = '\0';
    b[n++] = c->type;
    b[n++] = c->kind;
    put_u64(b + n, (uint64_t)c->discount);
    put_u64(b + n + 8, (uint64_t)c->expires);
    put_u64(b + n + 16, c->max_uses);
    crypto_generichash_update(&h->st, b, n + 24);
}

void
rid_fp_end(struct rid_fp *h, const char *scope, const char *id, struct store_rid *out)
{
    crypto_generichash_final(&h->st, out->fp, STORE_FP_BYTES);
    snprintf(out->scope, sizeof out->scope, "%s", scope);
    snprintf(out->id, sizeof out->id, "%s", id);
}

bool
rid_same_id(const struct store_rid *a, const struct store_rid *b)
{
    return strcmp(a->scope, b->scope) == 0 && strcmp(a->id, b->id) == 0;
}

bool
rid_same(const struct store_rid *a, const struct store_rid *b)
{
    return rid_same_id(a, b) && memcmp(a->fp, b->fp, STORE_FP_BYTES) == 0;
}
