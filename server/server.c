/* server.c - the loop's skeleton: the listener's wiring (turn-away, new connections), signals, the
 * purge timer, and the end of each iteration, where the group of writes is committed once and the
 * replies go out. */
#include "server.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "listener.h"
#include "log.h"
#include "megadeal.h"
#include "notify.h"
#include "purge.h"

#define SERVER_BUSY_REPLY "ERR BUSY too many clients\n"

double
server_now(const struct server *srv)
{
    return ev_now(srv->loop);
}

int64_t
server_now_sec(const struct server *srv)
{
    return (int64_t)floor(ev_now(srv->loop));
}

double
server_now_precise(const struct server *srv)
{
    (void)srv;
    return ev_time();
}

void
server_defer(struct server *srv)
{
    if (!ev_is_active(&srv->defer_w))
        ev_timer_start(srv->loop, &srv->defer_w);
}

/* accept() ran out of descriptors or memory: the listener pauses, and the log says so. */
static void
accept_paused(void *arg, int err)
{
    struct server *srv = arg;
    const struct log_field f[] = {log_str("reason", strerror(err)),
                                  log_uint("conns", srv->conns.count)};
    log_event(srv->log, server_now(srv), "ACCEPT_PAUSED", f, LOG_NFIELDS(f));
}

static void
turn_away(struct server *srv, int fd)
{
    srv->stats.rejected_clients++;
    if (send(fd, SERVER_BUSY_REPLY, sizeof SERVER_BUSY_REPLY - 1, MSG_NOSIGNAL) < 0) {
        /* The client is gone already; closing is all that is left. */
    }
    close(fd);
}

static void
accepted(void *arg, int fd, const char *peer)
{
    struct server *srv = arg;
    if (srv->conns.count >= srv->opts->max_clients) {
        turn_away(srv, fd);
        return;
    }
    if (!conn_new(srv, fd, peer))
        close(fd);
}

/* Commits the iteration's group and releases or replaces the replies that waited for it. */
static void
commit_group(struct server *srv)
{
    bool ok = true;
    const char *why = NULL;
    if (store_pending(srv->store)) {
        double t0 = ev_time();
        enum store_err e = store_commit(srv->store);
        ok = e == STORE_OK;
        unsigned members = 0;
        for (struct conn *c = srv->group; c; c = c->group_next)
            members++;
        if (ok) {
            srv->stats.commits++;
        } else {
            srv->stats.commit_failures++;
            why = store_strerror(e);
            const struct log_field f[] = {log_str("result", "INTERNAL"), log_uint("conns", members),
                                          log_int("us", (int64_t)((ev_time() - t0) * 1e6)),
                                          log_str("reason", store_last_error(srv->store))};
            log_event(srv->log, server_now(srv), "COMMIT", f, LOG_NFIELDS(f));
        }
    }
    struct conn *next;
    for (struct conn *c = srv->group; c; c = next) {
        next = c->group_next;
        conn_group_done(c, ok, why);
    }
    srv->group = NULL;
    purge_committed(srv->purge, ok, why);
    megadeal_committed(srv->mega, ok, why);
}

static void
flush_all(struct server *srv)
{
    struct conn *c = srv->flush;
    srv->flush = NULL;
    while (c) {
        struct conn *next = c->flush_next;
        conn_flush(c);
        c = next;
    }
}

/* Frees closed connections that no pending work points at any more. */
static void
bury_dead(struct server *srv)
{
    struct conn *keep = NULL, *c = srv->graveyard;
    while (c) {
        struct conn *next = c->dead_next;
        if (c->in_resume) { /* the deferred list still holds it */
            c->dead_next = keep;
            keep = c;
        } else {
            conn_free(c);
        }
        c = next;
    }
    srv->graveyard = keep;
}

/* The end of every loop iteration, just before it waits: one commit for all the writes the
 * iteration gathered, then every reply is written. */
static void
prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    struct server *srv = w->data;
    purge_step(srv->purge);
    commit_group(srv);
    /* The log lines go to the writer before the replies go out, so a reply is rarely ahead of
     * its line; the log is still asynchronous and may lose its tail in a crash. */
    log_flush(srv->log);
    flush_all(srv);
    store_release(srv->store);
    bury_dead(srv);
    if (srv->shutting_down && !purge_busy(srv->purge) && srv->conns.count == 0)
        ev_break(loop, EVBREAK_ALL);
}

static void
defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct server *srv = w->data;
    struct conn *c = srv->resume;
    srv->resume = NULL;
    while (c) {
        struct conn *next = c->resume_next;
        conn_resume(c);
        c = next;
    }
}

static void
purge_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct server *srv = w->data;
    purge_request(srv->purge, NULL);
}

static void
shutdown_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct server *srv = w->data;
    const struct log_field f[] = {log_str("result", "grace_expired"),
                                  log_uint("conns", srv->conns.count)};
    log_event(srv->log, server_now(srv), "SHUTDOWN", f, LOG_NFIELDS(f));
    ev_break(loop, EVBREAK_ALL);
}

