/* audit.h - the audit chain's records, the same for every backend and for the verifier: what a
 * write's record says, its byte encoding, its hash, and the check of a chain read back.
 * Backend-neutral: pure byte work and BLAKE2b (libsodium's crypto_generichash), no I/O.
 *
 * A record (version 1) is a canonical, length-prefixed encoding; integers are big-endian:
 *
 *   u8   version            1
 *   u64  seq                1, 2, ... without gaps
 *   i64  time               seconds since the epoch, UTC (two's complement)
 *   str8 actor              the key name that made the change; "" for none, the admin key or
 *                           the server itself
 *   str8 verb               UPLOAD GENERATE REQUEST GRANT REDEEM HOLD RELEASE UNREDEEM PURGE
 *                           EXPIRE_HOLDS EXPIRE_IDS, or a note's own verb (a key change)
 *   u8   nargs, then nargs fields: the arguments
 *   str8 outcome            "OK" (a write that fails appends no record)
 *   u8   nouts, then nouts fields: what the write did
 *
 *   field = str8 name | str16 value;  str8 = u8 length | bytes;  str16 = u16 length | bytes
 *
 * Every value is text as coupond shows it elsewhere: numbers in decimal, times in RFC 3339 UTC,
 * types and kinds by name, discounts with two decimals, hashes in lower-case hex. So a record is
 * fully described by its fields in order, and `EXPORT AUDIT` shows them all: anyone can encode
 * an exported record again and check its hash.
 *
 *   hash(record n) = BLAKE2b-256(hash(record n - 1) || record n),  hash(record 0) = 32 zeros
 *
 * The fields of each verb, in order ([x] only when there is one; id is the request id):
 *   UPLOAD       records digest [id]                   | uploaded
 *   GENERATE     count type discount kind expires max_uses [id] | generated digest
 *   REQUEST      user type [min_expires] [id]          | code expires
 *   GRANT        user type task [id]                   | code expires   (a MEGADEAL grant)
 *   REDEEM       user code [hold] [id]                 | redemption uses
 *   HOLD         user code until [id]                  | hold expires
 *   RELEASE      hold [id]                             | code user
 *   UNREDEEM     user redemption [id]                  | code uses
 *   PURGE        cutoff max                            | purged more
 *   EXPIRE_HOLDS cutoff max                            | expired more
 *   EXPIRE_IDS   cutoff max                            | expired more
 *   a note       its own fields                        | (none)
 * An UPLOAD's digest is BLAKE2b-256 over its records in order, each encoded as str8 code | u8
 * type | u8 kind | i64 discount (hundredths) | i64 expires | u32 max_uses; a GENERATE's over the
 * codes it stored, in order, each as str8 code. A purge or expiry appends one record per chunk
 * (store call), with its count, not one per coupon. */
#ifndef COUPOND_AUDIT_H
#define COUPOND_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define AUDIT_VERSION    1
#define AUDIT_HASH_BYTES STORE_AUDIT_HASH_BYTES
#define AUDIT_HEX_BUF    (2 * AUDIT_HASH_BYTES + 1) /* a hash in hex, and NUL */
/* Fields of a record's arguments, and of its outcome, at most: the most any verb has (GENERATE's
 * seven arguments) with room for the notes of later tasks. */
#define AUDIT_FIELDS_MAX 16
#define AUDIT_TIME_BUF   24 /* "2026-12-31T23:59:59Z", or an int64 in decimal, and NUL */
#define AUDIT_WHY_MAX    256
#define AUDIT_OUTCOME_OK "OK"

/* Bytes not NUL-terminated: pointing into a record or into the caller's memory. */
struct audit_text {
    const char *p;
    size_t len;
};

struct audit_field {
    struct audit_text name, value;
};

/* A record, decoded or to encode. */
struct audit_rec {
    unsigned version;
    uint64_t seq;
    int64_t time;
    struct audit_text actor, verb, outcome;
    size_t nargs, nouts;
    struct audit_field args[AUDIT_FIELDS_MAX], outs[AUDIT_FIELDS_MAX];
};

/* Encodes r (version AUDIT_VERSION whatever r->version says) into buf; returns the length, or 0
 * when it does not fit in cap bytes or a text is longer than its length prefix allows. */
