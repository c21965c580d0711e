/* auditkey.h - the audit chain's signing key: an Ed25519 key pair (libsodium's crypto_sign) made
 * from the 32-byte seed in DATADIR/audit.key, which coupond makes on its first start (mode
 * 0600, like task.key). AUDIT signs the chain's head with it; coupond --verify-audit checks a
 * head's signature with the public key it derives.
 *
 * What is signed is a canonical encoding of the head (62 bytes):
 *
 *   "coupond audit head v1" | 0x00 | seq (8 bytes, big-endian) | hash (32 bytes)
 *
 * The text in front keeps a signature of a head from ever being taken for a signature of
 * anything else. Ed25519 signatures are deterministic: the same head always gets the same
 * signature, so a signature saved from AUDIT can be compared with one made later. */
#ifndef COUPOND_AUDITKEY_H
#define COUPOND_AUDITKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "keys.h"
#include "store.h"

#define AUDITKEY_FILE      "audit.key" /* in the data dir: 32 raw bytes, mode 0600 */
#define AUDITKEY_DOMAIN    "coupond audit head v1"
#define AUDITKEY_SIG_BYTES 64                           /* crypto_sign_BYTES */
#define AUDITKEY_PK_BYTES  32                           /* crypto_sign_PUBLICKEYBYTES */
#define AUDITKEY_SIG_HEX   (2 * AUDITKEY_SIG_BYTES + 1) /* in hex, and NUL */
#define AUDITKEY_PK_HEX    (2 * AUDITKEY_PK_BYTES + 1)
#define AUDITKEY_MSG_BYTES (sizeof AUDITKEY_DOMAIN + 8 + STORE_AUDIT_HASH_BYTES)

struct auditkey;

/* Loads `dir`/audit.key into memory from sodium_malloc that is read-only once loaded; when it
 * is missing, makes it (create) or fails (the verifier, which creates nothing). NULL with a
 * one-line reason in errbuf. sodium_init() must have run. Free with auditkey_free. */
struct auditkey *auditkey_load(const char *dir, bool create, char *errbuf, size_t errlen);

/* A key from a given seed (tests). NULL when out of memory. */
struct auditkey *auditkey_from_seed(const unsigned char seed[KEYS_BYTES]);

/* Wipes and frees the key. NULL is a no-op. */
void auditkey_free(struct auditkey *k);

/* The public key. */
void auditkey_public(const struct auditkey *k, unsigned char pk[AUDITKEY_PK_BYTES]);

/* The message signed for head h (see the top of this file). */
void auditkey_message(const struct store_audit_head *h, unsigned char msg[AUDITKEY_MSG_BYTES]);

/* Signs head h. */
void auditkey_sign(const struct auditkey *k, const struct store_audit_head *h,
                   unsigned char sig[AUDITKEY_SIG_BYTES]);

/* True when sig is a signature of head h under public key pk. */
bool auditkey_verify(const unsigned char pk[AUDITKEY_PK_BYTES], const struct store_audit_head *h,
                     const unsigned char sig[AUDITKEY_SIG_BYTES]);

#endif
