/* auditkey.c - the audit chain's Ed25519 key and the signature of a head (see auditkey.h). */
#include "auditkey.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

_Static_assert(KEYS_BYTES == crypto_sign_SEEDBYTES, "audit.key holds an Ed25519 seed");
_Static_assert(AUDITKEY_SIG_BYTES == crypto_sign_BYTES, "Ed25519 signatures");
_Static_assert(AUDITKEY_PK_BYTES == crypto_sign_PUBLICKEYBYTES, "Ed25519 public keys");

/* Lives in sodium_malloc'd memory: guard pages, no swap, read-only once made. */
struct auditkey {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
};

/* Makes the key pair of a seed into new memory; the seed is the caller's to wipe. */
static struct auditkey *
of_seed(const unsigned char seed[KEYS_BYTES])
{
    struct auditkey *k = sodium_malloc(sizeof *k);

    if (k == NULL)
        return NULL;
    crypto_sign_seed_keypair(k->pk, k->sk, seed);
    sodium_mprotect_readonly(k);
    return k;
}

struct auditkey *
auditkey_load(const char *dir, bool create, char *errbuf, size_t errlen)
{
    unsigned char seed[KEYS_BYTES];
    char path[PATH_MAX];
    struct auditkey *k;

    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, AUDITKEY_FILE) >= sizeof path) {
        snprintf(errbuf, errlen, "%s: path too long", dir);
        return NULL;
    }
    if (!create && access(path, F_OK) != 0) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (!keys_load_or_create(dir, AUDITKEY_FILE, KEYS_RAW, seed, errbuf, errlen))
        return NULL;
    k = of_seed(seed);
    sodium_memzero(seed, sizeof seed);
    if (k == NULL)
        snprintf(errbuf, errlen, "out of memory for the key in %s", AUDITKEY_FILE);
    return k;
}

struct auditkey *
auditkey_from_seed(const unsigned char seed[KEYS_BYTES])
{
    return of_seed(seed);
}

void
auditkey_free(struct auditkey *k)
{
    if (k != NULL)
        sodium_free(k); /* sodium_free wipes it */
}

void
auditkey_public(const struct auditkey *k, unsigned char pk[AUDITKEY_PK_BYTES])
{
    memcpy(pk, k->pk, AUDITKEY_PK_BYTES);
}

void
auditkey_message(const struct store_audit_head *h, unsigned char msg[AUDITKEY_MSG_BYTES])
{
    size_t off = sizeof AUDITKEY_DOMAIN; /* the text and its NUL */

    memcpy(msg, AUDITKEY_DOMAIN, off);
    for (int i = 0; i < 8; i++)
        msg[off + (size_t)i] = (unsigned char)(h->seq >> (56 - 8 * i));
    memcpy(msg + off + 8, h->hash, STORE_AUDIT_HASH_BYTES);
}

void
auditkey_sign(const struct auditkey *k, const struct store_audit_head *h,
              unsigned char sig[AUDITKEY_SIG_BYTES])
{
    unsigned char msg[AUDITKEY_MSG_BYTES];

    auditkey_message(h, msg);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, k->sk);
}

bool
auditkey_verify(const unsigned char pk[AUDITKEY_PK_BYTES], const struct store_audit_head *h,
                const unsigned char sig[AUDITKEY_SIG_BYTES])
{
    unsigned char msg[AUDITKEY_MSG_BYTES];

    auditkey_message(h, msg);
    return crypto_sign_verify_detached(sig, msg, sizeof msg, pk) == 0;
}
