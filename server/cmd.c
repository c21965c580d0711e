/* cmd.c - the command handlers and their dispatch table (see cmd.h). Each verb has a start
 * function, run when its line arrives, and a reply function, run when its turn to answer
 * comes; errors share one reply. A long reply has a part function too, which writes its rows
 * a part at a time before the reply function writes its status line. */
#include "cmd.h"

#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "auditkey.h"
#include "coupon.h"
#include "gen.h"
#include "group.h"
#include "guess.h"
#include "hold.h"
#include "keys.h"
#include "log.h"
#include "opts.h"
#include "rid.h"
#include "rows.h"
#include "upload.h"

typedef void cmd_start_fn(struct cmd_req *r);
typedef void cmd_reply_fn(struct cmd_req *r, struct proto_out *o);

struct cmd_entry {
    cmd_start_fn *start;
    cmd_reply_fn *reply; /* for an OK outcome (a long reply's status line); errors are written
                            alike for every verb */
    unsigned roles;      /* who may run it: a mask of access.h's classes (ACCESS_SERVICES, ...) */
    const char *help;    /* what HELP says the verb does */
    bool stream;         /* a long reply: rows in parts, then `reply` (cmd.h) */
};

/* A long reply's state: its block of rows, and where it stands in the store. */
struct cmd_stream {
    struct rows rows;
    void *buf;                         /* the rows' memory: coupons or redemptions */
    size_t cap;                        /* rows the buffer holds */
    size_t *chosen;                    /* GENERATE: which candidates the store kept */
    char (*codes)[STORE_CODE_MAX + 1]; /* GENERATE: the codes stored (or, replayed, first stored) */
    unsigned draws;                    /* GENERATE: candidates drawn so far (gen.h) */
    uint64_t count; /* rows sent (EXPORT); all rows (COUPONS: the store's count) */
    /* Data lines of the whole reply, when it is RESP (whose array's count comes first): the
     * store's count of the export's rows in its snapshot, plus COUPON code's coupon line. */
    uint64_t lines;
    bool counted; /* `lines` has the store's count */
    bool more;    /* the store has more rows behind `cursor` */
    void *cursor; /* an EXPORT cursor the store still holds, or NULL */
    bool head;    /* COUPON code: its coupon line is still to write */
    struct store_coupon coupon;
};

static const struct cmd_entry cmd_table[PROTO_NCMDS];

static void log_req(struct cmd_req *r);

/* ---- life of a request ---- */

struct cmd_req *
cmd_req_new(struct cmd_env *env, struct cmd_client *client, void (*complete)(struct cmd_req *r),
            void *owner)
{
    struct cmd_req *r = env->spare;

    if (r != NULL) {
        env->spare = r->next;
        env->n_spare--;
    } else if ((r = malloc(sizeof *r)) == NULL) {
        return NULL;
    }
    r->next = NULL;
    r->complete = complete;
    r->owner = owner;
    r->done = r->blocks = r->closes = r->streaming = false;
    r->stream = NULL;
    r->admit_next = NULL;
    r->records_left = 0;
    r->form = PROTO_FORM_LINE;
    r->env = env;
    r->client = client;
    r->entry = NULL;
    r->after = NULL;
    r->verb = "INVALID";
    r->started = ev_time();
    r->err = PROTO_OK;
    r->msg[0] = '\0';
    r->note.n = 0;
    r->counted_write = r->op_busy = r->logged_reads = r->ticket_held = r->logged = false;
    r->upload = NULL;
    r->drop_err = PROTO_OK;
    ev_init(&r->delay_w, NULL);
    r->parsed = false;
    r->preq.user[0] = r->preq.code[0] = '\0';
    r->op.kind = STORE_OP_GET;
    memset(&r->op.out, 0, sizeof r->op.out);
    return r;
}

static void release(struct cmd_req *r);

static void
cursor_closed(struct store_op *op)
{
    struct cmd_req *r = op->arg;

    r->op_busy = false;
    release(r);
}

/* A client went away during an EXPORT: the store lets go of its snapshot now, not when the
 * export would have ended. The request is released when the store has closed it. */
static void
close_cursor(struct cmd_req *r)
{
    struct cmd_stream *st = r->stream;

    memset(&r->op.out, 0, sizeof r->op.out);
    r->op.kind = STORE_OP_EXPORT;
    r->op.in.close = true;
    r->op.in.cursor = st->cursor;
    st->cursor = NULL;
    r->op.done = cursor_closed;
    r->op.arg = r;
    r->op_busy = true;
    store_read(r->env->store, &r->op);
}

static void
stream_free(struct cmd_stream *st)
{
    if (st == NULL)
        return;
    free(st->buf);
    free(st->chosen);
    free(st->codes);
    free(st);
}

static void
release(struct cmd_req *r)
{
    struct cmd_env *env = r->env;

    if (r->stream != NULL && r->stream->cursor != NULL) {
        close_cursor(r);
        return;
    }
    stream_free(r->stream);
    r->stream = NULL;
    upload_free(r->upload);
    r->upload = NULL;
    if (env->n_spare >= CMD_SPARE_MAX) {
        free(r);
        return;
    }
    r->next = env->spare;
    env->spare = r;
    env->n_spare++;
}

void
cmd_env_release(struct cmd_env *env)
{
    while (env->spare != NULL) {
        struct cmd_req *r = env->spare;
        env->spare = r->next;
        free(r);
    }
    env->n_spare = 0;
}

void
cmd_req_free(struct cmd_req *r)
{
    struct cmd_env *env = r->env;

    r->client = NULL;
    if (ev_is_active(&r->delay_w))
        ev_timer_stop(env->loop, &r->delay_w);
    if (r->ticket_held && r->parsed && r->preq.cmd == PROTO_CMD_WAIT)
        megadeal_cancel(env->mega, &r->mega_ticket);
    else if (r->ticket_held && r->parsed && r->preq.cmd == PROTO_CMD_BACKUP)
        backup_cancel(env->backup, &r->u.backup.ticket);
    else if (r->ticket_held)
        purge_cancel(env->purge, &r->purge_ticket);
    r->ticket_held = false;
    if (r->op_busy) /* op_done logs and frees it */
        return;
    if (!r->done && r->parsed) /* a wrong AUTH still in its delay, a WAIT: logged all the same */
        log_req(r);
    release(r);
}

