/* lmdb_write.c - the frame every write of a batch runs in (its request id, its audit record, its
 * group operation, its commit or undo), and assign, redeem, unredeem and purge in the LMDB backend
 * (see lmdb_write.h). Upload and generate are in lmdb_upload.c, holds in lmdb_hold.c. */
#include "lmdb_write.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "audit.h"
#include "backend.h"
#include "lmdb_audit.h"
#include "lmdb_hold.h"
#include "lmdb_index.h"
#include "lmdb_rid.h"
#include "lmdb_upload.h"
#include "rules.h"

/* Puts key -> value in `db` through the operation's cursor; an entry already there is
 * STORE_CORRUPT (index entries are unique by their sequence). */
static enum store_err
entry_put(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op, enum lmdb_db db,
          MDB_val *k, MDB_val *v)
{
    int rc = lmdb_group_op_put(g, gop, db, k, v, MDB_NOOVERWRITE);

    if (rc == MDB_KEYEXIST)
        return store_op_fail(op, STORE_CORRUPT, "%s entry stored twice", lmdb_env_db_name(db));
    return rc == 0 ? STORE_OK : lmdb_env_fail(op, rc, lmdb_env_db_name(db));
}

/* --- assign --- */

/* The users entry of assigned coupon *c: put, or deleted. */
static enum store_err
user_put(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op,
         const struct store_coupon *c)
{
    uint8_t key[LMDB_CODEC_USER_KEY_MAX];
    MDB_val k = {lmdb_codec_user_key(c->user, c->assigned_at, c->seq, false, key), key};
    MDB_val v = {strlen(c->code), (void *)c->code};

    return entry_put(g, gop, op, LMDB_DB_USERS, &k, &v);
}

static enum store_err
user_del(struct lmdb_group_op *gop, const struct lmdb_env *env, struct store_op *op,
         const struct store_coupon *c)
{
    uint8_t key[LMDB_CODEC_USER_KEY_MAX];
    MDB_val k = {lmdb_codec_user_key(c->user, c->assigned_at, c->seq, false, key), key};
    int rc = mdb_del(gop->txn, env->dbi[LMDB_DB_USERS], &k, NULL);

    if (rc == MDB_NOTFOUND)
        return store_op_fail(op, STORE_CORRUPT, "coupon %s has no users index entry", c->code);
    return rc == 0 ? STORE_OK : lmdb_env_fail(op, rc, "delete users entry");
}

/* Takes the next coupon of in.type for in.user that expires at or after max(now, min_expires):
 * one seek of the avail index. */
static enum store_err
run_assign(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    const uint8_t type = (uint8_t)op->in.type;
    const int64_t from = op->in.min_expires > op->now ? op->in.min_expires : op->now;
    char code[STORE_CODE_MAX + 1];
    struct lmdb_coupon c;
    MDB_cursor *cur;
    int64_t expires;
    uint64_t seq;
    enum store_err e;
    int rc;

    /* The store's own rules: an assigned coupon is one with a user. */
    if ((unsigned)op->in.type >= STORE_NTYPES || rules_user_len(op->in.user) == 0)
        return STORE_INVALID;
    if ((rc = lmdb_group_op_cursor(g, gop, LMDB_DB_AVAIL, &cur)) != 0)
        return lmdb_env_fail(op, rc, "assign: open cursor");
    if ((e = lmdb_index_next(cur, type, from, code, &expires, &seq, op)) != STORE_OK)
        return e;
    if ((e = lmdb_env_coupon_get(g->env, gop->txn, code, &c, op)) != STORE_OK)
        return e == STORE_INVALID
                   ? store_op_fail(op, STORE_CORRUPT, "avail entry names missing %s", code)
                   : e;
    if (c.pub.user[0] != '\0' || c.pub.seq != seq || c.pub.expires != expires || c.pub.type != type)
        return store_op_fail(op, STORE_CORRUPT, "avail entry does not match coupon %s", code);
    if ((rc = mdb_cursor_del(cur, 0)) != 0)
        return lmdb_env_fail(op, rc, "assign: delete avail entry");
    memcpy(c.pub.user, op->in.user, strlen(op->in.user) + 1);
    c.pub.assigned_at = op->now;
    gop->s.t[type].assigned++;
    lmdb_index_avail_removed(&gop->s, type, expires);
    if ((e = lmdb_env_coupon_put(g->env, gop->txn, &c, "assign: put coupon", op)) != STORE_OK ||
        (e = user_put(g, gop, op, &c.pub)) != STORE_OK)
        return e;
    op->out.coupon = c.pub; /* an unassigned coupon has no holds */
    return STORE_OK;
}

