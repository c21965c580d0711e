/* hold.h - hold ids: what HOLD answers and RELEASE and REDEEM hold= take. A signed id
 * (sigid.h) of the hold's number and end, so a forged, altered or truncated id is refused
 * before the store is asked, and reveals nothing:
 *
 *   body = seq(8, BE) | expires(8, BE)
 *   id   = base64url(version | key_id | body | crypto_auth(..., hold key))   50 bytes -> 67 chars
 *
 * The hold key is derived from task.key (sigid_key_derive, purpose HOLD_KEY_PURPOSE) rather
 * than kept in a file of its own: hold ids must verify on every node that shares the store,
 * exactly as task ids must, so they share the one secret that nodes already share (and whose
 * fingerprint a shared store already checks); a second file would be one more secret to copy,
 * back up and keep in step. The derived key keeps the two kinds of ids apart: no task id is a
 * valid hold id, and the reverse. */
#ifndef COUPOND_HOLD_H
#define COUPOND_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"

#define HOLD_VERSION     1
#define HOLD_KEY_PURPOSE "coupond hold id v1"
#define HOLD_BODY_BYTES  16 /* seq and expires */
#define HOLD_ID_CHARS    67 /* base64 of 2 + 16 + 32 bytes without padding */
#define HOLD_ID_BUF      (HOLD_ID_CHARS + 1)

struct hold_key;

/* What an id carries. */
struct hold_ref {
    uint64_t seq;    /* the store's hold number */
    int64_t expires; /* when the hold ends, seconds since the epoch */
};

/* Loads (or makes, on first start) `dir`/task.key and derives the hold key from it. NULL with a
 * one-line reason in errbuf. sodium_init() must have run. */
struct hold_key *hold_key_load(const char *dir, char *errbuf, size_t errlen);

/* The hold key derived from the task key of these bytes (tests). NULL when out of memory. */
struct hold_key *hold_key_from_bytes(const unsigned char bytes[KEYS_BYTES]);

/* Wipes and frees the key. NULL is a no-op. */
void hold_key_free(struct hold_key *k);

/* Writes the id of ref to out (NUL-terminated, HOLD_ID_CHARS long). */
void hold_encode(const struct hold_key *k, const struct hold_ref *ref, char out[HOLD_ID_BUF]);

/* Checks an id of `len` bytes: form, MAC, version and key id. True and *out filled when all
 * hold; false, *out untouched, for every failure alike. */
bool hold_decode(const struct hold_key *k, const char *id, size_t len, struct hold_ref *out);

#endif
