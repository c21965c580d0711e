/* cmd.c - the command handlers and their dispatch table. The verbs, their arities and which
 * need AUTH live in protocol/'s proto_verbs[] (the dashboard shares it); this table adds what
 * only the server knows: the handler, and whether it touches the store and writes. */
#include "cmd.h"

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "coupon.h"
#include "keys.h"
#include "log.h"
#include "megadeal.h"
#include "purge.h"
#include "server.h"
#include "store.h"
#include "upload.h"

/* What one command did, for its log line. */
struct cmd_result {
    enum proto_err err;
    const char *code; /* coupon code, when there is one */
    const char *type;
    char code_buf[PROTO_CODE_MAX + 1];
    struct log_note note; /* more fields for the line */
    bool deferred;        /* the reply is written later, by a timer, the upload or the purge */
    bool logged_later;    /* and so is the log line */
};

typedef void cmd_fn(struct conn *c, const struct proto_request *req, struct cmd_result *res);

struct cmd_entry {
    cmd_fn *fn;
    const char *help; /* what HELP says the verb does */
    bool store;       /* reads or writes the store: joins an open group */
    bool write;       /* writes: always in a group, answered after its commit */
};

static const struct cmd_entry cmd_table[PROTO_NCMDS];

/* "OK <prefix>code=... max_uses=M" */
static void
reply_coupon(struct conn *c, const char *prefix, const struct store_coupon *sc)
{
    struct proto_coupon pc;
    char buf[PROTO_COUPON_BUF + 1];
    coupon_to_proto(sc, &pc);
    conn_write(c, "OK ", 3);
    conn_write(c, prefix, strlen(prefix));
    size_t n = proto_fmt_coupon(buf, &pc);
    buf[n] = '\n';
    conn_write(c, buf, n + 1);
}

/* Answers a store error with its protocol error and message; returns the code. */
static enum proto_err
reply_store_error(struct conn *c, enum store_err e, const char *code, const char *user,
                  const struct store_coupon *sc)
{
    char when[PROTO_TIME_BUF];
    switch (e) {
    case STORE_INVALID:
        conn_error(c, PROTO_ERR_INVALID, "coupon %s is not assigned to %s", code, user);
        return PROTO_ERR_INVALID;
    case STORE_EXHAUSTED:
        conn_error(c, PROTO_ERR_EXHAUSTED, "coupon %s has no uses left (%u of %u used)", code,
                   sc->uses, sc->max_uses);
        return PROTO_ERR_EXHAUSTED;
    case STORE_EXPIRED:
        proto_fmt_time(when, sc->expires);
        conn_error(c, PROTO_ERR_EXPIRED, "coupon %s expired at %s", code, when);
        return PROTO_ERR_EXPIRED;
    default:
        conn_error(c, PROTO_ERR_INTERNAL, "%s, nothing was changed", store_strerror(e));
        return PROTO_ERR_INTERNAL;
    }
}

static void
cmd_ping(struct conn *c, const struct proto_request *req, struct cmd_result *res)
{
    (void)req;
    (void)res;
    conn_printf(c, "OK PONG\n");
}

static void
cmd_help(struct conn *c, const struct proto_request *req, struct cmd_result *res)
{
    (void)req;
    (void)res;
    for (int i = 0; i < PROTO_NCMDS; i++)
        conn_printf(c, "INFO %s - %s%s\n", proto_verbs[i].synopsis, cmd_table[i].help,
                    proto_verbs[i].admin ? " (after AUTH)" : "");
    conn_printf(c, "OK\n");
}

static void
auth_delay_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct conn *c = w->data;
    conn_error(c, PROTO_ERR_DENIED, "wrong key");
    conn_reply_done(c);
    if (c->auth_failures >= CONN_AUTH_TRIES)
        conn_close_after_flush(c);
    else
        conn_unblock(c);
}

