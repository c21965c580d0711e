/* lmdb_codec.c - keys and records of the LMDB backend, byte by byte (see lmdb_codec.h). */
#include "lmdb_codec.h"

#include <string.h>

#include "rules.h"

/* Record format versions: a reader refuses a version it does not know rather than guess. Version
 * 2 records (coupons with holds and flags, redemptions with an undo time) are written from this
 * release on; version 1 records, of a store written by the previous release, are read as they
 * are and rewritten when they change. */
#define COUPON_VERSION     2
#define COUPON_VERSION_V1  1
#define HISTORY_VERSION    2
#define HISTORY_VERSION_V1 1
#define HOLD_VERSION       1
#define RID_VERSION        1

/* Coupon flags. */
#define COUPON_REDEEMED 0x01 /* redeemed once: it has history, it is never purged */

/* A version 1 coupon record is the version 2 one without the holds field. */
#define COUPON_FIXED_LEN_V1 (LMDB_CODEC_COUPON_FIXED_LEN - LMDB_CODEC_U32)
/* Where a coupon record keeps its seq, so an upload can read it without decoding the rest (the
 * same in both versions). */
#define COUPON_SEQ_OFF (4 * LMDB_CODEC_U8 + 2 * LMDB_CODEC_U64 + 2 * LMDB_CODEC_U32)

/* The sign bit flipped makes signed times sort as unsigned big-endian bytes. */
#define TIME_KEY_FLIP (UINT64_C(1) << 63)

static const char *const type_names[STORE_NTYPES] = {"NONE", "FREE", "STANDARD", "MEGADEAL"};

/* LMDB values are unaligned, so fields are assembled byte by byte. */
struct wbuf {
    uint8_t *p;
    size_t len;
};

struct rbuf {
    const uint8_t *p;
    size_t len, off;
    bool bad; /* a read went past the end */
};

const char *
lmdb_codec_type_name(unsigned type)
{
    return type < STORE_NTYPES ? type_names[type] : "?";
}

void
lmdb_codec_put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

uint64_t
lmdb_codec_get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int64_t
u64_to_i64(uint64_t u)
{
    int64_t v;

    memcpy(&v, &u, sizeof v); /* two's complement without implementation-defined casts */
    return v;
}

static uint64_t
i64_to_u64(int64_t v)
{
    uint64_t u;

    memcpy(&u, &v, sizeof u);
    return u;
}

static void
w_uint(struct wbuf *w, uint64_t v, size_t n)
{
    lmdb_codec_put_be(w->p + w->len, v, n);
    w->len += n;
}

static void
w_bytes(struct wbuf *w, const void *src, size_t n)
{
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static uint64_t
r_uint(struct rbuf *r, size_t n)
{
    uint64_t v;

    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return 0;
    }
    v = lmdb_codec_get_be(r->p + r->off, n);
    r->off += n;
    return v;
}

static const uint8_t *
r_bytes(struct rbuf *r, size_t n)
{
    const uint8_t *p = r->p + r->off;

    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    r->off += n;
    return p;
}

static struct rbuf
rbuf_of(const MDB_val *v)
{
    return (struct rbuf){.p = v->mv_data, .len = v->mv_size};
}

/* --- keys --- */

static uint64_t
time_key(int64_t t)
{
    return i64_to_u64(t) ^ TIME_KEY_FLIP;
}

static int64_t
time_of_key(const uint8_t *p)
{
    return u64_to_i64(lmdb_codec_get_be(p, LMDB_CODEC_U64) ^ TIME_KEY_FLIP);
}

void
lmdb_codec_avail_key(uint8_t type, int64_t expires, uint64_t seq, uint8_t *k)
{
    k[0] = type;
    lmdb_codec_put_be(k + LMDB_CODEC_U8, time_key(expires), LMDB_CODEC_U64);
    lmdb_codec_put_be(k + LMDB_CODEC_U8 + LMDB_CODEC_U64, seq, LMDB_CODEC_U64);
}

