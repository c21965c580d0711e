/* verify.c - the crash test's checks after a kill -9: coupond --check, counter bounds, UPLOAD
 * probes, VALIDATE of pending REQUESTs and of assignments, exact counters, MEGADEAL tasks. */
#include "verify.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "once.h"
#include "pipeline.h"
#include "workload.h"

#define PROBE_CHUNK 99       /* codes per probe: with the malformed record, the 100 REJECT */
                             /* lines a reply shows at most */
#define PROBE_RECORD_MAX 96  /* one probe record line */
#define PROBE_WINDOW     8   /* probes sent before their replies are read (~4 KiB each) */
#define VALIDATE_WINDOW  256 /* VALIDATEs sent before their replies are read */
#define VALIDATE_CMD_MAX (16 + MODEL_USER_MAX + MODEL_CODE_MAX)
#define STATUS_CMD_MAX   (16 + PROTO_TASK_MAX)
#define PROBE_ROTATE     2000  /* codes of older batches probed again after each restart */
#define VALIDATE_ROTATE  2000  /* older assignments validated again after each restart */
#define VERIFY_IO_MS     60000 /* the checking client's socket timeouts: a loaded CI machine */
#define CHECK_OUT_MAX    4096  /* captured output of coupond --check */
#define PROBE_BAD_RECORD "PROBE-BAD,,0,FLAT,2099-12-31,1\n" /* discount 0: always rejected */

/* The counters of STATS, or the bounds the model puts on them. */
struct totals {
    uint64_t created[PROTO_NTYPES];
    uint64_t assigned[PROTO_NTYPES];
    uint64_t redeemed[PROTO_NTYPES];
    uint64_t available[PROTO_NTYPES];
    uint64_t purged[PROTO_NTYPES];
    uint64_t held[PROTO_NTYPES];       /* uses reserved by live holds */
    uint64_t unredeemed[PROTO_NTYPES]; /* uses given back by UNREDEEM */
    uint64_t expired[PROTO_NTYPES];    /* model only: codes of bulk (expired) batches */
    uint64_t mega_queued, mega_in_flight;
};

/* ---- coupond --check ---- */

void
verify_store_check(struct model *m, const struct bb_server *s)
{
    char out[CHECK_OUT_MAX], err[CHECK_OUT_MAX];
    /* On PostgreSQL the store is the database the server used: --check --store checks it. */
    const char *const lmdb[] = {"--check", "-d", s->dir, NULL};
    const char *const pg[] = {"--check", "-d", s->dir, "--store", s->store, NULL};
    int rc = bb_run(s->store[0] != '\0' ? pg : lmdb, out, sizeof out, err, sizeof err);
    model_check(m, rc == 0, "coupond --check -d %s%s exited %d: %s%s", s->dir,
                s->store[0] != '\0' ? " --store (its schema)" : "", rc, out, err);
    const char *const lmdb_audit[] = {"--verify-audit", "-d", s->dir, NULL};
    const char *const pg_audit[] = {"--verify-audit", "-d", s->dir, "--store", s->store, NULL};
    rc = bb_run(s->store[0] != '\0' ? pg_audit : lmdb_audit, out, sizeof out, err, sizeof err);
    model_check(m, rc == 0 && strstr(out, "audit chain verified") != NULL,
                "coupond --verify-audit -d %s exited %d: %s%s", s->dir, rc, out, err);
}

/* ---- the audit chain ---- */

/* The chain has one record per change and no other: an UPLOAD per stored batch (a probe stores
 * nothing), one per assignment (REQUEST or MEGADEAL grant), one per redemption; nothing else
 * writes (no purge, holds or request ids in this workload). `got` is the exact STATS. */
static void
check_chain_length(struct model *m, struct bb_client *c, const struct totals *got)
{
    char *reply = malloc(BB_REPLY_MAX);
    uint64_t want = 0, seq = 0;
    const char *status, *v;
    size_t len;

    if (reply == NULL)
        fail_msg("crash: out of memory");
    for (size_t i = 0; i < m->n_batches; i++)
        want += model_batch_stored(&m->batches[i]) ? 1 : 0;
    for (int ty = 0; ty < PROTO_NTYPES; ty++)
        want += got->assigned[ty] + got->redeemed[ty];
    status = bb_cmd(c, "AUDIT", reply);
    if (proto_reply_field(status, strlen(status), "seq", &v, &len))
        seq = strtoull(v, NULL, 10);
    model_check(m, strncmp(status, "OK seq=", 7) == 0 && seq == want,
                "AUDIT: \"%s\": %llu records expected (stored batches, assignments, "
                "redemptions)",
                status, (unsigned long long)want);
    free(reply);
}

