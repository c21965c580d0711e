/* lmdb_check.c - recounts everything and compares (see lmdb_check.h). */
#include "lmdb_check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "lmdb_audit.h"
#include "lmdb_check_idx.h"
#include "lmdb_index.h"

#define TIME_TEXT 64 /* RFC 3339 of any int64 second count, or the number itself */

struct check {
    const struct lmdb_view *v;
    const struct lmdb_state *s; /* the counters to verify */
    struct store_op *op;
    /* recounts, per type */
    uint64_t records[STORE_NTYPES], assigned[STORE_NTYPES], unassigned[STORE_NTYPES];
    uint64_t uses[STORE_NTYPES], available[STORE_NTYPES];
    uint64_t avail[STORE_NTYPES], below_watermark[STORE_NTYPES], history[STORE_NTYPES];
    uint64_t undone[STORE_NTYPES], holds[STORE_NTYPES];
    uint64_t never_redeemed, expiry_entries;
};

__attribute__((format(printf, 2, 3))) static enum store_err
corrupt(struct check *ck, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ck->op->out.msg, sizeof ck->op->out.msg, fmt, ap);
    va_end(ap);
    ck->op->err = STORE_CORRUPT;
    return STORE_CORRUPT;
}

static void
time_text(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if ((int64_t)tt == t && gmtime_r(&tt, &tm) != NULL &&
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
        return;
    snprintf(buf, len, "%" PRId64, t);
}

/* "TYPE/expires/seq" (type < 0: "expires/seq"), as messages name index entries. */
static const char *
entry_text(int type, int64_t expires, uint64_t seq, char *buf, size_t len)
{
    char tt[TIME_TEXT];

    time_text(expires, tt, sizeof tt);
    if (type < 0)
        snprintf(buf, len, "%s/%" PRIu64, tt, seq);
    else
        snprintf(buf, len, "%s/%s/%" PRIu64, lmdb_codec_type_name((unsigned)type), tt, seq);
    return buf;
}

/* The index entry `key` in `db` must exist and hold `code`. */
static enum store_err
check_entry(struct check *ck, enum lmdb_db db, uint8_t *key, size_t klen, const char *code,
            const char *entry)
{
    MDB_val k = {klen, key}, v;
    char held[STORE_CODE_MAX + 1];
    int rc = mdb_get(ck->v->txn, ck->v->env->dbi[db], &k, &v);

    if (rc == MDB_NOTFOUND)
        return corrupt(ck, "coupon %s has no %s index entry %s", code, lmdb_env_db_name(db), entry);
    if (rc != 0)
        return lmdb_env_fail(ck->op, rc, "check: read index entry");
    if (!lmdb_codec_code_from_val(&v, held) || strcmp(held, code) != 0)
        return corrupt(ck, "%s index entry %s does not hold coupon %s", lmdb_env_db_name(db), entry,
                       code);
    return STORE_OK;
}

/* The avail entry of an unassigned coupon, the expiry entry of a never redeemed one, and the
 * version 2 entries (lmdb_check_idx.h), whose redemptions must add up to its uses. */
static enum store_err
check_coupon_entries(struct check *ck, const struct lmdb_coupon *lc)
{
    const struct store_coupon *c = &lc->pub;
    uint8_t key[LMDB_CODEC_AVAIL_KEY_LEN];
    char entry[TIME_TEXT * 2];
    struct lmdb_check_uses u;
    enum store_err e;

    if (c->user[0] == '\0') {
        lmdb_codec_avail_key(c->type, c->expires, c->seq, key);
        entry_text(c->type, c->expires, c->seq, entry, sizeof entry);
        e = check_entry(ck, LMDB_DB_AVAIL, key, LMDB_CODEC_AVAIL_KEY_LEN, c->code, entry);
        if (e != STORE_OK)
            return e;
    }
    if (!lc->redeemed) {
        lmdb_codec_expiry_key(c->expires, c->seq, key);
        entry_text(-1, c->expires, c->seq, entry, sizeof entry);
        e = check_entry(ck, LMDB_DB_EXPIRY, key, LMDB_CODEC_EXPIRY_KEY_LEN, c->code, entry);
        if (e != STORE_OK)
            return e;
    }
    if (ck->v->env->legacy) /* no version 2 indexes yet */
        return STORE_OK;
    if ((e = lmdb_check_idx_coupon(ck->v, lc, &u, ck->op)) != STORE_OK)
        return e;
    if (u.standing != c->uses)
        return corrupt(ck, "coupon %s has %" PRIu32 " uses, %" PRIu64 " redemptions standing",
                       c->code, c->uses, u.standing);
    return STORE_OK;
}

/* The coupon's share of the recounts. */
static enum store_err
check_coupon_counts(struct check *ck, const struct lmdb_coupon *lc)
{
    const struct store_coupon *c = &lc->pub;

    if (c->seq < LMDB_CODEC_FIRST_SEQ || c->seq >= ck->s->next_coupon_seq)
        return corrupt(ck, "coupon %s has seq %" PRIu64 ", next seq is %" PRIu64, c->code, c->seq,
                       ck->s->next_coupon_seq);
    ck->records[c->type]++;
    ck->uses[c->type] += c->uses;
    if (c->user[0] != '\0')
        ck->assigned[c->type]++;
    else
        ck->unassigned[c->type]++;
    if (c->user[0] == '\0' && c->expires >= ck->op->now)
        ck->available[c->type]++;
    if (!lc->redeemed)
        ck->never_redeemed++;
    return check_coupon_entries(ck, lc);
}

static enum store_err
check_coupon(struct check *ck, const MDB_val *k, const MDB_val *v)
{
    struct lmdb_coupon lc;
    const struct store_coupon *p = &lc.pub;

    if (!lmdb_codec_coupon_decode(k, v, &lc))
        return corrupt(ck, "coupon record %.*s does not decode", (int)k->mv_size,
                       (const char *)k->mv_data);
    if (p->uses > p->max_uses)
        return corrupt(ck, "coupon %s has %" PRIu32 " uses of max %" PRIu32, p->code, p->uses,
                       p->max_uses);
    if ((lc.redeemed || p->uses > 0 || lc.holds > 0) && p->user[0] == '\0')
        return corrupt(ck, "coupon %s is redeemed or held but has no user", p->code);
    return check_coupon_counts(ck, &lc);
}

/* The coupon an index entry names. */
static enum store_err
check_target(struct check *ck, const MDB_val *v, const char *entry, struct lmdb_coupon *c)
{
    char code[STORE_CODE_MAX + 1];
    enum store_err e;

    if (!lmdb_codec_code_from_val(v, code))
        return corrupt(ck, "index entry %s holds no code", entry);
    e = lmdb_env_coupon_get(ck->v->env, ck->v->txn, code, c, ck->op);
    if (e == STORE_INVALID)
        return corrupt(ck, "index entry %s points at missing coupon %s", entry, code);
    return e;
}

static enum store_err
check_avail(struct check *ck, const MDB_val *k, const MDB_val *v)
{
    char entry[TIME_TEXT * 2];
    struct lmdb_coupon lc;
    const struct store_coupon *c = &lc.pub;
    int64_t expires;
    uint64_t seq;
    uint8_t type;
    enum store_err e;

    if (!lmdb_codec_avail_key_decode(k, &type, &expires, &seq))
        return corrupt(ck, "avail index key of %zu bytes does not decode", k->mv_size);
    entry_text(type, expires, seq, entry, sizeof entry);
    if ((e = check_target(ck, v, entry, &lc)) != STORE_OK)
        return e;
    if (c->user[0] != '\0')
        return corrupt(ck, "avail index entry %s points at assigned coupon %s", entry, c->code);
    if (c->type != type || c->expires != expires || c->seq != seq)
        return corrupt(ck, "avail index entry %s does not match coupon %s", entry, c->code);
    ck->avail[type]++;
    if (expires < ck->s->watermark)
        ck->below_watermark[type]++;
    return STORE_OK;
}

static enum store_err
check_expiry(struct check *ck, const MDB_val *k, const MDB_val *v)
{
    char entry[TIME_TEXT * 2];
    struct lmdb_coupon lc;
    const struct store_coupon *c = &lc.pub;
    int64_t expires;
    uint64_t seq;
    enum store_err e;

    if (!lmdb_codec_expiry_key_decode(k, &expires, &seq))
        return corrupt(ck, "expiry index key of %zu bytes does not decode", k->mv_size);
    entry_text(-1, expires, seq, entry, sizeof entry);
    if ((e = check_target(ck, v, entry, &lc)) != STORE_OK)
        return e;
    if (lc.redeemed)
        return corrupt(ck, "expiry index entry %s points at redeemed coupon %s", entry, c->code);
    if (c->expires != expires || c->seq != seq)
        return corrupt(ck, "expiry index entry %s does not match coupon %s", entry, c->code);
    ck->expiry_entries++;
    return STORE_OK;
}

static uint64_t
history_total(const struct check *ck)
{
    uint64_t n = 0;

    for (int t = 0; t < STORE_NTYPES; t++)
        n += ck->history[t];
    return n;
}

/* History records are numbered FIRST_SEQ, FIRST_SEQ + 1, ... without gaps (nothing deletes
 * them, an undo marks them), and each names a redeemed coupon of its type and user. */
static enum store_err
check_history(struct check *ck, const MDB_val *k, const MDB_val *v)
{
    const uint64_t want = LMDB_CODEC_FIRST_SEQ + history_total(ck);
    struct store_redemption h;
    struct lmdb_coupon lc;
    const struct store_coupon *c = &lc.pub;
    enum store_err e;

    if (!lmdb_codec_history_decode(k, v, &h))
        return corrupt(ck, "history record %" PRIu64 " does not decode", want);
    if (h.seq != want)
        return corrupt(ck, "history record %" PRIu64 " found where %" PRIu64 " belongs", h.seq,
                       want);
    e = lmdb_env_coupon_get(ck->v->env, ck->v->txn, h.code, &lc, ck->op);
    if (e == STORE_INVALID)
        return corrupt(ck, "history record %" PRIu64 " names missing coupon %s", h.seq, h.code);
    if (e != STORE_OK)
        return e;
    if (c->type != h.type || strcmp(c->user, h.user) != 0 || !lc.redeemed)
        return corrupt(ck, "history record %" PRIu64 " (%s %s) does not match coupon %s", h.seq,
                       lmdb_codec_type_name(h.type), h.user, c->code);
    ck->history[h.type]++;
    if (h.undone != 0)
        ck->undone[h.type]++;
    return ck->v->env->legacy ? STORE_OK : lmdb_check_idx_history(ck->v, &h, ck->op);
}

typedef enum store_err (*check_fn)(struct check *ck, const MDB_val *k, const MDB_val *v);

static enum store_err
check_walk(struct check *ck, enum lmdb_db db, check_fn fn)
{
    enum store_err e = STORE_OK;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = lmdb_view_cursor(ck->v, db, &cur)) != 0)
        return lmdb_env_fail(ck->op, rc, "check: open cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && e == STORE_OK;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        e = fn(ck, &k, &v);
    lmdb_view_cursor_done(ck->v, cur);
    if (e == STORE_OK && rc != MDB_NOTFOUND)
        e = lmdb_env_fail(ck->op, rc, "check: walk");
    return e;
}

