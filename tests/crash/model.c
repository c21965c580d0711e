/* model.c - the crash test's oracle: growing arrays of batches, coupons, users, ops and tasks,
 * the bookkeeping that keeps the per-type counts in step, and the violation report. */
#include "model.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MODEL_FIRST_CAP  64
#define MODEL_NUM_DIGITS 10 /* digits of a 32-bit number */
#define SPLITMIX_GAMMA   0x9e3779b97f4a7c15ULL
#define SPLITMIX_MUL1    0xbf58476d1ce4e5b9ULL
#define SPLITMIX_MUL2    0x94d049bb133111ebULL

#define MODEL_LINE_MAX (64 + MODEL_USER_MAX + MODEL_CODE_MAX + PROTO_TASK_MAX + MODEL_RID_MAX)

static const char *const op_names[OP_NKINDS] = {"UPLOAD", "REQUEST", "REDEEM",  "MEGADEAL",
                                                "WAIT",   "HOLD",    "RELEASE", "UNREDEEM"};

/* Makes room for `need` elements of `elem` bytes in *p (capacity *cap); fails the test when out
 * of memory. */
static void
grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return;
    size_t cap2 = *cap > 0 ? *cap * 2 : MODEL_FIRST_CAP;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(*p, cap2 * elem);
    if (q == NULL)
        fail_msg("crash: out of memory for %zu elements of %zu bytes", cap2, elem);
    *p = q;
    *cap = cap2;
}

uint64_t
rng_next(struct rng *r)
{
    uint64_t z = (r->s += SPLITMIX_GAMMA);
    z = (z ^ (z >> 30)) * SPLITMIX_MUL1;
    z = (z ^ (z >> 27)) * SPLITMIX_MUL2;
    return z ^ (z >> 31);
}

uint32_t
rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(rng_next(r) % n);
}

void
model_init(struct model *m, enum crash_mode mode, uint64_t seed, unsigned n_clients)
{
    const char *why;

    memset(m, 0, sizeof *m);
    m->seed = seed;
    m->mode = mode;
    m->n_clients = n_clients;
    if (!proto_parse_time(MODEL_FAR_EXPIRY, strlen(MODEL_FAR_EXPIRY), &m->far_expiry, &why) ||
        !proto_parse_time(MODEL_PAST_EXPIRY, strlen(MODEL_PAST_EXPIRY), &m->past_expiry, &why))
        fail_msg("crash: bad expiry constant: %s", why);
    m->clients = calloc(n_clients, sizeof *m->clients);
    if (m->clients == NULL)
        fail_msg("crash: out of memory");
    struct rng master = {seed};
    for (unsigned i = 0; i < n_clients; i++)
        m->clients[i].rng.s = rng_next(&master);
}

void
model_free(struct model *m)
{
    for (unsigned i = 0; m->clients != NULL && i < m->n_clients; i++)
        free(m->clients[i].owned);
    free(m->clients);
    for (size_t i = 0; m->ops != NULL && i < m->n_ops; i++)
        free(m->ops[i].reply);
    free(m->batches);
    free(m->coupons);
    free(m->users);
    free(m->ops);
    free(m->tasks);
    free(m->holds);
    free(m->redemptions);
    memset(m, 0, sizeof *m);
}

uint32_t
model_op_attempt(struct model *m, enum op_kind kind, unsigned client, uint32_t target)
{
    grow((void **)&m->ops, &m->cap_ops, m->n_ops + 1, sizeof *m->ops);
    m->ops[m->n_ops] = (struct op){.cycle = m->cycle,
                                   .target = target,
                                   .arg = MODEL_NONE,
                                   .client = (uint16_t)client,
                                   .kind = (uint8_t)kind,
                                   .sends = 1};
    m->tally.attempted[kind]++;
    return (uint32_t)m->n_ops++;
}

void
model_op_ack(struct model *m, uint32_t op, enum proto_err result)
{
    struct op *o = &m->ops[op];
    o->acked = true;
    o->result = (uint8_t)result;
    if (!o->answered)
        m->tally.acked[o->kind]++;
    o->answered = true;
    if (result == PROTO_ERR_INTERNAL)
        m->tally.internal++;
}