bool
lmdb_codec_avail_key_decode(const MDB_val *k, uint8_t *type, int64_t *expires, uint64_t *seq)
{
    const uint8_t *p = k->mv_data;

    if (k->mv_size != LMDB_CODEC_AVAIL_KEY_LEN || p[0] >= STORE_NTYPES)
        return false;
    *type = p[0];
    *expires = time_of_key(p + LMDB_CODEC_U8);
    *seq = lmdb_codec_get_be(p + LMDB_CODEC_U8 + LMDB_CODEC_U64, LMDB_CODEC_U64);
    return true;
}

void
lmdb_codec_expiry_key(int64_t expires, uint64_t seq, uint8_t *k)
{
    lmdb_codec_put_be(k, time_key(expires), LMDB_CODEC_U64);
    lmdb_codec_put_be(k + LMDB_CODEC_U64, seq, LMDB_CODEC_U64);
}

bool
lmdb_codec_expiry_key_decode(const MDB_val *k, int64_t *expires, uint64_t *seq)
{
    const uint8_t *p = k->mv_data;

    if (k->mv_size != LMDB_CODEC_EXPIRY_KEY_LEN)
        return false;
    *expires = time_of_key(p);
    *seq = lmdb_codec_get_be(p + LMDB_CODEC_U64, LMDB_CODEC_U64);
    return true;
}

/* "text NUL" at the start of a key; returns its length. */
static size_t
text_prefix(const char *text, size_t max, uint8_t *k)
{
    size_t n = strnlen(text, max);

    memcpy(k, text, n);
    k[n] = 0;
    return n + 1;
}

/* Splits a key "text NUL tail" with a tail of `tail` bytes: copies the text (1 to max bytes, no
 * NUL) into out[max + 1]; returns the tail, or NULL when the key is not of that form. */
static const uint8_t *
text_split(const MDB_val *k, size_t max, size_t tail, char *out)
{
    const uint8_t *p = k->mv_data;
    size_t n;

    if (k->mv_size < 2 + tail || k->mv_size - tail - 1 > max)
        return NULL;
    n = k->mv_size - tail - 1;
    if (p[n] != 0 || memchr(p, 0, n) != NULL)
        return NULL;
    memcpy(out, p, n);
    out[n] = '\0';
    return p + n + 1;
}

size_t
lmdb_codec_user_key(const char *user, int64_t assigned_at, uint64_t seq, bool prefix_only,
                    uint8_t *k)
{
    size_t n = text_prefix(user, STORE_USER_MAX, k);

    if (prefix_only)
        return n;
    lmdb_codec_put_be(k + n, ~time_key(assigned_at), LMDB_CODEC_U64);
    lmdb_codec_put_be(k + n + LMDB_CODEC_U64, ~seq, LMDB_CODEC_U64);
    return n + 2 * LMDB_CODEC_U64;
}

bool
lmdb_codec_user_key_decode(const MDB_val *k, char *user, int64_t *assigned_at, uint64_t *seq)
{
    const uint8_t *t = text_split(k, STORE_USER_MAX, 2 * LMDB_CODEC_U64, user);

    if (t == NULL)
        return false;
    *assigned_at = u64_to_i64(~lmdb_codec_get_be(t, LMDB_CODEC_U64) ^ TIME_KEY_FLIP);
    *seq = ~lmdb_codec_get_be(t + LMDB_CODEC_U64, LMDB_CODEC_U64);
    return true;
}

size_t
lmdb_codec_code_hist_key(const char *code, uint64_t seq, bool prefix_only, uint8_t *k)
{
    size_t n = text_prefix(code, STORE_CODE_MAX, k);

    if (prefix_only)
        return n;
    lmdb_codec_put_be(k + n, seq, LMDB_CODEC_U64);
    return n + LMDB_CODEC_U64;
}

