/* lmdb_codec.h - how the LMDB backend lays out its keys and records, and the counters it keeps
 * in memory and in the meta record. Pure byte work: no transaction, no I/O.
 *
 * Databases (one LMDB environment, every record with a version byte):
 *   coupons   code -> coupon record (type, kind, discount, expiry, uses, max_uses, upload
 *             sequence, assigned user and time, hold records stored, "redeemed once" flag)
 *   avail     (type, expiry, sequence) -> code, for unassigned coupons: "next coupon" is one
 *             cursor seek from (type, now)
 *   expiry    (expiry, sequence) -> code, for coupons never redeemed (no history record, even
 *             an undone one): what PURGE may delete
 *   history   redemption sequence -> (time, code, type, user, undone time)
 *   meta      "state" -> next sequences and the per-type counters
 * Version 2 (added at the first writable open of an older store, see lmdb_migrate.h):
 *   users     (user, NUL, ~assigned time, ~sequence) -> code: a user's coupons, newest first
 *   code_hist (code, NUL, redemption sequence) -> "": a coupon's redemptions in order
 *   holds     hold sequence -> (expires, type, code, user)
 *   hold_exp  (expires, hold sequence) -> type: holds by end, what EXPIRE_HOLDS removes
 *   hold_code (code, NUL, expires, hold sequence) -> "": a coupon's holds by end, so the ones
 *             past their end are one seek away
 *   rids      (scope length, scope, id) -> (time, rid sequence): its record's key in rid_log
 *   rid_log   (time, rid sequence) -> request id record (its rids key, fingerprint, kind,
 *             outcome): appended in the order kept, and EXPIRE_IDS removes from its head
 * Version 3 (added at the first writable open of an older store; the chain starts there):
 *   audit     record sequence -> (hash, audit record): the audit chain (audit.h), appended in
 *             the transaction of each write; its head (seq, hash) is in the meta state
 * Request ids are the client's, random as often as not: rids takes them in random order, one
 * small entry each, while their records, the bulk, go to the end of rid_log.
 * Integers are big-endian and times have their sign bit flipped, so LMDB's memcmp order of the
 * keys is the order the store needs; "~" is the complement, which reverses it. Users and codes
 * never hold a NUL byte, so NUL ends them inside a key. */
#ifndef COUPOND_LMDB_CODEC_H
#define COUPOND_LMDB_CODEC_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Coupon, redemption and hold sequences start here; 0 means "none". */
#define LMDB_CODEC_FIRST_SEQ 1

/* Big-endian field widths. */
#define LMDB_CODEC_U8  1
#define LMDB_CODEC_U32 4
#define LMDB_CODEC_U64 8

/* avail key: type | expires | seq; expiry and hold_exp key: expires | seq; history and holds
 * key: seq. */
#define LMDB_CODEC_AVAIL_KEY_LEN  (LMDB_CODEC_U8 + 2 * LMDB_CODEC_U64)
#define LMDB_CODEC_EXPIRY_KEY_LEN (2 * LMDB_CODEC_U64)
#define LMDB_CODEC_SEQ_KEY_LEN    LMDB_CODEC_U64

/* users key: user NUL ~time ~seq; code_hist key: code NUL seq; hold_code key: code NUL expires
 * seq; rids key: scope_len scope id; rid_log key (and rids value): time seq, laid out as an
 * expiry key. */
#define LMDB_CODEC_USER_KEY_MAX      (STORE_USER_MAX + 1 + 2 * LMDB_CODEC_U64)
#define LMDB_CODEC_CODE_HIST_KEY_MAX (STORE_CODE_MAX + 1 + LMDB_CODEC_U64)
#define LMDB_CODEC_HOLD_CODE_KEY_MAX (STORE_CODE_MAX + 1 + 2 * LMDB_CODEC_U64)
#define LMDB_CODEC_RID_KEY_MAX       (LMDB_CODEC_U8 + STORE_SCOPE_MAX + STORE_RID_MAX)
/* The longest key of any database: LMDB's key size limit must allow it. */
#define LMDB_CODEC_KEY_MAX LMDB_CODEC_USER_KEY_MAX

/* coupon value: version type kind flags | discount expires | uses max_uses | seq assigned_at |
 * holds (version 2) | user_len user; at most LMDB_CODEC_COUPON_REC_MAX bytes. */
#define LMDB_CODEC_COUPON_FIXED_LEN                                                                \
    (4 * LMDB_CODEC_U8 + 2 * LMDB_CODEC_U64 + 3 * LMDB_CODEC_U32 + 2 * LMDB_CODEC_U64 +            \
     LMDB_CODEC_U8)
#define LMDB_CODEC_COUPON_REC_MAX (LMDB_CODEC_COUPON_FIXED_LEN + STORE_USER_MAX)

/* history value: version time type code_len code user_len user undone (version 2) */
#define LMDB_CODEC_HISTORY_REC_MAX                                                                 \
    (LMDB_CODEC_U8 + 2 * LMDB_CODEC_U64 + 3 * LMDB_CODEC_U8 + STORE_CODE_MAX + STORE_USER_MAX)