static void fail(struct cmd_req *r, enum proto_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(struct cmd_req *r, enum proto_err err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->err = err;
}

static void
log_req(struct cmd_req *r)
{
    const char *user = r->preq.user[0] ? r->preq.user : NULL;
    const char *code = NULL, *type = NULL;

    if (r->logged || (r->logged_reads && !r->env->opts->log_reads))
        return;
    r->logged = true;
    if (r->op.kind == STORE_OP_ASSIGN || r->op.kind == STORE_OP_REDEEM ||
        r->op.kind == STORE_OP_VALIDATE) {
        code = r->op.out.coupon.code[0] ? r->op.out.coupon.code : NULL;
        type = code != NULL ? proto_type_name((enum proto_type)r->op.out.coupon.type) : NULL;
    }
    if (r->parsed && r->preq.cmd == PROTO_CMD_REQUEST)
        type = proto_type_name(r->preq.type);
    if (code == NULL && r->preq.code[0])
        code = r->preq.code;
    struct log_op lo = {
        .conn = r->client != NULL ? r->client->wire.conn : 0,
        .peer = r->client != NULL ? r->client->wire.peer : NULL,
        .op = r->verb,
        .user = user,
        .code = code,
        .type = type,
        .result = proto_err_name(r->err),
        .us = (int64_t)((ev_time() - r->started) * 1e6),
        .extra = r->note.f,
        .n_extra = r->note.n,
    };
    log_op(r->env->log, ev_now(r->env->loop), &lo);
}

/* The outcome is known: log it and hand the request to the session (or free an orphan). */
static void
finish(struct cmd_req *r)
{
    r->done = true;
    log_req(r);
    if (r->client == NULL) {
        release(r);
        return;
    }
    r->complete(r);
}

/* ---- the store ---- */

static int64_t
now_sec(const struct cmd_env *env)
{
    return (int64_t)floor(ev_now(env->loop));
}

static void
op_done(struct store_op *op)
{
    struct cmd_req *r = op->arg;

    r->op_busy = false;
    if (r->counted_write && r->client != NULL)
        r->client->writes_unfinished--;
    r->counted_write = false;
    if (r->client == NULL) { /* the connection is gone: nobody to answer */
        finish(r);
        return;
    }
    if (r->after != NULL)
        r->after(r);
    else
        finish(r);
}

/* Readies the request's store operation; its outputs are cleared, so none is left from the
 * request's last operation (or the last request that used this struct). */
static void
prepare(struct cmd_req *r, enum store_op_kind kind, void (*after)(struct cmd_req *r))
{
    memset(&r->op.out, 0, sizeof r->op.out);
    r->op.kind = kind;
    r->op.now = now_sec(r->env);
    r->op.done = op_done;
    r->op.arg = r;
    r->after = after;
    r->op_busy = true;
}

/* Runs the request's store operation: a write in the group; a read too when this client has a
 * write in flight (so it reads its own writes), else at once on the committed state. `after`
 * (or finish) runs when it completes. */
static void
submit(struct cmd_req *r, enum store_op_kind kind, void (*after)(struct cmd_req *r))
{
    struct cmd_env *env = r->env;

    prepare(r, kind, after);
    if (store_op_writes(kind)) {
        /* The audit chain names who made the change: the key name, as request ids are scoped. */
        snprintf(r->op.in.actor, sizeof r->op.in.actor, "%s", r->client->who.name);
        r->client->writes_unfinished++;
        r->counted_write = true;
        group_add(env->group, &r->op);
    } else if (r->client->writes_unfinished > 0) {
        group_add(env->group, &r->op);
    } else {
        store_read(env->store, &r->op);
    }
}

/* The one place where the store's own trouble (no outcome of the request) becomes a protocol
 * error: UNAVAILABLE when the store cannot be reached now (PostgreSQL down: a write may or may
 * not have happened, and a retry with the same request id is safe), else INTERNAL (nothing was
 * changed). `what` names what stopped ("export stopped"), or is NULL; `write` tells whether
 * the request changes the store. */
static void
fail_engine(struct cmd_req *r, enum store_err e, bool write, const char *what)
{
    const char *sep = what != NULL ? ": " : "";

    if (what == NULL)
        what = "";
    if (e == STORE_UNAVAILABLE && write)
        fail(r, PROTO_ERR_UNAVAILABLE,
             "%s%sthe store cannot be reached now; the write may or may not have happened, a "
             "retry with the same id= is safe",
             what, sep);
    else if (e == STORE_UNAVAILABLE)
        fail(r, PROTO_ERR_UNAVAILABLE, "%s%sthe store cannot be reached now", what, sep);
    else
        fail(r, PROTO_ERR_INTERNAL, "%s%s%s, nothing was changed", what, sep, store_strerror(e));
}

/* fail_engine for the request's own store operation. */
static void
fail_op(struct cmd_req *r, const char *what)
{
    fail_engine(r, r->op.err, store_op_writes(r->op.kind), what);
}

/* The protocol error of a store outcome, with its message. */
static void
fail_store(struct cmd_req *r, const char *code, const char *user)
{
    const struct store_coupon *sc = &r->op.out.coupon;
    char when[PROTO_TIME_BUF];

    switch (r->op.err) {
    case STORE_INVALID:
        fail(r, PROTO_ERR_INVALID, "coupon %s is not assigned to %s", code, user);
        return;
    case STORE_EXHAUSTED:
        fail(r, PROTO_ERR_EXHAUSTED, "coupon %s has no uses left (%u used, %u held, of %u)", code,
             sc->uses, sc->held, sc->max_uses);
        return;
    case STORE_EXPIRED:
        proto_fmt_time(when, sc->expires);
        fail(r, PROTO_ERR_EXPIRED, "coupon %s expired at %s", code, when);
        return;
    case STORE_NO_COUPONS:
        fail(r, PROTO_ERR_NO_COUPONS, "no %s coupon left", proto_type_name(r->preq.type));
        return;
    case STORE_ID_CONFLICT:
        fail(r, PROTO_ERR_ID_CONFLICT, "request id %s was used for another request", r->preq.rid);
        return;
    case STORE_UNKNOWN_HOLD:
        fail(r, PROTO_ERR_UNKNOWN_HOLD, "no live hold with that id");
        return;
    case STORE_UNKNOWN_REDEMPTION:
        fail(r, PROTO_ERR_UNKNOWN_REDEMPTION, "no redemption %llu of %s, or it is undone",
             (unsigned long long)r->preq.seq, user);
        return;
    default:
        fail_op(r, NULL);
    }
}

/* Ends an OK line: a write whose request id was stored already says so, last. */
static void
end_ok(struct cmd_req *r, struct proto_out *o)
{
    if (r->op.out.replayed)
        proto_out_field(o, "replayed", "1");
    proto_out_end(o);
}

static void
out_coupon(struct proto_out *o, const struct store_coupon *c)
{
    struct proto_coupon pc;

    coupon_to_proto(c, &pc);
    proto_out_coupon(o, &pc);
}

static void
reply_coupon(struct cmd_req *r, struct proto_out *o)
{
    proto_out_begin(o, "OK");
    out_coupon(o, &r->op.out.coupon);
    if (r->op.kind == STORE_OP_REDEEM)
        proto_out_field_u64(o, "redemption", r->op.out.redemption);
    end_ok(r, o);
}

/* A delayed answer's time has come (a wrong AUTH, a guess). */
static void
delay_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    finish(w->data);
}

/* Holds the answer back for `seconds` without holding up the loop; no further line of the
 * connection starts meanwhile. */
static void
finish_later(struct cmd_req *r, double seconds)
{
    r->blocks = true;
    ev_timer_init(&r->delay_w, delay_cb, seconds, 0.);
    r->delay_w.data = r;
    ev_timer_start(r->env->loop, &r->delay_w);
}

/* A VALIDATE, REDEEM or HOLD answered ERR INVALID: maybe a guess (guess.h). It is answered at
 * once, later, or last on its connection; an episode is logged once when it begins. A
 * connection with an admin key (admin.key or a named admin key) is the operator's own, which
 * may check many codes (an audit, a reconciliation): it is not counted. */
static void
finish_guess(struct cmd_req *r)
{
    struct cmd_client *cl = r->client;
    struct guess_verdict v;

    if (cl->who.authed && cl->who.role == KEYRING_ADMIN) {
        finish(r);
        return;
    }

    guess_failed(r->env->guess, &cl->guess, cl->wire.peer, ev_now(r->env->loop), &v);
    if (v.log_conn || v.log_addr || v.log_cut) {
        const struct log_field f[] = {
            log_uint("conn", cl->wire.conn), log_str("peer", cl->wire.peer),
            log_str("action", v.log_cut ? "closed" : "slowed"), log_uint("failures", v.failures),
            log_uint("addr_failures", v.addr_failures)};
        log_event(r->env->log, ev_now(r->env->loop), "GUESSING", f, LOG_NFIELDS(f));
    }
    r->closes = r->closes || v.close;
    if (v.delay > 0)
        finish_later(r, v.delay);
    else
        finish(r);
}

/* A coupon operation completed: OK with the coupon, or its error. */
static void
after_coupon(struct cmd_req *r)
{
    enum proto_cmd c = r->preq.cmd;

    if (r->op.err == STORE_INVALID &&
        (c == PROTO_CMD_VALIDATE || c == PROTO_CMD_REDEEM || c == PROTO_CMD_HOLD)) {
        fail_store(r, r->preq.code, r->preq.user);
        finish_guess(r);
        return;
    }
    if (r->op.err != STORE_OK)
        fail_store(r, r->preq.code[0] ? r->preq.code : "-", r->preq.user);
    else if (r->preq.cmd == PROTO_CMD_REDEEM)
        log_note_add(&r->note, log_uint("uses", r->op.out.coupon.uses));
    if (r->op.err == STORE_OK && r->op.out.replayed)
        log_note_add(&r->note, log_uint("replayed", 1));
    finish(r);
}

