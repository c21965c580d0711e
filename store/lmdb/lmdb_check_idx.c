/* lmdb_check_idx.c - the check of the version 2 records and indexes (see lmdb_check_idx.h). */
#include "lmdb_check_idx.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

/* Called for each entry of a walk. */
typedef enum store_err entry_fn(const struct lmdb_view *v, const MDB_val *k, const MDB_val *val,
                                void *arg, struct store_op *op);

/* Entry `key` of `db` (of `what`, for messages) must exist and, when `want` is set, hold it. */
static enum store_err
entry_is(const struct lmdb_view *v, enum lmdb_db db, const uint8_t *key, size_t klen,
         const MDB_val *want, const char *what, struct store_op *op)
{
    MDB_val k = {klen, (void *)key}, got;
    int rc = mdb_get(v->txn, v->env->dbi[db], &k, &got);

    if (rc == MDB_NOTFOUND)
        return store_op_fail(op, STORE_CORRUPT, "%s has no %s entry", what, lmdb_env_db_name(db));
    if (rc != 0)
        return lmdb_env_fail(op, rc, "check: read index entry");
    if (want != NULL &&
        (got.mv_size != want->mv_size || memcmp(got.mv_data, want->mv_data, want->mv_size) != 0))
        return store_op_fail(op, STORE_CORRUPT, "%s entry of %s does not match it",
                             lmdb_env_db_name(db), what);
    return STORE_OK;
}

/* Calls fn for every entry of `db` that starts with prefix[plen] (plen 0: every entry). */
static enum store_err
walk(const struct lmdb_view *v, enum lmdb_db db, const uint8_t *prefix, size_t plen, entry_fn *fn,
     void *arg, struct store_op *op)
{
    MDB_val k = {plen, (void *)prefix}, val;
    enum store_err e = STORE_OK;
    MDB_cursor *cur;
    int rc;

    if ((rc = lmdb_view_cursor(v, db, &cur)) != 0)
        return lmdb_env_fail(op, rc, "check: open cursor");
    for (rc = mdb_cursor_get(cur, &k, &val, plen > 0 ? MDB_SET_RANGE : MDB_FIRST);
         rc == 0 && e == STORE_OK && lmdb_codec_has_prefix(&k, prefix, plen);
         rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT))
        e = fn(v, &k, &val, arg, op);
    lmdb_view_cursor_done(v, cur);
    if (e == STORE_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = lmdb_env_fail(op, rc, "check: walk");
    return e;
}

/* Hold `seq`, which an entry names. */
static enum store_err
hold_named(const struct lmdb_view *v, uint64_t seq, struct lmdb_hold *h, struct store_op *op)
{
    uint8_t kb[LMDB_CODEC_SEQ_KEY_LEN];
    MDB_val k = {sizeof kb, kb}, val;
    int rc;

    lmdb_codec_put_be(kb, seq, sizeof kb);
    rc = mdb_get(v->txn, v->env->dbi[LMDB_DB_HOLDS], &k, &val);
    if (rc == MDB_NOTFOUND)
        return store_op_fail(op, STORE_CORRUPT, "an index entry names missing hold %" PRIu64, seq);
    if (rc != 0)
        return lmdb_env_fail(op, rc, "check: read hold");
    if (!lmdb_codec_hold_decode(&k, &val, h))
        return store_op_fail(op, STORE_CORRUPT, "hold %" PRIu64 " does not decode", seq);
    return STORE_OK;
}

/* Coupon `code`, which an entry or record names. */
static enum store_err
coupon_named(const struct lmdb_view *v, const char *code, struct lmdb_coupon *c,
             struct store_op *op)
{
    enum store_err e = lmdb_env_coupon_get(v->env, v->txn, code, c, op);

    if (e == STORE_INVALID)
        return store_op_fail(op, STORE_CORRUPT, "an index entry or hold names missing coupon %s",
                             code);
    return e;
}

/* --- one coupon, one redemption --- */

struct coupon_walk {
    const struct lmdb_coupon *c;
    struct lmdb_check_uses *u;
    uint64_t entries;
};

static enum store_err
coupon_redemption(const struct lmdb_view *v, const MDB_val *k, const MDB_val *val, void *arg,
                  struct store_op *op)
{
    struct coupon_walk *w = arg;
    char code[STORE_CODE_MAX + 1];
    struct store_redemption h;
    uint64_t seq;
    enum store_err e;

