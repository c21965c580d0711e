/* sigid.c - signing and checking ids (see sigid.h). */
#include "sigid.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define SIGID_B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

_Static_assert(SIGID_MAC_BYTES == crypto_auth_BYTES, "the MAC is crypto_auth's");
_Static_assert(KEYS_BYTES == crypto_auth_KEYBYTES, "the key is crypto_auth's");
_Static_assert(KEYS_BYTES >= crypto_generichash_KEYBYTES_MIN &&
                   KEYS_BYTES <= crypto_generichash_KEYBYTES_MAX,
               "the key also keys BLAKE2b");

/* Lives in sodium_malloc'd memory: guard pages, no swap, read-only once made. */
struct sigid_key {
    unsigned char key[KEYS_BYTES];
    unsigned char key_id;
};

size_t
sigid_chars(size_t body_len)
{
    return sodium_base64_ENCODED_LEN(SIGID_HEAD_BYTES + body_len + SIGID_MAC_BYTES, SIGID_B64) - 1;
}

/* Finishes a key whose bytes are in place: derives the key id, then makes it read-only. */
static struct sigid_key *
seal(struct sigid_key *k)
{
    unsigned char h[crypto_generichash_BYTES];

    crypto_generichash(h, sizeof h, k->key, sizeof k->key, NULL, 0);
    k->key_id = h[0];
    sodium_mprotect_readonly(k);
    return k;
}

struct sigid_key *
sigid_key_load(const char *dir, const char *file, char *errbuf, size_t errlen)
{
    struct sigid_key *k = sodium_malloc(sizeof *k);

    if (k == NULL) {
        snprintf(errbuf, errlen, "out of memory for the key in %s", file);
        return NULL;
    }
    if (!keys_load_or_create(dir, file, KEYS_RAW, k->key, errbuf, errlen)) {
        sodium_free(k);
        return NULL;
    }
    return seal(k);
}

struct sigid_key *
sigid_key_from_bytes(const unsigned char bytes[KEYS_BYTES])
{
    struct sigid_key *k = sodium_malloc(sizeof *k);

    if (k == NULL)
        return NULL;
    memcpy(k->key, bytes, KEYS_BYTES);
    return seal(k);
}

struct sigid_key *
sigid_key_derive(const struct sigid_key *k, const char *purpose)
{
    struct sigid_key *d = sodium_malloc(sizeof *d);

    if (d == NULL)
        return NULL;
    sigid_hash(k, purpose, strlen(purpose), d->key, sizeof d->key);
    return seal(d);
}

void
sigid_key_free(struct sigid_key *k)
{
    sodium_free(k); /* wipes it first; NULL is a no-op */
}

void
sigid_hash(const struct sigid_key *k, const void *data, size_t len, unsigned char *out,
           size_t outlen)
{
    crypto_generichash(out, outlen, data, len, k->key, sizeof k->key);
}

void
sigid_put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

uint64_t
sigid_get_be64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void
sigid_encode(const struct sigid_key *k, uint8_t version, const unsigned char *body, size_t body_len,
             char *out, size_t outsize)
{
    unsigned char raw[SIGID_RAW_MAX];
    size_t signed_len = SIGID_HEAD_BYTES + body_len;

    raw[0] = version;
    raw[1] = k->key_id;
    memcpy(raw + SIGID_HEAD_BYTES, body, body_len);
    crypto_auth(raw + signed_len, raw, signed_len, k->key);
    sodium_bin2base64(out, outsize, raw, signed_len + SIGID_MAC_BYTES, SIGID_B64);
}

bool
sigid_decode(const struct sigid_key *k, uint8_t version, const char *id, size_t len,
             unsigned char *body, size_t body_len)
{
    unsigned char raw[SIGID_RAW_MAX];
    size_t signed_len = SIGID_HEAD_BYTES + body_len, bin_len = 0;
    const char *end = NULL;

    /* libsodium rejects characters outside the alphabet and non-zero unused trailing bits, so
     * each body has exactly one id. */
    if (body_len > SIGID_BODY_MAX || len != sigid_chars(body_len) ||
        sodium_base642bin(raw, sizeof raw, id, len, NULL, &bin_len, &end, SIGID_B64) != 0 ||
        bin_len != signed_len + SIGID_MAC_BYTES || end != id + len)
        return false;
    if (crypto_auth_verify(raw + signed_len, raw, signed_len, k->key) != 0)
        return false;
    if (raw[0] != version || raw[1] != k->key_id)
        return false;
    memcpy(body, raw + SIGID_HEAD_BYTES, body_len);
    return true;
}
