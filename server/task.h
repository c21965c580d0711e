/* task.h - MEGADEAL task ids: signed ids (sigid.h) with the key in task.key. An id proves
 * itself: the server tells a forged id from a valid one it has forgotten (after a restart)
 * without remembering anything.
 *
 *   payload = version(1) | key_id(1) | seq(8, BE) | issued_ms(8, BE) | deadline_ms(8, BE)
 *             | user_tag(16)
 *   id      = base64url(payload | crypto_auth(payload, key))      74 bytes -> 99 characters
 *
 * user_tag is a keyed BLAKE2b hash (crypto_generichash with the task key) of the user name, so
 * the user is bound into the MAC without the id revealing it; key_id is the first byte of a
 * BLAKE2b hash of the key, so an id made with another (rotated) key is told apart. */
#ifndef COUPOND_TASK_H
#define COUPOND_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"

#define TASK_KEY_FILE      "task.key" /* in the data dir: 32 raw bytes, mode 0600 */
#define TASK_VERSION       1
#define TASK_TAG_BYTES     16                                    /* user tag: 128 bits */
#define TASK_BODY_BYTES    (8 + 8 + 8 + TASK_TAG_BYTES)          /* 40 */
#define TASK_PAYLOAD_BYTES (1 + 1 + TASK_BODY_BYTES)             /* 42 */
#define TASK_MAC_BYTES     32                                    /* crypto_auth_BYTES */
#define TASK_RAW_BYTES     (TASK_PAYLOAD_BYTES + TASK_MAC_BYTES) /* 74 */
#define TASK_ID_CHARS      99 /* base64 of 74 bytes without padding: ceil(74 * 4 / 3) */
#define TASK_ID_BUF        (TASK_ID_CHARS + 1)
/* A key's fingerprint: 8 bytes of a keyed hash, enough to tell two keys apart (a chance of
 * 2^-64 that two differ unseen) while telling nothing about the key; 16 hex digits. */
#define TASK_FP_BYTES 8
#define TASK_FP_BUF   (2 * TASK_FP_BYTES + 1)

struct task_key;

/* The fields an id carries besides the version and key id. */
struct task_payload {
    uint64_t seq;
    int64_t issued_ms;   /* wall clock, milliseconds since the epoch */
    int64_t deadline_ms; /* issued_ms plus the wait */
    unsigned char user_tag[TASK_TAG_BYTES];
};

/* Loads `dir`/task.key, or makes it (32 random bytes, mode 0600) on first start, into memory
 * from sodium_malloc that is read-only once loaded. Returns the key, which the caller frees
 * with task_key_free, or NULL with a one-line reason in errbuf. sodium_init() must have run. */
struct task_key *task_key_load(const char *dir, char *errbuf, size_t errlen);

/* Makes a key from KEYS_BYTES given bytes (tests). NULL when out of memory. */
struct task_key *task_key_from_bytes(const unsigned char bytes[KEYS_BYTES]);

/* Wipes and frees the key. NULL is a no-op. */
void task_key_free(struct task_key *k);

/* The key's fingerprint in lower-case hex: the keyed BLAKE2b hash of a fixed text under the
 * key, which two nodes compare (through their store) without revealing the key. */
void task_key_fingerprint(const struct task_key *k, char out[TASK_FP_BUF]);

/* The user tag of `user` (NUL-terminated) under key k. */
void task_user_tag(const struct task_key *k, const char *user, unsigned char tag[TASK_TAG_BYTES]);

/* Fills p for a task, computing the user tag. */
void task_payload_make(const struct task_key *k, uint64_t seq, int64_t issued_ms,
                       int64_t deadline_ms, const char *user, struct task_payload *p);

/* Writes the id of payload p, signed with k, to out (NUL-terminated, TASK_ID_CHARS long). */
void task_encode(const struct task_key *k, const struct task_payload *p, char out[TASK_ID_BUF]);

/* Checks an id of `len` bytes (not NUL-terminated): the exact length and alphabet, the MAC
 * under k (crypto_auth_verify), the version and key id. True and *out filled when all hold;
 * false, *out untouched, for every failure alike. */
bool task_decode(const struct task_key *k, const char *id, size_t len, struct task_payload *out);

/* True when a and b are the same payload, user tag included. */
bool task_payload_equal(const struct task_payload *a, const struct task_payload *b);

#endif