size_t audit_encode(const struct audit_rec *r, uint8_t *buf, size_t cap);

/* Decodes a record of len bytes; the texts of *r point into buf (valid while it is). False when
 * it is not a well-formed record of a version this code knows: *bad_at is then the offset where
 * it went wrong and *why a static reason. */
bool audit_decode(const uint8_t *buf, size_t len, struct audit_rec *r, size_t *bad_at,
                  const char **why);

/* out = BLAKE2b-256(prev || rec). */
void audit_hash(const uint8_t prev[AUDIT_HASH_BYTES], const uint8_t *rec, size_t len,
                uint8_t out[AUDIT_HASH_BYTES]);

/* Appends a record to a head: seq + 1, and the hash chained from the head's. */
void audit_link(struct store_audit_head *head, const uint8_t *rec, size_t len);

/* True when a write that succeeded (op->err STORE_OK, not replayed) appends a record: every
 * write kind, except a check-only UPLOAD, a GENERATE of none and a PURGE or expiry that deleted
 * nothing. */
bool audit_wanted(const struct store_op *op);

/* AUDIT_NOTE: STORE_OK when in.note is a note (store.h, struct store_audit_note), else
 * STORE_INVALID with op failed and the reason in its message. Reads nothing. */
enum store_err audit_note_check(struct store_op *op);

/* The record numbered seq of the write op, which succeeded (its outputs set), into buf[cap];
 * returns its length, 0 when op is no write this knows or it does not fit (a record of any kind
 * but a note fits STORE_AUDIT_REC_MAX; a note that audit_note_check passed does too). */
size_t audit_of_op(const struct store_op *op, uint64_t seq, uint8_t *buf, size_t cap);

/* --- reading a chain back --- */

/* A chain being verified from its first record: feed every record in order, then the head. */
struct audit_verify {
    struct store_audit_head before;   /* the stored head, read before the records */
    uint64_t seq;                     /* records checked */
    uint8_t hash[AUDIT_HASH_BYTES];   /* the hash computed for record seq */
    uint8_t stored[AUDIT_HASH_BYTES]; /* the hash stored with record seq */
    bool head_seen;                   /* record before.seq was reached, with the head's hash */
    uint64_t bad;                     /* the first record that does not match; 0 while none */
    char why[AUDIT_WHY_MAX];          /* what does not match, one line */
};

/* Starts a check of a chain whose stored head, read before its records, is *before. */
void audit_verify_init(struct audit_verify *v, const struct store_audit_head *before);

/* Checks the next record as the store gave it: its number, that it decodes, that it says its own
 * number, that its stored hash is BLAKE2b(previous || record) and that the store's previous
 * hash is the record before's. False at the first that fails (v->bad and v->why name it); after
 * that, false without looking. */
bool audit_verify_row(struct audit_verify *v, const struct store_audit_row *row);

/* After the last record: the head read before must be a record of the chain, with the hash
 * computed for it; when the head read after the records (*after) is the same, no record may
 * follow it (nothing was written meanwhile). False, naming the record, when one of these fails. */
bool audit_verify_end(struct audit_verify *v, const struct store_audit_head *after);

/* --- showing records --- */

/* A hash in lower-case hex, NUL-terminated. */
void audit_hex(const uint8_t h[AUDIT_HASH_BYTES], char out[AUDIT_HEX_BUF]);

/* Reads 64 hex digits (either case) into h; false, h untouched, otherwise. */
bool audit_unhex(const char *s, size_t len, uint8_t h[AUDIT_HASH_BYTES]);

/* A time as RFC 3339 UTC ("2026-12-31T23:59:59Z"), or in decimal when it is outside years 0 to
 * 9999; returns the length. */
size_t audit_fmt_time(int64_t t, char out[AUDIT_TIME_BUF]);

/* A value for a line whose words never hold a space: the bytes as they are, but for those
 * outside printable ASCII, a space, and '%', which become %XX; "-" for an empty value. Writes
 * at most cap - 1 bytes and NUL (cap 3 * n + 2 always suffices); returns the length. */
size_t audit_escape(const struct audit_text *t, char *out, size_t cap);

#endif