bool
model_op_is_write(enum op_kind kind)
{
    return kind != OP_WAIT && kind != OP_NKINDS;
}

void
model_op_resend(struct model *m, uint32_t op)
{
    struct op *o = &m->ops[op];
    o->acked = false;
    if (o->sends < UINT8_MAX)
        o->sends++;
    m->tally.retried[o->kind]++;
}

/* Whether an OK line ends in " replayed=1". */
static bool
is_replayed(const char *line, size_t *len_without)
{
    size_t n = strlen(line), k = strlen(MODEL_REPLAYED);
    *len_without = n;
    if (n < k || strcmp(line + n - k, MODEL_REPLAYED) != 0)
        return false;
    *len_without = n - k;
    return true;
}

void
model_op_keep(struct model *m, uint32_t op, const char *line)
{
    struct op *o = &m->ops[op];
    size_t n;
    (void)is_replayed(line, &n);
    free(o->reply);
    o->reply = malloc(n + 1);
    if (o->reply == NULL)
        fail_msg("crash: out of memory");
    memcpy(o->reply, line, n);
    o->reply[n] = '\0';
}

void
model_op_reply(struct model *m, uint32_t op, const char *line)
{
    struct op *o = &m->ops[op];
    size_t n;
    bool replayed = is_replayed(line, &n);
    if (o->sends > 1)
        (replayed ? m->tally.replayed : m->tally.afresh)[o->kind]++;
    else
        model_check(m, !replayed, "op %u, sent once with id w%u, was answered as a replay: \"%s\"",
                    (unsigned)op, (unsigned)op, line);
    if (o->reply == NULL && proto_reply_kind(line, strlen(line)) == PROTO_REPLY_OK &&
        o->kind != OP_MEGADEAL)
        model_op_keep(m, op, line);
}

void
model_rid(uint32_t op, char out[MODEL_RID_MAX])
{
    snprintf(out, MODEL_RID_MAX, "w%u", (unsigned)op);
}

/* Appends len bytes to *buf at *off, growing it. */
static void
put(char **buf, size_t *cap, size_t *off, const char *text, size_t len)
{
    grow((void **)buf, cap, *off + len + 1, 1);
    memcpy(*buf + *off, text, len);
    *off += len;
    (*buf)[*off] = '\0';
}

/* The record lines of an UPLOAD of batch b, as it was first sent. */
static void
put_records(const struct model *m, uint32_t b, char **buf, size_t *cap, size_t *off)
{
    const struct batch *bt = &m->batches[b];
    struct proto_coupon pc = {.type = (enum proto_type)bt->type,
                              .expires = bt->expired ? m->past_expiry : m->far_expiry};
    for (uint32_t i = 0; i < bt->n; i++) {
        const struct coupon *c = &m->coupons[bt->first + i];
        char rec[PROTO_RECORD_BUF];
        model_code(m, bt->first + i, pc.code);
        pc.kind = (enum proto_kind)c->kind;
        pc.discount = 100 * (int64_t)c->discount;
        pc.max_uses = c->max_uses;
        size_t len = proto_fmt_record(rec, &pc);
        rec[len++] = '\n';
        put(buf, cap, off, rec, len);
    }
}