    (void)val;
    if (!lmdb_codec_code_hist_key_decode(k, code, &seq))
        return store_op_fail(op, STORE_CORRUPT, "code_hist entry of %s does not decode",
                             w->c->pub.code);
    if ((e = lmdb_env_history_get(v->env, v->txn, seq, &h, op)) == STORE_UNKNOWN_REDEMPTION)
        return store_op_fail(op, STORE_CORRUPT,
                             "code_hist entry %s/%" PRIu64 " names missing redemption", code, seq);
    if (e != STORE_OK)
        return e;
    if (strcmp(h.code, code) != 0)
        return store_op_fail(op, STORE_CORRUPT, "code_hist entry %s/%" PRIu64 " names one of %s",
                             code, seq, h.code);
    w->entries++;
    if (h.undone != 0)
        w->u->undone++;
    else
        w->u->standing++;
    return STORE_OK;
}

static enum store_err
coupon_hold(const struct lmdb_view *v, const MDB_val *k, const MDB_val *val, void *arg,
            struct store_op *op)
{
    (void)v, (void)k, (void)val, (void)op;
    ((struct coupon_walk *)arg)->entries++; /* the hold_code walk checks the entry itself */
    return STORE_OK;
}

enum store_err
lmdb_check_idx_coupon(const struct lmdb_view *v, const struct lmdb_coupon *c,
                      struct lmdb_check_uses *u, struct store_op *op)
{
    const struct store_coupon *p = &c->pub;
    uint8_t key[LMDB_CODEC_USER_KEY_MAX];
    MDB_val code = {strlen(p->code), (void *)p->code};
    struct coupon_walk w = {.c = c, .u = u};
    size_t n;
    enum store_err e;

    *u = (struct lmdb_check_uses){0};
    if (p->user[0] != '\0') {
        n = lmdb_codec_user_key(p->user, p->assigned_at, p->seq, false, key);
        if ((e = entry_is(v, LMDB_DB_USERS, key, n, &code, p->code, op)) != STORE_OK)
            return e;
    }
    n = lmdb_codec_code_hist_key(p->code, 0, true, key);
    if ((e = walk(v, LMDB_DB_CODE_HIST, key, n, coupon_redemption, &w, op)) != STORE_OK)
        return e;
    if ((w.entries > 0) != c->redeemed)
        return store_op_fail(op, STORE_CORRUPT,
                             "coupon %s is%s marked redeemed, %" PRIu64 " redemptions", p->code,
                             c->redeemed ? "" : " not", w.entries);
    w.entries = 0;
    n = lmdb_codec_hold_code_key(p->code, 0, 0, true, key);
    if ((e = walk(v, LMDB_DB_HOLD_CODE, key, n, coupon_hold, &w, op)) != STORE_OK)
        return e;
    if (w.entries != c->holds)
        return store_op_fail(op, STORE_CORRUPT,
                             "coupon %s counts %" PRIu32 " holds, hold_code has %" PRIu64, p->code,
                             c->holds, w.entries);
    return STORE_OK;
}

enum store_err
lmdb_check_idx_history(const struct lmdb_view *v, const struct store_redemption *h,
                       struct store_op *op)
{
    uint8_t key[LMDB_CODEC_CODE_HIST_KEY_MAX];
    char what[STORE_CODE_MAX + 32];

    snprintf(what, sizeof what, "redemption %" PRIu64, h->seq);
    return entry_is(v, LMDB_DB_CODE_HIST, key,
                    lmdb_codec_code_hist_key(h->code, h->seq, false, key), NULL, what, op);
}

/* --- the walks --- */

static enum store_err
users_entry(const struct lmdb_view *v, const MDB_val *k, const MDB_val *val, void *arg,
            struct store_op *op)
{
    char user[STORE_USER_MAX + 1], code[STORE_CODE_MAX + 1];
    struct lmdb_coupon c;
    int64_t at;
    uint64_t seq;
    enum store_err e;