/* ---- STATS ---- */

static void
read_stats(struct model *m, struct bb_client *c, struct totals *t)
{
    char *reply = malloc(BB_REPLY_MAX);
    if (reply == NULL)
        fail_msg("crash: out of memory");
    uint64_t *per_type[] = {t->created, t->assigned, t->redeemed,  t->available,
                            t->purged,  t->held,     t->unredeemed};
    static const char *const names[] = {"created", "assigned", "redeemed",  "available",
                                        "purged",  "held",     "unredeemed"};
    const char *status = bb_cmd(c, "STATS", reply);
    if (strcmp(status, "OK") != 0)
        fail_msg("crash: STATS: \"%s\"", reply);
    memset(t, 0, sizeof *t);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        for (int ty = 0; ty < PROTO_NTYPES; ty++) {
            char name[64];
            snprintf(name, sizeof name, "%s.%s", names[k], proto_type_name((enum proto_type)ty));
            model_check(m, bb_stat_find(reply, name, &per_type[k][ty]), "STATS lacks %s", name);
        }
    }
    model_check(m,
                bb_stat_find(reply, "megadeal.queued", &t->mega_queued) &&
                    bb_stat_find(reply, "megadeal.in_flight", &t->mega_in_flight),
                "STATS lacks megadeal.queued or megadeal.in_flight");
    free(reply);
}

/* What the model knows for sure (lo) and what it allows at most (hi). */
static void
model_bounds(const struct model *m, struct totals *lo, struct totals *hi)
{
    memset(lo, 0, sizeof *lo);
    memset(hi, 0, sizeof *hi);
    for (size_t i = 0; i < m->n_batches; i++) {
        const struct batch *b = &m->batches[i];
        if (model_batch_stored(b)) {
            lo->created[b->type] += b->n;
            lo->expired[b->type] += b->expired ? b->n : 0;
        }
        if (model_batch_stored(b) || b->state == BATCH_PENDING) {
            hi->created[b->type] += b->n;
            hi->expired[b->type] += b->expired ? b->n : 0;
        }
    }
    for (size_t i = 0; i < m->n_coupons; i++) {
        const struct coupon *c = &m->coupons[i];
        if (c->user == MODEL_NONE)
            continue;
        uint32_t most = c->uses + c->unacked;
        lo->assigned[c->type]++;
        hi->assigned[c->type]++;
        /* redeemed counts every use ever counted, the undone ones too */
        lo->redeemed[c->type] += c->uses + c->undone;
        hi->redeemed[c->type] += (most < c->max_uses ? most : c->max_uses) + c->undone;
        lo->held[c->type] += c->live_hold != MODEL_NONE;
        hi->held[c->type] += c->live_hold != MODEL_NONE;
        lo->unredeemed[c->type] += c->undone;
        hi->unredeemed[c->type] += c->undone;
    }
    for (size_t i = 0; i < m->n_users; i++) {
        const struct user *u = &m->users[i];
        if (u->state == USER_PENDING || u->state == USER_QUEUED)
            hi->assigned[u->type]++;
    }
}

static void
check_range(struct model *m, const char *what, int type, uint64_t got, uint64_t lo, uint64_t hi)
{
    model_check(m, lo <= got && got <= hi,
                "STAT %s.%s is %llu; acknowledged %llu, with the unacknowledged at most %llu", what,
                proto_type_name((enum proto_type)type), (unsigned long long)got,
                (unsigned long long)lo, (unsigned long long)hi);
}

