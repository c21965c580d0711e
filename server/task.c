/* task.c - signing and checking MEGADEAL task ids with the key in task.key. */
#include "task.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define TASK_B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

_Static_assert(TASK_MAC_BYTES == crypto_auth_BYTES, "the MAC is crypto_auth's");
_Static_assert(KEYS_BYTES == crypto_auth_KEYBYTES, "the key is crypto_auth's");
_Static_assert(TASK_TAG_BYTES >= crypto_generichash_BYTES_MIN, "BLAKE2b output size");
_Static_assert(TASK_ID_BUF == sodium_base64_ENCODED_LEN(TASK_RAW_BYTES, TASK_B64),
               "TASK_ID_CHARS is the base64 length of an id");

/* Lives in sodium_malloc'd memory: guard pages, no swap, read-only once made. */
struct task_key {
    unsigned char key[KEYS_BYTES];
    unsigned char key_id;
};

/* Finishes a key whose bytes are in place: derives the key id, then makes it read-only. */
static struct task_key *
seal(struct task_key *k)
{
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof h, k->key, sizeof k->key, NULL, 0);
    k->key_id = h[0];
    sodium_mprotect_readonly(k);
    return k;
}

struct task_key *
task_key_load(const char *dir, char *errbuf, size_t errlen)
{
    struct task_key *k = sodium_malloc(sizeof *k);
    if (!k) {
        snprintf(errbuf, errlen, "out of memory for the task key");
        return NULL;
    }
    if (!keys_load_or_create(dir, TASK_KEY_FILE, KEYS_RAW, k->key, errbuf, errlen)) {
        sodium_free(k);
        return NULL;
    }
    return seal(k);
}

struct task_key *
task_key_from_bytes(const unsigned char bytes[KEYS_BYTES])
{
    struct task_key *k = sodium_malloc(sizeof *k);
    if (!k)
        return NULL;
    memcpy(k->key, bytes, KEYS_BYTES);
    return seal(k);
}

void
task_key_free(struct task_key *k)
{
    sodium_free(k); /* wipes it first; NULL is a no-op */
}

void
task_user_tag(const struct task_key *k, const char *user, unsigned char tag[TASK_TAG_BYTES])
{
    crypto_generichash(tag, TASK_TAG_BYTES, (const unsigned char *)user, strlen(user), k->key,
                       sizeof k->key);
}

void
task_payload_make(const struct task_key *k, uint64_t seq, int64_t issued_ms, int64_t deadline_ms,
                  const char *user, struct task_payload *p)
{
    p->seq = seq;
    p->issued_ms = issued_ms;
    p->deadline_ms = deadline_ms;
    task_user_tag(k, user, p->user_tag);
}

static void
put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint64_t
get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void
task_encode(const struct task_key *k, const struct task_payload *p, char out[TASK_ID_BUF])
{
    unsigned char raw[TASK_RAW_BYTES];
    raw[0] = TASK_VERSION;
    raw[1] = k->key_id;
    put_be64(raw + 2, p->seq);
    put_be64(raw + 10, (uint64_t)p->issued_ms);
    put_be64(raw + 18, (uint64_t)p->deadline_ms);
    memcpy(raw + 26, p->user_tag, TASK_TAG_BYTES);
    crypto_auth(raw + TASK_PAYLOAD_BYTES, raw, TASK_PAYLOAD_BYTES, k->key);
    sodium_bin2base64(out, TASK_ID_BUF, raw, sizeof raw, TASK_B64);
}

bool
task_decode(const struct task_key *k, const char *id, size_t len, struct task_payload *out)
{
    unsigned char raw[TASK_RAW_BYTES];
    size_t bin_len = 0;
    const char *end = NULL;
    /* libsodium rejects characters outside the alphabet and non-zero unused trailing bits, so
     * each payload has exactly one id. */
    if (len != TASK_ID_CHARS ||
        sodium_base642bin(raw, sizeof raw, id, len, NULL, &bin_len, &end, TASK_B64) != 0 ||
        bin_len != TASK_RAW_BYTES || end != id + len)
        return false;
    if (crypto_auth_verify(raw + TASK_PAYLOAD_BYTES, raw, TASK_PAYLOAD_BYTES, k->key) != 0)
        return false;
    if (raw[0] != TASK_VERSION || raw[1] != k->key_id)
        return false;
    out->seq = get_be64(raw + 2);
    out->issued_ms = (int64_t)get_be64(raw + 10);
    out->deadline_ms = (int64_t)get_be64(raw + 18);
    memcpy(out->user_tag, raw + 26, TASK_TAG_BYTES);
    return true;
}

bool
task_payload_equal(const struct task_payload *a, const struct task_payload *b)
{
    return a->seq == b->seq && a->issued_ms == b->issued_ms && a->deadline_ms == b->deadline_ms &&
           sodium_memcmp(a->user_tag, b->user_tag, TASK_TAG_BYTES) == 0;
}