static void
cmd_auth(struct conn *c, const struct proto_request *req, struct cmd_result *res)
{
    if (keys_match(c->srv->admin_key, req->key, req->key_len)) {
        c->authed = true;
        conn_printf(c, "OK\n");
        return;
    }
    /* Answer later, without holding up the loop: guessing keys must be slow. */
    c->authed = false;
    c->auth_failures++;
    res->err = PROTO_ERR_DENIED;
    res->deferred = true;
    log_note_add(&res->note, log_uint("failures", c->auth_failures));
    conn_block(c);
    ev_timer_init(&c->delay_w, auth_delay_cb, CONN_AUTH_DELAY, 0.);
    ev_timer_start(c->srv->loop, &c->delay_w);
}

static void
cmd_request(struct conn *c, const struct proto_request *req, struct cmd_result *res)
{
    res->type = proto_type_name(req->type);
    if (req->type == PROTO_TYPE_MEGADEAL) {
        res->err = megadeal_request(c->srv->mega, c, req->user, &res->note);
        return;
    }
    struct store_coupon sc;
    enum store_err e = store_assign(c->srv->store, (enum store_type)req->type, req->user,
                                    server_now_sec(c->srv), &sc);
    if (e == STORE_NO_COUPONS) {
        res->err = PROTO_ERR_NO_COUPONS;
        conn_error(c, PROTO_ERR_NO_COUPONS, "no %s coupon left", res->type);
        return;
    }
    if (e != STORE_OK) {
        res->err = reply_store_error(c, e, "-", req->user, &sc);
        return;
    }
    memcpy(res->code_buf, sc.code, sizeof res->code_buf);
    res->code = res->code_buf;
    reply_coupon(c, "", &sc);
}

static void
cmd_task(struct conn *c, const struct proto_request *req, struct cmd_result *res)
{
    res->err = megadeal_status(c->srv->mega, c, req->task, req->cmd == PROTO_CMD_WAIT,
                               &res->deferred, &res->note);
}

static void
cmd_validate(struct conn *c, const struct proto_request *req, struct cmd_result *res)
{
    struct store_coupon sc;
    res->code = req->code;
    enum store_err e =
        store_validate(c->srv->store, req->code, req->user, server_now_sec(c->srv), &sc);
    if (e != STORE_OK) {
        res->err = reply_store_error(c, e, req->code, req->user, &sc);
        return;
    }
    res->type = proto_type_name((enum proto_type)sc.type);
    reply_coupon(c, "", &sc);
}

static void
cmd_redeem(struct conn *c, const struct proto_request *req, struct cmd_result *res)
{
    struct store_coupon sc;
    res->code = req->code;
    enum store_err e =
        store_redeem(c->srv->store, req->code, req->user, server_now_sec(c->srv), &sc);
    if (e != STORE_OK) {
        res->err = reply_store_error(c, e, req->code, req->user, &sc);
        return;
    }
    res->type = proto_type_name((enum proto_type)sc.type);
    log_note_add(&res->note, log_uint("uses", sc.uses));
    reply_coupon(c, "", &sc);
}

static void
cmd_quit(struct conn *c, const struct proto_request *req, struct cmd_result *res)
{
    (void)req;
    (void)res;
    conn_printf(c, "OK BYE\n");
    conn_close_after_flush(c);
}

/* Refuses an UPLOAD but reads its n record lines first, so the connection stays in step. */
static void
refuse_upload(struct conn *c, uint64_t count, enum proto_err err, struct cmd_result *res)
{
    c->drop_lines = count;
    c->drop_err = err;
    res->err = err;
    res->deferred = true;
}

static void
cmd_upload(struct conn *c, const struct proto_request *req, struct cmd_result *res)
{
    log_note_add(&res->note, log_uint("count", req->count));
    if (!c->authed) {
        refuse_upload(c, req->count, PROTO_ERR_DENIED, res);
        return;
    }
    if (req->count > c->srv->opts->max_upload) {
        refuse_upload(c, req->count, PROTO_ERR_TOO_LARGE, res);
        return;
    }
    c->upload = upload_new(req->count);
    if (!c->upload) {
        refuse_upload(c, req->count, PROTO_ERR_INTERNAL, res);
        return;
    }
    res->deferred = res->logged_later = true;
}

