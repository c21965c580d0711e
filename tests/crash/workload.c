/* workload.c - the crash test's clients: choosing operations, sending them pipelined over
 * non-blocking sockets, checking each reply against the model, and the kill -9 in the middle;
 * in exactly-once mode also the retry of every unanswered write after the restart. */
#include "workload.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "checkout.h"

/* The mix, in percent of the operations a client chooses (the rest is MEGADEAL). REDEEM is
 * the share of checkout ops in exactly-once mode (checkout.h). */
#define WL_PCT_UPLOAD  15
#define WL_PCT_REQUEST 35
#define WL_PCT_REDEEM  35
#define WL_PERCENT     100

/* No UPLOAD of a type with this many free coupons: keeps the candidates of an unanswered
 * REQUEST (each checked by a VALIDATE after the restart) few. */
#define WL_POOL_HIGH       200
#define WL_SMALL_BATCH_MAX 20    /* codes in an ordinary UPLOAD: 1..20 */
#define WL_LARGE_BATCH     1000  /* codes in a large UPLOAD, whose commit takes longer */
#define WL_LARGE_ONE_IN    50    /* one UPLOAD in 50 is large */
#define WL_MAX_USES        3     /* max_uses of the coupons: 1..3, so REDEEM meets EXHAUSTED */
#define WL_DISCOUNT_MAX    50    /* whole units of discount: 1..50 */
#define WL_REDEEM_TRIES    4     /* random picks for an owned coupon with nothing in flight */
#define WL_OUT_HIGH        65536 /* stop queueing requests while this much is unsent */
#define WL_DRAIN_MS        10000 /* after the kill, every socket must report its close by then */
#define WL_FIFO            (WL_DEPTH_MAX + 1) /* in flight: the pipelined ones and a bulk UPLOAD */
/* The retry after a restart must be answered within this: a minute, for a loaded machine. */
#define WL_RETRY_MS 60000

/* The types REQUEST asks for (MEGADEAL goes through the queue instead). */
static const enum proto_type request_types[] = {PROTO_TYPE_NONE, PROTO_TYPE_FREE,
                                                PROTO_TYPE_STANDARD};
#define WL_REQUEST_TYPES (sizeof request_types / sizeof request_types[0])

struct wclient {
    struct bb_client *c;
    unsigned id;
    unsigned depth;         /* requests in flight allowed this cycle */
    uint32_t fifo[WL_FIFO]; /* ops sent (or queued to send) awaiting replies, in order */
    unsigned head, count;
    uint32_t waits[WL_FIFO]; /* users whose queued task is to be waited for next */
    unsigned n_waits;
    uint32_t *retry; /* exactly-once, after a restart: ops to send again, in order */
    size_t n_retry, retry_next, cap_retry;
    char *out; /* bytes queued for sending */
    size_t out_len, out_off, out_cap;
    uint32_t rejects; /* REJECT lines of the reply being read */
    bool closed;
};

struct wl {
    struct model *m;
    struct bb_server *s;
    struct wclient *cl;
    struct pollfd *pfd; /* one per client */
    bool killed;
    bool store_down; /* PostgreSQL was stopped: ERR UNAVAILABLE is no answer */
    bool retrying;   /* sending the retries after a restart, nothing new */
    uint32_t retry_requests[PROTO_NTYPES]; /* REQUEST retries of each type not yet answered */
    char *req;                             /* the request being queued */
    size_t req_cap;
    char line[BB_LINE_MAX]; /* the reply line being handled */
};

/* ---- output ---- */

static void
out_append(struct wclient *wc, const char *data, size_t len)
{
    if (wc->out_off > 0) { /* drop what was sent */
        memmove(wc->out, wc->out + wc->out_off, wc->out_len - wc->out_off);
        wc->out_len -= wc->out_off;
        wc->out_off = 0;
    }
    if (wc->out_len + len > wc->out_cap) {
        size_t cap = wc->out_cap > 0 ? wc->out_cap : WL_OUT_HIGH;
        while (cap < wc->out_len + len)
            cap *= 2;
        char *p = realloc(wc->out, cap);
        if (p == NULL)
            fail_msg("crash: out of memory");
        wc->out = p;
        wc->out_cap = cap;
    }
    memcpy(wc->out + wc->out_len, data, len);
    wc->out_len += len;
}