/* Adds a service's fields to the request's log line, after its own (the request id). */
static void
take_note(struct cmd_req *r, const struct log_note *n)
{
    for (size_t i = 0; i < n->n; i++)
        log_note_add(&r->note, n->f[i]);
}

/* ---- request ids ---- */

/* A write with id=RID: its id, scope and fingerprint go into op.in.rid (for an UPLOAD, with its
 * records). */
static void
make_rid(struct cmd_req *r)
{
    struct rid_fp h;

    rid_fp_begin(&h, &r->preq);
    if (r->upload != NULL)
        upload_fingerprint(r->upload, &h);
    rid_fp_end(&h, r->client->who.name, r->preq.rid, &r->op.in.rid);
    log_note_add(&r->note, log_str("id", r->preq.rid));
}

/* make_rid for a write other than a MEGADEAL REQUEST. False, and the request failed, when a
 * MEGADEAL task holds the id: the store does not know it yet. */
static bool
take_rid(struct cmd_req *r)
{
    if (r->preq.rid[0] == '\0')
        return true;
    make_rid(r);
    if (!megadeal_rid_taken(r->env->mega, &r->op.in.rid))
        return true;
    fail(r, PROTO_ERR_ID_CONFLICT, "request id %s was used for another request", r->preq.rid);
    return false;
}

/* ---- who may ---- */

/* Whether the client may run the request's verb (the role column of cmd_table); when not, the
 * request has failed DENIED (its message in r->msg). A key revoked by a reload since the
 * client's AUTH loses its rights here, at the client's next command. */
static bool
permitted(struct cmd_req *r)
{
    struct cmd_client *cl = r->client;
    const struct access_keys *k = &r->env->keys;
    char name[KEYRING_NAME_MAX + 1];

    snprintf(name, sizeof name, "%s", cl->who.name);
    if (access_refresh(&cl->who, k)) {
        const struct log_field f[] = {log_uint("conn", cl->wire.conn), log_str("key", name)};
        log_event(r->env->log, ev_now(r->env->loop), "KEY_REVOKED_CONN", f, LOG_NFIELDS(f));
    }
    enum access_class c = access_class_of(&cl->who, k);
    if (access_allows(r->entry->roles, c))
        return true;
    if (c == ACCESS_OPEN || c == ACCESS_LOCKED)
        fail(r, PROTO_ERR_DENIED, "%s needs AUTH first", r->verb);
    else
        fail(r, PROTO_ERR_DENIED, "%s is beyond the role %s of key %s", r->verb,
             keyring_role_name(cl->who.role), cl->who.name);
    return false;
}

/* ---- the commands ---- */

static void
start_now(struct cmd_req *r)
{
    finish(r);
}

static void
reply_pong(struct cmd_req *r, struct proto_out *o)
{
    (void)r;
    proto_out_begin(o, "OK");
    proto_out_word(o, "PONG");
    proto_out_end(o);
}

static void
reply_help(struct cmd_req *r, struct proto_out *o)
{
    (void)r;
    for (int i = 0; i < PROTO_NCMDS; i++) {
        char text[PROTO_MAX_LINE / 2];
        snprintf(text, sizeof text, "%s - %s%s", proto_verbs[i].synopsis, cmd_table[i].help,
                 proto_verbs[i].admin ? " (after AUTH)" : "");
        proto_out_begin(o, "INFO");
        proto_out_text(o, text);
        proto_out_end(o);
    }
    proto_out_ok(o);
}

static void
reply_ok(struct cmd_req *r, struct proto_out *o)
{
    (void)r;
    proto_out_ok(o);
}

/* AUTH's check, for AUTH and HELLO's AUTH: true when the key is right; else the request fails
 * DENIED, answered after a delay (it is finished then), and false. */
static bool
auth_try(struct cmd_req *r)
{
    struct cmd_client *cl = r->client;

    if (access_auth(&cl->who, &r->env->keys, r->preq.name, r->preq.key, r->preq.key_len))
        return true;
    /* Answer later, without holding up the loop: guessing keys must be slow. A wrong key
     * after a right one takes the rights away (access_auth cleared them). */
    cl->auth_failures++;
    fail(r, PROTO_ERR_DENIED, "wrong key");
    log_note_add(&r->note, log_uint("failures", cl->auth_failures));
    log_req(r); /* now, not after the delay: a guesser that hangs up is on record too */
    r->closes = cl->auth_failures >= CMD_AUTH_TRIES;
    finish_later(r, r->env->opts->auth_delay);
    return false;
}

static void
start_auth(struct cmd_req *r)
{
    if (auth_try(r))
        finish(r);
}

/* What compat.h needs of request r. */
static struct compat_call
compat_call_of(struct cmd_req *r)
{
    return (struct compat_call){.preq = &r->preq,
                                .form = &r->form,
                                .st = &r->compat,
                                .client = &r->client->wire,
                                .opts = r->env->opts,
                                .now = ev_now(r->env->loop),
                                .stats = &r->u.stats};
}

/* HELLO: its AUTH first; only then are the protocol and the name set. */
static void
start_hello(struct cmd_req *r)
{
    if (r->preq.name[0] != '\0' && !auth_try(r))
        return;
    struct compat_call c = compat_call_of(r);
    compat_hello(&c);
    finish(r);
}

/* The reply of a Redis clients' command, by compat.h. */
static void
reply_compat(struct cmd_req *r, struct proto_out *o)
{
    struct compat_call c = compat_call_of(r);
    compat_reply_fn *f = compat_reply_of(r->preq.cmd);

    if (f != NULL)
        f(&c, o);
    else
        proto_out_ok(o);
}

static void start_stats(struct cmd_req *r);

/* INFO: its sections, then the counters, as for STATS. */
static void
start_info(struct cmd_req *r)
{
    struct compat_call c = compat_call_of(r);
    r->err = compat_start(&c, r->msg, sizeof r->msg);
    if (r->err != PROTO_OK)
        finish(r);
    else
        start_stats(r);
}

/* CLIENT, CONFIG, SELECT, COMMAND, ECHO: done at once, by compat.h. */
static void
start_compat(struct cmd_req *r)
{
    struct compat_call c = compat_call_of(r);
    r->err = compat_start(&c, r->msg, sizeof r->msg);
    finish(r);
}

static void
mega_enqueue_after(struct cmd_req *r)
{
    struct cmd_env *env = r->env;
    struct megadeal_view *v = &r->u.mega;
    const struct store_rid *rid = r->preq.rid[0] != '\0' ? &r->op.in.rid : NULL;

    if (r->op.err != STORE_OK) {
        fail_op(r, NULL);
    } else {
        megadeal_enqueue(env->mega, r->preq.user,
                         r->op.out.counters.type[STORE_TYPE_MEGADEAL].available,
                         r->client->wire.conn, r->client->wire.peer, rid, v);
        take_note(r, &v->note);
        if (v->err != PROTO_OK)
            fail(r, v->err, "%s", v->msg);
    }
    finish(r);
}

/* The group's batches completed so far, failed ones too. */
static uint64_t
batches_done(const struct cmd_env *env)
{
    const struct group_stats *gs = group_stats(env->group);

    return gs->commits + gs->failures;
}

/* The shared count arrived: every waiting admission takes it, in arrival order, as if it had
 * been its own read. */
static void
admit_done(struct store_op *op)
{
    struct cmd_env *env = op->arg;
    struct cmd_req *r = env->admit.head, *next;

    env->admit.head = NULL;
    env->admit.tail = &env->admit.head;
    env->admit.busy = false;
    for (; r != NULL; r = next) {
        next = r->admit_next;
        r->admit_next = NULL;
        r->op.err = op->err;
        r->op.out = op->out;
        op_done(&r->op);
    }
}

