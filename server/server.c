/* server.c - the loop's skeleton: listener and accept, signals, the purge timer, and the end of
 * each iteration, where the group of writes is committed once and the replies go out. */
#include "server.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "megadeal.h"
#include "purge.h"

#define SERVER_LISTEN_BACKLOG 4096 /* the kernel caps it at net.core.somaxconn */
#define SERVER_BUSY_REPLY     "ERR BUSY too many clients\n"

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

static void
format_peer(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN], port[8];
    if (getnameinfo((const struct sockaddr *)ss, sizeof *ss, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, len, "?");
        return;
    }
    if (ss->ss_family == AF_INET6)
        snprintf(out, len, "[%s]:%s", host, port);
    else
        snprintf(out, len, "%s:%s", host, port);
}

static void
accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct server *srv = w->data;
    if (!srv->shutting_down)
        ev_io_start(loop, &srv->accept_w);
}

/* Out of descriptors or memory: stop accepting for a moment instead of spinning on a listener
 * that stays readable. */
static void
pause_accepting(struct server *srv, int err)
{
    ev_io_stop(srv->loop, &srv->accept_w);
    ev_timer_set(&srv->accept_pause_w, SERVER_ACCEPT_PAUSE, 0.);
    ev_timer_start(srv->loop, &srv->accept_pause_w);
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
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct server *srv = w->data;
    for (int i = 0; i < SERVER_ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(srv->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(srv, errno);
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN: all accepted */
        }
        if (srv->conns.count >= srv->opts->max_clients) {
            turn_away(srv, fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char peer[CONN_PEER_MAX];
        format_peer(&ss, peer, sizeof peer);
        if (!conn_new(srv, fd, peer))
            close(fd);
    }
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
    ev_io_stop(srv->loop, &srv->accept_w);
    ev_timer_stop(srv->loop, &srv->accept_pause_w);
    ev_timer_stop(srv->loop, &srv->purge_timer_w);
    close(srv->listen_fd);
    srv->listen_fd = -1;
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

static int
open_listener(const struct opts *o, char *errbuf, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai;
    char port[8];
    snprintf(port, sizeof port, "%u", o->port);
    int rc = getaddrinfo(o->listen, port, &hints, &ai);
    if (rc != 0) {
        snprintf(errbuf, errlen, "bad listen address %s: %s", o->listen, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SERVER_LISTEN_BACKLOG) != 0) {
        snprintf(errbuf, errlen, "cannot listen on %s port %s: %s", o->listen, port,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static unsigned
bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void
start_watchers(struct server *srv)
{
    struct ev_loop *loop = srv->loop;
    ev_io_init(&srv->accept_w, accept_cb, srv->listen_fd, EV_READ);
    ev_timer_init(&srv->accept_pause_w, accept_resume_cb, SERVER_ACCEPT_PAUSE, 0.);
    ev_prepare_init(&srv->prepare_w, prepare_cb);
    ev_timer_init(&srv->defer_w, defer_cb, 0., 0.);
    ev_timer_init(&srv->shutdown_w, shutdown_timer_cb, SERVER_SHUTDOWN_GRACE, 0.);
    double every = srv->opts->purge_interval;
    ev_timer_init(&srv->purge_timer_w, purge_timer_cb, every, every);
    ev_signal_init(&srv->sigint_w, signal_cb, SIGINT);
    ev_signal_init(&srv->sigterm_w, signal_cb, SIGTERM);
    ev_signal_init(&srv->sighup_w, signal_cb, SIGHUP);
    srv->accept_w.data = srv->accept_pause_w.data = srv->prepare_w.data = srv;
    srv->defer_w.data = srv->shutdown_w.data = srv->purge_timer_w.data = srv;
    srv->sigint_w.data = srv->sigterm_w.data = srv->sighup_w.data = srv;
    ev_io_start(loop, &srv->accept_w);
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
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    srv->listen_fd = -1;
    purge_free(srv->purge);
    megadeal_free(srv->mega);
    free(srv->read_buf);
    srv->purge = NULL;
    srv->mega = NULL;
    srv->read_buf = NULL;
    sodium_memzero(srv->admin_key, sizeof srv->admin_key);
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
    srv->listen_fd = -1;
    srv->purge = purge_new(srv);
    srv->read_buf = malloc(CONN_IN_BUF);
    if (!srv->purge || !srv->read_buf) {
        snprintf(errbuf, errlen, "out of memory");
        release(srv);
        return false;
    }
    srv->mega = megadeal_new(srv, errbuf, errlen);
    if (!srv->mega || (srv->listen_fd = open_listener(opts, errbuf, errlen)) < 0) {
        release(srv);
        return false;
    }
    start_watchers(srv);
    const struct log_field f[] = {log_str("addr", opts->listen),
                                  log_uint("port", bound_port(srv->listen_fd)),
                                  log_uint("max_clients", opts->max_clients)};
    log_event(lg, ev_time(), "LISTEN", f, LOG_NFIELDS(f));
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