/* --- redeem, unredeem --- */

/* Counts one use of *c (checked usable), appends the history record and its code_hist entry. */
static enum store_err
redeem_apply(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op,
             struct lmdb_coupon *c)
{
    uint8_t sk[LMDB_CODEC_CODE_HIST_KEY_MAX], hb[LMDB_CODEC_HISTORY_REC_MAX];
    struct store_redemption h = {.time = op->now, .type = c->pub.type};
    const uint64_t seq = gop->s.next_redemption_seq;
    MDB_val k = {LMDB_CODEC_SEQ_KEY_LEN, sk}, v;
    enum store_err e;
    int rc;

    /* Redeemed once: never purged, even if every use is undone. */
    if (!c->redeemed && (e = lmdb_index_expiry_del(g->env, gop->txn, &c->pub, op)) != STORE_OK)
        return e;
    c->redeemed = true;
    c->pub.uses++;
    if ((e = lmdb_env_coupon_put(g->env, gop->txn, c, "redeem: put coupon", op)) != STORE_OK)
        return e;
    memcpy(h.code, c->pub.code, sizeof h.code);
    memcpy(h.user, c->pub.user, sizeof h.user);
    lmdb_codec_put_be(sk, seq, LMDB_CODEC_SEQ_KEY_LEN);
    v = (MDB_val){lmdb_codec_history_encode(&h, hb), hb};
    if ((rc = mdb_put(gop->txn, g->env->dbi[LMDB_DB_HISTORY], &k, &v, MDB_APPEND)) != 0)
        return lmdb_env_fail(op, rc, "redeem: append history");
    k = (MDB_val){lmdb_codec_code_hist_key(h.code, seq, false, sk), sk};
    v = (MDB_val){0, ""};
    if ((e = entry_put(g, gop, op, LMDB_DB_CODE_HIST, &k, &v)) != STORE_OK)
        return e;
    gop->s.next_redemption_seq++;
    gop->s.t[c->pub.type].redeemed++;
    op->out.redemption = seq;
    return STORE_OK;
}

/* The checks of a redemption of *c: with in.hold_seq, the hold stands for the use left (and
 * ends); without, rules_usable. */
static enum store_err
redeem_check(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op,
             struct lmdb_coupon *c)
{
    if (op->in.hold_seq == 0)
        return rules_usable(&c->pub, op->in.user, op->now);
    if (!rules_owned_by(&c->pub, op->in.user))
        return STORE_INVALID;
    return lmdb_hold_redeem(g, gop, op, c);
}

static enum store_err
run_redeem(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    struct lmdb_coupon c;
    enum store_err e = lmdb_env_coupon_get(g->env, gop->txn, op->in.code, &c, op);

    if (e == STORE_OK)
        e = lmdb_hold_live_op(g, gop, &c, op->now, op);
    if (e != STORE_OK)
        return e;
    if ((e = redeem_check(g, gop, op, &c)) != STORE_OK) {
        if (e != STORE_INVALID) /* never show a coupon to a user it does not belong to */
            op->out.coupon = c.pub;
        return e;
    }
    if ((e = redeem_apply(g, gop, op, &c)) != STORE_OK)
        return e;
    op->out.coupon = c.pub;
    return STORE_OK;
}