/* The request line of op, without id and LF. */
static int
op_line(const struct model *m, const struct op *o, char *line, size_t cap)
{
    char name[MODEL_USER_MAX], code[MODEL_CODE_MAX];
    const struct user *u = NULL;
    if (o->kind == OP_REQUEST || o->kind == OP_MEGADEAL || o->kind == OP_WAIT) {
        u = &m->users[o->target];
        model_user_name(o->target, name);
    } else if (o->kind != OP_UPLOAD) {
        model_code(m, o->target, code);
        model_user_name(m->coupons[o->target].user, name);
    }
    switch ((enum op_kind)o->kind) {
    case OP_UPLOAD:
        return snprintf(line, cap, "UPLOAD %u", (unsigned)m->batches[o->target].n);
    case OP_REQUEST:
        if (u->type == PROTO_TYPE_NONE)
            return snprintf(line, cap, "REQUEST %s", name);
        return snprintf(line, cap, "REQUEST %s %s", name, proto_type_name(u->type));
    case OP_MEGADEAL:
        return snprintf(line, cap, "REQUEST %s MEGADEAL", name);
    case OP_WAIT:
        return snprintf(line, cap, "WAIT %s", m->tasks[u->task].id);
    case OP_REDEEM:
        if (o->arg != MODEL_NONE)
            return snprintf(line, cap, "REDEEM %s %s hold=%s", name, code, m->holds[o->arg].id);
        return snprintf(line, cap, "REDEEM %s %s", name, code);
    case OP_HOLD:
        return snprintf(line, cap, "HOLD %s %s %u", name, code, (unsigned)MODEL_HOLD_SECONDS);
    case OP_RELEASE:
        return snprintf(line, cap, "RELEASE %s", m->holds[o->arg].id);
    case OP_UNREDEEM:
        return snprintf(line, cap, "UNREDEEM %s %llu", name,
                        (unsigned long long)m->redemptions[o->arg].seq);
    case OP_NKINDS:
        break;
    }
    return -1;
}

size_t
model_op_request(const struct model *m, uint32_t op, char **buf, size_t *cap)
{
    const struct op *o = &m->ops[op];
    char line[MODEL_LINE_MAX], rid[MODEL_RID_MAX];
    size_t off = 0;
    int n = op_line(m, o, line, sizeof line);
    if (n < 0 || (size_t)n >= sizeof line)
        fail_msg("crash: the request of op %u does not fit", (unsigned)op);
    put(buf, cap, &off, line, (size_t)n);
    if (m->mode == MODE_EXACTLY_ONCE && model_op_is_write((enum op_kind)o->kind)) {
        model_rid(op, rid);
        put(buf, cap, &off, " id=", 4);
        put(buf, cap, &off, rid, strlen(rid));
    }
    put(buf, cap, &off, "\n", 1);
    if (o->kind == OP_UPLOAD)
        put_records(m, o->target, buf, cap, &off);
    return off;
}

uint32_t
model_hold_add(struct model *m, uint32_t coupon)
{
    grow((void **)&m->holds, &m->cap_holds, m->n_holds + 1, sizeof *m->holds);
    memset(&m->holds[m->n_holds], 0, sizeof m->holds[0]);
    m->holds[m->n_holds].coupon = coupon;
    m->holds[m->n_holds].state = HOLD_PENDING;
    return (uint32_t)m->n_holds++;
}

uint32_t
model_redemption_add(struct model *m, uint32_t coupon, uint64_t seq)
{
    grow((void **)&m->redemptions, &m->cap_redemptions, m->n_redemptions + 1,
         sizeof *m->redemptions);
    m->redemptions[m->n_redemptions] =
        (struct redemption){.seq = seq, .coupon = coupon, .prev = m->coupons[coupon].last_use};
    m->coupons[coupon].last_use = (uint32_t)m->n_redemptions;
    return (uint32_t)m->n_redemptions++;
}

uint32_t
model_batch_add(struct model *m, enum proto_type type, uint32_t n, bool expired)
{
    grow((void **)&m->batches, &m->cap_batches, m->n_batches + 1, sizeof *m->batches);
    grow((void **)&m->coupons, &m->cap_coupons, m->n_coupons + n, sizeof *m->coupons);
    uint32_t b = (uint32_t)m->n_batches++;
    m->batches[b] = (struct batch){.first = (uint32_t)m->n_coupons,
                                   .n = n,
                                   .op = MODEL_NONE,
                                   .type = (uint8_t)type,
                                   .state = BATCH_PENDING,
                                   .expired = expired};
    for (uint32_t i = 0; i < n; i++)
        m->coupons[m->n_coupons++] = (struct coupon){.batch = b,
                                                     .user = MODEL_NONE,
                                                     .touched = m->cycle,
                                                     .slot = MODEL_NONE,
                                                     .live_hold = MODEL_NONE,
                                                     .last_use = MODEL_NONE,
                                                     .type = (uint8_t)type};
    if (!expired)
        m->pool[type] += n;
    return b;
}