/* The counters of one type against the recounts. */
static enum store_err
check_type(struct check *ck, int t)
{
    const struct lmdb_type_state *ts = &ck->s->t[t];
    const char *n = lmdb_codec_type_name((unsigned)t);

    if (ts->redeemed != ck->history[t] || ts->redeemed - ts->unredeemed != ck->uses[t])
        return corrupt(ck,
                       "redeemed.%s is %" PRIu64 ": %" PRIu64 " history records, %" PRIu64
                       " uses and %" PRIu64 " undone",
                       n, ts->redeemed, ck->history[t], ck->uses[t], ts->unredeemed);
    if (ts->unredeemed != ck->undone[t])
        return corrupt(ck, "unredeemed.%s is %" PRIu64 ": %" PRIu64 " undone history records", n,
                       ts->unredeemed, ck->undone[t]);
    if (ts->holds != ck->holds[t])
        return corrupt(ck, "holds.%s is %" PRIu64 ": %" PRIu64 " hold records", n, ts->holds,
                       ck->holds[t]);
    if (ts->created != ck->records[t] + ts->purged)
        return corrupt(ck, "created.%s is %" PRIu64 ": %" PRIu64 " records + %" PRIu64 " purged", n,
                       ts->created, ck->records[t], ts->purged);
    if (ts->assigned != ck->assigned[t] + ts->purged_assigned)
        return corrupt(ck, "assigned.%s is %" PRIu64 ": %" PRIu64 " records + %" PRIu64 " purged",
                       n, ts->assigned, ck->assigned[t], ts->purged_assigned);
    if (ts->unassigned != ck->avail[t] || ts->unassigned != ck->unassigned[t])
        return corrupt(
            ck, "unassigned.%s is %" PRIu64 ": %" PRIu64 " avail entries, %" PRIu64 " records", n,
            ts->unassigned, ck->avail[t], ck->unassigned[t]);
    if (ts->expired_unassigned != ck->below_watermark[t])
        return corrupt(ck, "cached expired.%s is %" PRIu64 ", recount %" PRIu64, n,
                       ts->expired_unassigned, ck->below_watermark[t]);
    return STORE_OK;
}