/* holds value: version expires type code_len code user_len user */
#define LMDB_CODEC_HOLD_REC_MAX                                                                    \
    (LMDB_CODEC_U8 + LMDB_CODEC_U64 + 3 * LMDB_CODEC_U8 + STORE_CODE_MAX + STORE_USER_MAX)

/* rid_log value: version key_len key kind fp time | redemption hold_seq hold_expires count
 * task_seq task_stamp | has_coupon [code_len code rec_len coupon-record] | n_codes (code_len
 * code)...; the key is the id's rids key, the codes a GENERATE's, any number of them. */
#define LMDB_CODEC_RID_FIXED_LEN                                                                   \
    (3 * LMDB_CODEC_U8 + STORE_FP_BYTES + 7 * LMDB_CODEC_U64 + LMDB_CODEC_U8 + LMDB_CODEC_U32)

/* meta "state": version next_coupon_seq next_redemption_seq next_hold_seq next_rid_seq (the last
 * two from version 2), then per type the LMDB_CODEC_STATE_FIELDS stored counters of struct
 * lmdb_type_state (version 1 had the first LMDB_CODEC_STATE_FIELDS_V1), then (version 3) the
 * audit chain's head: its seq and hash. */
#define LMDB_CODEC_STATE_KEY       "state"
#define LMDB_CODEC_STATE_FIELDS    8
#define LMDB_CODEC_STATE_FIELDS_V1 6
#define LMDB_CODEC_STATE_AUDIT_LEN (LMDB_CODEC_U64 + STORE_AUDIT_HASH_BYTES)
#define LMDB_CODEC_STATE_LEN                                                                       \
    (LMDB_CODEC_U8 + 4 * LMDB_CODEC_U64 +                                                          \
     STORE_NTYPES * LMDB_CODEC_STATE_FIELDS * LMDB_CODEC_U64 + LMDB_CODEC_STATE_AUDIT_LEN)
#define LMDB_CODEC_STATE_VERSION 3 /* what this code writes; it reads 1 and 2 too */

/* audit value: hash | record (audit.h); the key is the record's seq, as in history. */
#define LMDB_CODEC_AUDIT_VAL_MAX (STORE_AUDIT_HASH_BYTES + STORE_AUDIT_REC_MAX)

struct lmdb_type_state {
    uint64_t created, assigned, redeemed, purged;
    uint64_t purged_assigned; /* assigned coupons later purged: assigned = records + this */
    uint64_t unassigned;      /* == avail index entries of the type */
    uint64_t holds;           /* == hold records of the type, live or past their end */
    uint64_t unredeemed;      /* == undone history records of the type */
    /* Not stored: avail entries of the type with expires < watermark (see lmdb_index.h). */
    uint64_t expired_unassigned;
};

/* Everything the backend keeps in memory about the data: the stored counters and sequences, and
 * the `available` cache. Plain data: whoever holds a copy owns it (see lmdb_store.c). */
struct lmdb_state {
    uint64_t next_coupon_seq;
    uint64_t next_redemption_seq;
    uint64_t next_hold_seq;
    uint64_t next_rid_seq; /* rid_log keys: (time, this) is unique and in order */
    int64_t watermark;     /* not stored: expired_unassigned counts avail entries below it */
    struct lmdb_type_state t[STORE_NTYPES];
    struct store_audit_head audit; /* the audit chain's head (zero before version 3) */
};

/* A coupon as stored: what the store shows, and what only the backend needs. */
struct lmdb_coupon {
    struct store_coupon pub; /* pub.held is not stored: it is counted at a time (lmdb_hold.h) */
    uint32_t holds;          /* hold records of the coupon, live or past their end */
    bool redeemed;           /* it has a history record: out of the expiry index for good */
};

/* A hold record with its key. */
struct lmdb_hold {
    uint64_t seq;
    int64_t expires;
    uint8_t type;
    char code[STORE_CODE_MAX + 1];
    char user[STORE_USER_MAX + 1];
};

/* A request id record: what a write with an id left, to replay it. `key` and `codes` point into
 * the decoded value (valid as long as it is): the id's rids key, and n_codes codes, each a
 * length byte and the code. */