    (void)arg;
    if (!lmdb_codec_user_key_decode(k, user, &at, &seq) || !lmdb_codec_code_from_val(val, code))
        return store_op_fail(op, STORE_CORRUPT, "users entry does not decode");
    if ((e = coupon_named(v, code, &c, op)) != STORE_OK)
        return e;
    if (strcmp(c.pub.user, user) != 0 || c.pub.assigned_at != at || c.pub.seq != seq)
        return store_op_fail(op, STORE_CORRUPT, "users entry of %s does not match coupon %s", user,
                             code);
    return STORE_OK;
}

static enum store_err
code_hist_entry(const struct lmdb_view *v, const MDB_val *k, const MDB_val *val, void *arg,
                struct store_op *op)
{
    char code[STORE_CODE_MAX + 1];
    struct store_redemption h;
    uint64_t seq;
    enum store_err e;

    (void)val, (void)arg;
    if (!lmdb_codec_code_hist_key_decode(k, code, &seq))
        return store_op_fail(op, STORE_CORRUPT, "code_hist entry does not decode");
    if ((e = lmdb_env_history_get(v->env, v->txn, seq, &h, op)) == STORE_UNKNOWN_REDEMPTION)
        return store_op_fail(op, STORE_CORRUPT, "code_hist entry names missing redemption %" PRIu64,
                             seq);
    if (e == STORE_OK && strcmp(h.code, code) != 0)
        return store_op_fail(op, STORE_CORRUPT, "code_hist entry %s/%" PRIu64 " names one of %s",
                             code, seq, h.code);
    return e;
}

static enum store_err
hold_record(const struct lmdb_view *v, const MDB_val *k, const MDB_val *val, void *arg,
            struct store_op *op)
{
    uint64_t *holds = arg;
    uint8_t key[LMDB_CODEC_HOLD_CODE_KEY_MAX];
    char what[STORE_CODE_MAX + 32];
    struct lmdb_coupon c;
    struct lmdb_hold h;
    MDB_val type;
    enum store_err e;

    if (!lmdb_codec_hold_decode(k, val, &h))
        return store_op_fail(op, STORE_CORRUPT, "hold record does not decode");
    snprintf(what, sizeof what, "hold %" PRIu64, h.seq);
    if (h.seq < LMDB_CODEC_FIRST_SEQ || h.seq >= v->s->next_hold_seq)
        return store_op_fail(op, STORE_CORRUPT, "%s: next hold seq is %" PRIu64, what,
                             v->s->next_hold_seq);
    if ((e = coupon_named(v, h.code, &c, op)) != STORE_OK)
        return e;
    if (c.pub.type != h.type || strcmp(c.pub.user, h.user) != 0)
        return store_op_fail(op, STORE_CORRUPT, "%s does not match coupon %s", what, h.code);
    lmdb_codec_expiry_key(h.expires, h.seq, key);
    type = (MDB_val){1, &h.type};
    e = entry_is(v, LMDB_DB_HOLD_EXP, key, LMDB_CODEC_EXPIRY_KEY_LEN, &type, what, op);
    if (e == STORE_OK)
        e = entry_is(v, LMDB_DB_HOLD_CODE, key,
                     lmdb_codec_hold_code_key(h.code, h.expires, h.seq, false, key), NULL, what,
                     op);
    holds[h.type]++;
    return e;
}

static enum store_err
hold_exp_entry(const struct lmdb_view *v, const MDB_val *k, const MDB_val *val, void *arg,
               struct store_op *op)
{
    struct lmdb_hold h;
    int64_t expires;
    uint64_t seq;
    enum store_err e;

    (void)arg;
    if (!lmdb_codec_expiry_key_decode(k, &expires, &seq) || val->mv_size != 1)
        return store_op_fail(op, STORE_CORRUPT, "hold_exp entry does not decode");
    if ((e = hold_named(v, seq, &h, op)) != STORE_OK)
        return e;
    if (h.expires != expires || h.type != *(const uint8_t *)val->mv_data)
        return store_op_fail(op, STORE_CORRUPT, "hold_exp entry does not match hold %" PRIu64, seq);
    return STORE_OK;
}

static enum store_err
hold_code_entry(const struct lmdb_view *v, const MDB_val *k, const MDB_val *val, void *arg,
                struct store_op *op)
{
    char code[STORE_CODE_MAX + 1];
    struct lmdb_hold h;
    int64_t expires;
    uint64_t seq;
    enum store_err e;

