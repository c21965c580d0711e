/* lmdb_codec.h - how the LMDB backend lays out its keys and records, and the counters it keeps
 * in memory and in the meta record. Pure byte work: no transaction, no I/O.
 *
 * Databases (one LMDB environment, every record with a version byte):
 *   coupons  code -> coupon record (type, kind, discount, expiry, uses, max_uses, upload
 *            sequence, assigned user and time)
 *   avail    (type, expiry, sequence) -> code, for unassigned coupons: "next coupon" is one
 *            cursor seek from (type, now)
 *   expiry   (expiry, sequence) -> code, for never-redeemed coupons: what PURGE may delete
 *   history  redemption sequence -> (time, code, type, user)
 *   meta     "state" -> next sequences and the per-type counters
 * Integers are big-endian and times have their sign bit flipped, so LMDB's memcmp order of the
 * keys is the order the store needs. */
#ifndef COUPOND_LMDB_CODEC_H
#define COUPOND_LMDB_CODEC_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define LMDB_CODEC_FIRST_SEQ 1 /* coupon and redemption sequences start here; 0 means "none" */

/* Big-endian field widths. */
#define LMDB_CODEC_U8  1
#define LMDB_CODEC_U32 4
#define LMDB_CODEC_U64 8

/* avail key: type | expires | seq; expiry key: expires | seq; history key: seq. */
#define LMDB_CODEC_AVAIL_KEY_LEN  (LMDB_CODEC_U8 + 2 * LMDB_CODEC_U64)
#define LMDB_CODEC_EXPIRY_KEY_LEN (2 * LMDB_CODEC_U64)
#define LMDB_CODEC_SEQ_KEY_LEN    LMDB_CODEC_U64

/* coupon value: version type kind flags | discount expires | uses max_uses | seq assigned_at |
 * user_len user; at most LMDB_CODEC_COUPON_REC_MAX bytes. */
#define LMDB_CODEC_COUPON_FIXED_LEN                                                                \
    (4 * LMDB_CODEC_U8 + 2 * LMDB_CODEC_U64 + 2 * LMDB_CODEC_U32 + 2 * LMDB_CODEC_U64 +            \
     LMDB_CODEC_U8)
#define LMDB_CODEC_COUPON_REC_MAX (LMDB_CODEC_COUPON_FIXED_LEN + STORE_USER_MAX)

/* history value: version time type code_len code user_len user */
#define LMDB_CODEC_HISTORY_REC_MAX                                                                 \
    (LMDB_CODEC_U8 + LMDB_CODEC_U64 + 3 * LMDB_CODEC_U8 + STORE_CODE_MAX + STORE_USER_MAX)

/* meta "state": version next_coupon_seq next_redemption_seq, then per type the
 * LMDB_CODEC_STATE_FIELDS stored counters of struct lmdb_type_state. */
#define LMDB_CODEC_STATE_KEY    "state"
#define LMDB_CODEC_STATE_FIELDS 6
#define LMDB_CODEC_STATE_LEN                                                                       \
    (LMDB_CODEC_U8 + 2 * LMDB_CODEC_U64 + STORE_NTYPES * LMDB_CODEC_STATE_FIELDS * LMDB_CODEC_U64)

struct lmdb_type_state {
    uint64_t created, assigned, redeemed, purged;
    uint64_t purged_assigned; /* assigned coupons later purged: assigned = records + this */
    uint64_t unassigned;      /* == avail index entries of the type */
    /* Not stored: avail entries of the type with expires < watermark (see lmdb_index.h). */
    uint64_t expired_unassigned;
};

/* Everything the backend keeps in memory about the data: the stored counters and sequences, and
 * the `available` cache. Plain data: whoever holds a copy owns it (see lmdb_store.c). */
struct lmdb_state {
    uint64_t next_coupon_seq;
    uint64_t next_redemption_seq;
    int64_t watermark; /* not stored: expired_unassigned counts avail entries below it */
    struct lmdb_type_state t[STORE_NTYPES];
};

/* "NONE", "FREE", ... for messages; "?" for a number out of range. */
const char *lmdb_codec_type_name(unsigned type);

/* Writes the n low bytes of v big-endian at p / reads them back. */
void lmdb_codec_put_be(uint8_t *p, uint64_t v, size_t n);
uint64_t lmdb_codec_get_be(const uint8_t *p, size_t n);

/* The avail key of (type, expires, seq) into k[LMDB_CODEC_AVAIL_KEY_LEN], and back; decoding
 * fails (false, outputs unset) on a wrong length or type. */
void lmdb_codec_avail_key(uint8_t type, int64_t expires, uint64_t seq, uint8_t *k);
bool lmdb_codec_avail_key_decode(const MDB_val *k, uint8_t *type, int64_t *expires, uint64_t *seq);

/* The expiry key of (expires, seq) into k[LMDB_CODEC_EXPIRY_KEY_LEN], and back. */
void lmdb_codec_expiry_key(int64_t expires, uint64_t seq, uint8_t *k);
bool lmdb_codec_expiry_key_decode(const MDB_val *k, int64_t *expires, uint64_t *seq);

/* Copies an LMDB value holding a code into code[STORE_CODE_MAX + 1], NUL-terminated; false when
 * it is not a valid code (code is then garbage). */
bool lmdb_codec_code_from_val(const MDB_val *v, char *code);

/* Encodes a coupon into buf[LMDB_CODEC_COUPON_REC_MAX]; returns the length. The code is the key,
 * not part of the record. */
size_t lmdb_codec_coupon_encode(const struct store_coupon *c, uint8_t *buf);

/* Decodes the record `v` stored under code `k` into *c; false when it is not one. */
bool lmdb_codec_coupon_decode(const MDB_val *k, const MDB_val *v, struct store_coupon *c);

/* The upload sequence of a stored coupon record, read without decoding the rest. */
bool lmdb_codec_coupon_seq(const MDB_val *v, uint64_t *seq);

/* Encodes a redemption (seq is the key) into buf[LMDB_CODEC_HISTORY_REC_MAX]; returns the
 * length. Decoding fails on anything but a well-formed record under an 8-byte key. */
size_t lmdb_codec_history_encode(const struct store_redemption *h, uint8_t *buf);
bool lmdb_codec_history_decode(const MDB_val *k, const MDB_val *v, struct store_redemption *h);

/* A fresh state: sequences at LMDB_CODEC_FIRST_SEQ, counters 0, an empty `available` cache. */
void lmdb_codec_state_init(struct lmdb_state *s);

/* Encodes the stored part of a state into buf[LMDB_CODEC_STATE_LEN]. */
void lmdb_codec_state_encode(const struct lmdb_state *s, uint8_t *buf);

/* Decodes the meta record into a fresh state (empty `available` cache); false when it is not
 * one (*s is then a fresh state). */
bool lmdb_codec_state_decode(const MDB_val *v, struct lmdb_state *s);

/* True when the stored parts of two states agree. */
bool lmdb_codec_state_stored_equal(const struct lmdb_state *a, const struct lmdb_state *b);

#endif