struct lmdb_rid_rec {
    const uint8_t *key;
    size_t key_len;
    uint8_t kind; /* enum store_op_kind */
    uint8_t fp[STORE_FP_BYTES];
    int64_t time;
    uint64_t redemption, hold_seq, count, task_seq;
    int64_t hold_expires, task_stamp;
    bool has_coupon;
    struct store_coupon coupon; /* held as it was shown */
    uint32_t n_codes;
    const uint8_t *codes;
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

/* The expiry (or hold_exp) key of (expires, seq) into k[LMDB_CODEC_EXPIRY_KEY_LEN], and back. */
void lmdb_codec_expiry_key(int64_t expires, uint64_t seq, uint8_t *k);
bool lmdb_codec_expiry_key_decode(const MDB_val *k, int64_t *expires, uint64_t *seq);

/* The users key of (user, assigned_at, seq) into k[LMDB_CODEC_USER_KEY_MAX]; returns its length.
 * With prefix_only, only "user NUL", where a user's entries start. Decoding fails on anything
 * but a well-formed key. */
size_t lmdb_codec_user_key(const char *user, int64_t assigned_at, uint64_t seq, bool prefix_only,
                           uint8_t *k);
bool lmdb_codec_user_key_decode(const MDB_val *k, char *user, int64_t *assigned_at, uint64_t *seq);

/* The code_hist key of (code, seq) into k[LMDB_CODEC_CODE_HIST_KEY_MAX]; returns its length.
 * With prefix_only, only "code NUL". */
size_t lmdb_codec_code_hist_key(const char *code, uint64_t seq, bool prefix_only, uint8_t *k);
bool lmdb_codec_code_hist_key_decode(const MDB_val *k, char *code, uint64_t *seq);

/* The hold_code key of (code, expires, seq) into k[LMDB_CODEC_HOLD_CODE_KEY_MAX]; returns its
 * length. With prefix_only, only "code NUL". */
size_t lmdb_codec_hold_code_key(const char *code, int64_t expires, uint64_t seq, bool prefix_only,
                                uint8_t *k);
bool lmdb_codec_hold_code_key_decode(const MDB_val *k, char *code, int64_t *expires, uint64_t *seq);

/* True when key k starts with the `n` bytes of prefix p. */
bool lmdb_codec_has_prefix(const MDB_val *k, const uint8_t *p, size_t n);

/* The rids key of a request id into k[LMDB_CODEC_RID_KEY_MAX]; returns its length, 0 when the id
 * or scope is too long (or the id empty). */
size_t lmdb_codec_rid_key(const struct store_rid *rid, uint8_t *k);

/* Copies an LMDB value holding a code into code[STORE_CODE_MAX + 1], NUL-terminated; false when
 * it is not a valid code (code is then garbage). */
bool lmdb_codec_code_from_val(const MDB_val *v, char *code);

/* Encodes a coupon into buf[LMDB_CODEC_COUPON_REC_MAX]; returns the length. The code is the key,
 * not part of the record; pub.held is not stored. */
size_t lmdb_codec_coupon_encode(const struct lmdb_coupon *c, uint8_t *buf);

/* Decodes the record `v` stored under code `k` into *c (pub.held = 0); false when it is not one.
 * A version 1 record has no holds and was redeemed when it has uses (there was no undo). */
bool lmdb_codec_coupon_decode(const MDB_val *k, const MDB_val *v, struct lmdb_coupon *c);

/* The upload sequence of a stored coupon record, read without decoding the rest. */
bool lmdb_codec_coupon_seq(const MDB_val *v, uint64_t *seq);

/* Encodes a redemption (seq is the key) into buf[LMDB_CODEC_HISTORY_REC_MAX]; returns the
 * length. Decoding fails on anything but a well-formed record under an 8-byte key; a version 1
 * record was never undone. */
size_t lmdb_codec_history_encode(const struct store_redemption *h, uint8_t *buf);
bool lmdb_codec_history_decode(const MDB_val *k, const MDB_val *v, struct store_redemption *h);

/* Encodes a hold (seq is the key) into buf[LMDB_CODEC_HOLD_REC_MAX]; returns the length. */
size_t lmdb_codec_hold_encode(const struct lmdb_hold *h, uint8_t *buf);
bool lmdb_codec_hold_decode(const MDB_val *k, const MDB_val *v, struct lmdb_hold *h);

/* A request id record: its length with n_codes codes of total length codes_len (each code's
 * bytes), then the encoding of everything but the codes, which the caller appends with
 * lmdb_codec_rid_code_put at the returned offset. Decoding checks the whole record, codes
 * included; lmdb_codec_rid_code_next reads the codes in order (pos starts at 0). */
size_t lmdb_codec_rid_len(const struct lmdb_rid_rec *r, size_t codes_len);
size_t lmdb_codec_rid_encode(const struct lmdb_rid_rec *r, uint8_t *buf);
size_t lmdb_codec_rid_code_put(uint8_t *buf, size_t off, const char *code);
bool lmdb_codec_rid_decode(const MDB_val *v, struct lmdb_rid_rec *r);
void lmdb_codec_rid_code_next(const struct lmdb_rid_rec *r, size_t *pos, char *code);

/* A fresh state: sequences at LMDB_CODEC_FIRST_SEQ, counters 0, an empty `available` cache. */
void lmdb_codec_state_init(struct lmdb_state *s);

/* Encodes the stored part of a state into buf[LMDB_CODEC_STATE_LEN] (the current version). */
void lmdb_codec_state_encode(const struct lmdb_state *s, uint8_t *buf);

/* Decodes the meta record (version 1, 2 or 3) into a fresh state (empty `available` cache) and its
 * version into *version; false when it is not one (*s is then a fresh state). */
bool lmdb_codec_state_decode(const MDB_val *v, struct lmdb_state *s, unsigned *version);

/* True when the stored parts of two states agree. */
bool lmdb_codec_state_stored_equal(const struct lmdb_state *a, const struct lmdb_state *b);

#endif