/* A place in the queue, which no commit makes durable: it needs the count of coupons left, no
 * write. The admissions that arrive while one count is read (a burst of REQUESTs in one
 * packet) share it, so the queue takes them in one go, in arrival order, with no grant
 * committing between them, whether the store answers reads at once (LMDB) or over the network
 * (PostgreSQL). A request may share a count only when it would also have read its own: its
 * client has no write in flight, and no batch has completed since the count was asked (so
 * every write it saw acknowledged is in the count). */
static void
mega_admit(struct cmd_req *r)
{
    struct cmd_env *env = r->env;
    struct cmd_admit *a = &env->admit;

    if (r->client->writes_unfinished > 0 || (a->busy && a->batches != batches_done(env))) {
        submit(r, STORE_OP_COUNTERS, mega_enqueue_after);
        return;
    }
    prepare(r, STORE_OP_COUNTERS, mega_enqueue_after);
    if (a->head == NULL)
        a->tail = &a->head;
    *a->tail = r;
    a->tail = &r->admit_next;
    r->admit_next = NULL;
    if (a->busy)
        return;
    a->busy = true;
    a->batches = batches_done(env);
    memset(&a->op, 0, sizeof a->op);
    a->op.kind = STORE_OP_COUNTERS;
    a->op.now = now_sec(env);
    a->op.done = admit_done;
    a->op.arg = env;
    store_read(env->store, &a->op);
}

/* REQUEST user MEGADEAL id=RID that the queue does not know: the store may know its grant
 * (from before a restart); else it is queued. */
static void
mega_rid_after(struct cmd_req *r)
{
    struct proto_coupon pc;

    switch (r->op.err) {
    case STORE_OK:
        if (r->op.out.task_seq == 0) { /* stored by a write that was no MEGADEAL grant */
            fail(r, PROTO_ERR_ID_CONFLICT, "request id %s was used for another request",
                 r->preq.rid);
            break;
        }
        coupon_to_proto(&r->op.out.coupon, &pc);
        megadeal_view_granted(r->env->mega, r->op.out.task_seq, r->op.out.task_stamp, r->preq.user,
                              &pc, &r->u.mega);
        take_note(r, &r->u.mega.note);
        break;
    case STORE_INVALID:
        mega_admit(r);
        return;
    default:
        fail_store(r, "-", r->preq.user);
    }
    finish(r);
}

static void
mega_request(struct cmd_req *r)
{
    if (r->preq.rid[0] == '\0') {
        mega_admit(r);
        return;
    }
    make_rid(r);
    switch (megadeal_rid_find(r->env->mega, &r->op.in.rid, &r->u.mega)) {
    case MEGADEAL_RID_FOUND:
        take_note(r, &r->u.mega.note);
        finish(r);
        return;
    case MEGADEAL_RID_CONFLICT:
        fail(r, PROTO_ERR_ID_CONFLICT, "request id %s was used for another request", r->preq.rid);
        finish(r);
        return;
    case MEGADEAL_RID_NONE:
        submit(r, STORE_OP_RID_GET, mega_rid_after);
        return;
    }
}

static void
start_request(struct cmd_req *r)
{
    if (r->preq.type == PROTO_TYPE_MEGADEAL) {
        mega_request(r);
        return;
    }
    if (!take_rid(r)) {
        finish(r);
        return;
    }
    r->op.in.type = (enum store_type)r->preq.type;
    snprintf(r->op.in.user, sizeof r->op.in.user, "%s", r->preq.user);
    r->op.in.min_expires = now_sec(r->env) + (int64_t)r->env->opts->min_validity;
    submit(r, STORE_OP_ASSIGN, after_coupon);
}

static void
reply_task(struct cmd_req *r, struct proto_out *o)
{
    const struct megadeal_view *v = &r->u.mega;

    proto_out_begin(o, "OK");
    proto_out_field(o, "task", v->id);
    if (v->granted) {
        proto_out_field(o, "status", "granted");
        proto_out_coupon(o, &v->coupon);
    } else {
        proto_out_field(o, "status", "queued");
        proto_out_field_u64(o, "position", v->position);
    }
    if (v->replayed)
        proto_out_field(o, "replayed", "1");
    proto_out_end(o);
}

static void
reply_request(struct cmd_req *r, struct proto_out *o)
{
    if (r->preq.type == PROTO_TYPE_MEGADEAL)
        reply_task(r, o);
    else
        reply_coupon(r, o);
}

/* The outcome of a MEGADEAL view as this request's. */
static void
take_view(struct cmd_req *r, const struct megadeal_view *v)
{
    if (&r->u.mega != v)
        r->u.mega = *v;
    r->note = v->note;
    if (v->err != PROTO_OK)
        fail(r, v->err, "%s", v->msg);
}

static void
wait_done(struct megadeal_ticket *t)
{
    struct cmd_req *r = t->arg;

    r->ticket_held = false;
    take_view(r, &t->view);
    finish(r);
}

static void
start_task(struct cmd_req *r)
{
    struct cmd_env *env = r->env;

    if (r->preq.cmd == PROTO_CMD_STATUS) {
        megadeal_status(env->mega, r->preq.task, &r->u.mega);
        take_view(r, &r->u.mega);
        finish(r);
        return;
    }
    r->mega_ticket.done = wait_done;
    r->mega_ticket.arg = r;
    if (!megadeal_wait(env->mega, r->preq.task, &r->mega_ticket)) {
        take_view(r, &r->mega_ticket.view);
        finish(r);
        return;
    }
    /* WAIT holds back the replies queued after it. */
    r->note = r->mega_ticket.view.note;
    r->ticket_held = r->blocks = true;
}

static void
reply_wait(struct cmd_req *r, struct proto_out *o)
{
    if (r->preq.cmd == PROTO_CMD_WAIT)
        r->u.mega = r->mega_ticket.view;
    reply_task(r, o);
}

/* The hold a hold id names; false, and the request failed with BAD_HOLD, for an id that fails
 * its check (which reply never tells). */
static bool
take_hold(struct cmd_req *r)
{
    struct hold_ref ref;

    if (!hold_decode(r->env->hold_key, r->preq.hold, strlen(r->preq.hold), &ref)) {
        fail(r, PROTO_ERR_BAD_HOLD, PROTO_BAD_HOLD_MSG);
        return false;
    }
    r->op.in.hold_seq = ref.seq;
    log_note_add(&r->note, log_uint("hold", ref.seq));
    return true;
}

static void
start_coupon_op(struct cmd_req *r)
{
    snprintf(r->op.in.user, sizeof r->op.in.user, "%s", r->preq.user);
    snprintf(r->op.in.code, sizeof r->op.in.code, "%s", r->preq.code);
    if (r->preq.cmd == PROTO_CMD_VALIDATE) {
        submit(r, STORE_OP_VALIDATE, after_coupon);
        return;
    }
    if ((r->preq.hold[0] != '\0' && !take_hold(r)) || !take_rid(r)) {
        finish(r);
        return;
    }
    submit(r, STORE_OP_REDEEM, after_coupon);
}

/* ---- holds and undo ---- */

static void
start_hold(struct cmd_req *r)
{
    if (!take_rid(r)) {
        finish(r);
        return;
    }
    snprintf(r->op.in.user, sizeof r->op.in.user, "%s", r->preq.user);
    snprintf(r->op.in.code, sizeof r->op.in.code, "%s", r->preq.code);
    r->op.in.until = now_sec(r->env) + (int64_t)r->preq.seconds;
    submit(r, STORE_OP_HOLD, after_coupon);
}

