/* server.c - the wiring: the listener hands connections to sessions, commands reach the store
 * and the services through one environment, and the end of every loop iteration commits the
 * group, hands the log lines to their writer and sends the replies. Signals and the graceful
 * shutdown live here too. */
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd.h"
#include "conn.h"
#include "group.h"
#include "log.h"
#include "megadeal.h"
#include "opts.h"
#include "purge.h"
#include "session.h"

#define SERVER_LISTEN_BACKLOG 4096 /* the kernel caps it at net.core.somaxconn */
#define SERVER_BUSY_REPLY     "ERR BUSY too many clients\n"

struct server {
    struct ev_loop *loop;
    const struct opts *opts;
    struct store *store;
    struct log *log;
    struct group *group;
    struct purge *purge;
    struct megadeal *mega;
    struct conn_pool *conns;
    struct session_set *sessions;
    struct cmd_env env;
    unsigned char admin_key[KEYS_BYTES];

    int listen_fd;
    unsigned port;
    ev_io accept_w;
    ev_timer accept_pause_w;
    ev_prepare prepare_w;   /* end of each loop iteration: commit, log, send */
    ev_timer purge_timer_w; /* --purge-interval */
    ev_timer shutdown_w;    /* grace period on SIGTERM */
    ev_signal sigint_w, sigterm_w, sighup_w;

    double started;
    uint64_t clients_rejected;
    bool shutting_down;
};

/* ---- STATS: the server's own values ---- */

static void
server_stats(void *arg, struct proto_stats *out)
{
    struct server *srv = arg;
    const struct group_stats *gs = group_stats(srv->group);

    out->v[PROTO_STAT_UPTIME][0] = (uint64_t)(ev_now(srv->loop) - srv->started);
    out->v[PROTO_STAT_CONNECTIONS][0] = conn_pool_count(srv->conns);
    out->v[PROTO_STAT_COMMANDS][0] = srv->env.commands;
    out->v[PROTO_STAT_CONNECTIONS_TOTAL][0] = conn_pool_total(srv->conns);
    out->v[PROTO_STAT_CLIENTS_REJECTED][0] = srv->clients_rejected;
    out->v[PROTO_STAT_COMMITS][0] = gs->commits;
    out->v[PROTO_STAT_COMMIT_FAILURES][0] = gs->failures;
}

/* ---- accepting ---- */

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
    log_event(srv->log, ev_now(srv->loop), "ACCEPT_PAUSED", "reason=\"%s\" conns=%zu",
              strerror(err), conn_pool_count(srv->conns));
}

static void
turn_away(struct server *srv, int fd)
{
    srv->clients_rejected++;
    if (send(fd, SERVER_BUSY_REPLY, sizeof SERVER_BUSY_REPLY - 1, MSG_NOSIGNAL) < 0) {
        /* The client is gone already; closing is all that is left. */
    }
    close(fd);
}

bool
server_adopt(struct server *srv, int fd, const char *peer)
{
    struct conn *c = conn_new(srv->conns, fd, peer);

    if (c == NULL) {
        close(fd);
        return false;
    }
    if (session_new(srv->sessions, c) == NULL) {
        conn_close(c, "reason=out_of_memory");
        return false;
    }
    return true;
}

static void
take_client(struct server *srv, int fd, const struct sockaddr_storage *ss)
{
    char peer[CONN_PEER_MAX];
    int one = 1;

    if (conn_pool_count(srv->conns) >= srv->opts->max_clients) {
        turn_away(srv, fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    format_peer(ss, peer, sizeof peer);
    server_adopt(srv, fd, peer);
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
        take_client(srv, fd, &ss);
    }
}

/* ---- the loop ---- */

bool
server_idle(const struct server *srv)
{
    return !group_busy(srv->group) && !purge_busy(srv->purge) && !megadeal_busy(srv->mega);
}

static bool
all_done(const struct server *srv)
{
    return session_set_count(srv->sessions) == 0 && server_idle(srv);
}

/* The end of every loop iteration, just before it waits: the group's batch goes to the store,
 * the log lines to their writer, and the replies out. */
static void
prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    struct server *srv = w->data;

    group_flush(srv->group);
    /* The log lines go to the writer before the replies go out, so a reply is rarely ahead of
     * its line; the log is still asynchronous and may lose its tail in a crash. */
    log_flush(srv->log);
    conn_pool_flush(srv->conns);
    store_release(srv->store);
    if (srv->shutting_down && all_done(srv))
        ev_break(loop, EVBREAK_ALL);
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

    log_event(srv->log, ev_now(loop), "SHUTDOWN", "result=grace_expired conns=%zu",
              conn_pool_count(srv->conns));
    ev_break(loop, EVBREAK_ALL);
}

static void
begin_shutdown(struct server *srv, int signum)
{
    if (srv->shutting_down)
        return;
    srv->shutting_down = true;
    log_event(srv->log, ev_now(srv->loop), "SHUTDOWN", "signal=%d conns=%zu", signum,
              conn_pool_count(srv->conns));
    ev_io_stop(srv->loop, &srv->accept_w);
    ev_timer_stop(srv->loop, &srv->accept_pause_w);
    ev_timer_stop(srv->loop, &srv->purge_timer_w);
    close(srv->listen_fd);
    srv->listen_fd = -1;
    purge_stop(srv->purge);
    megadeal_stop(srv->mega);
    /* Every connection closes once the replies it is owed are written; the close lingers so
     * that no reset destroys them. */
    session_set_shutdown(srv->sessions);
    ev_timer_start(srv->loop, &srv->shutdown_w);
}

