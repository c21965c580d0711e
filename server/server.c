/* server.c - the wiring: the listener hands connections to sessions, commands reach the store
 * and the services through one environment, and the end of every loop iteration commits the
 * group, hands the log lines to their writer and sends the replies. Signals and the graceful
 * shutdown live here too. */
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auditkey.h"
#include "backup.h"
#include "cmd.h"
#include "conn.h"
#include "group.h"
#include "guess.h"
#include "hold.h"
#include "keynote.h"
#include "keyring.h"
#include "listener.h"
#include "log.h"
#include "megadeal.h"
#include "metrics.h"
#include "notify.h"
#include "opts.h"
#include "purge.h"
#include "session.h"
#include "sweep.h"
#include "tls.h"

#define SERVER_LISTEN_BACKLOG 4096 /* the kernel caps it at net.core.somaxconn */
#define SERVER_BUSY_REPLY     "ERR BUSY too many clients\n"
#define ERRBUF_TLS_MAX        (2 * PATH_MAX + 128) /* a reload's reason: two paths and why */

struct server {
    struct ev_loop *loop;
    const struct opts *opts;
    struct store *store;
    struct log *log;
    struct group *group;
    struct purge *purge;
    struct megadeal *mega;
    struct hold_key *hold_key;
    struct auditkey *audit_key;
    struct sweep *hold_sweep, *id_sweep;
    struct backup *backup;
    struct metrics *metrics; /* --metrics-listen; NULL when off */
    struct conn_pool *conns;
    struct session_set *sessions;
    struct cmd_env env;
    unsigned char admin_key[KEYS_BYTES];
    struct keyring *keys;    /* the keys file's, as last loaded; env.keys.ring points at it */
    struct keynote *keynote; /* key changes into the audit chain */
    struct guess *guess;     /* the code-guessing defence's addresses */

    struct listener *listener;
    struct listener *tls_listener; /* --tls-port; NULL when off */
    struct tls_ctx *tls;           /* its certificate and key; NULL when off */
    ev_prepare prepare_w;          /* end of each loop iteration: commit, log, send */
    ev_timer purge_timer_w;        /* --purge-interval */
    ev_timer shutdown_w;           /* grace period on SIGTERM */
    ev_signal sigint_w, sigterm_w, sighup_w;

    double started;
    char open_addr[LISTENER_HOST_MAX]; /* a non-loopback address listened on, for a warning */
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
    proto_stats_set_text(out, PROTO_STAT_NODE, srv->opts->node_name);
    proto_stats_set_text(out, PROTO_STAT_STORE, store_backend(srv->store));
}

/* ---- accepting ---- */