static void
reply_hold(struct cmd_req *r, struct proto_out *o)
{
    const struct hold_ref ref = {r->op.out.hold.seq, r->op.out.hold.expires};
    char id[HOLD_ID_BUF];

    hold_encode(r->env->hold_key, &ref, id);
    proto_out_begin(o, "OK");
    proto_out_field(o, "hold", id);
    proto_out_field_time(o, "expires_at", ref.expires);
    out_coupon(o, &r->op.out.coupon);
    end_ok(r, o);
}

static void
start_release(struct cmd_req *r)
{
    if (!take_hold(r) || !take_rid(r)) {
        finish(r);
        return;
    }
    submit(r, STORE_OP_RELEASE, after_coupon);
}

static void
reply_released(struct cmd_req *r, struct proto_out *o)
{
    proto_out_begin(o, "OK");
    proto_out_field(o, "released", "1");
    end_ok(r, o);
}

static void
start_unredeem(struct cmd_req *r)
{
    if (!take_rid(r)) {
        finish(r);
        return;
    }
    snprintf(r->op.in.user, sizeof r->op.in.user, "%s", r->preq.user);
    r->op.in.after = r->preq.seq;
    log_note_add(&r->note, log_uint("redemption", r->preq.seq));
    submit(r, STORE_OP_UNREDEEM, after_coupon);
}

static void
start_quit(struct cmd_req *r)
{
    r->closes = true;
    finish(r);
}

static void
reply_bye(struct cmd_req *r, struct proto_out *o)
{
    (void)r;
    proto_out_begin(o, "OK");
    proto_out_word(o, "BYE");
    proto_out_end(o);
}

/* ---- UPLOAD ---- */

static void
start_upload(struct cmd_req *r)
{
    struct cmd_env *env = r->env;

    r->records_left = r->preq.count;
    log_note_add(&r->note, log_uint("count", r->preq.count));
    /* A refused UPLOAD still reads its records, so the connection stays in step. */
    if (!permitted(r))
        r->drop_err = PROTO_ERR_DENIED;
    else if (r->preq.count > env->opts->max_upload)
        r->drop_err = PROTO_ERR_TOO_LARGE;
    else if ((r->upload = upload_new(r->preq.count)) == NULL)
        r->drop_err = PROTO_ERR_INTERNAL;
}

static void
upload_refused(struct cmd_req *r)
{
    char why[CMD_MSG_MAX];

    switch (r->drop_err) {
    case PROTO_ERR_DENIED:
        snprintf(why, sizeof why, "%s", r->msg); /* permitted() said why */
        fail(r, r->drop_err, "%s; its records were dropped", why);
        break;
    case PROTO_ERR_TOO_LARGE:
        fail(r, r->drop_err, "UPLOAD takes at most %u records; they were dropped",
             r->env->opts->max_upload);
        break;
    default:
        fail(r, r->drop_err, "server out of memory; the records were dropped");
    }
    finish(r);
}

static void
upload_after(struct cmd_req *r)
{
    uint64_t stored;

    r->err = upload_result(r->upload, &r->op, &stored);
    if (r->err == PROTO_ERR_INTERNAL) { /* the store's trouble: the generic error reply */
        fail_op(r, NULL);
        upload_free(r->upload);
        r->upload = NULL;
    }
    log_note_add(&r->note, log_uint("stored", stored));
    if (r->err == PROTO_OK && r->op.out.replayed)
        log_note_add(&r->note, log_uint("replayed", 1));
    finish(r);
}

void
cmd_record(struct cmd_req *r, const char *line, size_t len)
{
    if (r->records_left == 0)
        return;
    r->records_left--;
    if (r->upload == NULL) {
        if (r->records_left == 0)
            upload_refused(r);
        return;
    }
    if (!upload_line(r->upload, line, len))
        return;
    upload_op(r->upload, now_sec(r->env), &r->op);
    if (!upload_has_records(r->upload)) { /* every record was refused by the parser */
        upload_after(r);
        return;
    }
    if (!take_rid(r)) { /* its reply is the upload's: the store's verdict, as if it said so */
        r->op.err = STORE_ID_CONFLICT;
        upload_after(r);
        return;
    }
    submit(r, STORE_OP_UPLOAD, upload_after);
}

static void
reply_upload(struct cmd_req *r, struct proto_out *o)
{
    upload_reply(r->upload, &r->op, o);
}

/* ---- PURGE ---- */

static void
purge_done(struct purge_ticket *t)
{
    struct cmd_req *r = t->arg;

    r->ticket_held = false;
    log_note_add(&r->note, log_uint("purged", t->purged));
    if (t->more)
        log_note_add(&r->note, log_uint("more", 1));
    if (!t->ok && t->err != STORE_OK) {
        char what[64];
        snprintf(what, sizeof what, "purge stopped after %llu coupons",
                 (unsigned long long)t->purged);
        fail_engine(r, t->err, true, what);
    } else if (!t->ok) {
        fail(r, PROTO_ERR_INTERNAL, "purge stopped after %llu coupons: %s",
             (unsigned long long)t->purged, t->why);
    }
    finish(r);
}

static void
start_purge(struct cmd_req *r)
{
    r->purge_ticket.done = purge_done;
    r->purge_ticket.arg = r;
    r->ticket_held = r->blocks = true;
    purge_request(r->env->purge, &r->purge_ticket);
}

static void
reply_purge(struct cmd_req *r, struct proto_out *o)
{
    proto_out_begin(o, "OK");
    proto_out_field_u64(o, "purged", r->purge_ticket.purged);
    if (r->purge_ticket.more)
        proto_out_field(o, "more", "1");
    proto_out_end(o);
}

/* ---- STATS ---- */

void
cmd_stats(const struct cmd_env *env, const struct store_counters *c, struct proto_stats *s)
{
    struct mega_counters mc;

    memset(s, 0, sizeof *s);
    env->server_stats(env->server_stats_arg, s);
    for (int t = 0; t < STORE_NTYPES; t++) {
        const struct store_type_counters *tc = &c->type[t];
        s->v[PROTO_STAT_CREATED][t] = tc->created;
        s->v[PROTO_STAT_ASSIGNED][t] = tc->assigned;
        s->v[PROTO_STAT_REDEEMED][t] = tc->redeemed;
        s->v[PROTO_STAT_AVAILABLE][t] = tc->available;
        s->v[PROTO_STAT_PURGED][t] = tc->purged;
        s->v[PROTO_STAT_HELD][t] = tc->held;
        s->v[PROTO_STAT_UNREDEEMED][t] = tc->unredeemed;
    }
    megadeal_counters(env->mega, &mc);
    s->v[PROTO_STAT_MEGA_QUEUED][0] = mc.queued;
    s->v[PROTO_STAT_MEGA_IN_FLIGHT][0] = mc.in_flight;
    s->v[PROTO_STAT_MEGA_GRANTED][0] = mc.granted;
    s->v[PROTO_STAT_MEGA_REJECTED][0] = mc.rejected;
    s->v[PROTO_STAT_MEGA_TIMED_OUT][0] = mc.timed_out;
}

static void
stats_after(struct cmd_req *r)
{
    if (r->op.err != STORE_OK)
        fail_op(r, NULL);
    else
        cmd_stats(r->env, &r->op.out.counters, &r->u.stats);
    finish(r);
}

static void
start_stats(struct cmd_req *r)
{
    r->logged_reads = true; /* a dashboard polls it: logged with --log-reads only */
    submit(r, STORE_OP_COUNTERS, stats_after);
}

static void
stat_line(struct proto_out *o, const char *name, const char *suffix, uint64_t v)
{
    char full[64];

    snprintf(full, sizeof full, "%s%s%s", name, suffix[0] ? "." : "", suffix);
    proto_out_begin(o, "STAT");
    proto_out_word(o, full);
    proto_out_u64(o, v);
    proto_out_end(o);
}

/* "STAT name word": a text stat. */
static void
stat_text_line(struct proto_out *o, const char *name, const char *text)
{
    proto_out_begin(o, "STAT");
    proto_out_word(o, name);
    proto_out_word(o, text[0] != '\0' ? text : "-");
    proto_out_end(o);
}