/* Marks redemption in.after of in.user undone at now and gives its use back. */
static enum store_err
run_unredeem(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    uint8_t sk[LMDB_CODEC_SEQ_KEY_LEN], hb[LMDB_CODEC_HISTORY_REC_MAX];
    MDB_val k = {sizeof sk, sk}, v;
    struct store_redemption h;
    struct lmdb_coupon c;
    enum store_err e;
    int rc;

    if (op->in.after == 0)
        return STORE_UNKNOWN_REDEMPTION;
    if ((e = lmdb_env_history_get(g->env, gop->txn, op->in.after, &h, op)) != STORE_OK)
        return e;
    if (strcmp(h.user, op->in.user) != 0 || h.undone != 0)
        return STORE_UNKNOWN_REDEMPTION;
    if ((e = lmdb_env_coupon_get(g->env, gop->txn, h.code, &c, op)) == STORE_INVALID)
        return store_op_fail(op, STORE_CORRUPT, "redemption %" PRIu64 " names missing coupon %s",
                             h.seq, h.code);
    if (e == STORE_OK && c.pub.uses == 0)
        e = store_op_fail(op, STORE_CORRUPT, "redemption %" PRIu64 " of %s stands, uses 0", h.seq,
                          h.code);
    if (e == STORE_OK)
        e = lmdb_hold_live_op(g, gop, &c, op->now, op);
    if (e != STORE_OK)
        return e;
    h.undone = op->now;
    lmdb_codec_put_be(sk, h.seq, sizeof sk);
    v = (MDB_val){lmdb_codec_history_encode(&h, hb), hb};
    if ((rc = mdb_put(gop->txn, g->env->dbi[LMDB_DB_HISTORY], &k, &v, 0)) != 0)
        return lmdb_env_fail(op, rc, "unredeem: put history");
    c.pub.uses--;
    if ((e = lmdb_env_coupon_put(g->env, gop->txn, &c, "unredeem: put coupon", op)) != STORE_OK)
        return e;
    gop->s.t[c.pub.type].unredeemed++;
    op->out.coupon = c.pub;
    return STORE_OK;
}

/* --- purge --- */

/* Deletes the never-redeemed coupon named by the expiry entry (expires, seq) -> val, its avail or
 * users entry and its holds; lmdb_group_op_drain deletes the expiry entry. */
static enum store_err
purge_one(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op, int64_t expires,
          uint64_t seq, const MDB_val *val)
{
    char code[STORE_CODE_MAX + 1];
    MDB_val k;
    struct lmdb_coupon c;
    enum store_err e;
    int rc;

    if (!lmdb_codec_code_from_val(val, code))
        return store_op_fail(op, STORE_CORRUPT, "expiry index entry does not decode");
    k = (MDB_val){strlen(code), code};
    if ((e = lmdb_env_coupon_get(g->env, gop->txn, code, &c, op)) != STORE_OK)
        return e == STORE_INVALID
                   ? store_op_fail(op, STORE_CORRUPT, "expiry entry names missing %s", code)
                   : e;
    if (c.pub.seq != seq || c.pub.expires != expires || c.redeemed)
        return store_op_fail(op, STORE_CORRUPT, "expiry entry does not match coupon %s", code);
    if (c.holds > 0 && (e = lmdb_hold_drop_all(g, gop, op, &c)) != STORE_OK)
        return e;
    if ((rc = mdb_del(gop->txn, g->env->dbi[LMDB_DB_COUPONS], &k, NULL)) != 0)
        return lmdb_env_fail(op, rc, "purge: delete coupon");
    gop->s.t[c.pub.type].purged++;
    if (c.pub.user[0] != '\0') {
        gop->s.t[c.pub.type].purged_assigned++;
        return user_del(gop, g->env, op, &c.pub);
    }
    if ((e = lmdb_index_avail_del(g->env, gop->txn, &c.pub, op)) != STORE_OK)
        return e;
    lmdb_index_avail_removed(&gop->s, c.pub.type, c.pub.expires);
    return STORE_OK;
}

/* Deletes from the head of the expiry index (oldest expiry first) while entries are expired,
 * at most in.max; out.more tells whether an expired entry is left. */
static enum store_err
run_purge(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    enum store_err e = lmdb_group_op_drain(g, gop, LMDB_DB_EXPIRY, purge_one, "purge", op);

    gop->discard = op->out.count == 0; /* nothing deleted: no commit, no fsync */
    return e;
}

/* A slot of a grant shared by nodes: LMDB opens none (store.h), so there is none to close. */
static enum store_err
run_grant_done(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op)
{
    (void)g;
    (void)op;
    gop->discard = true; /* nothing written: no commit, no fsync */
    return STORE_OK;
}

/* --- the frame --- */