void
server_shutdown(struct server *srv)
{
    begin_shutdown(srv, 0);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct server *srv = w->data;

    if (w->signum == SIGHUP) {
        log_event(srv->log, ev_now(loop), "REOPEN_LOG", NULL);
        log_reopen(srv->log);
        return;
    }
    begin_shutdown(srv, w->signum);
}

/* ---- setting up ---- */

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
    double every = srv->opts->purge_interval;

    ev_io_init(&srv->accept_w, accept_cb, srv->listen_fd, EV_READ);
    ev_timer_init(&srv->accept_pause_w, accept_resume_cb, SERVER_ACCEPT_PAUSE, 0.);
    ev_prepare_init(&srv->prepare_w, prepare_cb);
    ev_timer_init(&srv->shutdown_w, shutdown_timer_cb, SERVER_SHUTDOWN_GRACE, 0.);
    ev_timer_init(&srv->purge_timer_w, purge_timer_cb, every, every);
    ev_signal_init(&srv->sigint_w, signal_cb, SIGINT);
    ev_signal_init(&srv->sigterm_w, signal_cb, SIGTERM);
    ev_signal_init(&srv->sighup_w, signal_cb, SIGHUP);
    srv->accept_w.data = srv->accept_pause_w.data = srv->prepare_w.data = srv;
    srv->shutdown_w.data = srv->purge_timer_w.data = srv;
    srv->sigint_w.data = srv->sigterm_w.data = srv->sighup_w.data = srv;
    ev_io_start(loop, &srv->accept_w);
    ev_prepare_start(loop, &srv->prepare_w);
    if (every > 0)
        ev_timer_start(loop, &srv->purge_timer_w);
    ev_signal_start(loop, &srv->sigint_w);
    ev_signal_start(loop, &srv->sigterm_w);
    ev_signal_start(loop, &srv->sighup_w);
}

static void
stop_watchers(struct server *srv)
{
    struct ev_loop *loop = srv->loop;

    ev_io_stop(loop, &srv->accept_w);
    ev_timer_stop(loop, &srv->accept_pause_w);
    ev_prepare_stop(loop, &srv->prepare_w);
    ev_timer_stop(loop, &srv->shutdown_w);
    ev_timer_stop(loop, &srv->purge_timer_w);
    ev_signal_stop(loop, &srv->sigint_w);
    ev_signal_stop(loop, &srv->sigterm_w);
    ev_signal_stop(loop, &srv->sighup_w);
}

static bool
make_services(struct server *srv, char *errbuf, size_t errlen)
{
    const struct opts *o = srv->opts;
    struct conn_config cc = {.idle_timeout = o->idle_timeout};
    struct megadeal_config mc = {.rate = o->megadeal_rate,
                                 .concurrency = o->megadeal_concurrency,
                                 .wait = o->megadeal_wait,
                                 .data_dir = o->data_dir};

    srv->group = group_new(srv->loop, srv->store, srv->log);
    srv->purge = srv->group ? purge_new(srv->loop, srv->group, srv->log) : NULL;
    srv->conns = conn_pool_new(srv->loop, &cc, srv->log);
    if (srv->group == NULL || srv->purge == NULL || srv->conns == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return false;
    }
    srv->mega = megadeal_new(srv->loop, &mc, srv->group, srv->log, errbuf, errlen);
    if (srv->mega == NULL)
        return false;
    srv->env = (struct cmd_env){.loop = srv->loop,
                                .opts = o,
                                .store = srv->store,
                                .group = srv->group,
                                .mega = srv->mega,
                                .purge = srv->purge,
                                .log = srv->log,
                                .admin_key = srv->admin_key,
                                .server_stats = server_stats,
                                .server_stats_arg = srv};
    srv->sessions = session_set_new(&srv->env);
    if (srv->sessions == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return false;
    }
    return true;
}

struct server *
server_new(struct ev_loop *loop, const struct opts *opts, struct store *store, struct log *lg,
           const unsigned char admin_key[KEYS_BYTES], char *errbuf, size_t errlen)
{
    struct server *srv = calloc(1, sizeof *srv);

    if (srv == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    srv->loop = loop;
    srv->opts = opts;
    srv->store = store;
    srv->log = lg;
    srv->listen_fd = -1;
    srv->started = ev_time();
    memcpy(srv->admin_key, admin_key, KEYS_BYTES);
    if (!make_services(srv, errbuf, errlen) ||
        (srv->listen_fd = open_listener(opts, errbuf, errlen)) < 0) {
        server_free(srv);
        return NULL;
    }
    srv->port = bound_port(srv->listen_fd);
    start_watchers(srv);
    log_event(lg, ev_time(), "LISTEN", "addr=%s port=%u max_clients=%u", opts->listen, srv->port,
              opts->max_clients);
    return srv;
}

void
server_run(struct server *srv)
{
    ev_run(srv->loop, 0);
}

unsigned
server_port(const struct server *srv)
{
    return srv->port;
}

size_t
server_clients(const struct server *srv)
{
    return conn_pool_count(srv->conns);
}

uint64_t
server_commands(const struct server *srv)
{
    return srv->env.commands;
}

void
server_close_clients(struct server *srv)
{
    conn_pool_close_all(srv->conns);
}

void
server_free(struct server *srv)
{
    if (srv == NULL)
        return;
    stop_watchers(srv);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    conn_pool_free(srv->conns); /* closes every connection; their sessions go with them */
    session_set_free(srv->sessions);
    megadeal_free(srv->mega);
    purge_free(srv->purge);
    group_free(srv->group);
    sodium_memzero(srv->admin_key, sizeof srv->admin_key);
    free(srv);
}
