/* gen.h - GENERATE's candidates: codes drawn from libsodium's generator in PROTO_GEN_ALPHABET
 * after an optional prefix, each a record with the request's fields. The store keeps the first
 * n candidates whose codes are new and distinct (STORE_OP_GENERATE), so a few spares are drawn
 * with them; when even those do not suffice, the server draws again with more. */
#ifndef COUPOND_GEN_H
#define COUPOND_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "store.h"

/* Spares: n / GEN_SPARE_DIV + GEN_SPARE_MIN on the first draw, doubled on each further one.
 * A spare is used up only by a candidate whose code is taken (stored already, or drawn twice).
 * With the default length a code is one of 32^12 = 2^60, so that takes trillions of stored
 * codes under one prefix to happen at all. With the shortest length, 6 (2^30 codes), 1 in 16
 * (6.25%) is taken once about 67 million codes share the prefix; the spares cover collision
 * rates a little below that for large n (and far above it for small n, where GEN_SPARE_MIN
 * dominates), and each further draw doubles them. The cost is small: 6% more candidates. */
#define GEN_SPARE_DIV 16
#define GEN_SPARE_MIN 8
/* Draws before GENERATE gives up with ERR INTERNAL: the fourth has 8 times the first's spares;
 * needing it means the prefix's codes are nearly all used (choose a longer length). */
#define GEN_ATTEMPTS 4

/* Candidates to draw for n codes on draw `attempt` (0 first). */
size_t gen_candidates(size_t n, unsigned attempt);

/* Writes prefix + `length` random characters of PROTO_GEN_ALPHABET to out (NUL-terminated).
 * The prefix is upper-case code characters; prefix and length fit PROTO_CODE_MAX. */
void gen_code(char out[STORE_CODE_MAX + 1], const char *prefix, unsigned length);

/* Fills recs[0..count) with GENERATE's records: req's gen fields, each with a drawn code. */
void gen_fill(struct store_coupon *recs, size_t count, const struct proto_request *req);

#endif
