/* lmdb_codec.c - keys and records of the LMDB backend, byte by byte (see lmdb_codec.h). */
#include "lmdb_codec.h"

#include <string.h>

#include "rules.h"

/* Record format versions: a reader refuses a version it does not know rather than guess. */
#define COUPON_VERSION  1
#define HISTORY_VERSION 1
#define STATE_VERSION   1

/* Where a coupon record keeps its seq, so an upload can read it without decoding the rest. */
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

size_t
lmdb_codec_coupon_encode(const struct store_coupon *c, uint8_t *buf)
{
    struct wbuf w = {buf, 0};
    size_t ulen = strnlen(c->user, STORE_USER_MAX);

    w_uint(&w, COUPON_VERSION, LMDB_CODEC_U8);
    w_uint(&w, c->type, LMDB_CODEC_U8);
    w_uint(&w, c->kind, LMDB_CODEC_U8);
    w_uint(&w, 0, LMDB_CODEC_U8); /* flags: none defined yet */
    w_uint(&w, i64_to_u64(c->discount), LMDB_CODEC_U64);
    w_uint(&w, i64_to_u64(c->expires), LMDB_CODEC_U64);
    w_uint(&w, c->uses, LMDB_CODEC_U32);
    w_uint(&w, c->max_uses, LMDB_CODEC_U32);
    w_uint(&w, c->seq, LMDB_CODEC_U64);
    w_uint(&w, i64_to_u64(c->assigned_at), LMDB_CODEC_U64);
    w_uint(&w, ulen, LMDB_CODEC_U8);
    w_bytes(&w, c->user, ulen);
    return w.len;
}

bool
lmdb_codec_coupon_decode(const MDB_val *k, const MDB_val *v, struct store_coupon *c)
{
    struct rbuf r = rbuf_of(v);
    const uint8_t *user;
    size_t ulen;

    if (!lmdb_codec_code_from_val(k, c->code) || r_uint(&r, LMDB_CODEC_U8) != COUPON_VERSION)
        return false;
    c->type = (uint8_t)r_uint(&r, LMDB_CODEC_U8);
    c->kind = (uint8_t)r_uint(&r, LMDB_CODEC_U8);
    (void)r_uint(&r, LMDB_CODEC_U8); /* flags: reserved */
    c->discount = u64_to_i64(r_uint(&r, LMDB_CODEC_U64));
    c->expires = u64_to_i64(r_uint(&r, LMDB_CODEC_U64));
    c->uses = (uint32_t)r_uint(&r, LMDB_CODEC_U32);
    c->max_uses = (uint32_t)r_uint(&r, LMDB_CODEC_U32);
    c->held = 0; /* this record version has no holds */
    c->seq = r_uint(&r, LMDB_CODEC_U64);
    c->assigned_at = u64_to_i64(r_uint(&r, LMDB_CODEC_U64));
    ulen = (size_t)r_uint(&r, LMDB_CODEC_U8);
    user = r_bytes(&r, ulen);
    if (r.bad || r.off != r.len || c->type >= STORE_NTYPES || c->kind > STORE_KIND_PERCENT ||
        ulen > STORE_USER_MAX)
        return false;
    memcpy(c->user, user, ulen);
    c->user[ulen] = '\0';
    return true;
}

bool
lmdb_codec_coupon_seq(const MDB_val *v, uint64_t *seq)
{
    const uint8_t *p = v->mv_data;

    if (v->mv_size < LMDB_CODEC_COUPON_FIXED_LEN || p[0] != COUPON_VERSION)
        return false;
    *seq = lmdb_codec_get_be(p + COUPON_SEQ_OFF, LMDB_CODEC_U64);
    return true;
}

