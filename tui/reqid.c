/* reqid.c - request ids from BLAKE2b digests of what a write carries. */
#include "reqid.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* Each kind of id hashes its own tag first, so an upload and a generation can never share a
 * digest, whatever their bytes. */
static const char upload_tag[] = "couponctl upload v1";
static const char generate_tag[] = "couponctl generate v1";

static void
hash_init(crypto_generichash_state *st, const char *tag)
{
    /* BLAKE2b works without it (its result is the same either way); sodium_init() only picks
     * the fastest code for this CPU, once, and is cheap to call again. */
    int rc = sodium_init();
    (void)rc;
    crypto_generichash_init(st, NULL, 0, REQID_HASH_BYTES);
    /* With its NUL: the tag ends where the data begins. */
    crypto_generichash_update(st, (const unsigned char *)tag, strlen(tag) + 1);
}

/* Writes the digest's base64url text (REQID_HASH_CHARS and a NUL) at out. */
static void
hash_final(crypto_generichash_state *st, char out[REQID_HASH_CHARS + 1])
{
    unsigned char digest[REQID_HASH_BYTES];

    crypto_generichash_final(st, digest, sizeof digest);
    sodium_bin2base64(out, REQID_HASH_CHARS + 1, digest, sizeof digest,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void
reqid_upload(char out[REQID_BUF], size_t batch, const char *records, size_t len)
{
    crypto_generichash_state st;
    char hash[REQID_HASH_CHARS + 1];

    hash_init(&st, upload_tag);
    crypto_generichash_update(&st, (const unsigned char *)records, len);
    hash_final(&st, hash);
    snprintf(out, REQID_BUF, "up-%zu-%s", batch, hash);
}

void
reqid_generate(char out[REQID_BUF], const char *canonical, const char *host, const char *path)
{
    crypto_generichash_state st;
    char hash[REQID_HASH_CHARS + 1];
    const char *parts[] = {canonical, host, path};

    hash_init(&st, generate_tag);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        crypto_generichash_update(&st, (const unsigned char *)parts[i], strlen(parts[i]) + 1);
    hash_final(&st, hash);
    snprintf(out, REQID_BUF, "gen-%s", hash);
}
