/* lmdb_hold.c - holds and their live counts (see lmdb_hold.h). */
#include "lmdb_hold.h"

#include <inttypes.h>
#include <string.h>

#include "backend.h"
#include "rules.h"

/* Counts the entries of coupon `code` in hold_code (through cursor cur) with expires < now. */
static enum store_err
code_expired(MDB_cursor *cur, const char *code, int64_t now, uint32_t *n, struct store_op *op)
{
    uint8_t kb[LMDB_CODEC_HOLD_CODE_KEY_MAX], prefix[LMDB_CODEC_HOLD_CODE_KEY_MAX];
    const size_t plen = lmdb_codec_hold_code_key(code, 0, 0, true, prefix);
    MDB_val k = {plen, kb}, v;
    char held[STORE_CODE_MAX + 1];
    int64_t expires;
    uint64_t seq;
    int rc;

    *n = 0;
    memcpy(kb, prefix, plen);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && lmdb_codec_has_prefix(&k, prefix, plen);
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!lmdb_codec_hold_code_key_decode(&k, held, &expires, &seq))
            return store_op_fail(op, STORE_CORRUPT, "hold_code entry of %s does not decode", code);
        if (expires >= now)
            break;
        (*n)++;
    }
    return rc == 0 || rc == MDB_NOTFOUND ? STORE_OK : lmdb_env_fail(op, rc, "read hold_code");
}

/* c->pub.held from the count of its expired entries. */
static enum store_err
set_live(struct lmdb_coupon *c, uint32_t expired, struct store_op *op)
{
    if (expired > c->holds)
        return store_op_fail(op, STORE_CORRUPT, "coupon %s: %" PRIu32 " expired holds of %" PRIu32,
                             c->pub.code, expired, c->holds);
    c->pub.held = c->holds - expired;
    return STORE_OK;
}

enum store_err
lmdb_hold_live_view(const struct lmdb_view *v, struct lmdb_coupon *c, int64_t now,
                    struct store_op *op)
{
    MDB_cursor *cur;
    uint32_t expired;
    enum store_err e;
    int rc;

    c->pub.held = 0;
    if (c->holds == 0)
        return STORE_OK;
    if ((e = lmdb_env_need(v->env, LMDB_DB_HOLD_CODE, "count holds", op)) != STORE_OK)
        return e;
    if ((rc = lmdb_view_cursor(v, LMDB_DB_HOLD_CODE, &cur)) != 0)
        return lmdb_env_fail(op, rc, "open hold_code cursor");
    e = code_expired(cur, c->pub.code, now, &expired, op);
    lmdb_view_cursor_done(v, cur);
    return e == STORE_OK ? set_live(c, expired, op) : e;
}

enum store_err
lmdb_hold_live_op(struct lmdb_group *g, struct lmdb_group_op *gop, struct lmdb_coupon *c,
                  int64_t now, struct store_op *op)
{
    MDB_cursor *cur;
    uint32_t expired;
    enum store_err e;
    int rc;

    c->pub.held = 0;
    if (c->holds == 0)
        return STORE_OK;
    if ((rc = lmdb_group_op_cursor(g, gop, LMDB_DB_HOLD_CODE, &cur)) != 0)
        return lmdb_env_fail(op, rc, "open hold_code cursor");
    e = code_expired(cur, c->pub.code, now, &expired, op);
    return e == STORE_OK ? set_live(c, expired, op) : e;
}