size_t
lmdb_codec_history_encode(const struct store_redemption *h, uint8_t *buf)
{
    struct wbuf w = {buf, 0};
    size_t clen = strnlen(h->code, STORE_CODE_MAX);
    size_t ulen = strnlen(h->user, STORE_USER_MAX);

    w_uint(&w, HISTORY_VERSION, LMDB_CODEC_U8);
    w_uint(&w, i64_to_u64(h->time), LMDB_CODEC_U64);
    w_uint(&w, h->type, LMDB_CODEC_U8);
    w_uint(&w, clen, LMDB_CODEC_U8);
    w_bytes(&w, h->code, clen);
    w_uint(&w, ulen, LMDB_CODEC_U8);
    w_bytes(&w, h->user, ulen);
    return w.len;
}

bool
lmdb_codec_history_decode(const MDB_val *k, const MDB_val *v, struct store_redemption *h)
{
    struct rbuf r = rbuf_of(v);
    const uint8_t *code, *user;
    size_t clen, ulen;

    if (k->mv_size != LMDB_CODEC_SEQ_KEY_LEN || r_uint(&r, LMDB_CODEC_U8) != HISTORY_VERSION)
        return false;
    h->seq = lmdb_codec_get_be(k->mv_data, LMDB_CODEC_SEQ_KEY_LEN);
    h->time = u64_to_i64(r_uint(&r, LMDB_CODEC_U64));
    h->type = (uint8_t)r_uint(&r, LMDB_CODEC_U8);
    clen = (size_t)r_uint(&r, LMDB_CODEC_U8);
    code = r_bytes(&r, clen);
    ulen = (size_t)r_uint(&r, LMDB_CODEC_U8);
    user = r_bytes(&r, ulen);
    if (r.bad || r.off != r.len || h->type >= STORE_NTYPES || clen == 0 || clen > STORE_CODE_MAX ||
        ulen == 0 || ulen > STORE_USER_MAX)
        return false;
    memcpy(h->code, code, clen);
    h->code[clen] = '\0';
    memcpy(h->user, user, ulen);
    h->user[ulen] = '\0';
    return true;
}

/* --- the meta state --- */

void
lmdb_codec_state_init(struct lmdb_state *s)
{
    memset(s, 0, sizeof *s);
    s->next_coupon_seq = LMDB_CODEC_FIRST_SEQ;
    s->next_redemption_seq = LMDB_CODEC_FIRST_SEQ;
    s->watermark = INT64_MIN; /* nothing expires before the first instant */
}

void
lmdb_codec_state_encode(const struct lmdb_state *s, uint8_t *buf)
{
    struct wbuf w = {buf, 0};

    w_uint(&w, STATE_VERSION, LMDB_CODEC_U8);
    w_uint(&w, s->next_coupon_seq, LMDB_CODEC_U64);
    w_uint(&w, s->next_redemption_seq, LMDB_CODEC_U64);
    for (int t = 0; t < STORE_NTYPES; t++) {
        const struct lmdb_type_state *ts = &s->t[t];
        const uint64_t f[LMDB_CODEC_STATE_FIELDS] = {ts->created,         ts->assigned,
                                                     ts->redeemed,        ts->purged,
                                                     ts->purged_assigned, ts->unassigned};

        for (int i = 0; i < LMDB_CODEC_STATE_FIELDS; i++)
            w_uint(&w, f[i], LMDB_CODEC_U64);
    }
}

bool
lmdb_codec_state_decode(const MDB_val *v, struct lmdb_state *s)
{
    struct rbuf r = rbuf_of(v);

    lmdb_codec_state_init(s);
    if (r_uint(&r, LMDB_CODEC_U8) != STATE_VERSION)
        return false;
    s->next_coupon_seq = r_uint(&r, LMDB_CODEC_U64);
    s->next_redemption_seq = r_uint(&r, LMDB_CODEC_U64);
    for (int t = 0; t < STORE_NTYPES; t++) {
        struct lmdb_type_state *ts = &s->t[t];
        uint64_t *f[LMDB_CODEC_STATE_FIELDS] = {&ts->created,         &ts->assigned,
                                                &ts->redeemed,        &ts->purged,
                                                &ts->purged_assigned, &ts->unassigned};

        for (int i = 0; i < LMDB_CODEC_STATE_FIELDS; i++)
            *f[i] = r_uint(&r, LMDB_CODEC_U64);
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