/* accept() ran out of descriptors or memory: the listener pauses, and the log says so. */
static void
accept_paused(void *arg, int err)
{
    struct server *srv = arg;
    const struct log_field f[] = {log_str("reason", strerror(err)),
                                  log_uint("conns", conn_pool_count(srv->conns))};

    log_event(srv->log, ev_now(srv->loop), "ACCEPT_PAUSED", f, LOG_NFIELDS(f));
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

/* A new client on `fd`, speaking TLS when `tls` is not NULL. */
static bool
adopt(struct server *srv, int fd, const char *peer, struct tls_ctx *tls)
{
    struct conn *c = conn_new(srv->conns, fd, peer);

    if (c == NULL) {
        close(fd);
        return false;
    }
    if (tls != NULL && !conn_use_tls(c, tls)) {
        conn_close(c, "out_of_memory");
        return false;
    }
    if (session_new(srv->sessions, c) == NULL) {
        conn_close(c, "out_of_memory");
        return false;
    }
    return true;
}

bool
server_adopt(struct server *srv, int fd, const char *peer)
{
    return adopt(srv, fd, peer, NULL);
}

static void
accepted(void *arg, int fd, const char *peer)
{
    struct server *srv = arg;
    int one = 1;

    if (conn_pool_count(srv->conns) >= srv->opts->max_clients) {
        turn_away(srv, fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    adopt(srv, fd, peer, NULL);
}

/* A client of the TLS listener. One over --max-clients is closed without a word: it expects a
 * handshake, so a plain ERR BUSY would mean nothing to it. */
static void
accepted_tls(void *arg, int fd, const char *peer)
{
    struct server *srv = arg;

    if (conn_pool_count(srv->conns) >= srv->opts->max_clients) {
        srv->clients_rejected++;
        close(fd);
        return;
    }
    adopt(srv, fd, peer, srv->tls);
}

/* ---- the loop ---- */

bool
server_idle(const struct server *srv)
{
    return !group_busy(srv->group) && !purge_busy(srv->purge) && !megadeal_busy(srv->mega) &&
           !sweep_busy(srv->hold_sweep) && !sweep_busy(srv->id_sweep) && !backup_busy(srv->backup);
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

    const struct log_field f[] = {log_str("result", "grace_expired"),
                                  log_uint("conns", conn_pool_count(srv->conns))};
    log_event(srv->log, ev_now(loop), "SHUTDOWN", f, LOG_NFIELDS(f));
    ev_break(loop, EVBREAK_ALL);
}

static void
begin_shutdown(struct server *srv, int signum)
{
    if (srv->shutting_down)
        return;
    srv->shutting_down = true;
    const struct log_field f[] = {log_int("signal", signum),
                                  log_uint("conns", conn_pool_count(srv->conns))};
    log_event(srv->log, ev_now(srv->loop), "SHUTDOWN", f, LOG_NFIELDS(f));
    notify_send("STOPPING=1");
    listener_free(srv->listener);
    srv->listener = NULL;
    listener_free(srv->tls_listener);
    srv->tls_listener = NULL;
    metrics_stop(srv->metrics);
    ev_timer_stop(srv->loop, &srv->purge_timer_w);
    purge_stop(srv->purge);
    sweep_stop(srv->hold_sweep);
    sweep_stop(srv->id_sweep);
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

/* SIGHUP: --tls-cert and --tls-key (and --tls-ca) are read again for new connections. A
 * reload that fails keeps the old ones, and the log says so in one line. */
static void
reload_tls(struct server *srv)
{
    char err[ERRBUF_TLS_MAX], serial[TLS_SERIAL_MAX];

    if (srv->tls == NULL)
        return;
    if (!tls_ctx_reload(srv->tls, err, sizeof err)) {
        const struct log_field f[] = {log_str("result", "failed"), log_str("reason", err),
                                      log_str("kept", "old certificate")};
        log_event(srv->log, ev_now(srv->loop), "TLS_RELOAD", f, LOG_NFIELDS(f));
        return;
    }
    tls_ctx_serial(srv->tls, serial);
    const struct log_field f[] = {log_str("result", "ok"), log_str("serial", serial)};
    log_event(srv->log, ev_now(srv->loop), "TLS_RELOAD", f, LOG_NFIELDS(f));
}

/* SIGHUP: the keys file again. A key gone from it ends the rights of the connections that
 * authenticated with it at their next command (access.h); a file that does not load leaves the
 * keys as they were, with one log line. The changes go into the audit chain (keynote.h). */
static void
server_reload_keys(struct server *srv)
{
    char err[PATH_MAX + 128];
    struct keyring *kr;

    if (!keyring_load(srv->opts->data_dir, KEYRING_FILE, &kr, err, sizeof err)) {
        const struct log_field f[] = {log_str("reason", err)};
        log_event(srv->log, ev_now(srv->loop), "KEYS_RELOAD_FAILED", f, LOG_NFIELDS(f));
        return;
    }
    keyring_free(srv->keys);
    srv->keys = kr;
    srv->env.keys.ring = kr;
    srv->env.keys.gen++;
    const struct log_field f[] = {log_uint("keys", keyring_count(kr))};
    log_event(srv->log, ev_now(srv->loop), "KEYS_RELOADED", f, LOG_NFIELDS(f));
    keynote_sync(srv->keynote, kr);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct server *srv = w->data;

    if (w->signum == SIGHUP) {
        log_event(srv->log, ev_now(loop), "REOPEN_LOG", NULL, 0);
        log_reopen(srv->log);
        reload_tls(srv);
        server_reload_keys(srv);
        return;
    }
    begin_shutdown(srv, w->signum);
}

/* ---- setting up ---- */

static void
start_watchers(struct server *srv)
{
    struct ev_loop *loop = srv->loop;
    double every = srv->opts->purge_interval;

    ev_prepare_init(&srv->prepare_w, prepare_cb);
    ev_timer_init(&srv->shutdown_w, shutdown_timer_cb, SERVER_SHUTDOWN_GRACE, 0.);
    ev_timer_init(&srv->purge_timer_w, purge_timer_cb, every, every);
    ev_signal_init(&srv->sigint_w, signal_cb, SIGINT);
    ev_signal_init(&srv->sigterm_w, signal_cb, SIGTERM);
    ev_signal_init(&srv->sighup_w, signal_cb, SIGHUP);
    srv->prepare_w.data = srv;
    srv->shutdown_w.data = srv->purge_timer_w.data = srv;
    srv->sigint_w.data = srv->sigterm_w.data = srv->sighup_w.data = srv;
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

    ev_prepare_stop(loop, &srv->prepare_w);
    ev_timer_stop(loop, &srv->shutdown_w);
    ev_timer_stop(loop, &srv->purge_timer_w);
    ev_signal_stop(loop, &srv->sigint_w);
    ev_signal_stop(loop, &srv->sigterm_w);
    ev_signal_stop(loop, &srv->sighup_w);
}

/* The timers that expire holds and request ids. */
static bool
make_sweeps(struct server *srv)
{
    const struct sweep_config holds = {.kind = STORE_OP_EXPIRE_HOLDS,
                                       .name = "EXPIRE_HOLDS",
                                       .every = SWEEP_HOLDS_SECONDS,
                                       .age = 0};
    const struct sweep_config ids = {.kind = STORE_OP_EXPIRE_IDS,
                                     .name = "EXPIRE_IDS",
                                     .every = sweep_ids_interval(srv->opts->id_retention),
                                     .age = srv->opts->id_retention};

    srv->hold_sweep = sweep_new(srv->loop, srv->group, srv->log, &holds);
    srv->id_sweep = sweep_new(srv->loop, srv->group, srv->log, &ids);
    return srv->hold_sweep != NULL && srv->id_sweep != NULL;
}

/* The keys file, its notes in the audit chain, and the guessing defence's table. */
static bool
make_keys(struct server *srv, char *errbuf, size_t errlen)
{
    const char *dir = srv->opts->data_dir;

    if ((srv->guess = guess_new()) == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return false;
    }
    if (!keyring_load(dir, KEYRING_FILE, &srv->keys, errbuf, errlen))
        return false;
    srv->keynote = keynote_new(srv->loop, srv->group, srv->log, dir, errbuf, errlen);
    return srv->keynote != NULL;
}

static bool
make_services(struct server *srv, char *errbuf, size_t errlen)
{
    const struct opts *o = srv->opts;
    struct conn_config cc = {.idle_timeout = o->idle_timeout};
    struct megadeal_config mc = {.rate = o->megadeal_rate,
                                 .concurrency = o->megadeal_concurrency,
                                 .wait = o->megadeal_wait,
                                 .min_validity = o->min_validity,
                                 .data_dir = o->data_dir};

    unsigned delay_us = opts_commit_delay_us(o, store_commit_delay(srv->store));
    srv->group = group_new(srv->loop, srv->store, srv->log, delay_us / 1e6);
    srv->purge = srv->group ? purge_new(srv->loop, srv->group, srv->log) : NULL;
    srv->backup = backup_new(srv->loop, srv->store, o->data_dir, o->backup_root, srv->log);
    srv->conns = conn_pool_new(srv->loop, &cc, srv->log);
    if (srv->group == NULL || srv->purge == NULL || srv->backup == NULL || srv->conns == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return false;
    }
    srv->mega = megadeal_new(srv->loop, &mc, srv->group, srv->log, errbuf, errlen);
    if (srv->mega == NULL || (srv->hold_key = hold_key_load(o->data_dir, errbuf, errlen)) == NULL ||
        (srv->audit_key = auditkey_load(o->data_dir, true, errbuf, errlen)) == NULL)
        return false;
    if (!make_sweeps(srv)) {
        snprintf(errbuf, errlen, "out of memory");
        return false;
    }
    if (!make_keys(srv, errbuf, errlen))
        return false;
    srv->env = (struct cmd_env){.loop = srv->loop,
                                .opts = o,
                                .store = srv->store,
                                .group = srv->group,
                                .mega = srv->mega,
                                .purge = srv->purge,
                                .backup = srv->backup,
                                .log = srv->log,
                                .keys = {.admin_key = srv->admin_key, .ring = srv->keys},
                                .guess = srv->guess,
                                .hold_key = srv->hold_key,
                                .audit_key = srv->audit_key,
                                .server_stats = server_stats,
                                .server_stats_arg = srv};
    srv->sessions = session_set_new(&srv->env);
    if (srv->sessions == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return false;
    }
    return true;
}

static void
metrics_gather(void *arg, const struct store_counters *c, struct proto_stats *out)
{
    struct server *srv = arg;

    cmd_stats(&srv->env, c, out);
}

/* --metrics-listen: the exporter, on sockets of its own. */
static bool
make_metrics(struct server *srv, char *errbuf, size_t errlen)
{
    const struct metrics_source src = {
        .store = srv->store, .group = srv->group, .gather = metrics_gather, .arg = srv};

    if (srv->opts->metrics_host[0] == '\0')
        return true;
    srv->metrics = metrics_new(srv->loop, srv->opts->metrics_host, srv->opts->metrics_port, &src,
                               srv->log, errbuf, errlen);
    return srv->metrics != NULL;
}

/* One LISTEN (LISTEN_TLS) line per address listened on, and one LISTEN_SKIPPED per address of
 * the host name that the machine lacks. */
static void
log_listening(struct server *srv, const struct listener *l, const char *op)
{
    for (size_t i = 0; i < listener_count(l); i++) {
        char addr[LISTENER_HOST_MAX];
        unsigned port;
        int err = listener_address(l, i, addr, &port);
        const struct log_field f[] = {log_str("addr", addr), log_uint("port", port),
                                      err ? log_str("reason", strerror(err))
                                          : log_uint("max_clients", srv->opts->max_clients)};
        log_event(srv->log, ev_time(), err ? "LISTEN_SKIPPED" : op, f, LOG_NFIELDS(f));
    }
}

/* The plain listener on --listen and --port, unless --tls-only. */
static bool
make_plain(struct server *srv, char *errbuf, size_t errlen)
{
    const struct opts *o = srv->opts;

    if (o->tls_only)
        return true;
    srv->listener =
        listener_new(srv->loop, o->listen, o->port, accepted, accept_paused, srv, errbuf, errlen);
    return srv->listener != NULL;
}

/* --tls-port: the certificate and key (a bad file fails the start), then the second listener. */
static bool
make_tls(struct server *srv, char *errbuf, size_t errlen)
{
    const struct opts *o = srv->opts;
    const struct tls_files files = {.cert = o->tls_cert, .key = o->tls_key, .ca = o->tls_ca};

    if (!o->tls)
        return true;
    if ((srv->tls = tls_ctx_new(&files, errbuf, errlen)) == NULL)
        return false;
    srv->tls_listener = listener_new(srv->loop, o->listen, o->tls_port, accepted_tls, accept_paused,
                                     srv, errbuf, errlen);
    return srv->tls_listener != NULL;
}

static bool
loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
           strncmp(addr, "::ffff:127.", 11) == 0;
}

/* --require-auth: on by default when any address listened on is not loopback; off there
 * (--no-require-auth) is worth one warning line. */
static void
decide_require_auth(struct server *srv)
{
    const struct listener *l = srv->listener != NULL ? srv->listener : srv->tls_listener;
    const char *open_addr = NULL;

    for (size_t i = 0; i < listener_count(l); i++) {
        char addr[LISTENER_HOST_MAX];
        unsigned port;
        if (listener_address(l, i, addr, &port) == 0 && !loopback(addr)) {
            snprintf(srv->open_addr, sizeof srv->open_addr, "%s", addr);
            open_addr = srv->open_addr;
        }
    }
    switch (srv->opts->require_auth) {
    case OPTS_REQUIRE_AUTH_ON:
        srv->env.keys.require_auth = true;
        return;
    case OPTS_REQUIRE_AUTH_AUTO:
        srv->env.keys.require_auth = open_addr != NULL;
        return;
    case OPTS_REQUIRE_AUTH_OFF:
        break;
    }
    if (open_addr == NULL)
        return;
    const struct log_field f[] = {
        log_str("addr", open_addr),
        log_str("reason", "--no-require-auth on a non-loopback address: anyone who reaches it "
                          "can request and redeem coupons")};
    log_event(srv->log, ev_time(), "WARNING", f, LOG_NFIELDS(f));
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
    srv->started = ev_time();
    memcpy(srv->admin_key, admin_key, KEYS_BYTES);
    if (!make_services(srv, errbuf, errlen) || !make_plain(srv, errbuf, errlen) ||
        !make_tls(srv, errbuf, errlen) || !make_metrics(srv, errbuf, errlen)) {
        server_free(srv);
        return NULL;
    }
    start_watchers(srv);
    if (srv->listener != NULL)
        log_listening(srv, srv->listener, "LISTEN");
    if (srv->tls_listener != NULL)
        log_listening(srv, srv->tls_listener, "LISTEN_TLS");
    decide_require_auth(srv);
    keynote_sync(srv->keynote, srv->keys); /* changes made while the server was down */
    return srv;
}

void
server_run(struct server *srv)
{
    ev_run(srv->loop, 0);
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
    listener_free(srv->listener);
    listener_free(srv->tls_listener);
    metrics_free(srv->metrics);
    conn_pool_free(srv->conns); /* closes every connection; their sessions go with them */
    tls_ctx_free(srv->tls);
    session_set_free(srv->sessions);
    cmd_env_release(&srv->env);
    megadeal_free(srv->mega);
    sweep_free(srv->hold_sweep);
    sweep_free(srv->id_sweep);
    hold_key_free(srv->hold_key);
    auditkey_free(srv->audit_key);
    purge_free(srv->purge);
    backup_free(srv->backup);
    group_free(srv->group);
    keynote_free(srv->keynote);
    guess_free(srv->guess);
    keyring_free(srv->keys);
    sodium_memzero(srv->admin_key, sizeof srv->admin_key);
    free(srv);
}