uint32_t
model_user_add(struct model *m, enum proto_type type, unsigned client)
{
    grow((void **)&m->users, &m->cap_users, m->n_users + 1, sizeof *m->users);
    m->users[m->n_users] = (struct user){.coupon = MODEL_NONE,
                                         .op = MODEL_NONE,
                                         .req_op = MODEL_NONE,
                                         .cycle = m->cycle,
                                         .task = MODEL_NONE,
                                         .client = (uint16_t)client,
                                         .type = (uint8_t)type,
                                         .state = USER_PENDING};
    return (uint32_t)m->n_users++;
}

uint32_t
model_task_add(struct model *m, uint32_t user, const char *id, size_t id_len)
{
    grow((void **)&m->tasks, &m->cap_tasks, m->n_tasks + 1, sizeof *m->tasks);
    struct task *t = &m->tasks[m->n_tasks];
    t->user = user;
    if (id_len > PROTO_TASK_MAX)
        id_len = PROTO_TASK_MAX;
    memcpy(t->id, id, id_len);
    t->id[id_len] = '\0';
    m->users[user].task = (uint32_t)m->n_tasks;
    return (uint32_t)m->n_tasks++;
}

bool
model_batch_stored(const struct batch *b)
{
    return b->state == BATCH_ACKED || b->state == BATCH_PRESENT;
}

static bool
batch_maybe_stored(const struct batch *b)
{
    return b->state != BATCH_ABSENT && b->state != BATCH_REFUSED;
}

/* Unassigned and unexpired coupons of the batch. */
static uint32_t
batch_free(const struct model *m, const struct batch *b)
{
    uint32_t n = 0;
    if (b->expired)
        return 0;
    for (uint32_t i = 0; i < b->n; i++)
        n += m->coupons[b->first + i].user == MODEL_NONE;
    return n;
}

void
model_batch_settle(struct model *m, uint32_t batch, enum batch_state state)
{
    struct batch *b = &m->batches[batch];
    uint32_t n_free = batch_free(m, b);
    if (!model_batch_stored(b) && (state == BATCH_ACKED || state == BATCH_PRESENT))
        m->free_acked[b->type] += n_free;
    if (model_batch_stored(b) && !(state == BATCH_ACKED || state == BATCH_PRESENT))
        m->free_acked[b->type] -= n_free;
    if (batch_maybe_stored(b) && (state == BATCH_ABSENT || state == BATCH_REFUSED))
        m->pool[b->type] -= n_free;
    b->state = (uint8_t)state;
}

void
model_assign(struct model *m, uint32_t coupon, uint32_t user)
{
    struct coupon *c = &m->coupons[coupon];
    const struct batch *b = &m->batches[c->batch];
    struct user *u = &m->users[user];
    if (c->user == MODEL_NONE && !b->expired) {
        if (model_batch_stored(b))
            m->free_acked[c->type]--;
        if (batch_maybe_stored(b))
            m->pool[c->type]--;
    }
    c->user = user;
    c->touched = m->cycle;
    u->coupon = coupon;
    u->state = USER_ASSIGNED;
    u->cycle = m->cycle;
    struct mclient *mc = &m->clients[u->client];
    grow((void **)&mc->owned, &mc->cap_owned, mc->n_owned + 1, sizeof *mc->owned);
    c->slot = (uint32_t)mc->n_owned;
    mc->owned[mc->n_owned++] = coupon;
}

void
model_disown(struct model *m, uint32_t coupon)
{
    struct coupon *c = &m->coupons[coupon];
    if (c->user == MODEL_NONE || c->slot == MODEL_NONE)
        return;
    struct mclient *mc = &m->clients[m->users[c->user].client];
    uint32_t last = mc->owned[--mc->n_owned];
    mc->owned[c->slot] = last;
    m->coupons[last].slot = c->slot;
    c->slot = MODEL_NONE;
}