/* Checks STATS against the model's bounds (equal bounds: an exact check). */
static void
check_stats(struct model *m, const struct totals *got, const struct totals *lo,
            const struct totals *hi)
{
    for (int ty = 0; ty < PROTO_NTYPES; ty++) {
        check_range(m, "created", ty, got->created[ty], lo->created[ty], hi->created[ty]);
        check_range(m, "assigned", ty, got->assigned[ty], lo->assigned[ty], hi->assigned[ty]);
        check_range(m, "redeemed", ty, got->redeemed[ty], lo->redeemed[ty], hi->redeemed[ty]);
        check_range(m, "held", ty, got->held[ty], lo->held[ty], hi->held[ty]);
        check_range(m, "unredeemed", ty, got->unredeemed[ty], lo->unredeemed[ty],
                    hi->unredeemed[ty]);
        /* Only the bulk batches' coupons are expired (and never assigned); none is purged. */
        uint64_t unavailable = got->created[ty] - got->assigned[ty] - got->available[ty];
        model_check(m,
                    got->assigned[ty] + got->available[ty] <= got->created[ty] &&
                        lo->expired[ty] <= unavailable && unavailable <= hi->expired[ty],
                    "STAT available.%s is %llu and assigned %llu of %llu created, but %llu to %llu "
                    "of them are expired",
                    proto_type_name((enum proto_type)ty), (unsigned long long)got->available[ty],
                    (unsigned long long)got->assigned[ty], (unsigned long long)got->created[ty],
                    (unsigned long long)lo->expired[ty], (unsigned long long)hi->expired[ty]);
        model_check(m, got->purged[ty] == 0, "STAT purged.%s is %llu, expected 0",
                    proto_type_name((enum proto_type)ty), (unsigned long long)got->purged[ty]);
    }
    model_check(m, got->mega_queued == 0 && got->mega_in_flight == 0,
                "after a restart the MEGADEAL queue holds %llu queued and %llu in flight",
                (unsigned long long)got->mega_queued, (unsigned long long)got->mega_in_flight);
}

/* ---- UPLOAD probes ---- */

struct probe {
    uint32_t batch, start, count; /* codes start..start+count-1 of the batch */
};

struct probes {
    struct model *m;
    struct probe *v;
    size_t n, cap;
    uint32_t *found; /* per batch: codes found stored (indexed by batch) */
};

static void
probe_add_batch(struct probes *p, uint32_t batch)
{
    const struct batch *b = &p->m->batches[batch];
    for (uint32_t start = 0; start < b->n; start += PROBE_CHUNK) {
        if (p->n == p->cap) {
            p->cap = p->cap > 0 ? p->cap * 2 : 64;
            p->v = realloc(p->v, p->cap * sizeof *p->v);
            if (p->v == NULL)
                fail_msg("crash: out of memory");
        }
        uint32_t left = b->n - start;
        p->v[p->n++] = (struct probe){batch, start, left < PROBE_CHUNK ? left : PROBE_CHUNK};
    }
}

static size_t
probe_cmd(void *arg, size_t i, char *buf, size_t cap)
{
    struct probes *p = arg;
    const struct probe *pr = &p->v[i];
    const struct batch *b = &p->m->batches[pr->batch];
    size_t len = (size_t)snprintf(buf, cap, "UPLOAD %u\n", (unsigned)(pr->count + 1));
    for (uint32_t k = 0; k < pr->count; k++) {
        char code[MODEL_CODE_MAX];
        model_code(p->m, b->first + pr->start + k, code);
        len += (size_t)snprintf(
            buf + len, cap - len, "%s,%s,1,FLAT,2099-12-31,1\n", code,
            b->type == PROTO_TYPE_NONE ? "" : proto_type_name((enum proto_type)b->type));
    }
    len += (size_t)snprintf(buf + len, cap - len, "%s", PROBE_BAD_RECORD);
    return len;
}

