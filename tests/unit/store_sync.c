/* store_sync.c - submit, then run the loop until completed (see store_sync.h). */
#include "store_sync.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A read being waited for. */
struct read_wait {
    struct ss *s;
    unsigned calls;
    bool done;
};

__attribute__((format(printf, 2, 3))) static void
violation(struct ss *s, const char *fmt, ...)
{
    va_list ap;

    if (s->violation[0] != '\0')
        return; /* keep the first */
    va_start(ap, fmt);
    vsnprintf(s->violation, sizeof s->violation, fmt, ap);
    va_end(ap);
}

enum store_err
ss_open(struct ss *s, const char *uri, enum store_open_mode mode, uint64_t map_size, char *err,
        size_t errlen)
{
    struct store_config cfg;
    enum store_err e;

    memset(s, 0, sizeof *s);
    s->loop = ev_loop_new(EVFLAG_AUTO);
    if (s->loop == NULL) {
        snprintf(err, errlen, "ev_loop_new failed");
        return STORE_IO;
    }
    cfg = (struct store_config){.loop = s->loop, .mode = mode, .map_size = map_size};
    e = store_open(uri, &cfg, &s->st, err, errlen);
    if (e != STORE_OK) {
        ev_loop_destroy(s->loop);
        s->loop = NULL;
    }
    return e;
}

void
ss_close(struct ss *s)
{
    store_close(s->st);
    s->st = NULL;
    if (s->loop != NULL)
        ev_loop_destroy(s->loop);
    s->loop = NULL;
}

const char *
ss_violation(const struct ss *s)
{
    return s->violation[0] != '\0' ? s->violation : NULL;
}

/* --- operations --- */

void
ss_op(struct store_op *op, enum store_op_kind kind, int64_t now)
{
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->now = now;
}

void
ss_op_upload(struct store_op *op, const struct store_coupon *recs, size_t n, bool check_only,
             struct store_reject *rejects, size_t rej_cap)
{
    ss_op(op, STORE_OP_UPLOAD, 0);
    op->in.recs = recs;
    op->in.n = n;
    op->in.check_only = check_only;
    op->in.rejects = rejects;
    op->in.rej_cap = rej_cap;
}

void
ss_op_assign(struct store_op *op, enum store_type type, const char *user, int64_t now)
{
    ss_op(op, STORE_OP_ASSIGN, now);
    op->in.type = type;
    snprintf(op->in.user, sizeof op->in.user, "%s", user);
}

void
ss_op_redeem(struct store_op *op, const char *code, const char *user, int64_t now)
{
    ss_op(op, STORE_OP_REDEEM, now);
    snprintf(op->in.code, sizeof op->in.code, "%s", code);
    snprintf(op->in.user, sizeof op->in.user, "%s", user);
}

void
ss_op_purge(struct store_op *op, int64_t now, size_t max)
{
    ss_op(op, STORE_OP_PURGE, now);
    op->in.max = max;
}

void
ss_op_validate(struct store_op *op, const char *code, const char *user, int64_t now)
{
    ss_op_redeem(op, code, user, now);
    op->kind = STORE_OP_VALIDATE;
}

void
ss_op_get(struct store_op *op, const char *code)
{
    ss_op(op, STORE_OP_GET, 0);
    snprintf(op->in.code, sizeof op->in.code, "%s", code);
}

void
ss_op_counters(struct store_op *op, int64_t now)
{
    ss_op(op, STORE_OP_COUNTERS, now);
}

void
ss_op_history(struct store_op *op, uint64_t after, struct store_redemption *rows, size_t cap)
{
    ss_op(op, STORE_OP_HISTORY, 0);
    op->in.after = after;
    op->in.rows = rows;
    op->in.cap = cap;
}

void
ss_op_check(struct store_op *op, int64_t now)
{
    ss_op(op, STORE_OP_CHECK, now);
}

void
ss_op_hold(struct store_op *op, const char *code, const char *user, int64_t now, int64_t until)
{
    ss_op_redeem(op, code, user, now);
    op->kind = STORE_OP_HOLD;
    op->in.until = until;
}

void
ss_op_release(struct store_op *op, uint64_t hold_seq, int64_t now)
{
    ss_op(op, STORE_OP_RELEASE, now);
    op->in.hold_seq = hold_seq;
}