bool
lmdb_codec_code_hist_key_decode(const MDB_val *k, char *code, uint64_t *seq)
{
    const uint8_t *t = text_split(k, STORE_CODE_MAX, LMDB_CODEC_U64, code);

    if (t == NULL)
        return false;
    *seq = lmdb_codec_get_be(t, LMDB_CODEC_U64);
    return true;
}

size_t
lmdb_codec_hold_code_key(const char *code, int64_t expires, uint64_t seq, bool prefix_only,
                         uint8_t *k)
{
    size_t n = text_prefix(code, STORE_CODE_MAX, k);

    if (prefix_only)
        return n;
    lmdb_codec_expiry_key(expires, seq, k + n);
    return n + LMDB_CODEC_EXPIRY_KEY_LEN;
}

bool
lmdb_codec_hold_code_key_decode(const MDB_val *k, char *code, int64_t *expires, uint64_t *seq)
{
    const uint8_t *t = text_split(k, STORE_CODE_MAX, LMDB_CODEC_EXPIRY_KEY_LEN, code);
    MDB_val tail = {LMDB_CODEC_EXPIRY_KEY_LEN, (void *)t};

    return t != NULL && lmdb_codec_expiry_key_decode(&tail, expires, seq);
}

bool
lmdb_codec_has_prefix(const MDB_val *k, const uint8_t *p, size_t n)
{
    return n == 0 || (k->mv_size >= n && memcmp(k->mv_data, p, n) == 0);
}

size_t
lmdb_codec_rid_key(const struct store_rid *rid, uint8_t *k)
{
    size_t sn = strnlen(rid->scope, STORE_SCOPE_MAX + 1);
    size_t in = strnlen(rid->id, STORE_RID_MAX + 1);

    if (sn > STORE_SCOPE_MAX || in == 0 || in > STORE_RID_MAX)
        return 0;
    k[0] = (uint8_t)sn;
    memcpy(k + LMDB_CODEC_U8, rid->scope, sn);
    memcpy(k + LMDB_CODEC_U8 + sn, rid->id, in);
    return LMDB_CODEC_U8 + sn + in;
}

bool
lmdb_codec_code_from_val(const MDB_val *v, char *code)
{
    if (v->mv_size == 0 || v->mv_size > STORE_CODE_MAX)
        return false;
    memcpy(code, v->mv_data, v->mv_size);
    code[v->mv_size] = '\0';
    return rules_code_len(code) == v->mv_size;
}

/* --- records --- */

/* A length byte and `n` bytes of text (at most max). */
static void
w_text(struct wbuf *w, const char *text, size_t max)
{
    size_t n = strnlen(text, max);

    w_uint(w, n, LMDB_CODEC_U8);
    w_bytes(w, text, n);
}

/* Reads a length byte and the text into out[max + 1]; false when it is longer than max or
 * shorter than min (the buffer is then marked bad). */