static void
cmd_purge(struct conn *c, const struct proto_request *req, struct cmd_result *res)
{
    (void)req;
    if (!purge_request(c->srv->purge, c)) {
        res->err = PROTO_ERR_INTERNAL;
        conn_error(c, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    res->deferred = res->logged_later = true;
    conn_block(c);
}

static void
stat_line(struct conn *c, const char *name, const char *suffix, uint64_t v)
{
    conn_printf(c, "STAT %s%s %llu\n", name, suffix, (unsigned long long)v);
}

static void
cmd_stats(struct conn *c, const struct proto_request *req, struct cmd_result *res)
{
    (void)req;
    struct server *srv = c->srv;
    struct store_counters sc;
    enum store_err e = store_counters(srv->store, server_now_sec(srv), &sc);
    if (e != STORE_OK) {
        res->err = reply_store_error(c, e, "-", "-", NULL);
        return;
    }
    stat_line(c, "uptime_s", "", (uint64_t)(server_now(srv) - srv->started));
    stat_line(c, "connections", "", srv->conns.count);
    stat_line(c, "commands", "", srv->stats.commands);
    stat_line(c, "connections_total", "", srv->stats.connections_total);
    stat_line(c, "clients_rejected", "", srv->stats.rejected_clients);
    stat_line(c, "commits", "", srv->stats.commits);
    stat_line(c, "commit_failures", "", srv->stats.commit_failures);
    static const char *const names[] = {"created.", "assigned.", "redeemed.", "available.",
                                        "purged."};
    for (int t = 0; t < STORE_NTYPES; t++) {
        const struct store_type_counters *tc = &sc.type[t];
        const uint64_t v[] = {tc->created, tc->assigned, tc->redeemed, tc->available, tc->purged};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
            stat_line(c, names[i], proto_type_name((enum proto_type)t), v[i]);
    }
    struct mega_counters mc;
    megadeal_counters(srv->mega, &mc);
    stat_line(c, "megadeal.queued", "", mc.queued);
    stat_line(c, "megadeal.in_flight", "", mc.in_flight);
    stat_line(c, "megadeal.granted", "", mc.granted);
    stat_line(c, "megadeal.rejected", "", mc.rejected);
    stat_line(c, "megadeal.timed_out", "", mc.timed_out);
    conn_printf(c, "OK\n");
}

static const struct cmd_entry cmd_table[PROTO_NCMDS] = {
    [PROTO_CMD_PING] = {cmd_ping, "check that the server answers", false, false},
    [PROTO_CMD_HELP] = {cmd_help, "list the commands", false, false},
    [PROTO_CMD_AUTH] = {cmd_auth, "unlock the admin commands with the key in admin.key", false,
                        false},
    [PROTO_CMD_REQUEST] = {cmd_request,
                           "assign a new coupon of the type (default: untyped) to user; "
                           "MEGADEAL queues a task",
                           true, true},
    [PROTO_CMD_STATUS] = {cmd_task, "show a MEGADEAL task", false, false},
    [PROTO_CMD_WAIT] = {cmd_task, "wait until a MEGADEAL task is granted or times out", false,
                        false},
    [PROTO_CMD_VALIDATE] = {cmd_validate, "check that user could redeem the coupon now", true,
                            false},
    [PROTO_CMD_REDEEM] = {cmd_redeem, "count one use of the coupon by user", true, true},
    [PROTO_CMD_QUIT] = {cmd_quit, "close the connection", false, false},
    [PROTO_CMD_UPLOAD] =
        {cmd_upload,
         "store n coupons given on the next n lines as code,type,discount,kind,expires,max_uses",
         false, false}, /* joins the group when complete */
    [PROTO_CMD_PURGE] = {cmd_purge, "delete expired coupons never redeemed", false,
                         false}, /* the purge engine commits it */
    [PROTO_CMD_STATS] = {cmd_stats, "show the counters", true, false},
};

/* A write always goes in the group; a read joins it when one is open, because it then reads
 * the group's uncommitted state and must not be answered before the commit. REQUEST MEGADEAL
 * writes nothing (its grant comes later, in a group of its own) and its reply promises only a
 * place in the queue, which no commit makes durable: it does not wait for one. */
static bool
joins_group(const struct cmd_entry *entry, const struct proto_request *req, const struct store *st)
{
    if (req->cmd == PROTO_CMD_REQUEST && req->type == PROTO_TYPE_MEGADEAL)
        return false;
    return entry->write || (entry->store && store_pending(st));
}

static void
log_command(struct conn *c, const char *op, const struct proto_request *req,
            const struct cmd_result *res, double started)
{
    struct log_op lo = {
        .conn = c->id,
        .peer = c->peer,
        .op = op,
        .user = req ? req->user : NULL,
        .code = res->code,
        .type = res->type,
        .result = proto_err_name(res->err),
        .us = (int64_t)((server_now_precise(c->srv) - started) * 1e6),
        .extra = res->note.f,
        .n_extra = res->note.n,
    };
    log_op(c->srv->log, server_now(c->srv), &lo);
}

void
cmd_execute(struct conn *c, const char *line, size_t len)
{
    struct server *srv = c->srv;
    double started = server_now_precise(srv);
    struct proto_request req;
    struct proto_error perr;
    struct cmd_result res = {.err = PROTO_OK};
    srv->stats.commands++;
    if (!c->spoke) {
        c->spoke = true;
        if (proto_looks_like_http(line, len)) {
            /* A browser can be made to send anything to localhost: never let one drive us. */
            res.err = PROTO_ERR_BAD_REQUEST;
            conn_error(c, PROTO_ERR_BAD_REQUEST, "this is coupond's line protocol, not HTTP");
            conn_reply_done(c);
            conn_close_after_flush(c);
            log_command(c, "HTTP", NULL, &res, started);
            return;
        }
    }
    if (!proto_parse_request(line, len, &req, &perr)) {
        res.err = perr.code;
        conn_printf(c, "ERR %s %s\n", proto_err_name(perr.code), perr.msg);
        conn_reply_done(c);
        log_command(c, "INVALID", NULL, &res, started);
        return;
    }
    const struct proto_verb *verb = &proto_verbs[req.cmd];
    const struct cmd_entry *entry = &cmd_table[req.cmd];
    if (verb->admin && !c->authed && req.cmd != PROTO_CMD_UPLOAD) {
        res.err = PROTO_ERR_DENIED;
        conn_error(c, PROTO_ERR_DENIED, "%s needs AUTH first", verb->name);
        conn_reply_done(c);
        log_command(c, verb->name, &req, &res, started);
        return;
    }
    if (joins_group(entry, &req, srv->store))
        conn_join_group(c);
    entry->fn(c, &req, &res);
    if (!res.deferred)
        conn_reply_done(c);
    if (!res.logged_later)
        log_command(c, verb->name, &req, &res, started);
}

void
cmd_upload_complete(struct conn *c)
{
    struct server *srv = c->srv;
    double started = server_now_precise(srv);
    struct cmd_result res = {.err = PROTO_OK};
    uint64_t stored;
    conn_join_group(c);
    res.err = upload_finish(c->upload, srv->store, c, &stored);
    log_note_add(&res.note, log_uint("stored", stored));
    upload_free(c->upload);
    c->upload = NULL;
    conn_reply_done(c);
    log_command(c, "UPLOAD", NULL, &res, started);
}

void
cmd_upload_dropped(struct conn *c)
{
    enum proto_err e = c->drop_err;
    if (e == PROTO_ERR_DENIED)
        conn_error(c, e, "UPLOAD needs AUTH first; its records were dropped");
    else if (e == PROTO_ERR_TOO_LARGE)
        conn_error(c, e, "UPLOAD takes at most %u records; they were dropped",
                   c->srv->opts->max_upload);
    else
        conn_error(c, e, "server out of memory; the records were dropped");
    conn_reply_done(c);
}

void
cmd_conn_closed(struct conn *c)
{
    purge_cancel(c->srv->purge, c);
    if (c->blocked) /* only a blocked connection can be waiting on a task */
        megadeal_conn_closed(c->srv->mega, c);
}