static void
probe_reply(void *arg, size_t i, const char *reply, const char *status)
{
    struct probes *p = arg;
    const struct probe *pr = &p->v[i];
    model_check(p->m, bb_has_prefix(status, "ERR BAD_BATCH"),
                "a probe of batch %u with a malformed record got \"%s\": it must store nothing",
                (unsigned)pr->batch, status);
    for (const char *line = reply; line != NULL && *line != '\0';) {
        if (strncmp(line, "REJECT ", 7) == 0) {
            unsigned long lineno = strtoul(line + 7, NULL, 10);
            if (lineno >= 1 && lineno <= pr->count)
                p->found[pr->batch]++;
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
}

/* Probes this cycle's batches (and, rotating or all, older stored ones) and settles them. */
static void
probe_batches(struct model *m, struct bb_client *c, bool full)
{
    struct probes p = {.m = m};
    p.found = calloc(m->n_batches + 1, sizeof *p.found);
    if (p.found == NULL)
        fail_msg("crash: out of memory");
    for (size_t i = 0; i < m->n_batches; i++) {
        uint8_t st = m->batches[i].state;
        if (st == BATCH_PENDING || st == BATCH_ACKED || (full && st == BATCH_PRESENT))
            probe_add_batch(&p, (uint32_t)i);
    }
    size_t codes = 0;
    for (size_t k = 0; !full && k < m->n_batches && codes < PROBE_ROTATE; k++) {
        size_t i = m->probe_cursor++ % m->n_batches;
        if (m->batches[i].state == BATCH_PRESENT) {
            probe_add_batch(&p, (uint32_t)i);
            codes += m->batches[i].n;
        }
    }
    pipeline_run(c, p.n, PROBE_WINDOW, (PROBE_CHUNK + 2) * PROBE_RECORD_MAX, probe_cmd, probe_reply,
                 &p);
    for (size_t k = 0; k < p.n; k++) {
        uint32_t bi = p.v[k].batch;
        if (p.v[k].start != 0)
            continue; /* settle each batch once, at its first chunk */
        struct batch *b = &m->batches[bi];
        uint32_t found = p.found[bi];
        bool whole = found == b->n, none = found == 0;
        bool ok = model_check(m, whole || none,
                              "batch %u (%u codes, %s): %u of its codes stored: not all or none",
                              (unsigned)bi, (unsigned)b->n,
                              proto_type_name((enum proto_type)b->type), (unsigned)found);
        if (b->state == BATCH_PENDING) {
            ok &= model_check(m, whole || !b->seen,
                              "batch %u unacknowledged, absent, but a reply had named one of its "
                              "codes",
                              (unsigned)bi);
        } else {
            ok &= model_check(m, whole, "batch %u (%u codes) acknowledged, but %u are stored",
                              (unsigned)bi, (unsigned)b->n, (unsigned)found);
        }
        if (!ok)
            model_history(m, b->first);
        if (b->state == BATCH_PENDING)
            (whole ? m->tally.landed : m->tally.vanished)[OP_UPLOAD]++;
        model_batch_settle(m, bi, none && b->state == BATCH_PENDING ? BATCH_ABSENT : BATCH_PRESENT);
    }
    free(p.v);
    free(p.found);
}

/* ---- VALIDATE ---- */

struct pair {
    uint32_t user, coupon;
};

struct pairs {
    struct model *m;
    struct pair *v;
    size_t n, cap;
    uint32_t *holder_of; /* resolve: per coupon, the pending user found holding it */
    uint32_t *found;     /* resolve: per user index, the coupon found (or MODEL_NONE) */
};

static void
pair_add(struct pairs *p, uint32_t user, uint32_t coupon)
{
    if (p->n == p->cap) {
        p->cap = p->cap > 0 ? p->cap * 2 : 256;
        p->v = realloc(p->v, p->cap * sizeof *p->v);
        if (p->v == NULL)
            fail_msg("crash: out of memory");
    }
    p->v[p->n++] = (struct pair){user, coupon};
}

static size_t
validate_cmd(void *arg, size_t i, char *buf, size_t cap)
{
    struct pairs *p = arg;
    char code[MODEL_CODE_MAX], name[MODEL_USER_MAX];
    model_code(p->m, p->v[i].coupon, code);
    model_user_name(p->v[i].user, name);
    return (size_t)snprintf(buf, cap, "VALIDATE %s %s\n", name, code);
}

/* A VALIDATE reply of a user who may hold a coupon nobody knows: held (uses 0) or INVALID. */
static void
resolve_reply(void *arg, size_t i, const char *reply, const char *status)
{
    struct pairs *p = arg;
    struct model *m = p->m;
    const struct pair *pr = &p->v[i];
    char code[MODEL_CODE_MAX];
    model_code(m, pr->coupon, code);
    size_t len = strlen(status);
    if (proto_reply_err(status, len) == PROTO_ERR_INVALID &&
        proto_reply_kind(status, len) == PROTO_REPLY_ERR)
        return;
    struct proto_coupon pc;
    if (!model_check(m,
                     proto_reply_kind(status, len) == PROTO_REPLY_OK &&
                         proto_reply_coupon(status, len, &pc) && strcmp(pc.code, code) == 0 &&
                         pc.uses == 0,
                     "VALIDATE u%u %s, an unanswered REQUEST's user: expected INVALID or the "
                     "coupon with uses=0 (nobody knew it), got \"%s\"",
                     (unsigned)pr->user, code, reply))
        return;
    char other[MODEL_CODE_MAX] = "";
    if (p->found[pr->user] != MODEL_NONE)
        model_code(m, p->found[pr->user], other);
    model_check(m, p->found[pr->user] == MODEL_NONE,
                "u%u holds two coupons: %s and %s (one REQUEST assigned two)", (unsigned)pr->user,
                other, code);
    model_check(m, p->holder_of[pr->coupon] == MODEL_NONE, "%s is held by two users: u%u and u%u",
                code, (unsigned)p->holder_of[pr->coupon], (unsigned)pr->user);
    p->found[pr->user] = pr->coupon;
    p->holder_of[pr->coupon] = pr->user;
}

/* Settles every user whose REQUEST (or MEGADEAL task) had no final reply: VALIDATE against each
 * free stored coupon of its type tells which one it got, if any. */
static void
resolve_users(struct model *m, struct bb_client *c)
{
    struct pairs p = {.m = m};
    p.holder_of = malloc((m->n_coupons + 1) * sizeof *p.holder_of);
    p.found = malloc((m->n_users + 1) * sizeof *p.found);
    if (p.holder_of == NULL || p.found == NULL)
        fail_msg("crash: out of memory");
    memset(p.holder_of, 0xff, (m->n_coupons + 1) * sizeof *p.holder_of);
    memset(p.found, 0xff, (m->n_users + 1) * sizeof *p.found);
    for (size_t u = 0; u < m->n_users; u++) {
        const struct user *usr = &m->users[u];
        if (usr->state != USER_PENDING && usr->state != USER_QUEUED)
            continue;
        for (size_t k = 0; k < m->n_coupons; k++) {
            const struct coupon *cp = &m->coupons[k];
            const struct batch *b = &m->batches[cp->batch];
            if (cp->type == usr->type && cp->user == MODEL_NONE && !b->expired &&
                b->state == BATCH_PRESENT)
                pair_add(&p, (uint32_t)u, (uint32_t)k);
        }
    }
    pipeline_run(c, p.n, VALIDATE_WINDOW, VALIDATE_CMD_MAX, validate_cmd, resolve_reply, &p);
    for (size_t u = 0; u < m->n_users; u++) {
        struct user *usr = &m->users[u];
        if (usr->state != USER_PENDING && usr->state != USER_QUEUED)
            continue;
        /* What was left unanswered: the REQUEST, the MEGADEAL REQUEST, or the task's WAIT. */
        enum op_kind kind = usr->state == USER_QUEUED          ? OP_WAIT
                            : usr->type == PROTO_TYPE_MEGADEAL ? OP_MEGADEAL
                                                               : OP_REQUEST;
        bool idle = kind == OP_WAIT && m->ops[usr->op].kind != OP_WAIT;
        uint64_t *landed = idle ? &m->tally.idle_landed : &m->tally.landed[kind];
        uint64_t *vanished = idle ? &m->tally.idle_vanished : &m->tally.vanished[kind];
        if (p.found[u] != MODEL_NONE && p.holder_of[p.found[u]] == u) {
            (*landed)++;
            model_assign(m, p.found[u], (uint32_t)u);
        } else {
            (*vanished)++;
            usr->state = USER_NONE;
        }
    }
    free(p.v);
    free(p.holder_of);
    free(p.found);
}

/* Exactly-once: a VALIDATE reply of a holder, whose uses and hold the model knows exactly: OK
 * with those uses while one is left (uses + live holds < max_uses), else EXHAUSTED. */
static void
holder_reply_exact(struct model *m, const struct pair *pr, const char *reply, const char *status)
{
    const struct coupon *cp = &m->coupons[pr->coupon];
    char code[MODEL_CODE_MAX];
    model_code(m, pr->coupon, code);
    size_t len = strlen(status);
    uint32_t taken = cp->uses + (cp->live_hold != MODEL_NONE);
    struct proto_coupon pc;
    bool ok;
    if (taken < cp->max_uses)
        ok = model_check(m,
                         proto_reply_kind(status, len) == PROTO_REPLY_OK &&
                             proto_reply_coupon(status, len, &pc) && strcmp(pc.code, code) == 0 &&
                             pc.uses == cp->uses && pc.max_uses == cp->max_uses,
                         "VALIDATE u%u %s: expected OK with uses=%u (%s), got \"%s\"",
                         (unsigned)pr->user, code, (unsigned)cp->uses,
                         cp->live_hold != MODEL_NONE ? "one use held" : "none held", reply);
    else
        ok = model_check(m,
                         proto_reply_kind(status, len) == PROTO_REPLY_ERR &&
                             proto_reply_err(status, len) == PROTO_ERR_EXHAUSTED,
                         "VALIDATE u%u %s: %u used and %s of %u: expected EXHAUSTED, got \"%s\"",
                         (unsigned)pr->user, code, (unsigned)cp->uses,
                         cp->live_hold != MODEL_NONE ? "one held" : "none held",
                         (unsigned)cp->max_uses, reply);
    if (!ok)
        model_history(m, pr->coupon);
}

/* A VALIDATE reply of a holder: still its coupon, uses within what was sent. */
static void
holder_reply(void *arg, size_t i, const char *reply, const char *status)
{
    struct pairs *p = arg;
    struct model *m = p->m;
    const struct pair *pr = &p->v[i];
    struct coupon *cp = &m->coupons[pr->coupon];
    if (m->mode == MODE_EXACTLY_ONCE) {
        holder_reply_exact(m, pr, reply, status);
        return;
    }
    char code[MODEL_CODE_MAX];
    model_code(m, pr->coupon, code);
    size_t len = strlen(status);
    uint32_t lo = cp->uses, hi = cp->uses + cp->unacked;
    struct proto_coupon pc;
    bool ok;
    if (proto_reply_kind(status, len) == PROTO_REPLY_OK) {
        ok = model_check(m,
                         proto_reply_coupon(status, len, &pc) && strcmp(pc.code, code) == 0 &&
                             pc.max_uses == cp->max_uses && pc.uses < pc.max_uses &&
                             lo <= pc.uses && pc.uses <= hi,
                         "VALIDATE u%u %s: expected uses in %u..%u (below max_uses=%u), got "
                         "\"%s\"",
                         (unsigned)pr->user, code, (unsigned)lo, (unsigned)hi,
                         (unsigned)cp->max_uses, reply);
        if (ok)
            cp->uses = pc.uses;
    } else if (proto_reply_err(status, len) == PROTO_ERR_EXHAUSTED) {
        ok = model_check(m, lo <= cp->max_uses && cp->max_uses <= hi,
                         "VALIDATE u%u %s: EXHAUSTED, but %u uses were acknowledged and %u more "
                         "sent, of max_uses=%u",
                         (unsigned)pr->user, code, (unsigned)lo, (unsigned)cp->unacked,
                         (unsigned)cp->max_uses);
        if (ok)
            cp->uses = cp->max_uses;
    } else {
        ok = model_check(m, false, "VALIDATE u%u %s (an assignment the model holds): \"%s\"",
                         (unsigned)pr->user, code, reply);
    }
    if (!ok)
        model_history(m, pr->coupon);
    if (ok && cp->unacked > 0) {
        m->tally.landed[OP_REDEEM] += cp->uses - lo;
        m->tally.vanished[OP_REDEEM] += hi - cp->uses;
    }
    cp->unacked = 0;
}

/* VALIDATEs the assignments touched this cycle and a rotating window of older ones (all of
 * them with `full`); every coupon with unanswered REDEEMs is among the touched. */
static void
validate_holders(struct model *m, struct bb_client *c, bool full)
{
    struct pairs p = {.m = m};
    for (size_t k = 0; k < m->n_coupons; k++) {
        const struct coupon *cp = &m->coupons[k];
        if (cp->user != MODEL_NONE && (full || cp->touched == m->cycle || cp->unacked > 0))
            pair_add(&p, cp->user, (uint32_t)k);
    }
    size_t older = 0;
    for (size_t k = 0; !full && k < m->n_coupons && older < VALIDATE_ROTATE; k++) {
        size_t i = m->validate_cursor++ % m->n_coupons;
        const struct coupon *cp = &m->coupons[i];
        if (cp->user != MODEL_NONE && cp->touched != m->cycle && cp->unacked == 0) {
            pair_add(&p, cp->user, (uint32_t)i);
            older++;
        }
    }
    pipeline_run(c, p.n, VALIDATE_WINDOW, VALIDATE_CMD_MAX, validate_cmd, holder_reply, &p);
    free(p.v);
}

/* ---- MEGADEAL tasks ---- */

struct tasks {
    struct model *m;
};

static size_t
status_cmd(void *arg, size_t i, char *buf, size_t cap)
{
    const struct tasks *t = arg;
    return (size_t)snprintf(buf, cap, "STATUS %s\n", t->m->tasks[i].id);
}

static void
status_reply(void *arg, size_t i, const char *reply, const char *status)
{
    const struct tasks *t = arg;
    struct model *m = t->m;
    uint32_t u = m->tasks[i].user;
    const struct user *usr = &m->users[u];
    size_t len = strlen(status);
    enum proto_err e = proto_reply_err(status, len);
    if (proto_reply_kind(status, len) == PROTO_REPLY_ERR && e == PROTO_ERR_UNKNOWN_TASK)
        return;
    /* A task of the retry after the restart (exactly-once mode) that failed: its user has none. */
    if (proto_reply_kind(status, len) == PROTO_REPLY_ERR &&
        (e == PROTO_ERR_TIMEOUT || e == PROTO_ERR_NO_COUPONS) && usr->state == USER_NONE)
        return;
    char code[MODEL_CODE_MAX] = "";
    if (usr->state == USER_ASSIGNED)
        model_code(m, usr->coupon, code);
    struct proto_coupon pc;
    model_check(m,
                strstr(status, " status=granted ") != NULL &&
                    proto_reply_coupon(status, len, &pc) && strcmp(pc.code, code) == 0,
                "STATUS of u%u's task after a restart: expected UNKNOWN_TASK, or granted with "
                "the coupon the user holds (%s), got \"%s\"",
                (unsigned)u, code[0] != '\0' ? code : "none", reply);
}

/* ---- the whole check ---- */

/* STATUS of the cycle's tasks, then the model starts the next cycle; closes c. */
static void
finish_cycle(struct model *m, struct bb_client *c)
{
    struct tasks t = {m};
    pipeline_run(c, m->n_tasks, VALIDATE_WINDOW, STATUS_CMD_MAX, status_cmd, status_reply, &t);
    m->n_tasks = 0;
    model_recount(m);
    bb_close(c);
}

void
verify_after_restart(struct model *m, struct bb_server *s, bool full)
{
    struct bb_client *c = bb_connect(s);
    bb_set_timeout(c, VERIFY_IO_MS);
    bb_auth(c);
    struct totals got, lo, hi;
    read_stats(m, c, &got);
    model_bounds(m, &lo, &hi);
    check_stats(m, &got, &lo, &hi);

    probe_batches(m, c, full);
    resolve_users(m, c);
    validate_holders(m, c, full);

    read_stats(m, c, &got);
    model_bounds(m, &lo, &hi);
    check_stats(m, &got, &lo, &lo);
    check_chain_length(m, c, &got); /* plain mode only: the count is of its workload */
    finish_cycle(m, c);
}

void
verify_exactly_once(struct model *m, struct bb_server *s, bool full)
{
    struct totals got, lo, hi;

    workload_retry(m, s); /* every write of the cycle answered: the model is exact */
    struct bb_client *c = bb_connect(s);
    bb_set_timeout(c, VERIFY_IO_MS);
    bb_auth(c);
    read_stats(m, c, &got);
    model_bounds(m, &lo, &hi);
    check_stats(m, &got, &lo, &hi);

    probe_batches(m, c, full);
    validate_holders(m, c, full);
    once_check_users(m, c, full);
    once_check_replays(m, c, full);

    read_stats(m, c, &got); /* the replays changed nothing */
    model_bounds(m, &lo, &hi);
    check_stats(m, &got, &lo, &lo);
    finish_cycle(m, c);
}