    (void)val, (void)arg;
    if (!lmdb_codec_hold_code_key_decode(k, code, &expires, &seq))
        return store_op_fail(op, STORE_CORRUPT, "hold_code entry does not decode");
    if ((e = hold_named(v, seq, &h, op)) != STORE_OK)
        return e;
    if (h.expires != expires || strcmp(h.code, code) != 0)
        return store_op_fail(op, STORE_CORRUPT, "hold_code entry does not match hold %" PRIu64,
                             seq);
    return STORE_OK;
}

/* A rids entry: the record it points at is in rid_log, and is its id's. */
static enum store_err
rids_entry(const struct lmdb_view *v, const MDB_val *k, const MDB_val *val, void *arg,
           struct store_op *op)
{
    struct lmdb_rid_rec r;
    MDB_val lk = *val, rec;
    int64_t t;
    uint64_t seq;
    int rc;

    (void)arg;
    if (k->mv_size > LMDB_CODEC_RID_KEY_MAX || !lmdb_codec_expiry_key_decode(val, &t, &seq))
        return store_op_fail(op, STORE_CORRUPT, "rids entry does not decode");
    rc = mdb_get(v->txn, v->env->dbi[LMDB_DB_RID_LOG], &lk, &rec);
    if (rc == MDB_NOTFOUND)
        return store_op_fail(op, STORE_CORRUPT, "a request id has no rid_log record");
    if (rc != 0)
        return lmdb_env_fail(op, rc, "check: read request id");
    if (!lmdb_codec_rid_decode(&rec, &r) || r.time != t || r.key_len != k->mv_size ||
        memcmp(r.key, k->mv_data, r.key_len) != 0)
        return store_op_fail(op, STORE_CORRUPT, "a rids entry points at another id's record");
    return STORE_OK;
}

/* A rid_log record: of a sequence number given out, and its id's rids entry points back at it. */
static enum store_err
rid_log_record(const struct lmdb_view *v, const MDB_val *k, const MDB_val *val, void *arg,
               struct store_op *op)
{
    struct lmdb_rid_rec r;
    MDB_val rk, lk;
    int64_t t;
    uint64_t seq;
    int rc;

    (void)arg;
    if (!lmdb_codec_expiry_key_decode(k, &t, &seq) || !lmdb_codec_rid_decode(val, &r) ||
        r.time != t)
        return store_op_fail(op, STORE_CORRUPT, "rid_log record does not decode");
    if (seq < LMDB_CODEC_FIRST_SEQ || seq >= v->s->next_rid_seq)
        return store_op_fail(op, STORE_CORRUPT, "rid_log record %" PRIu64 ": next is %" PRIu64, seq,
                             v->s->next_rid_seq);
    rk = (MDB_val){r.key_len, (void *)r.key};
    rc = mdb_get(v->txn, v->env->dbi[LMDB_DB_RIDS], &rk, &lk);
    if (rc == MDB_NOTFOUND)
        return store_op_fail(op, STORE_CORRUPT, "a rid_log record has no rids entry");
    if (rc != 0)
        return lmdb_env_fail(op, rc, "check: read rids entry");
    if (lk.mv_size != k->mv_size || memcmp(lk.mv_data, k->mv_data, k->mv_size) != 0)
        return store_op_fail(op, STORE_CORRUPT, "a rids entry points at another record");
    return STORE_OK;
}

enum store_err
lmdb_check_idx_walk(const struct lmdb_view *v, uint64_t *holds, struct store_op *op)
{
    static const struct {
        enum lmdb_db db;
        entry_fn *fn;
    } walks[] = {
        {LMDB_DB_USERS, users_entry},         {LMDB_DB_CODE_HIST, code_hist_entry},
        {LMDB_DB_HOLDS, hold_record},         {LMDB_DB_HOLD_EXP, hold_exp_entry},
        {LMDB_DB_HOLD_CODE, hold_code_entry}, {LMDB_DB_RIDS, rids_entry},
        {LMDB_DB_RID_LOG, rid_log_record},
    };
    enum store_err e;

    memset(holds, 0, STORE_NTYPES * sizeof *holds);
    for (size_t i = 0; i < sizeof walks / sizeof walks[0]; i++)
        if ((e = walk(v, walks[i].db, NULL, 0, walks[i].fn, holds, op)) != STORE_OK)
            return e;
    return STORE_OK;
}
