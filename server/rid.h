/* rid.h - request ids: the fingerprint that tells a retry of a write (same verb, same arguments
 * as parsed) from another write reusing its id, and the id's scope. The store keeps both with
 * the outcome (store.h, struct store_rid). */
#ifndef COUPOND_RID_H
#define COUPOND_RID_H

#include <sodium.h>
#include <stddef.h>

#include "proto.h"
#include "store.h"

_Static_assert(STORE_RID_MAX >= PROTO_RID_MAX, "a request id fits the store's");

/* A fingerprint being made: BLAKE2b (crypto_generichash) of STORE_FP_BYTES. */
struct rid_fp {
    crypto_generichash_state st;
};

/* Starts the fingerprint of a parsed request: its canonical line without the id
 * (proto_fmt_request), so that spelling (case, blanks, 12.5 or 12.50) never matters and the id
 * itself is not part of what it names. */
void rid_fp_begin(struct rid_fp *h, const struct proto_request *req);

/* Adds what the line does not carry: an UPLOAD's records (rid_fp_record, each as parsed). */
void rid_fp_record(struct rid_fp *h, const struct store_coupon *c);

/* Ends the fingerprint and fills *out with it, the scope (a key name, "" for none) and the id. */
void rid_fp_end(struct rid_fp *h, const char *scope, const char *id, struct store_rid *out);

/* True when two ids are the same id in the same scope (their fingerprints aside). */
bool rid_same_id(const struct store_rid *a, const struct store_rid *b);

/* True when they have the same fingerprint too. */
bool rid_same(const struct store_rid *a, const struct store_rid *b);

#endif