enum store_err
lmdb_hold_expired(const struct lmdb_view *v, int64_t now, uint64_t *expired, struct store_op *op)
{
    MDB_cursor *cur;
    MDB_val k, val;
    int64_t expires;
    uint64_t seq, total = 0;
    enum store_err e = STORE_OK;
    int rc;

    memset(expired, 0, STORE_NTYPES * sizeof *expired);
    for (int t = 0; t < STORE_NTYPES; t++)
        total += v->s->t[t].holds;
    if (total == 0) /* also every legacy store: no hold_exp to read */
        return STORE_OK;
    if ((rc = lmdb_view_cursor(v, LMDB_DB_HOLD_EXP, &cur)) != 0)
        return lmdb_env_fail(op, rc, "open hold_exp cursor");
    for (rc = mdb_cursor_get(cur, &k, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT)) {
        const uint8_t *type = val.mv_data;

        if (!lmdb_codec_expiry_key_decode(&k, &expires, &seq) || val.mv_size != 1 ||
            *type >= STORE_NTYPES) {
            e = store_op_fail(op, STORE_CORRUPT, "hold_exp entry does not decode");
            break;
        }
        if (expires >= now)
            break;
        expired[*type]++;
    }
    lmdb_view_cursor_done(v, cur);
    if (e == STORE_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = lmdb_env_fail(op, rc, "read hold_exp");
    return e;
}

/* Reads hold `seq`: STORE_OK, STORE_UNKNOWN_HOLD (op untouched) when there is none, or a
 * failure. */
static enum store_err
hold_get(struct lmdb_group_op *gop, const struct lmdb_env *env, uint64_t seq, struct lmdb_hold *h,
         struct store_op *op)
{
    uint8_t kb[LMDB_CODEC_SEQ_KEY_LEN];
    MDB_val k = {sizeof kb, kb}, v;
    int rc;

    lmdb_codec_put_be(kb, seq, sizeof kb);
    rc = mdb_get(gop->txn, env->dbi[LMDB_DB_HOLDS], &k, &v);
    if (rc == MDB_NOTFOUND)
        return STORE_UNKNOWN_HOLD;
    if (rc != 0)
        return lmdb_env_fail(op, rc, "read hold");
    if (!lmdb_codec_hold_decode(&k, &v, h))
        return store_op_fail(op, STORE_CORRUPT, "hold %" PRIu64 " does not decode", seq);
    return STORE_OK;
}

/* Deletes entry `key` of `db`, which must exist. */
static enum store_err
entry_del(struct lmdb_group_op *gop, const struct lmdb_env *env, enum lmdb_db db, uint8_t *key,
          size_t klen, uint64_t seq, struct store_op *op)
{
    MDB_val k = {klen, key};
    int rc = mdb_del(gop->txn, env->dbi[db], &k, NULL);

    if (rc == MDB_NOTFOUND)
        return store_op_fail(op, STORE_CORRUPT, "hold %" PRIu64 " has no %s entry", seq,
                             lmdb_env_db_name(db));
    return rc == 0 ? STORE_OK : lmdb_env_fail(op, rc, "delete hold entry");
}

/* Deletes hold h of coupon *c: its record and hold_code entry, and its hold_exp entry unless
 * `exp_done` (the caller deletes it through its cursor); *c and the state lose it. */
static enum store_err
hold_del(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op,
         const struct lmdb_hold *h, struct lmdb_coupon *c, bool exp_done)
{
    uint8_t kb[LMDB_CODEC_HOLD_CODE_KEY_MAX];
    enum store_err e;

    lmdb_codec_put_be(kb, h->seq, LMDB_CODEC_SEQ_KEY_LEN);
    e = entry_del(gop, g->env, LMDB_DB_HOLDS, kb, LMDB_CODEC_SEQ_KEY_LEN, h->seq, op);
    if (e == STORE_OK && !exp_done) {
        lmdb_codec_expiry_key(h->expires, h->seq, kb);
        e = entry_del(gop, g->env, LMDB_DB_HOLD_EXP, kb, LMDB_CODEC_EXPIRY_KEY_LEN, h->seq, op);
    }
    if (e == STORE_OK)
        e = entry_del(gop, g->env, LMDB_DB_HOLD_CODE, kb,
                      lmdb_codec_hold_code_key(h->code, h->expires, h->seq, false, kb), h->seq, op);
    if (e != STORE_OK)
        return e;
    if (c->holds == 0 || gop->s.t[c->pub.type].holds == 0)
        return store_op_fail(op, STORE_CORRUPT, "hold %" PRIu64 " of %s is not counted", h->seq,
                             c->pub.code);
    c->holds--;
    gop->s.t[c->pub.type].holds--;
    if (h->expires >= op->now && c->pub.held > 0)
        c->pub.held--;
    return STORE_OK;
}

/* The coupon a hold names, with its live count at op->now. */
static enum store_err
hold_coupon(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op,
            const struct lmdb_hold *h, struct lmdb_coupon *c)
{
    enum store_err e = lmdb_env_coupon_get(g->env, gop->txn, h->code, c, op);

    if (e == STORE_INVALID)
        return store_op_fail(op, STORE_CORRUPT, "hold %" PRIu64 " names missing coupon %s", h->seq,
                             h->code);
    return e == STORE_OK ? lmdb_hold_live_op(g, gop, c, op->now, op) : e;
}

/* Puts the record and index entries of new hold h of coupon *c, which gains it. */
static enum store_err
hold_put(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op,
         const struct lmdb_hold *h, struct lmdb_coupon *c)
{
    uint8_t kb[LMDB_CODEC_HOLD_CODE_KEY_MAX], rec[LMDB_CODEC_HOLD_REC_MAX];
    MDB_val k = {LMDB_CODEC_SEQ_KEY_LEN, kb}, v = {lmdb_codec_hold_encode(h, rec), rec};
    int rc;

    lmdb_codec_put_be(kb, h->seq, LMDB_CODEC_SEQ_KEY_LEN);
    rc = lmdb_group_op_put(g, gop, LMDB_DB_HOLDS, &k, &v, MDB_APPEND);
    if (rc == 0) {
        lmdb_codec_expiry_key(h->expires, h->seq, kb);
        k = (MDB_val){LMDB_CODEC_EXPIRY_KEY_LEN, kb};
        v = (MDB_val){1, &c->pub.type};
        rc = lmdb_group_op_put(g, gop, LMDB_DB_HOLD_EXP, &k, &v, 0);
    }
    if (rc == 0) {
        k = (MDB_val){lmdb_codec_hold_code_key(h->code, h->expires, h->seq, false, kb), kb};
        v = (MDB_val){0, ""};
        rc = lmdb_group_op_put(g, gop, LMDB_DB_HOLD_CODE, &k, &v, 0);
    }
    if (rc != 0)
        return lmdb_env_fail(op, rc, "hold: put");
    c->holds++;
    gop->s.t[c->pub.type].holds++;
    if (h->expires >= op->now)
        c->pub.held++;
    return STORE_OK;
}

enum store_err
lmdb_hold_run_hold(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    struct lmdb_hold h = {.expires = op->in.until};
    struct lmdb_coupon c;
    enum store_err e = lmdb_env_coupon_get(g->env, gop->txn, op->in.code, &c, op);

    if (e == STORE_OK)
        e = lmdb_hold_live_op(g, gop, &c, op->now, op);
    if (e != STORE_OK)
        return e;
    if ((e = rules_usable(&c.pub, op->in.user, op->now)) != STORE_OK) {
        if (e != STORE_INVALID) /* never show a coupon to a user it does not belong to */
            op->out.coupon = c.pub;
        return e;
    }
    h.seq = gop->s.next_hold_seq++;
    h.type = c.pub.type;
    memcpy(h.code, c.pub.code, sizeof h.code);
    memcpy(h.user, c.pub.user, sizeof h.user);
    if ((e = hold_put(g, gop, op, &h, &c)) != STORE_OK ||
        (e = lmdb_env_coupon_put(g->env, gop->txn, &c, "hold: put coupon", op)) != STORE_OK)
        return e;
    op->out.hold = (struct store_hold){.seq = h.seq, .expires = h.expires};
    op->out.coupon = c.pub;
    return STORE_OK;
}

/* The live hold in.hold_seq: STORE_UNKNOWN_HOLD when there is none. */
static enum store_err
live_hold(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op, struct lmdb_hold *h)
{
    enum store_err e;

    if (op->in.hold_seq == 0)
        return STORE_UNKNOWN_HOLD;
    if ((e = hold_get(gop, g->env, op->in.hold_seq, h, op)) != STORE_OK)
        return e;
    return h->expires >= op->now ? STORE_OK : STORE_UNKNOWN_HOLD;
}

enum store_err
lmdb_hold_run_release(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    struct lmdb_coupon c;
    struct lmdb_hold h;
    enum store_err e = live_hold(g, gop, op, &h);

    if (e == STORE_OK)
        e = hold_coupon(g, gop, op, &h, &c);
    if (e == STORE_OK)
        e = hold_del(g, gop, op, &h, &c, false);
    if (e == STORE_OK)
        e = lmdb_env_coupon_put(g->env, gop->txn, &c, "release: put coupon", op);
    if (e == STORE_OK)
        op->out.coupon = c.pub;
    return e;
}

enum store_err
lmdb_hold_redeem(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op,
                 struct lmdb_coupon *c)
{
    struct lmdb_hold h;
    enum store_err e = live_hold(g, gop, op, &h);

    if (e != STORE_OK)
        return e;
    if (strcmp(h.code, c->pub.code) != 0 || strcmp(h.user, op->in.user) != 0)
        return STORE_UNKNOWN_HOLD;
    if (rules_expired(&c->pub, op->now)) /* the coupon's own end still counts */
        return STORE_EXPIRED;
    return hold_del(g, gop, op, &h, c, false);
}

/* Expires hold `seq`, named by a hold_exp entry (lmdb_group_op_drain deletes that entry). */
static enum store_err
expire_one(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op, int64_t expires,
           uint64_t seq, const MDB_val *v)
{
    struct lmdb_coupon c;
    struct lmdb_hold h;
    enum store_err e = hold_get(gop, g->env, seq, &h, op);

    (void)expires, (void)v;
    if (e == STORE_UNKNOWN_HOLD)
        return store_op_fail(op, STORE_CORRUPT, "hold_exp entry names missing hold %" PRIu64, seq);
    if (e == STORE_OK)
        e = hold_coupon(g, gop, op, &h, &c);
    if (e == STORE_OK)
        e = hold_del(g, gop, op, &h, &c, true);
    return e == STORE_OK ? lmdb_env_coupon_put(g->env, gop->txn, &c, "expire holds: put coupon", op)
                         : e;
}

enum store_err
lmdb_hold_run_expire(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    return lmdb_group_op_drain(g, gop, LMDB_DB_HOLD_EXP, expire_one, "expire holds", op);
}

enum store_err
lmdb_hold_drop_all(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op,
                   struct lmdb_coupon *c)
{
    uint8_t prefix[LMDB_CODEC_HOLD_CODE_KEY_MAX];
    const size_t plen = lmdb_codec_hold_code_key(c->pub.code, 0, 0, true, prefix);
    char code[STORE_CODE_MAX + 1];
    MDB_cursor *cur;
    MDB_val k, v;
    struct lmdb_hold h;
    enum store_err e;
    int rc;

    if ((rc = lmdb_group_op_cursor(g, gop, LMDB_DB_HOLD_CODE, &cur)) != 0)
        return lmdb_env_fail(op, rc, "purge: open hold_code cursor");
    /* Each hold_del removes the entry the seek found, so seek again until none is left. */
    while (c->holds > 0) {
        k = (MDB_val){plen, prefix};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND || (rc == 0 && !lmdb_codec_has_prefix(&k, prefix, plen)))
            return store_op_fail(op, STORE_CORRUPT, "coupon %s counts holds it has not",
                                 c->pub.code);
        if (rc != 0)
            return lmdb_env_fail(op, rc, "purge: read hold_code");
        if (!lmdb_codec_hold_code_key_decode(&k, code, &h.expires, &h.seq))
            return store_op_fail(op, STORE_CORRUPT, "hold_code entry of %s does not decode",
                                 c->pub.code);
        if ((e = hold_get(gop, g->env, h.seq, &h, op)) != STORE_OK)
            return e == STORE_UNKNOWN_HOLD
                       ? store_op_fail(op, STORE_CORRUPT, "hold_code names missing hold")
                       : e;
        if ((e = hold_del(g, gop, op, &h, c, false)) != STORE_OK)
            return e;
    }
    return STORE_OK;
}