void
ss_op_unredeem(struct store_op *op, const char *user, uint64_t redemption, int64_t now)
{
    ss_op(op, STORE_OP_UNREDEEM, now);
    snprintf(op->in.user, sizeof op->in.user, "%s", user);
    op->in.after = redemption;
}

void
ss_op_generate(struct store_op *op, const struct store_coupon *recs, size_t n, size_t want,
               size_t *chosen)
{
    ss_op(op, STORE_OP_GENERATE, 0);
    op->in.recs = recs;
    op->in.n = n;
    op->in.want = want;
    op->in.chosen = chosen;
}

void
ss_op_expire_holds(struct store_op *op, int64_t now, size_t max)
{
    ss_op(op, STORE_OP_EXPIRE_HOLDS, now);
    op->in.max = max;
}

void
ss_op_expire_ids(struct store_op *op, int64_t now, size_t max)
{
    ss_op(op, STORE_OP_EXPIRE_IDS, now);
    op->in.max = max;
}

void
ss_op_rid_get(struct store_op *op, const char *scope, const char *id)
{
    ss_op(op, STORE_OP_RID_GET, 0);
    snprintf(op->in.rid.scope, sizeof op->in.rid.scope, "%s", scope);
    snprintf(op->in.rid.id, sizeof op->in.rid.id, "%s", id);
}

void
ss_op_coupons(struct store_op *op, const char *user, int64_t now, struct store_coupon *rows,
              size_t cap)
{
    ss_op(op, STORE_OP_COUPONS, now);
    snprintf(op->in.user, sizeof op->in.user, "%s", user);
    op->in.coupons = rows;
    op->in.cap = cap;
}

void
ss_op_export(struct store_op *op, enum store_export_kind kind, void *cursor, size_t cap,
             struct store_coupon *coupons, struct store_redemption *rows)
{
    ss_op(op, STORE_OP_EXPORT, 0);
    op->in.export_kind = kind;
    op->in.any_type = true;
    op->in.cursor = cursor;
    op->in.cap = cap;
    op->in.coupons = coupons;
    op->in.rows = rows;
}

void
ss_op_rid(struct store_op *op, const char *scope, const char *id, const char *request)
{
    /* FNV-1a over the request text, spread over the fingerprint's bytes. */
    uint64_t h = UINT64_C(14695981039346656037);

    snprintf(op->in.rid.scope, sizeof op->in.rid.scope, "%s", scope);
    snprintf(op->in.rid.id, sizeof op->in.rid.id, "%s", id);
    for (const char *p = request; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * UINT64_C(1099511628211);
    for (int i = 0; i < STORE_FP_BYTES; i++)
        op->in.rid.fp[i] = (uint8_t)(h >> (8 * (i % 8))) ^ (uint8_t)i;
}

/* --- waiting --- */

static void
on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    *(bool *)t->data = true;
}

/* Runs the loop until *flag is set. A store that never completes is a fatal test failure:
 * the process aborts, rather than leave a callback pointing into a returned frame. */
static void
wait_for(struct ss *s, const bool *flag)
{
    bool timed_out = false;
    ev_timer t;

    if (*flag)
        return;
    ev_now_update(s->loop);
    ev_timer_init(&t, on_timeout, SS_WAIT_MAX_S, 0.);
    t.data = &timed_out;
    ev_timer_start(s->loop, &t);
    while (!*flag && !timed_out)
        ev_run(s->loop, EVRUN_ONCE);
    ev_timer_stop(s->loop, &t);
    if (!*flag) {
        fprintf(stderr, "store_sync: nothing completed within %.0f s\n", SS_WAIT_MAX_S);
        abort();
    }
}

/* An operation of a batch must not be completed on its own. */
static void
stray_done(struct store_op *op)
{
    violation(op->arg, "the callback of a batch's operation (kind %d) was called", (int)op->kind);
}

static void
batch_done(struct store_batch *b, enum store_err err)
{
    struct ss_batch *sb = b->arg;

    if (sb->s->in_commit)
        violation(sb->s, "a batch completed inside store_commit");
    if (++sb->calls > 1)
        violation(sb->s, "a batch completed %u times", sb->calls);
    sb->done = true;
    sb->err = err;
    if (sb->then != NULL)
        sb->then(sb);
}

void
ss_batch_init(struct ss *s, struct ss_batch *sb)
{
    memset(sb, 0, sizeof *sb);
    sb->s = s;
    store_batch_init(&sb->b);
    sb->b.done = batch_done;
    sb->b.arg = sb;
}