static enum store_err
check_counters(struct check *ck)
{
    enum store_err e;

    for (int t = 0; t < STORE_NTYPES; t++)
        if ((e = check_type(ck, t)) != STORE_OK)
            return e;
    if (ck->expiry_entries != ck->never_redeemed)
        return corrupt(ck, "%" PRIu64 " expiry index entries for %" PRIu64 " unredeemed coupons",
                       ck->expiry_entries, ck->never_redeemed);
    if (ck->s->next_redemption_seq != LMDB_CODEC_FIRST_SEQ + history_total(ck))
        return corrupt(ck, "next redemption seq is %" PRIu64 " after %" PRIu64 " records",
                       ck->s->next_redemption_seq, history_total(ck));
    return STORE_OK;
}

/* Outside a batch the stored meta state must be the committed one; inside, the batch's counters
 * are written only at its commit. */
static enum store_err
check_meta(struct check *ck)
{
    char why[STORE_ERR_MAX];
    struct lmdb_state stored;
    enum store_err e;

    if (ck->v->in_group)
        return STORE_OK;
    e = lmdb_env_state_get(ck->v->env, ck->v->txn, &stored, why, sizeof why);
    if (e != STORE_OK)
        return store_op_fail(ck->op, e, "%s", why);
    if (!lmdb_codec_state_stored_equal(&stored, ck->s))
        return corrupt(ck, "stored meta state differs from the committed counters");
    return STORE_OK;
}