void
model_recount(struct model *m)
{
    memset(m->free_acked, 0, sizeof m->free_acked);
    memset(m->pool, 0, sizeof m->pool);
    for (size_t i = 0; i < m->n_coupons; i++) {
        const struct coupon *c = &m->coupons[i];
        const struct batch *b = &m->batches[c->batch];
        if (c->user != MODEL_NONE || b->expired)
            continue;
        if (model_batch_stored(b))
            m->free_acked[c->type]++;
        if (batch_maybe_stored(b))
            m->pool[c->type]++;
    }
}

void
model_code(const struct model *m, uint32_t coupon, char out[MODEL_CODE_MAX])
{
    const struct coupon *c = &m->coupons[coupon];
    snprintf(out, MODEL_CODE_MAX, "K%u-%u", (unsigned)c->batch,
             (unsigned)(coupon - m->batches[c->batch].first));
}

void
model_user_name(uint32_t user, char out[MODEL_USER_MAX])
{
    snprintf(out, MODEL_USER_MAX, "u%u", (unsigned)user);
}

/* Reads a decimal number without sign or leading zeros up to `stop`; NULL when malformed. */
static const char *
read_number(const char *p, char stop, uint32_t *out)
{
    uint64_t v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == MODEL_NUM_DIGITS || (digits == 1 && v == 0))
            return NULL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (digits == 0 || *p != stop || v >= MODEL_NONE)
        return NULL;
    *out = (uint32_t)v;
    return p;
}

uint32_t
model_find_code(const struct model *m, const char *code)
{
    uint32_t b, i;
    if (code[0] != 'K')
        return MODEL_NONE;
    const char *p = read_number(code + 1, '-', &b);
    if (p == NULL || read_number(p + 1, '\0', &i) == NULL)
        return MODEL_NONE;
    if (b >= m->n_batches || i >= m->batches[b].n)
        return MODEL_NONE;
    return m->batches[b].first + i;
}

bool
model_check(struct model *m, bool ok, const char *fmt, ...)
{
    m->tally.checks++;
    if (ok)
        return true;
    m->tally.violations++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "crash: VIOLATION (seed %llu, cycle %u): ", (unsigned long long)m->seed,
            (unsigned)m->cycle);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return false;
}

const char *
model_op_name(enum op_kind kind)
{
    return (unsigned)kind < OP_NKINDS ? op_names[kind] : "?";
}

static bool
op_concerns(const struct model *m, const struct op *o, uint32_t coupon)
{
    const struct coupon *c = &m->coupons[coupon];
    switch ((enum op_kind)o->kind) {
    case OP_UPLOAD:
        return o->target == c->batch;
    case OP_REDEEM:
    case OP_HOLD:
    case OP_RELEASE:
    case OP_UNREDEEM:
        return o->target == coupon;
    case OP_REQUEST:
    case OP_MEGADEAL:
    case OP_WAIT:
        return o->target == c->user;
    case OP_NKINDS:
        break;
    }
    return false;
}

void
model_history(const struct model *m, uint32_t coupon)
{
    uint32_t picked[MODEL_HISTORY];
    size_t n = 0;
    for (size_t i = m->n_ops; i > 0 && n < MODEL_HISTORY; i--)
        if (op_concerns(m, &m->ops[i - 1], coupon))
            picked[n++] = (uint32_t)(i - 1);
    char code[MODEL_CODE_MAX];
    model_code(m, coupon, code);
    fprintf(stderr, "crash: the op log of %s (latest %zu):\n", code, n);
    while (n > 0) {
        const struct op *o = &m->ops[picked[--n]];
        fprintf(stderr, "  op %u cycle %u client %u %s target %u: %s%s\n", (unsigned)picked[n],
                (unsigned)o->cycle, (unsigned)o->client, model_op_name((enum op_kind)o->kind),
                (unsigned)o->target, o->acked ? "acknowledged " : "unacknowledged",
                o->acked ? (o->result == PROTO_OK ? "OK" : proto_err_name(o->result)) : "");
    }
}