static void
reply_stats(struct cmd_req *r, struct proto_out *o)
{
    const struct proto_stats *s = &r->u.stats;

    for (int i = 0; i < PROTO_NSTATS; i++) {
        const struct proto_stat_def *d = &proto_stat_defs[i];
        if (d->kind == PROTO_STAT_TEXT) {
            stat_text_line(o, d->name, proto_stats_text(s, (enum proto_stat)i));
            continue;
        }
        if (!d->per_type) {
            stat_line(o, d->name, "", s->v[i][0]);
            continue;
        }
        for (int t = 0; t < PROTO_NTYPES; t++)
            stat_line(o, d->name, proto_type_name((enum proto_type)t), s->v[i][t]);
    }
    proto_out_ok(o);
}

/* ---- long replies: COUPONS, COUPON, EXPORT, GENERATE ---- */

/* A stream with room for `cap` rows of `size` bytes; false (and the request failed) when out
 * of memory. */
static bool
stream_new(struct cmd_req *r, size_t cap, size_t size)
{
    struct cmd_stream *st = calloc(1, sizeof *st);

    if (st == NULL || (st->buf = calloc(cap, size)) == NULL) {
        free(st);
        fail(r, PROTO_ERR_INTERNAL, "server out of memory, nothing was changed");
        return false;
    }
    st->cap = cap;
    r->stream = st;
    return true;
}

/* Rows and then the status line; false while rows are left here or in the store. */
static bool
reply_part(struct cmd_req *r, struct proto_out *o, uint64_t room)
{
    struct cmd_stream *st = r->stream;
    uint64_t start = o->sent;

    if (!r->streaming) /* RESP: the array's count first (nothing in the line form) */
        proto_out_stream(o, st->lines);
    r->streaming = true;
    if (st->head) {
        rows_coupon_line(o, &st->coupon);
        st->head = false;
    }
    uint64_t used = o->sent - start;
    size_t wrote = rows_write(&st->rows, o, room > used ? room - used : 0);
    if (r->preq.cmd == PROTO_CMD_EXPORT)
        st->count += wrote;
    if (rows_left(&st->rows) || (st->more && r->err == PROTO_OK))
        return false;
    if (r->err != PROTO_OK) /* a later chunk failed: the rows so far, then the error */
        proto_out_error(o, r->err, "%s", r->msg);
    else
        r->entry->reply(r, o);
    return true;
}

static void
reply_count(struct cmd_req *r, struct proto_out *o)
{
    proto_out_begin(o, "OK");
    proto_out_field_u64(o, "count", r->stream->count);
    proto_out_end(o);
}

/* COUPONS user */

static void
coupons_after(struct cmd_req *r)
{
    struct cmd_stream *st = r->stream;

    if (r->op.err != STORE_OK) {
        fail_op(r, NULL);
    } else {
        st->count = r->op.out.count;
        size_t n = st->count < st->cap ? (size_t)st->count : st->cap;
        rows_of_coupons(&st->rows, ROWS_ASSIGNED, st->buf, NULL, n);
        st->lines = n;
        log_note_add(&r->note, log_uint("count", st->count));
    }
    finish(r);
}

static void
start_coupons(struct cmd_req *r)
{
    if (!stream_new(r, PROTO_COUPONS_SHOWN, sizeof(struct store_coupon))) {
        finish(r);
        return;
    }
    snprintf(r->op.in.user, sizeof r->op.in.user, "%s", r->preq.user);
    r->op.in.coupons = r->stream->buf;
    r->op.in.cap = r->stream->cap;
    submit(r, STORE_OP_COUPONS, coupons_after);
}

/* EXPORT, and COUPON code's redemptions: chunks through a cursor */

static void read_chunk(struct cmd_req *r);

static void
chunk_after(struct cmd_req *r)
{
    struct cmd_stream *st = r->stream;
    bool coupons = r->op.in.export_kind == STORE_EXPORT_COUPONS;
    enum rows_kind kind = coupons                                        ? ROWS_COUPONS
                          : r->op.in.export_kind == STORE_EXPORT_HISTORY ? ROWS_HISTORY
                          : r->op.in.export_kind == STORE_EXPORT_AUDIT   ? ROWS_AUDIT
                                                                         : ROWS_USES;

    if (r->op.err != STORE_OK) { /* a failed EXPORT has released its cursor (store.h) */
        st->more = false;
        st->cursor = NULL;
        fail_op(r, "export stopped");
        finish(r);
        return;
    }
    if (!st->counted) /* the first chunk: the rows of the whole export, for RESP */
        st->lines += r->op.out.total;
    st->counted = true;
    size_t n = r->op.out.count < st->cap ? (size_t)r->op.out.count : st->cap;
    if (coupons)
        rows_of_coupons(&st->rows, kind, st->buf, NULL, n);
    else if (kind == ROWS_AUDIT)
        rows_of_audit(&st->rows, st->buf, n);
    else
        rows_of_redemptions(&st->rows, kind, st->buf, n);
    st->more = r->op.out.more;
    st->cursor = st->more ? r->op.out.cursor : NULL;
    finish(r);
}

/* Asks for the next chunk: the first through submit (a client reads its own writes), the
 * others straight from the cursor's snapshot. */
static void
read_chunk(struct cmd_req *r)
{
    struct cmd_stream *st = r->stream;
    r->op.in.close = false;
    r->op.in.count = !st->counted && r->form != PROTO_FORM_LINE;
    r->op.in.cursor = st->cursor;
    r->op.in.cap = st->cap;
    if (r->op.in.export_kind == STORE_EXPORT_COUPONS)
        r->op.in.coupons = st->buf;
    else if (r->op.in.export_kind == STORE_EXPORT_AUDIT)
        r->op.in.audit = st->buf;
    else
        r->op.in.rows = st->buf;
    prepare(r, STORE_OP_EXPORT, chunk_after);
    store_read(r->env->store, &r->op);
}

/* The first chunk: when this client has writes in flight, once they are durable (a no-op
 * behind them in the group), so the export's snapshot shows them. The request blocks the ones
 * after it until then, so the snapshot shows none of theirs. */
static void
read_first_chunk(struct cmd_req *r)
{
    r->blocks = true;
    if (r->client->writes_unfinished > 0)
        submit(r, STORE_OP_NOOP, read_chunk);
    else
        read_chunk(r);
}

/* What each EXPORT reads, its rows' size and how many a call reads. */
static const struct {
    enum store_export_kind kind;
    size_t size, chunk;
} exports[] = {
    [PROTO_EXPORT_COUPONS] = {STORE_EXPORT_COUPONS, sizeof(struct store_coupon), CMD_EXPORT_CHUNK},
    [PROTO_EXPORT_HISTORY] = {STORE_EXPORT_HISTORY, sizeof(struct store_redemption),
                              CMD_EXPORT_CHUNK},
    [PROTO_EXPORT_AUDIT] = {STORE_EXPORT_AUDIT, sizeof(struct store_audit_row), CMD_AUDIT_CHUNK},
};

static void
start_export(struct cmd_req *r)
{
    const unsigned what = (unsigned)r->preq.export_what;

    if (!stream_new(r, exports[what].chunk, exports[what].size)) {
        finish(r);
        return;
    }
    r->op.in.export_kind = exports[what].kind;
    r->op.in.type = (enum store_type)r->preq.type;
    r->op.in.any_type = !r->preq.has_type;
    r->op.in.after = r->preq.seq;
    read_first_chunk(r);
}

/* COUPON code */

static void
coupon_after(struct cmd_req *r)
{
    struct cmd_stream *st = r->stream;

    if (r->op.err == STORE_INVALID) {
        fail(r, PROTO_ERR_INVALID, "no coupon %s", r->preq.code);
    } else if (r->op.err != STORE_OK) {
        fail_op(r, NULL);
    } else {
        st->coupon = r->op.out.coupon;
        st->head = true;
        st->lines = 1; /* the coupon line, then its redemptions */
        r->op.in.export_kind = STORE_EXPORT_CODE_HISTORY;
        read_chunk(r);
        return;
    }
    finish(r);
}

