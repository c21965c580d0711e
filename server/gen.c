/* gen.c - GENERATE's candidates (see gen.h). */
#include "gen.h"

#include <sodium.h>
#include <string.h>

#include "coupon.h"

size_t
gen_candidates(size_t n, unsigned attempt)
{
    size_t spares = n / GEN_SPARE_DIV + GEN_SPARE_MIN;

    return n + (spares << (attempt < GEN_ATTEMPTS ? attempt : GEN_ATTEMPTS));
}

void
gen_code(char out[STORE_CODE_MAX + 1], const char *prefix, unsigned length)
{
    static const char alphabet[] = PROTO_GEN_ALPHABET;
    size_t n = strnlen(prefix, PROTO_PREFIX_MAX);

    if (length > PROTO_GEN_LENGTH_MAX)
        length = PROTO_GEN_LENGTH_MAX;
    memcpy(out, prefix, n);
    /* randombytes_uniform has no modulo bias (and the alphabet is a power of two anyway). */
    for (unsigned i = 0; i < length; i++)
        out[n + i] = alphabet[randombytes_uniform(PROTO_GEN_ALPHABET_LEN)];
    out[n + length] = '\0';
}

void
gen_fill(struct store_coupon *recs, size_t count, const struct proto_request *req)
{
    struct store_coupon tmpl;

    coupon_from_proto(&req->gen, &tmpl);
    tmpl.uses = 0;
    for (size_t i = 0; i < count; i++) {
        recs[i] = tmpl;
        gen_code(recs[i].code, req->prefix, req->length);
    }
}