static const struct {
    const char *name;
    unsigned pages; /* LMDB_GROUP_NESTED, or what a direct run may dirty (lmdb_group.h) */
    enum store_err (*run)(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op);
} writes[STORE_NOPS] = {
    [STORE_OP_UPLOAD] = {"upload", LMDB_GROUP_NESTED, lmdb_upload_run},
    [STORE_OP_ASSIGN] = {"assign", LMDB_GROUP_ASSIGN_PAGES, run_assign},
    [STORE_OP_REDEEM] = {"redeem", LMDB_GROUP_REDEEM_PAGES, run_redeem},
    [STORE_OP_PURGE] = {"purge", LMDB_GROUP_NESTED, run_purge},
    [STORE_OP_HOLD] = {"hold", LMDB_GROUP_HOLD_PAGES, lmdb_hold_run_hold},
    [STORE_OP_RELEASE] = {"release", LMDB_GROUP_HOLD_PAGES, lmdb_hold_run_release},
    [STORE_OP_UNREDEEM] = {"unredeem", LMDB_GROUP_UNREDEEM_PAGES, run_unredeem},
    [STORE_OP_GENERATE] = {"generate", LMDB_GROUP_NESTED, lmdb_upload_generate},
    [STORE_OP_EXPIRE_HOLDS] = {"expire holds", LMDB_GROUP_NESTED, lmdb_hold_run_expire},
    [STORE_OP_EXPIRE_IDS] = {"expire ids", LMDB_GROUP_NESTED, lmdb_rid_run_expire},
    [STORE_OP_AUDIT_NOTE] = {"audit note", LMDB_GROUP_NOTE_PAGES, lmdb_audit_run_note},
    [STORE_OP_GRANT_DONE] = {"grant done", LMDB_GROUP_NOTE_PAGES, run_grant_done},
};

/* Refuses, before its operation begins, a write whose inputs are a caller's mistake: failing
 * later, a direct operation would fail the whole batch. */
static enum store_err
inputs_ok(struct store_op *op)
{
    if (rules_rid_carried(op) && lmdb_rid_valid(op) != STORE_OK)
        return op->err;
    if (op->kind == STORE_OP_UNREDEEM && op->now == 0) /* undone 0 means "stands" */
        return store_op_fail(op, STORE_IO, "unredeem: time 0 cannot mark an undo");
    return STORE_OK;
}

/* Runs op in a group operation of its own: the replay of its request id, or the operation, then
 * its id, then its audit record; folded into the group when it succeeded, else undone alone. */
static enum store_err
write_in_op(struct lmdb_group *g, struct store_op *op, unsigned pages,
            enum store_err (*run)(struct lmdb_group *g, struct lmdb_group_op *gop,
                                  struct store_op *op))
{
    const bool rid = rules_rid_carried(op);
    struct lmdb_group_op gop;
    bool replayed = false;
    enum store_err e = lmdb_group_op_begin(g, &gop, pages, op);

    if (e != STORE_OK)
        return e;
    if (rid)
        e = lmdb_rid_replay(g, &gop, op, &replayed);
    if (e == STORE_OK && !replayed)
        e = run(g, &gop, op);
    if (e == STORE_OK && !replayed && !gop.discard && rid)
        e = lmdb_rid_put(g, &gop, op);
    if (e == STORE_OK && !replayed && !gop.discard && audit_wanted(op))
        e = lmdb_audit_append(g, &gop, op);
    if (e != STORE_OK || replayed || gop.discard)
        return lmdb_group_op_abort(g, &gop, e);
    return lmdb_group_op_commit(g, &gop, "commit operation", op);
}

/* A failed write changed nothing: its outputs say so, but for the coupon "as found" of a check
 * that failed (store.h) and an upload's rejects. */
static void
failed_outputs(struct store_op *op)
{
    op->out.count = 0;
    op->out.more = false;
    op->out.replayed = false;
    op->out.redemption = 0;
    op->out.hold = (struct store_hold){0};
    if (op->err != STORE_EXHAUSTED && op->err != STORE_EXPIRED && op->err != STORE_UNKNOWN_HOLD)
        memset(&op->out.coupon, 0, sizeof op->out.coupon);
}

void
lmdb_write_run(struct lmdb_group *g, struct store_op *op)
{
    if ((unsigned)op->kind >= STORE_NOPS || writes[op->kind].run == NULL) {
        store_op_fail(op, STORE_IO, "operation %d is not a write", (int)op->kind);
        return;
    }
    op->out.replayed = false;
    op->err = inputs_ok(op);
    if (op->err == STORE_OK)
        op->err = write_in_op(g, op, writes[op->kind].pages, writes[op->kind].run);
    if (op->err == STORE_OK)
        return;
    failed_outputs(op);
    if (op->out.msg[0] == '\0')
        store_op_fail(op, op->err, "%s: %s", writes[op->kind].name, store_strerror(op->err));
}