static void
start_coupon(struct cmd_req *r)
{
    if (!stream_new(r, CMD_EXPORT_CHUNK, sizeof(struct store_redemption))) {
        finish(r);
        return;
    }
    snprintf(r->op.in.code, sizeof r->op.in.code, "%s", r->preq.code);
    r->blocks = true; /* the requests after it wait for its snapshot (read_first_chunk) */
    submit(r, STORE_OP_GET, coupon_after);
}

/* GENERATE */

/* Draws the candidates of draw st->draws into the stream's buffer and submits them; false (and
 * the request failed) when out of memory. */
static bool
draw(struct cmd_req *r)
{
    struct cmd_stream *st = r->stream;
    size_t n = gen_candidates((size_t)r->preq.count, st->draws++);
    struct store_coupon *recs = realloc(st->buf, n * sizeof *recs);

    if (recs == NULL) {
        fail(r, PROTO_ERR_INTERNAL, "server out of memory, nothing was stored");
        return false;
    }
    st->buf = recs;
    st->cap = n;
    gen_fill(recs, n, &r->preq);
    r->op.in.recs = recs;
    r->op.in.n = n;
    r->op.in.want = (size_t)r->preq.count;
    r->op.in.chosen = st->chosen;
    r->op.in.codes = st->codes; /* the codes stored, or a replay's first ones */
    return true;
}

static void generate_after(struct cmd_req *r);

static void
generate_submit(struct cmd_req *r)
{
    if (!draw(r)) {
        finish(r);
        return;
    }
    submit(r, STORE_OP_GENERATE, generate_after);
}

static void
generate_after(struct cmd_req *r)
{
    struct cmd_stream *st = r->stream;
    bool replayed = r->op.err == STORE_OK && r->op.out.replayed;

    if (r->op.err == STORE_REJECTED && st->draws < GEN_ATTEMPTS) {
        generate_submit(r); /* codes taken: draw again, with more spares */
        return;
    }
    if (r->op.err == STORE_REJECTED)
        fail(r, PROTO_ERR_INTERNAL,
             "no %llu unused codes found in %u draws; choose a longer length, nothing was stored",
             (unsigned long long)r->preq.count, st->draws);
    else if (r->op.err != STORE_OK)
        fail_store(r, "-", "-");
    else
        rows_of_codes(&st->rows, st->codes, (size_t)r->preq.count);
    st->lines = st->rows.n;
    log_note_add(&r->note, log_uint("count", r->preq.count));
    if (replayed)
        log_note_add(&r->note, log_uint("replayed", 1));
    finish(r);
}

static void
start_generate(struct cmd_req *r)
{
    struct cmd_env *env = r->env;

    if (r->preq.count > env->opts->max_upload) {
        fail(r, PROTO_ERR_TOO_LARGE, "GENERATE makes at most %u coupons", env->opts->max_upload);
        finish(r);
        return;
    }
    if (!take_rid(r) || !stream_new(r, 1, sizeof(struct store_coupon))) {
        finish(r);
        return;
    }
    r->stream->chosen = calloc((size_t)r->preq.count, sizeof *r->stream->chosen);
    r->stream->codes = calloc((size_t)r->preq.count, sizeof *r->stream->codes);
    if (r->stream->chosen == NULL || r->stream->codes == NULL) {
        fail(r, PROTO_ERR_INTERNAL, "server out of memory, nothing was stored");
        finish(r);
        return;
    }
    generate_submit(r);
}

static void
reply_generated(struct cmd_req *r, struct proto_out *o)
{
    proto_out_begin(o, "OK");
    proto_out_field_u64(o, "generated", r->stream->rows.n);
    end_ok(r, o);
}

/* ---- AUDIT ---- */

static void
audit_after(struct cmd_req *r)
{
    if (r->op.err != STORE_OK)
        fail(r, PROTO_ERR_INTERNAL, "%s, nothing was changed", store_strerror(r->op.err));
    else
        log_note_add(&r->note, log_uint("seq", r->op.out.audit.seq));
    finish(r);
}

/* The head after this client's own writes (a read behind them when they are in flight). */
static void
start_audit(struct cmd_req *r)
{
    submit(r, STORE_OP_AUDIT_HEAD, audit_after);
}

static void
reply_audit(struct cmd_req *r, struct proto_out *o)
{
    const struct store_audit_head *h = &r->op.out.audit;
    unsigned char sig[AUDITKEY_SIG_BYTES];
    char hash[2 * STORE_AUDIT_HASH_BYTES + 1], sig_hex[AUDITKEY_SIG_HEX];

    auditkey_sign(r->env->audit_key, h, sig);
    sodium_bin2hex(hash, sizeof hash, h->hash, sizeof h->hash);
    sodium_bin2hex(sig_hex, sizeof sig_hex, sig, sizeof sig);
    proto_out_begin(o, "OK");
    proto_out_field_u64(o, "seq", h->seq);
    proto_out_field(o, "hash", hash);
    proto_out_field(o, "sig", sig_hex);
    proto_out_end(o);
}

/* ---- BACKUP and VERSION ---- */

static void
backup_outcome(struct cmd_req *r)
{
    const struct backup_ticket *t = &r->u.backup.ticket;

    log_note_add(&r->note, log_str("dir", r->u.backup.dir));
    if (t->result == BACKUP_BUSY) {
        fail(r, PROTO_ERR_BUSY, "%s", t->why);
    } else if (t->result != BACKUP_OK) {
        fail(r, PROTO_ERR_INTERNAL, "backup failed, nothing was kept: %s", t->why);
    } else {
        log_note_add(&r->note, log_uint("bytes", t->bytes));
    }
}

static void
backup_done(struct backup_ticket *t)
{
    struct cmd_req *r = t->arg;

    r->ticket_held = false;
    backup_outcome(r);
    finish(r);
}

static void
backup_go(struct cmd_req *r)
{
    struct backup_ticket *t = &r->u.backup.ticket;

    t->done = backup_done;
    t->arg = r;
    if (backup_start(r->env->backup, r->u.backup.dir, strlen(r->u.backup.dir), t)) {
        r->ticket_held = true;
        return;
    }
    backup_outcome(r);
    finish(r);
}

/* The copy starts once this client's own writes are durable (a no-op behind them in the group),
 * so it shows them, as an EXPORT's snapshot does. */
static void
start_backup(struct cmd_req *r)
{
    memcpy(r->u.backup.dir, r->preq.path, r->preq.path_len); /* the line goes; the path stays */
    r->u.backup.dir[r->preq.path_len] = '\0';
    if (r->client->writes_unfinished > 0)
        submit(r, STORE_OP_NOOP, backup_go);
    else
        backup_go(r);
}

static void
reply_backup(struct cmd_req *r, struct proto_out *o)
{
    char secs[32];

    snprintf(secs, sizeof secs, "%.3f", r->u.backup.ticket.seconds);
    proto_out_begin(o, "OK");
    proto_out_field_u64(o, "bytes", r->u.backup.ticket.bytes);
    proto_out_field(o, "seconds", secs);
    proto_out_end(o);
}

static void
reply_version(struct cmd_req *r, struct proto_out *o)
{
    (void)r;
    proto_out_begin(o, "OK");
    proto_out_field(o, "version", COUPOND_VERSION);
    proto_out_end(o);
}

/* ---- dispatch ---- */