static bool
r_text(struct rbuf *r, char *out, size_t min, size_t max)
{
    size_t n = (size_t)r_uint(r, LMDB_CODEC_U8);
    const uint8_t *p = r_bytes(r, n);

    if (p == NULL || n < min || n > max) {
        r->bad = true;
        return false;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

size_t
lmdb_codec_coupon_encode(const struct lmdb_coupon *c, uint8_t *buf)
{
    struct wbuf w = {buf, 0};

    w_uint(&w, COUPON_VERSION, LMDB_CODEC_U8);
    w_uint(&w, c->pub.type, LMDB_CODEC_U8);
    w_uint(&w, c->pub.kind, LMDB_CODEC_U8);
    w_uint(&w, c->redeemed ? COUPON_REDEEMED : 0, LMDB_CODEC_U8);
    w_uint(&w, i64_to_u64(c->pub.discount), LMDB_CODEC_U64);
    w_uint(&w, i64_to_u64(c->pub.expires), LMDB_CODEC_U64);
    w_uint(&w, c->pub.uses, LMDB_CODEC_U32);
    w_uint(&w, c->pub.max_uses, LMDB_CODEC_U32);
    w_uint(&w, c->pub.seq, LMDB_CODEC_U64);
    w_uint(&w, i64_to_u64(c->pub.assigned_at), LMDB_CODEC_U64);
    w_uint(&w, c->holds, LMDB_CODEC_U32);
    w_text(&w, c->pub.user, STORE_USER_MAX);
    return w.len;
}

bool
lmdb_codec_coupon_decode(const MDB_val *k, const MDB_val *v, struct lmdb_coupon *c)
{
    struct rbuf r = rbuf_of(v);
    struct store_coupon *p = &c->pub;
    unsigned version, flags;

    if (!lmdb_codec_code_from_val(k, p->code))
        return false;
    version = (unsigned)r_uint(&r, LMDB_CODEC_U8);
    if (version != COUPON_VERSION && version != COUPON_VERSION_V1)
        return false;
    p->type = (uint8_t)r_uint(&r, LMDB_CODEC_U8);
    p->kind = (uint8_t)r_uint(&r, LMDB_CODEC_U8);
    flags = (unsigned)r_uint(&r, LMDB_CODEC_U8); /* version 1: reserved, always 0 */
    p->discount = u64_to_i64(r_uint(&r, LMDB_CODEC_U64));
    p->expires = u64_to_i64(r_uint(&r, LMDB_CODEC_U64));
    p->uses = (uint32_t)r_uint(&r, LMDB_CODEC_U32);
    p->max_uses = (uint32_t)r_uint(&r, LMDB_CODEC_U32);
    p->seq = r_uint(&r, LMDB_CODEC_U64);
    p->assigned_at = u64_to_i64(r_uint(&r, LMDB_CODEC_U64));
    c->holds = version == COUPON_VERSION ? (uint32_t)r_uint(&r, LMDB_CODEC_U32) : 0;
    c->redeemed = version == COUPON_VERSION ? (flags & COUPON_REDEEMED) != 0 : p->uses > 0;
    p->held = 0;
    return r_text(&r, p->user, 0, STORE_USER_MAX) && r.off == r.len && p->type < STORE_NTYPES &&
           p->kind <= STORE_KIND_PERCENT && (flags & ~(unsigned)COUPON_REDEEMED) == 0;
}

bool
lmdb_codec_coupon_seq(const MDB_val *v, uint64_t *seq)
{
    const uint8_t *p = v->mv_data;

    if (v->mv_size < COUPON_FIXED_LEN_V1 || (p[0] != COUPON_VERSION && p[0] != COUPON_VERSION_V1))
        return false;
    *seq = lmdb_codec_get_be(p + COUPON_SEQ_OFF, LMDB_CODEC_U64);
    return true;
}

size_t
lmdb_codec_history_encode(const struct store_redemption *h, uint8_t *buf)
{
    struct wbuf w = {buf, 0};

    w_uint(&w, HISTORY_VERSION, LMDB_CODEC_U8);
    w_uint(&w, i64_to_u64(h->time), LMDB_CODEC_U64);
    w_uint(&w, h->type, LMDB_CODEC_U8);
    w_text(&w, h->code, STORE_CODE_MAX);
    w_text(&w, h->user, STORE_USER_MAX);
    w_uint(&w, i64_to_u64(h->undone), LMDB_CODEC_U64);
    return w.len;
}

bool
lmdb_codec_history_decode(const MDB_val *k, const MDB_val *v, struct store_redemption *h)
{
    struct rbuf r = rbuf_of(v);
    unsigned version;

    if (k->mv_size != LMDB_CODEC_SEQ_KEY_LEN)
        return false;
    version = (unsigned)r_uint(&r, LMDB_CODEC_U8);
    if (version != HISTORY_VERSION && version != HISTORY_VERSION_V1)
        return false;
    h->seq = lmdb_codec_get_be(k->mv_data, LMDB_CODEC_SEQ_KEY_LEN);
    h->time = u64_to_i64(r_uint(&r, LMDB_CODEC_U64));
    h->type = (uint8_t)r_uint(&r, LMDB_CODEC_U8);
    if (!r_text(&r, h->code, 1, STORE_CODE_MAX) || !r_text(&r, h->user, 1, STORE_USER_MAX))
        return false;
    h->undone = version == HISTORY_VERSION ? u64_to_i64(r_uint(&r, LMDB_CODEC_U64)) : 0;
    return !r.bad && r.off == r.len && h->type < STORE_NTYPES;
}

size_t
lmdb_codec_hold_encode(const struct lmdb_hold *h, uint8_t *buf)
{
    struct wbuf w = {buf, 0};

    w_uint(&w, HOLD_VERSION, LMDB_CODEC_U8);
    w_uint(&w, i64_to_u64(h->expires), LMDB_CODEC_U64);
    w_uint(&w, h->type, LMDB_CODEC_U8);
    w_text(&w, h->code, STORE_CODE_MAX);
    w_text(&w, h->user, STORE_USER_MAX);
    return w.len;
}

bool
lmdb_codec_hold_decode(const MDB_val *k, const MDB_val *v, struct lmdb_hold *h)
{
    struct rbuf r = rbuf_of(v);

    if (k->mv_size != LMDB_CODEC_SEQ_KEY_LEN || r_uint(&r, LMDB_CODEC_U8) != HOLD_VERSION)
        return false;
    h->seq = lmdb_codec_get_be(k->mv_data, LMDB_CODEC_SEQ_KEY_LEN);
    h->expires = u64_to_i64(r_uint(&r, LMDB_CODEC_U64));
    h->type = (uint8_t)r_uint(&r, LMDB_CODEC_U8);
    if (!r_text(&r, h->code, 1, STORE_CODE_MAX) || !r_text(&r, h->user, 1, STORE_USER_MAX))
        return false;
    return !r.bad && r.off == r.len && h->type < STORE_NTYPES;
}

/* The coupon part of a request id record: the code and the record, with `held` in place of the
 * holds count, as it was shown. */
static size_t
rid_coupon_len(const struct store_coupon *c)
{
    return 2 * LMDB_CODEC_U8 + strnlen(c->code, STORE_CODE_MAX) + LMDB_CODEC_COUPON_FIXED_LEN +
           strnlen(c->user, STORE_USER_MAX);
}

size_t
lmdb_codec_rid_len(const struct lmdb_rid_rec *r, size_t codes_len)
{
    return LMDB_CODEC_RID_FIXED_LEN + r->key_len +
           (r->has_coupon ? rid_coupon_len(&r->coupon) : 0) + (size_t)r->n_codes * LMDB_CODEC_U8 +
           codes_len;
}

size_t
lmdb_codec_rid_encode(const struct lmdb_rid_rec *r, uint8_t *buf)
{
    struct wbuf w = {buf, 0};

    w_uint(&w, RID_VERSION, LMDB_CODEC_U8);
    w_uint(&w, r->key_len, LMDB_CODEC_U8);
    w_bytes(&w, r->key, r->key_len);
    w_uint(&w, r->kind, LMDB_CODEC_U8);
    w_bytes(&w, r->fp, STORE_FP_BYTES);
    w_uint(&w, i64_to_u64(r->time), LMDB_CODEC_U64);
    w_uint(&w, r->redemption, LMDB_CODEC_U64);
    w_uint(&w, r->hold_seq, LMDB_CODEC_U64);
    w_uint(&w, i64_to_u64(r->hold_expires), LMDB_CODEC_U64);
    w_uint(&w, r->count, LMDB_CODEC_U64);
    w_uint(&w, r->task_seq, LMDB_CODEC_U64);
    w_uint(&w, i64_to_u64(r->task_stamp), LMDB_CODEC_U64);
    w_uint(&w, r->has_coupon, LMDB_CODEC_U8);
    if (r->has_coupon) {
        struct lmdb_coupon c = {.pub = r->coupon, .holds = r->coupon.held};
        uint8_t rec[LMDB_CODEC_COUPON_REC_MAX];
        size_t n = lmdb_codec_coupon_encode(&c, rec);

        w_text(&w, r->coupon.code, STORE_CODE_MAX);
        w_uint(&w, n, LMDB_CODEC_U8);
        w_bytes(&w, rec, n);
    }
    w_uint(&w, r->n_codes, LMDB_CODEC_U32);
    return w.len;
}

size_t
lmdb_codec_rid_code_put(uint8_t *buf, size_t off, const char *code)
{
    struct wbuf w = {buf, off};

    w_text(&w, code, STORE_CODE_MAX);
    return w.len;
}

/* The coupon part of a request id record into r->coupon. */
static bool
rid_coupon_decode(struct rbuf *r, struct store_coupon *out)
{
    char code[STORE_CODE_MAX + 1];
    struct lmdb_coupon c;
    MDB_val k, v;

    if (!r_text(r, code, 1, STORE_CODE_MAX))
        return false;
    k = (MDB_val){strlen(code), code};
    v.mv_size = (size_t)r_uint(r, LMDB_CODEC_U8);
    v.mv_data = (void *)r_bytes(r, v.mv_size);
    if (v.mv_data == NULL || !lmdb_codec_coupon_decode(&k, &v, &c))
        return false;
    *out = c.pub;
    out->held = c.holds;
    return true;
}

bool
lmdb_codec_rid_decode(const MDB_val *v, struct lmdb_rid_rec *r)
{
    struct rbuf rb = rbuf_of(v);
    const uint8_t *fp;
    char code[STORE_CODE_MAX + 1];

    memset(r, 0, sizeof *r);
    if (r_uint(&rb, LMDB_CODEC_U8) != RID_VERSION)
        return false;
    r->key_len = (size_t)r_uint(&rb, LMDB_CODEC_U8);
    if ((r->key = r_bytes(&rb, r->key_len)) == NULL || r->key_len == 0 ||
        r->key_len > LMDB_CODEC_RID_KEY_MAX)
        return false;
    r->kind = (uint8_t)r_uint(&rb, LMDB_CODEC_U8);
    if ((fp = r_bytes(&rb, STORE_FP_BYTES)) == NULL)
        return false;
    memcpy(r->fp, fp, STORE_FP_BYTES);
    r->time = u64_to_i64(r_uint(&rb, LMDB_CODEC_U64));
    r->redemption = r_uint(&rb, LMDB_CODEC_U64);
    r->hold_seq = r_uint(&rb, LMDB_CODEC_U64);
    r->hold_expires = u64_to_i64(r_uint(&rb, LMDB_CODEC_U64));
    r->count = r_uint(&rb, LMDB_CODEC_U64);
    r->task_seq = r_uint(&rb, LMDB_CODEC_U64);
    r->task_stamp = u64_to_i64(r_uint(&rb, LMDB_CODEC_U64));
    r->has_coupon = r_uint(&rb, LMDB_CODEC_U8) != 0;
    if (r->has_coupon && !rid_coupon_decode(&rb, &r->coupon))
        return false;
    r->n_codes = (uint32_t)r_uint(&rb, LMDB_CODEC_U32);
    r->codes = rb.p + rb.off;
    for (uint32_t i = 0; i < r->n_codes && !rb.bad; i++)
        r_text(&rb, code, 1, STORE_CODE_MAX);
    return !rb.bad && rb.off == rb.len && r->kind < STORE_NOPS;
}

void
lmdb_codec_rid_code_next(const struct lmdb_rid_rec *r, size_t *pos, char *code)
{
    size_t n = r->codes[*pos];

    memcpy(code, r->codes + *pos + 1, n);
    code[n] = '\0';
    *pos += 1 + n;
}

/* --- the meta state --- */

void
lmdb_codec_state_init(struct lmdb_state *s)
{
    memset(s, 0, sizeof *s);
    s->next_coupon_seq = LMDB_CODEC_FIRST_SEQ;
    s->next_redemption_seq = LMDB_CODEC_FIRST_SEQ;
    s->next_hold_seq = LMDB_CODEC_FIRST_SEQ;
    s->next_rid_seq = LMDB_CODEC_FIRST_SEQ;
    s->watermark = INT64_MIN; /* nothing expires before the first instant */
}

/* The stored counters of a type, in their order in the record. */
static void
state_fields(struct lmdb_type_state *ts, uint64_t *f[LMDB_CODEC_STATE_FIELDS])
{
    uint64_t *const all[LMDB_CODEC_STATE_FIELDS] = {
        &ts->created,         &ts->assigned,   &ts->redeemed, &ts->purged,
        &ts->purged_assigned, &ts->unassigned, &ts->holds,    &ts->unredeemed};

    memcpy(f, all, sizeof all);
}

void
lmdb_codec_state_encode(const struct lmdb_state *s, uint8_t *buf)
{
    struct wbuf w = {buf, 0};

    w_uint(&w, LMDB_CODEC_STATE_VERSION, LMDB_CODEC_U8);
    w_uint(&w, s->next_coupon_seq, LMDB_CODEC_U64);
    w_uint(&w, s->next_redemption_seq, LMDB_CODEC_U64);
    w_uint(&w, s->next_hold_seq, LMDB_CODEC_U64);
    w_uint(&w, s->next_rid_seq, LMDB_CODEC_U64);
    for (int t = 0; t < STORE_NTYPES; t++) {
        struct lmdb_type_state ts = s->t[t];
        uint64_t *f[LMDB_CODEC_STATE_FIELDS];

        state_fields(&ts, f);
        for (int i = 0; i < LMDB_CODEC_STATE_FIELDS; i++)
            w_uint(&w, *f[i], LMDB_CODEC_U64);
    }
    w_uint(&w, s->audit.seq, LMDB_CODEC_U64);
    w_bytes(&w, s->audit.hash, sizeof s->audit.hash);
}

bool
lmdb_codec_state_decode(const MDB_val *v, struct lmdb_state *s, unsigned *version)
{
    struct rbuf r = rbuf_of(v);
    int fields;

    lmdb_codec_state_init(s);
    *version = (unsigned)r_uint(&r, LMDB_CODEC_U8);
    if (*version < 1 || *version > LMDB_CODEC_STATE_VERSION)
        return false;
    fields = *version == 1 ? LMDB_CODEC_STATE_FIELDS_V1 : LMDB_CODEC_STATE_FIELDS;
    s->next_coupon_seq = r_uint(&r, LMDB_CODEC_U64);
    s->next_redemption_seq = r_uint(&r, LMDB_CODEC_U64);
    if (*version != 1) {
        s->next_hold_seq = r_uint(&r, LMDB_CODEC_U64);
        s->next_rid_seq = r_uint(&r, LMDB_CODEC_U64);
    }
    for (int t = 0; t < STORE_NTYPES; t++) {
        uint64_t *f[LMDB_CODEC_STATE_FIELDS];

        state_fields(&s->t[t], f);
        for (int i = 0; i < fields; i++)
            *f[i] = r_uint(&r, LMDB_CODEC_U64);
    }
    if (*version >= 3) {
        const uint8_t *h;

        s->audit.seq = r_uint(&r, LMDB_CODEC_U64);
        if ((h = r_bytes(&r, sizeof s->audit.hash)) != NULL)
            memcpy(s->audit.hash, h, sizeof s->audit.hash);
    }
    if (r.bad || r.off != r.len) {
        lmdb_codec_state_init(s);
        return false;
    }
    return true;
}

bool
lmdb_codec_state_stored_equal(const struct lmdb_state *a, const struct lmdb_state *b)
{
    uint8_t ea[LMDB_CODEC_STATE_LEN], eb[LMDB_CODEC_STATE_LEN];

    lmdb_codec_state_encode(a, ea);
    lmdb_codec_state_encode(b, eb);
    return memcmp(ea, eb, sizeof ea) == 0;
}
