/* sigid.h - signed ids: a small binary body behind a version byte and a key id byte, with its
 * libsodium crypto_auth tag (HMAC-SHA-512-256), in URL-safe base64 without padding. An id
 * proves itself: the server tells a forged or altered id from a valid one it has forgotten
 * without remembering anything. MEGADEAL task ids (task.h) and hold ids (hold.h) are made this
 * way; each kind signs with its own key and version byte, so no id of one kind is ever valid as
 * the other.
 *
 *   raw = version(1) | key_id(1) | body(n) | crypto_auth(version | key_id | body, key)(32)
 *   id  = base64url(raw)
 *
 * key_id is the first byte of a BLAKE2b hash of the key, so an id made with another (rotated)
 * key is told apart from a forged one by its owner, and refused alike. */
#ifndef COUPOND_SIGID_H
#define COUPOND_SIGID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"

#define SIGID_HEAD_BYTES 2  /* version and key id */
#define SIGID_MAC_BYTES  32 /* crypto_auth_BYTES */
/* The largest body: a task's 40 bytes with room to spare; ids stay well under the protocol's
 * 128 characters (64 + 34 bytes of base64 is 131: bodies must stay at most 60). */
#define SIGID_BODY_MAX 60
#define SIGID_RAW_MAX  (SIGID_HEAD_BYTES + SIGID_BODY_MAX + SIGID_MAC_BYTES)

struct sigid_key;

/* The characters of the id of a body of `body_len` bytes (base64 without padding). */
size_t sigid_chars(size_t body_len);

/* Loads `dir`/`file` (KEYS_RAW), or makes it (32 random bytes, mode 0600) on first start,
 * into memory from sodium_malloc that is read-only once loaded. NULL with a one-line reason in
 * errbuf. sodium_init() must have run. The caller frees it with sigid_key_free. */
struct sigid_key *sigid_key_load(const char *dir, const char *file, char *errbuf, size_t errlen);

/* A key from KEYS_BYTES given bytes. NULL when out of memory. */
struct sigid_key *sigid_key_from_bytes(const unsigned char bytes[KEYS_BYTES]);

/* A key of its own for one purpose ("hold"), derived from k: the keyed BLAKE2b hash of the
 * purpose under k. Ids signed with it never verify under k or under another purpose's key.
 * NULL when out of memory. */
struct sigid_key *sigid_key_derive(const struct sigid_key *k, const char *purpose);

/* Wipes and frees the key. NULL is a no-op. */
void sigid_key_free(struct sigid_key *k);

/* The keyed BLAKE2b hash of data under k, `outlen` bytes (16 to 64). */
void sigid_hash(const struct sigid_key *k, const void *data, size_t len, unsigned char *out,
                size_t outlen);

/* Writes the id of `body` (body_len <= SIGID_BODY_MAX) with `version`, signed with k, into out
 * (NUL-terminated; `outsize` must exceed sigid_chars(body_len)). */
void sigid_encode(const struct sigid_key *k, uint8_t version, const unsigned char *body,
                  size_t body_len, char *out, size_t outsize);

/* Checks an id of `len` bytes (not NUL-terminated) that must carry a body of exactly
 * `body_len` bytes: the length and alphabet, the MAC under k (crypto_auth_verify), then the
 * version and key id. True and body filled when all hold; false, body untouched, for every
 * failure alike. */
bool sigid_decode(const struct sigid_key *k, uint8_t version, const char *id, size_t len,
                  unsigned char *body, size_t body_len);

/* Big-endian 64-bit fields of a body. */
void sigid_put_be64(unsigned char *p, uint64_t v);
uint64_t sigid_get_be64(const unsigned char *p);

#endif