static const struct cmd_entry cmd_table[PROTO_NCMDS] = {
    [PROTO_CMD_PING] = {start_now, reply_pong, ACCESS_ANYONE, "check that the server answers"},
    [PROTO_CMD_HELP] = {start_now, reply_help, ACCESS_ANYONE, "list the commands"},
    [PROTO_CMD_AUTH] =
        {start_auth, reply_ok, ACCESS_ANYONE,
         "authenticate with admin.key, or as a named key of the keys file with its role"},
    [PROTO_CMD_REQUEST] = {start_request, reply_request, ACCESS_SERVICES,
                           "assign a new coupon of the type (default: untyped) to user; "
                           "MEGADEAL queues a task"},
    [PROTO_CMD_STATUS] = {start_task, reply_wait, ACCESS_SERVICES, "show a MEGADEAL task"},
    [PROTO_CMD_WAIT] = {start_task, reply_wait, ACCESS_SERVICES,
                        "wait until a MEGADEAL task is granted or times out"},
    [PROTO_CMD_VALIDATE] = {start_coupon_op, reply_coupon, ACCESS_SERVICES,
                            "check that user could redeem the coupon now"},
    [PROTO_CMD_REDEEM] = {start_coupon_op, reply_coupon, ACCESS_SERVICES,
                          "count one use of the coupon by user"},
    [PROTO_CMD_QUIT] = {start_quit, reply_bye, ACCESS_ANYONE, "close the connection"},
    [PROTO_CMD_UPLOAD] = {start_upload, reply_upload, ACCESS_ADMINS,
                          "store n coupons given on the next n lines as "
                          "code,type,discount,kind,expires,max_uses"},
    [PROTO_CMD_PURGE] = {start_purge, reply_purge, ACCESS_ADMINS,
                         "delete expired coupons never redeemed"},
    [PROTO_CMD_STATS] = {start_stats, reply_stats, ACCESS_MONITORS, "show the counters"},
    [PROTO_CMD_HOLD] = {start_hold, reply_hold, ACCESS_SERVICES,
                        "reserve one use of user's coupon for seconds (default 900)"},
    [PROTO_CMD_RELEASE] = {start_release, reply_released, ACCESS_SERVICES,
                           "end a hold, giving its use back"},
    [PROTO_CMD_UNREDEEM] = {start_unredeem, reply_coupon, ACCESS_SERVICES,
                            "undo redemption SEQ of user, giving its use back"},
    [PROTO_CMD_COUPONS] = {start_coupons, reply_count, ACCESS_SERVICES,
                           "list the coupons assigned to user, newest first", true},
    [PROTO_CMD_COUPON] = {start_coupon, reply_ok, ACCESS_ADMINS,
                          "show a coupon, its user and its redemptions", true},
    [PROTO_CMD_GENERATE] = {start_generate, reply_generated, ACCESS_ADMINS,
                            "make n coupons with random unique codes", true},
    [PROTO_CMD_EXPORT] = {start_export, reply_count, ACCESS_ADMINS,
                          "list every coupon (of a type), or the redemptions or audit records "
                          "after SEQ",
                          true},
    [PROTO_CMD_HELLO] = {start_hello, reply_compat, ACCESS_ANYONE,
                         "choose RESP2 or RESP3 for RESP requests (Redis clients), AUTH, name"},
    [PROTO_CMD_INFO] = {start_info, reply_compat, ACCESS_READERS,
                        "show the server and the counters the way Redis's INFO does"},
    [PROTO_CMD_CLIENT] = {start_compat, reply_compat, ACCESS_ANYONE,
                          "name this connection, or show it (Redis clients)"},
    [PROTO_CMD_COMMAND] = {start_compat, reply_compat, ACCESS_ANYONE,
                           "list the verbs (Redis clients)"},
    [PROTO_CMD_CONFIG] = {start_compat, reply_compat, ACCESS_READERS,
                          "show settings by name or glob pattern (Redis clients)"},
    [PROTO_CMD_SELECT] = {start_compat, reply_compat, ACCESS_ANYONE,
                          "database 0, the only one (Redis clients)"},
    [PROTO_CMD_ECHO] = {start_compat, reply_compat, ACCESS_ANYONE, "answer the message"},
    [PROTO_CMD_AUDIT] = {start_audit, reply_audit, ACCESS_ADMINS,
                         "show the audit chain's head, signed with audit.key"},
    [PROTO_CMD_BACKUP] = {start_backup, reply_backup, ACCESS_ADMINS,
                          "copy the store and its key files into the new directory dir, "
                          "while serving"},
    [PROTO_CMD_VERSION] = {start_now, reply_version, ACCESS_ANYONE, "show the server's version"},
};

/* A request, parsed or not, starts: the same for a line and a RESP request. */
static void
start_parsed(struct cmd_req *r, bool ok, const struct proto_error *perr)
{
    r->env->commands++;
    if (!ok) {
        r->preq.user[0] = r->preq.code[0] = '\0';
        fail(r, perr->code, "%s", perr->msg);
        finish(r);
        return;
    }
    r->parsed = true;
    if (r->preq.sub[0] != '\0')
        log_note_add(&r->note, log_str("sub", r->preq.sub));
    const struct proto_verb *verb = &proto_verbs[r->preq.cmd];
    r->entry = &cmd_table[r->preq.cmd];
    r->verb = verb->name;
    memset(&r->op.in, 0, sizeof r->op.in);
    /* UPLOAD checks for itself: a refused one still reads its records. */
    if (r->preq.cmd != PROTO_CMD_UPLOAD && !permitted(r)) {
        finish(r);
        return;
    }
    r->entry->start(r);
}

void
cmd_line(struct cmd_req *r, const char *line, size_t len)
{
    struct proto_error perr;
    bool ok = proto_parse_request(line, len, &r->preq, &perr);

    r->form = PROTO_FORM_LINE;
    start_parsed(r, ok, &perr);
}

void
cmd_args(struct cmd_req *r, const struct proto_arg *args, size_t nargs, size_t argc)
{
    struct proto_error perr;
    bool ok = proto_parse_args(args, nargs, argc, &r->preq, &perr);

    r->form = r->client->wire.resp;
    start_parsed(r, ok, &perr);
    if (!ok || r->preq.cmd != PROTO_CMD_UPLOAD)
        return;
    /* The records are the arguments after the verb and its id=, the first of them here. */
    for (size_t i = r->preq.rid[0] != '\0' ? 2 : 1; i < nargs && r->records_left > 0; i++) {
        if (args[i].kind == PROTO_ARG_TOO_LONG)
            cmd_record(r, NULL, 0);
        else
            cmd_record(r, args[i].kind == PROTO_ARG_NULL ? "" : args[i].p, args[i].len);
    }
}

void
cmd_frame_error(struct cmd_req *r, enum proto_err err, const char *why, bool fatal)
{
    r->verb = "RESP_ERROR"; /* not a command: STATS commands does not count it */
    r->form = r->client->wire.resp;
    r->closes = fatal;
    fail(r, err, "%s", why);
    finish(r);
}

void
cmd_too_long(struct cmd_req *r)
{
    r->verb = "TOO_LONG"; /* not a command: STATS commands does not count it */
    fail(r, PROTO_ERR_TOO_LONG, "line longer than %d bytes", PROTO_MAX_LINE);
    finish(r);
}

void
cmd_http(struct cmd_req *r)
{
    /* A browser can be made to send anything to localhost: never let one drive us. */
    r->env->commands++;
    r->verb = "HTTP";
    r->closes = true;
    fail(r, PROTO_ERR_BAD_REQUEST, "this is coupond's line protocol, not HTTP");
    finish(r);
}

bool
cmd_reply(struct cmd_req *r, struct proto_out *o, uint64_t room)
{
    if (r->upload != NULL) { /* an upload's reply tells its outcome, errors included */
        reply_upload(r, o);
        return true;
    }
    if (r->err != PROTO_OK && !r->streaming) {
        proto_out_error(o, r->err, "%s", r->msg);
        return true;
    }
    if (r->entry->stream)
        return reply_part(r, o, room);
    r->entry->reply(r, o);
    return true;
}

void
cmd_more(struct cmd_req *r)
{
    struct cmd_stream *st = r->stream;

    /* Rows left are ready now; so is the end, after a failure or the last chunk. */
    if (st == NULL || rows_left(&st->rows) || !st->more || r->err != PROTO_OK)
        return;
    r->done = false;
    read_chunk(r);
}