/* Sends what the socket takes now. False when the connection is gone. */
static bool
out_flush(struct wclient *wc)
{
    while (wc->out_off < wc->out_len) {
        ssize_t n = send(wc->c->fd, wc->out + wc->out_off, wc->out_len - wc->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            wc->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
}

/* ---- choosing and sending operations ---- */

/* Queues op as in flight and its request's bytes for sending. */
static void
enqueue(struct wl *w, struct wclient *wc, uint32_t op)
{
    wc->fifo[(wc->head + wc->count++) % WL_FIFO] = op;
    out_append(wc, w->req, model_op_request(w->m, op, &w->req, &w->req_cap));
}

/* Logs the op as attempted; the caller fills in what the model needs, then enqueues it. */
static uint32_t
attempt(struct wl *w, struct wclient *wc, enum op_kind kind, uint32_t target)
{
    return model_op_attempt(w->m, kind, wc->id, target);
}

/* UPLOAD of n new codes; `bulk`: expired ones. */
static void
send_upload(struct wl *w, struct wclient *wc, enum proto_type type, uint32_t n, bool bulk)
{
    struct model *m = w->m;
    struct rng *r = &m->clients[wc->id].rng;
    uint32_t b = model_batch_add(m, type, n, bulk);
    for (uint32_t i = 0; i < n; i++)
        m->coupons[m->batches[b].first + i].max_uses = (uint16_t)(1 + rng_below(r, WL_MAX_USES));
    for (uint32_t i = 0; i < n; i++) {
        struct coupon *c = &m->coupons[m->batches[b].first + i];
        c->kind = (uint8_t)rng_below(r, PROTO_NKINDS);
        c->discount = (uint8_t)(1 + rng_below(r, WL_DISCOUNT_MAX));
    }
    m->batches[b].op = attempt(w, wc, OP_UPLOAD, b);
    enqueue(w, wc, m->batches[b].op);
}

static void
send_request(struct wl *w, struct wclient *wc, enum proto_type type)
{
    struct model *m = w->m;
    uint32_t u = model_user_add(m, type, wc->id);
    uint32_t op = attempt(w, wc, type == PROTO_TYPE_MEGADEAL ? OP_MEGADEAL : OP_REQUEST, u);
    m->users[u].op = m->users[u].req_op = op;
    if (type != PROTO_TYPE_MEGADEAL) {
        m->ops[op].free_at_send = m->free_acked[type];
        m->ops[op].rivals_at_send = m->in_flight[type];
        m->ops[op].started_at_send = m->started[type];
        m->in_flight[type]++;
        m->started[type]++;
    }
    enqueue(w, wc, op);
}

/* REDEEM of an owned coupon with nothing in flight; false when none was found. */
static bool
send_redeem(struct wl *w, struct wclient *wc)
{
    struct model *m = w->m;
    struct mclient *mc = &m->clients[wc->id];
    for (int i = 0; i < WL_REDEEM_TRIES && mc->n_owned > 0; i++) {
        uint32_t c = mc->owned[rng_below(&mc->rng, (uint32_t)mc->n_owned)];
        if (m->coupons[c].busy)
            continue;
        m->coupons[c].busy = true;
        m->coupons[c].touched = m->cycle;
        enqueue(w, wc, attempt(w, wc, OP_REDEEM, c));
        return true;
    }
    return false;
}

/* Exactly-once mode: a checkout op (checkout.h) on a held coupon; false when none was found. */
static bool
send_checkout(struct wl *w, struct wclient *wc)
{
    uint32_t op = checkout_choose(w->m, wc->id);
    if (op == MODEL_NONE)
        return false;
    enqueue(w, wc, op);
    return true;
}

static void
send_wait(struct wl *w, struct wclient *wc)
{
    uint32_t u = wc->waits[0];
    memmove(wc->waits, wc->waits + 1, --wc->n_waits * sizeof wc->waits[0]);
    struct user *usr = &w->m->users[u];
    usr->op = attempt(w, wc, OP_WAIT, u);
    enqueue(w, wc, usr->op);
}

/* Chooses and queues one operation. */
static void
send_one(struct wl *w, struct wclient *wc)
{
    struct model *m = w->m;
    struct rng *r = &m->clients[wc->id].rng;
    if (wc->n_waits > 0) {
        send_wait(w, wc);
        return;
    }
    uint32_t pick = rng_below(r, WL_PERCENT);
    if (pick < WL_PCT_UPLOAD) {
        /* A type with coupons enough gets a REQUEST (or MEGADEAL) instead. */
        enum proto_type type = (enum proto_type)rng_below(r, PROTO_NTYPES);
        uint32_t n = rng_below(r, WL_LARGE_ONE_IN) == 0 ? WL_LARGE_BATCH
                                                        : 1 + rng_below(r, WL_SMALL_BATCH_MAX);
        if (m->pool[type] < WL_POOL_HIGH)
            send_upload(w, wc, type, n, false);
        else
            send_request(w, wc, type);
        return;
    }
    pick -= WL_PCT_UPLOAD;
    if (pick >= WL_PCT_REQUEST + WL_PCT_REDEEM) {
        send_request(w, wc, PROTO_TYPE_MEGADEAL);
        return;
    }
    /* A client with nothing to redeem asks for a coupon instead. */
    if (pick >= WL_PCT_REQUEST &&
        (m->mode == MODE_EXACTLY_ONCE ? send_checkout(w, wc) : send_redeem(w, wc)))
        return;
    send_request(w, wc, request_types[rng_below(r, WL_REQUEST_TYPES)]);
}

/* Exactly-once, after a restart: sends op again with its id. A REQUEST counts as sent anew
 * for the judgement of NO_COUPONS, with every REQUEST retry of its type not yet answered as a
 * rival: each may hold a coupon the model does not know of yet. */
static void
send_retry(struct wl *w, struct wclient *wc, uint32_t op)
{
    struct model *m = w->m;
    struct op *o = &m->ops[op];
    model_op_resend(m, op);
    if (o->kind == OP_REQUEST) {
        enum proto_type type = (enum proto_type)m->users[o->target].type;
        o->free_at_send = m->free_acked[type];
        o->rivals_at_send = m->in_flight[type] + w->retry_requests[type];
        o->started_at_send = m->started[type];
        m->in_flight[type]++;
        m->started[type]++;
    }
    enqueue(w, wc, op);
}

static void
fill(struct wl *w, struct wclient *wc)
{
    if (w->retrying) {
        while (!wc->closed && wc->count < WL_FIFO) {
            if (wc->n_waits > 0)
                send_wait(w, wc);
            else if (wc->retry_next < wc->n_retry)
                send_retry(w, wc, wc->retry[wc->retry_next++]);
            else
                break;
        }
        return;
    }
    while (!wc->closed && wc->count < wc->depth && wc->out_len - wc->out_off < WL_OUT_HIGH)
        send_one(w, wc);
}

/* ---- replies ---- */

/* Checks a coupon handed out to user u (by REQUEST or a granted WAIT) and records it. */
static void
take_coupon(struct wl *w, uint32_t u, const char *line)
{
    struct model *m = w->m;
    struct proto_coupon pc;
    if (!model_check(m, proto_reply_coupon(line, strlen(line), &pc),
                     "u%u: no coupon in the reply \"%s\"", (unsigned)u, line)) {
        m->users[u].state = USER_NONE;
        return;
    }
    uint32_t c = model_find_code(m, pc.code);
    if (!model_check(m, c != MODEL_NONE, "u%u was given %s, a code nobody uploaded: \"%s\"",
                     (unsigned)u, pc.code, line)) {
        m->users[u].state = USER_NONE;
        return;
    }
    struct coupon *cp = &m->coupons[c];
    struct batch *b = &m->batches[cp->batch];
    bool ok =
        model_check(m, cp->user == MODEL_NONE, "%s assigned twice: to u%u, and now to u%u (\"%s\")",
                    pc.code, (unsigned)cp->user, (unsigned)u, line);
    ok &= model_check(m, pc.type == (enum proto_type)m->users[u].type && pc.type == cp->type,
                      "u%u asked for %s, got %s of type %s", (unsigned)u,
                      proto_type_name(m->users[u].type), pc.code, proto_type_name(pc.type));
    ok &= model_check(m, pc.uses == 0 && pc.max_uses == cp->max_uses && pc.expires == m->far_expiry,
                      "%s handed out as \"%s\": expected uses=0 max_uses=%u expires=%s", pc.code,
                      line, (unsigned)cp->max_uses, MODEL_FAR_EXPIRY);
    ok &= model_check(m, b->state != BATCH_REFUSED,
                      "%s handed out, but its UPLOAD was answered with an error", pc.code);
    ok &= model_check(m, !b->expired, "%s handed out, but it expired in %s", pc.code,
                      MODEL_PAST_EXPIRY);
    if (!ok)
        model_history(m, c);
    b->seen = true;
    if (cp->user == MODEL_NONE && !b->expired)
        model_assign(m, c, u);
    else
        m->users[u].state = USER_NONE;
}

static void
on_upload(struct wl *w, const struct op *o, const char *line, uint32_t rejects)
{
    struct model *m = w->m;
    struct batch *b = &m->batches[o->target];
    char want[32], body[BB_LINE_MAX];
    int n = snprintf(want, sizeof want, "OK uploaded=%u", (unsigned)b->n);
    /* Version 2 adds " expired=K" when K of the records had expired already on arrival, and a
     * retry of a stored batch " replayed=1" (model_op_reply() judges that). */
    size_t len = strlen(line), k = strlen(MODEL_REPLAYED);
    if (len >= k && strcmp(line + len - k, MODEL_REPLAYED) == 0)
        len -= k;
    snprintf(body, sizeof body, "%.*s", (int)len, line);
    unsigned expired = 0;
    char tail = '\0';
    if (strncmp(body, want, (size_t)n) == 0 &&
        (body[n] == '\0' || (sscanf(body + n, " expired=%u%c", &expired, &tail) == 1 &&
                             expired >= 1 && expired <= b->n))) {
        model_batch_settle(m, o->target, BATCH_ACKED);
        return;
    }
    if (proto_reply_err(line, strlen(line)) != PROTO_ERR_INTERNAL)
        model_check(m, false, "UPLOAD of batch %u (%u codes): \"%s\" after %u REJECT lines",
                    (unsigned)o->target, (unsigned)b->n, line, (unsigned)rejects);
    model_check(m, !b->seen, "batch %u was refused (\"%s\"), but a reply named one of its codes",
                (unsigned)o->target, line);
    model_batch_settle(m, o->target, BATCH_REFUSED);
}

static void
on_request(struct wl *w, const struct op *o, const char *line)
{
    struct model *m = w->m;
    struct user *u = &m->users[o->target];
    m->in_flight[u->type]--;
    if (proto_reply_kind(line, strlen(line)) == PROTO_REPLY_OK) {
        take_coupon(w, o->target, line);
        return;
    }
    u->state = USER_NONE;
    enum proto_err e = proto_reply_err(line, strlen(line));
    if (e == PROTO_ERR_NO_COUPONS) {
        /* Each rival can have taken one of the coupons that were surely free at the send. */
        uint64_t rivals = o->rivals_at_send + (m->started[u->type] - o->started_at_send - 1);
        model_check(m, o->free_at_send <= rivals,
                    "REQUEST u%u %s: NO_COUPONS, but %u coupons were stored and free when it was "
                    "sent and only %llu other REQUESTs could have taken them",
                    (unsigned)o->target, proto_type_name(u->type), (unsigned)o->free_at_send,
                    (unsigned long long)rivals);
        return;
    }
    model_check(m, e == PROTO_ERR_INTERNAL, "REQUEST u%u: unexpected reply \"%s\"",
                (unsigned)o->target, line);
}

static void
on_redeem(struct wl *w, const struct op *o, const char *line)
{
    struct model *m = w->m;
    struct coupon *c = &m->coupons[o->target];
    char code[MODEL_CODE_MAX];
    model_code(m, o->target, code);
    c->busy = false;
    size_t len = strlen(line);
    struct proto_coupon pc;
    bool ok;
    if (proto_reply_kind(line, len) == PROTO_REPLY_OK) {
        ok = model_check(m,
                         proto_reply_coupon(line, len, &pc) && strcmp(pc.code, code) == 0 &&
                             pc.uses == c->uses + 1 && pc.max_uses == c->max_uses,
                         "REDEEM u%u %s: expected uses=%u max_uses=%u, got \"%s\"",
                         (unsigned)c->user, code, (unsigned)(c->uses + 1), (unsigned)c->max_uses,
                         line);
        if (ok)
            c->uses++;
    } else if (proto_reply_err(line, len) == PROTO_ERR_EXHAUSTED) {
        ok = model_check(m, c->uses == c->max_uses,
                         "REDEEM u%u %s: EXHAUSTED after %u of %u uses (\"%s\")", (unsigned)c->user,
                         code, (unsigned)c->uses, (unsigned)c->max_uses, line);
        model_disown(m, o->target);
    } else {
        ok = model_check(m, proto_reply_err(line, len) == PROTO_ERR_INTERNAL,
                         "REDEEM u%u %s (uses %u of %u): unexpected reply \"%s\"",
                         (unsigned)c->user, code, (unsigned)c->uses, (unsigned)c->max_uses, line);
    }
    if (!ok)
        model_history(m, o->target);
}

static void
on_megadeal(struct wl *w, struct wclient *wc, const struct op *o, const char *line)
{
    struct model *m = w->m;
    struct user *u = &m->users[o->target];
    size_t len = strlen(line);
    const char *id;
    size_t id_len;
    if (proto_reply_kind(line, len) == PROTO_REPLY_OK && strstr(line, " status=granted ") != NULL &&
        o->sends > 1) {
        /* A retry after a restart: the grant of before the kill, kept with the id. */
        take_coupon(w, o->target, line);
        if (u->state == USER_ASSIGNED)
            model_op_keep(m, u->req_op, line);
        return;
    }
    if (proto_reply_kind(line, len) == PROTO_REPLY_OK) {
        if (model_check(m,
                        strstr(line, " status=queued position=") != NULL &&
                            proto_reply_field(line, len, "task", &id, &id_len) && id_len > 0 &&
                            id_len <= PROTO_TASK_MAX,
                        "REQUEST u%u MEGADEAL: expected a queued task, got \"%s\"",
                        (unsigned)o->target, line)) {
            model_task_add(m, o->target, id, id_len);
            u->state = USER_QUEUED;
            if (wc->n_waits == WL_FIFO)
                fail_msg("crash: client %u has more than %d WAITs to send", wc->id, WL_FIFO);
            wc->waits[wc->n_waits++] = o->target;
            return;
        }
        u->state = USER_NONE;
        return;
    }
    enum proto_err e = proto_reply_err(line, len);
    u->state = USER_NONE;
    model_check(m, e == PROTO_ERR_BUSY || e == PROTO_ERR_NO_COUPONS || e == PROTO_ERR_INTERNAL,
                "REQUEST u%u MEGADEAL: unexpected reply \"%s\"", (unsigned)o->target, line);
}

static void
on_wait(struct wl *w, const struct op *o, const char *line)
{
    struct model *m = w->m;
    struct user *u = &m->users[o->target];
    const char *tid = m->tasks[u->task].id;
    size_t len = strlen(line);
    char want[PROTO_TASK_MAX + 48];
    snprintf(want, sizeof want, "OK task=%s status=granted ", tid);
    if (strncmp(line, want, strlen(want)) == 0) {
        take_coupon(w, o->target, line);
        if (m->mode == MODE_EXACTLY_ONCE && u->state == USER_ASSIGNED)
            model_op_keep(m, u->req_op, line); /* what a retry of its REQUEST must replay */
        return;
    }
    enum proto_err e = proto_reply_err(line, len);
    u->state = USER_NONE;
    model_check(m,
                proto_reply_kind(line, len) == PROTO_REPLY_ERR &&
                    (e == PROTO_ERR_TIMEOUT || e == PROTO_ERR_NO_COUPONS),
                "WAIT for u%u's task: expected its grant, TIMEOUT or NO_COUPONS, got \"%s\"",
                (unsigned)o->target, line);
}

/* An op sent and never answered (or answered ERR UNAVAILABLE: it may or may not have
 * happened) stays pending for the next restart. */
static void
unanswered(struct model *m, uint32_t opi)
{
    const struct op *o = &m->ops[opi];
    if (o->kind == OP_REDEEM && m->mode == MODE_PLAIN) {
        m->coupons[o->target].busy = false;
        m->coupons[o->target].unacked++;
    } else if (o->kind == OP_REQUEST) {
        m->in_flight[m->users[o->target].type]--;
    }
    /* Exactly-once: a checkout op's coupon stays busy until its retry is answered. */
}

/* After the kill: what was sent but never answered stays pending for the next restart. */
static void
leave_pending(struct wl *w, struct wclient *wc)
{
    for (; wc->count > 0; wc->count--, wc->head = (wc->head + 1) % WL_FIFO)
        unanswered(w->m, wc->fifo[wc->head]);
}

/* One status line: the reply of the oldest op in flight. */
static void
on_status(struct wl *w, struct wclient *wc, const char *line)
{
    struct model *m = w->m;
    uint32_t opi = wc->fifo[wc->head];
    wc->head = (wc->head + 1) % WL_FIFO;
    wc->count--;
    const struct op *o = &m->ops[opi];
    size_t len = strlen(line);
    enum proto_err e =
        proto_reply_kind(line, len) == PROTO_REPLY_OK ? PROTO_OK : proto_reply_err(line, len);
    if (w->store_down && e == PROTO_ERR_UNAVAILABLE) {
        unanswered(m, opi);
        return;
    }
    model_op_ack(m, opi, e);
    if (checkout_is_op(m, (enum op_kind)o->kind))
        checkout_reply(m, opi, line);
    switch ((enum op_kind)o->kind) {
    case OP_UPLOAD:
        on_upload(w, o, line, wc->rejects);
        break;
    case OP_REQUEST:
        on_request(w, o, line);
        if (w->retrying && o->sends > 1)
            w->retry_requests[m->users[o->target].type]--;
        break;
    case OP_REDEEM:
        if (m->mode == MODE_PLAIN)
            on_redeem(w, o, line);
        break;
    case OP_MEGADEAL:
        on_megadeal(w, wc, o, line);
        break;
    case OP_WAIT:
        on_wait(w, o, line);
        break;
    case OP_HOLD:
    case OP_RELEASE:
    case OP_UNREDEEM:
    case OP_NKINDS:
        break;
    }
    if (m->mode == MODE_EXACTLY_ONCE && model_op_is_write((enum op_kind)o->kind))
        model_op_reply(m, opi, line);
    wc->rejects = 0;
}

static void
on_line(struct wl *w, struct wclient *wc, const char *line)
{
    struct model *m = w->m;
    if (!model_check(m, wc->count > 0, "client %u: a reply line with no request in flight: \"%s\"",
                     wc->id, line))
        return;
    if (proto_reply_kind(line, strlen(line)) != PROTO_REPLY_DATA) {
        on_status(w, wc, line);
        return;
    }
    const struct op *o = &m->ops[wc->fifo[wc->head]];
    if (model_check(m, o->kind == OP_UPLOAD && strncmp(line, "REJECT ", 7) == 0,
                    "client %u: unexpected data line \"%s\" in the reply to a %s", wc->id, line,
                    model_op_name((enum op_kind)o->kind)))
        wc->rejects++;
}

/* Reads and handles every whole line available now. Marks the client closed at EOF or error;
 * before the kill, that is itself a violation. */
static void
read_replies(struct wl *w, struct wclient *wc)
{
    for (;;) {
        enum bb_read r = bb_read_line(wc->c, w->line, sizeof w->line);
        if (r == BB_READ_LINE) {
            on_line(w, wc, w->line);
            continue;
        }
        if (r == BB_READ_TIMEOUT)
            return;
        wc->closed = true;
        model_check(w->m, w->killed,
                    "client %u: the server closed the connection (%s) with %u requests in flight",
                    wc->id, r == BB_READ_CLOSED ? "EOF or reset" : "read error", wc->count);
        return;
    }
}

/* ---- the cycle ---- */

/* Connects every client; `draw_depth`: draws its pipelining depth for the cycle. */
static void
connect_all(struct wl *w, bool draw_depth)
{
    struct model *m = w->m;
    for (unsigned i = 0; i < m->n_clients; i++) {
        struct wclient *wc = &w->cl[i];
        wc->id = i;
        wc->depth = draw_depth ? 1 + rng_below(&m->clients[i].rng, WL_DEPTH_MAX) : WL_FIFO;
        wc->c = bb_connect(w->s);
        bb_auth(wc->c);
        int fl = fcntl(wc->c->fd, F_GETFL);
        if (fl < 0 || fcntl(wc->c->fd, F_SETFL, fl | O_NONBLOCK) != 0)
            fail_msg("crash: fcntl O_NONBLOCK: %s", strerror(errno));
    }
}

/* Polls every open client once, for at most `ms`; with `sending`, queues and sends requests. */
static void
poll_round(struct wl *w, int ms, bool sending)
{
    struct model *m = w->m;
    struct pollfd *pfd = w->pfd;
    for (unsigned i = 0; i < m->n_clients; i++) {
        struct wclient *wc = &w->cl[i];
        if (sending)
            fill(w, wc);
        short ev = POLLIN;
        if (sending && wc->out_off < wc->out_len)
            ev |= POLLOUT;
        pfd[i] = (struct pollfd){.fd = wc->closed ? -1 : wc->c->fd, .events = ev};
    }
    int n = poll(pfd, m->n_clients, ms);
    if (n < 0 && errno != EINTR)
        fail_msg("crash: poll: %s", strerror(errno));
    for (unsigned i = 0; n > 0 && i < m->n_clients; i++) {
        struct wclient *wc = &w->cl[i];
        if (wc->closed)
            continue;
        if ((pfd[i].revents & POLLOUT) && !out_flush(wc))
            pfd[i].revents |= POLLIN; /* the read below reports the close */
        if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
            read_replies(w, wc);
    }
}

void
workload_run(struct model *m, struct bb_server *s, const struct workload_plan *plan)
{
    struct wl w = {.m = m, .s = s};
    w.cl = calloc(m->n_clients, sizeof *w.cl);
    w.pfd = calloc(m->n_clients, sizeof *w.pfd);
    if (w.cl == NULL || w.pfd == NULL)
        fail_msg("crash: out of memory");
    m->cycle_op0 = m->n_ops;
    m->cycle_user0 = m->n_users;
    connect_all(&w, true);

    int64_t kill_at = bb_now_ms() + plan->kill_after_ms;
    int64_t bulk_at = kill_at - plan->bulk_lead_ms;
    bool bulk_sent = false;
    for (int64_t now; (now = bb_now_ms()) < kill_at;) {
        struct wclient *bulk = &w.cl[plan->bulk_client % m->n_clients];
        if (!bulk_sent && now >= bulk_at && !bulk->closed) {
            send_upload(&w, bulk, plan->bulk_type, plan->bulk_n, true);
            bulk_sent = true;
        }
        int64_t until = bulk_sent || bulk_at >= kill_at ? kill_at : bulk_at;
        poll_round(&w, until > now ? (int)(until - now) : 0, true);
    }
    if (plan->stop_store) {
        w.store_down = true;
        if (!bb_pg_cluster("stop"))
            fail_msg("crash: cannot stop PostgreSQL");
    }
    bb_server_kill(s);
    w.killed = true;

    int64_t drain_end = bb_now_ms() + WL_DRAIN_MS;
    for (;;) {
        bool open = false;
        for (unsigned i = 0; i < m->n_clients; i++)
            open |= !w.cl[i].closed;
        int64_t left = drain_end - bb_now_ms();
        if (!open || left <= 0)
            break;
        poll_round(&w, (int)left, false);
    }
    for (unsigned i = 0; i < m->n_clients; i++) {
        struct wclient *wc = &w.cl[i];
        model_check(m, wc->closed, "client %u: no close within %d ms of the kill", i, WL_DRAIN_MS);
        leave_pending(&w, wc);
        bb_close(wc->c);
        free(wc->out);
    }
    free(w.cl);
    free(w.pfd);
    free(w.req);
}

/* ---- the retry after a restart (exactly-once mode) ---- */

static void
push_retry(struct wl *w, uint32_t op)
{
    struct model *m = w->m;
    const struct op *o = &m->ops[op];
    struct wclient *wc = &w->cl[o->client];
    if (wc->n_retry == wc->cap_retry) {
        wc->cap_retry = wc->cap_retry > 0 ? wc->cap_retry * 2 : WL_FIFO;
        wc->retry = realloc(wc->retry, wc->cap_retry * sizeof *wc->retry);
        if (wc->retry == NULL)
            fail_msg("crash: out of memory");
    }
    wc->retry[wc->n_retry++] = op;
    if (o->kind == OP_REQUEST)
        w->retry_requests[m->users[o->target].type]++;
}

/* The writes of this cycle left unanswered at the kill, and the MEGADEAL REQUESTs whose task
 * was queued (and lost with the queue) before its grant was answered: each is sent again with
 * the id it had, by the client that sent it. */
static void
collect_retries(struct wl *w)
{
    struct model *m = w->m;
    for (size_t i = m->cycle_op0; i < m->n_ops; i++) {
        const struct op *o = &m->ops[i];
        if (!o->acked && model_op_is_write((enum op_kind)o->kind))
            push_retry(w, (uint32_t)i);
    }
    for (size_t u = m->cycle_user0; u < m->n_users; u++)
        if (m->users[u].state == USER_QUEUED)
            push_retry(w, m->users[u].req_op);
}

/* Every retry sent and answered, and the WAITs of the tasks they queued. */
static bool
retries_done(const struct wl *w)
{
    for (unsigned i = 0; i < w->m->n_clients; i++) {
        const struct wclient *wc = &w->cl[i];
        if (!wc->closed && (wc->count > 0 || wc->n_waits > 0 || wc->retry_next < wc->n_retry))
            return false;
    }
    return true;
}

void
workload_retry(struct model *m, struct bb_server *s)
{
    struct wl w = {.m = m, .s = s, .retrying = true};
    w.cl = calloc(m->n_clients, sizeof *w.cl);
    w.pfd = calloc(m->n_clients, sizeof *w.pfd);
    if (w.cl == NULL || w.pfd == NULL)
        fail_msg("crash: out of memory");
    connect_all(&w, false);
    collect_retries(&w);
    int64_t deadline = bb_now_ms() + WL_RETRY_MS;
    while (!retries_done(&w)) {
        int64_t left = deadline - bb_now_ms();
        if (left <= 0)
            fail_msg("crash: seed %llu, cycle %u: the retries were not all answered within %d ms",
                     (unsigned long long)m->seed, (unsigned)m->cycle, WL_RETRY_MS);
        poll_round(&w, (int)left, true);
    }
    for (unsigned i = 0; i < m->n_clients; i++) {
        struct wclient *wc = &w.cl[i];
        model_check(m, !wc->closed, "client %u: the server closed the connection during the retry",
                    i);
        bb_close(wc->c);
        free(wc->out);
        free(wc->retry);
    }
    free(w.cl);
    free(w.pfd);
    free(w.req);
}