/* SIGINT/SIGTERM: stop taking work, commit and answer what is pending, then leave. */
static void
begin_shutdown(struct server *srv, int signum)
{
    if (srv->shutting_down)
        return;
    srv->shutting_down = true;
    const struct log_field f[] = {log_int("signal", signum), log_uint("conns", srv->conns.count)};
    log_event(srv->log, server_now(srv), "SHUTDOWN", f, LOG_NFIELDS(f));
    notify_send("STOPPING=1");
    listener_free(srv->listener);
    srv->listener = NULL;
    ev_timer_stop(srv->loop, &srv->purge_timer_w);
    purge_stop(srv->purge);
    megadeal_stop(srv->mega);
    /* Every connection is closed once its replies (and those its group still owes) are
     * written; conn_close_after_flush lingers so that no reset destroys them. */
    struct conn *next;
    for (struct conn *c = srv->conns.head; c; c = next) {
        next = c->next;
        conn_close_after_flush(c);
    }
    ev_timer_start(srv->loop, &srv->shutdown_w);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    struct server *srv = w->data;
    if (w->signum == SIGHUP) {
        log_event(srv->log, server_now(srv), "REOPEN_LOG", NULL, 0);
        log_reopen(srv->log);
        return;
    }
    begin_shutdown(srv, w->signum);
}

static void
start_watchers(struct server *srv)
{
    struct ev_loop *loop = srv->loop;
    ev_prepare_init(&srv->prepare_w, prepare_cb);
    ev_timer_init(&srv->defer_w, defer_cb, 0., 0.);
    ev_timer_init(&srv->shutdown_w, shutdown_timer_cb, SERVER_SHUTDOWN_GRACE, 0.);
    double every = srv->opts->purge_interval;
    ev_timer_init(&srv->purge_timer_w, purge_timer_cb, every, every);
    ev_signal_init(&srv->sigint_w, signal_cb, SIGINT);
    ev_signal_init(&srv->sigterm_w, signal_cb, SIGTERM);
    ev_signal_init(&srv->sighup_w, signal_cb, SIGHUP);
    srv->prepare_w.data = srv;
    srv->defer_w.data = srv->shutdown_w.data = srv->purge_timer_w.data = srv;
    srv->sigint_w.data = srv->sigterm_w.data = srv->sighup_w.data = srv;
    ev_prepare_start(loop, &srv->prepare_w);
    if (every > 0)
        ev_timer_start(loop, &srv->purge_timer_w);
    ev_signal_start(loop, &srv->sigint_w);
    ev_signal_start(loop, &srv->sigterm_w);
    ev_signal_start(loop, &srv->sighup_w);
}

/* Frees what server_init made; each part may be missing. */
static void
release(struct server *srv)
{
    listener_free(srv->listener);
    srv->listener = NULL;
    purge_free(srv->purge);
    megadeal_free(srv->mega);
    free(srv->read_buf);
    srv->purge = NULL;
    srv->mega = NULL;
    srv->read_buf = NULL;
    sodium_memzero(srv->admin_key, sizeof srv->admin_key);
}

/* One LISTEN line per address listened on, and one LISTEN_SKIPPED per address of the host name
 * that the machine lacks. */
static void
log_listening(struct server *srv)
{
    for (size_t i = 0; i < listener_count(srv->listener); i++) {
        char addr[LISTENER_HOST_MAX];
        unsigned port;
        int err = listener_address(srv->listener, i, addr, &port);
        const struct log_field f[] = {log_str("addr", addr), log_uint("port", port),
                                      err ? log_str("reason", strerror(err))
                                          : log_uint("max_clients", srv->opts->max_clients)};
        log_event(srv->log, ev_time(), err ? "LISTEN_SKIPPED" : "LISTEN", f, LOG_NFIELDS(f));
    }
}

bool
server_init(struct server *srv, struct ev_loop *loop, const struct opts *opts, struct store *store,
            struct log *lg, const unsigned char admin_key[KEYS_BYTES], char *errbuf, size_t errlen)
{
    memset(srv, 0, sizeof *srv);
    srv->loop = loop;
    srv->opts = opts;
    srv->store = store;
    srv->log = lg;
    memcpy(srv->admin_key, admin_key, KEYS_BYTES);
    srv->started = ev_time();
    srv->purge = purge_new(srv);
    srv->read_buf = malloc(CONN_IN_BUF);
    if (!srv->purge || !srv->read_buf) {
        snprintf(errbuf, errlen, "out of memory");
        release(srv);
        return false;
    }
    srv->mega = megadeal_new(srv, errbuf, errlen);
    if (!srv->mega || !(srv->listener = listener_new(loop, opts->listen, opts->port, accepted,
                                                     accept_paused, srv, errbuf, errlen))) {
        release(srv);
        return false;
    }
    start_watchers(srv);
    log_listening(srv);
    return true;
}

void
server_run(struct server *srv)
{
    ev_run(srv->loop, 0);
}

void
server_free(struct server *srv)
{
    /* The group, if any, was never acknowledged; store_close drops it. */
    while (srv->conns.head)
        conn_close(srv->conns.head);
    srv->resume = NULL;
    for (struct conn *c = srv->graveyard; c; c = c->dead_next)
        c->in_resume = false;
    bury_dead(srv);
    release(srv);
}