/* `available` as COUNTERS reports it, against the recount. */
static enum store_err
check_available(struct check *ck)
{
    struct store_counters c;
    enum store_err e = lmdb_index_counters(ck->v, ck->op->now, &c, ck->op);

    if (e != STORE_OK)
        return e;
    for (int t = 0; t < STORE_NTYPES; t++)
        if (c.type[t].available != ck->available[t])
            return corrupt(ck, "available.%s is %" PRIu64 ", recount %" PRIu64,
                           lmdb_codec_type_name((unsigned)t), c.type[t].available,
                           ck->available[t]);
    return STORE_OK;
}

enum store_err
lmdb_check_run(const struct lmdb_view *v, struct store_op *op)
{
    static const struct {
        enum lmdb_db db;
        check_fn fn;
    } walks[] = {
        /* History first: a gap in its numbering is the plainest report of a lost redemption,
         * which the coupon's redemptions would otherwise report as a dangling entry. */
        {LMDB_DB_HISTORY, check_history},
        {LMDB_DB_COUPONS, check_coupon},
        {LMDB_DB_AVAIL, check_avail},
        {LMDB_DB_EXPIRY, check_expiry},
    };
    struct check ck = {.v = v, .s = v->s, .op = op};
    enum store_err e;

    for (size_t i = 0; i < sizeof walks / sizeof walks[0]; i++)
        if ((e = check_walk(&ck, walks[i].db, walks[i].fn)) != STORE_OK)
            return e;
    if (!v->env->legacy && (e = lmdb_check_idx_walk(v, ck.holds, op)) != STORE_OK)
        return e;
    if ((e = check_counters(&ck)) != STORE_OK)
        return e;
    if ((e = check_meta(&ck)) != STORE_OK)
        return e;
    if ((e = lmdb_audit_check(v, op)) != STORE_OK)
        return e;
    return check_available(&ck);
}