struct store_op *
ss_batch_add(struct ss_batch *sb, struct store_op *op)
{
    op->done = stray_done;
    op->arg = sb->s;
    store_batch_add(&sb->b, op);
    return op;
}

void
ss_commit_start(struct ss_batch *sb)
{
    bool outer = sb->s->in_commit; /* a commit from a completion callback */

    sb->s->in_commit = true;
    store_commit(sb->s->st, &sb->b);
    sb->s->in_commit = outer;
}

enum store_err
ss_wait(struct ss_batch *sb)
{
    wait_for(sb->s, &sb->done);
    return sb->err;
}

enum store_err
ss_commit(struct ss_batch *sb)
{
    ss_commit_start(sb);
    return ss_wait(sb);
}

static void
read_done(struct store_op *op)
{
    struct read_wait *w = op->arg;

    if (++w->calls > 1)
        violation(w->s, "a read completed %u times", w->calls);
    w->done = true;
}

enum store_err
ss_read(struct ss *s, struct store_op *op)
{
    struct read_wait w = {.s = s};

    op->done = read_done;
    op->arg = &w;
    store_read(s->st, op);
    wait_for(s, &w.done);
    return op->err;
}

enum store_err
ss_run(struct ss *s, struct store_op *op)
{
    struct ss_batch sb;

    if (!store_op_writes(op->kind))
        return ss_read(s, op);
    ss_batch_init(s, &sb);
    ss_batch_add(&sb, op);
    ss_commit(&sb);
    return op->err;
}

/* --- one operation --- */

enum store_err
ss_upload(struct ss *s, const struct store_coupon *recs, size_t n, bool check_only,
          struct store_reject *rejects, size_t rej_cap, size_t *n_rejected)
{
    struct store_op op;

    ss_op_upload(&op, recs, n, check_only, rejects, rej_cap);
    ss_run(s, &op);
    if (n_rejected != NULL)
        *n_rejected = op.out.n_rejected;
    return op.err;
}

enum store_err
ss_assign(struct ss *s, enum store_type type, const char *user, int64_t now,
          struct store_coupon *out)
{
    struct store_op op;

    ss_op_assign(&op, type, user, now);
    ss_run(s, &op);
    if (out != NULL)
        *out = op.out.coupon;
    return op.err;
}

enum store_err
ss_redeem(struct ss *s, const char *code, const char *user, int64_t now, struct store_coupon *out)
{
    struct store_op op;

    ss_op_redeem(&op, code, user, now);
    ss_run(s, &op);
    if (out != NULL)
        *out = op.out.coupon;
    return op.err;
}

enum store_err
ss_purge(struct ss *s, int64_t now, size_t max, uint64_t *count, bool *more)
{
    struct store_op op;

    ss_op_purge(&op, now, max);
    ss_run(s, &op);
    if (count != NULL)
        *count = op.out.count;
    if (more != NULL)
        *more = op.out.more;
    return op.err;
}

enum store_err
ss_validate(struct ss *s, const char *code, const char *user, int64_t now, struct store_coupon *out)
{
    struct store_op op;

    ss_op_validate(&op, code, user, now);
    ss_run(s, &op);
    if (out != NULL)
        *out = op.out.coupon;
    return op.err;
}

enum store_err
ss_get(struct ss *s, const char *code, struct store_coupon *out)
{
    struct store_op op;

    ss_op_get(&op, code);
    ss_run(s, &op);
    if (out != NULL)
        *out = op.out.coupon;
    return op.err;
}

enum store_err
ss_counters(struct ss *s, int64_t now, struct store_counters *out)
{
    struct store_op op;

    ss_op_counters(&op, now);
    ss_run(s, &op);
    if (out != NULL)
        *out = op.out.counters;
    return op.err;
}

enum store_err
ss_history(struct ss *s, uint64_t after, struct store_redemption *rows, size_t cap, size_t *count)
{
    struct store_op op;

    ss_op_history(&op, after, rows, cap);
    ss_run(s, &op);
    if (count != NULL)
        *count = (size_t)op.out.count;
    return op.err;
}

enum store_err
ss_check(struct ss *s, int64_t now, char *msg, size_t msglen)
{
    struct store_op op;

    ss_op_check(&op, now);
    ss_run(s, &op);
    if (msg != NULL && msglen > 0)
        snprintf(msg, msglen, "%s", op.out.msg);
    return op.err;
}
