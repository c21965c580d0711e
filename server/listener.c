/* listener.c - the listening sockets: getaddrinfo, one socket per address, accept in batches,
 * a pause when descriptors run out, and the peer's address as text for the callback. */
#include "listener.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* With port 0, the port the system picks on the first address may be taken on another; then
 * every socket is closed and a new port picked, this many times at most. */
#define LISTENER_PICK_TRIES 8

struct sock {
    struct listener *l;
    ev_io w;
    int fd;  /* -1 when not listening */
    int err; /* 0, or the errno it was skipped for */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct listener {
    struct ev_loop *loop;
    listener_accept_fn *on_accept;
    listener_pause_fn *on_pause;
    void *arg;
    ev_timer pause_w;
    size_t n;
    struct sock socks[LISTENER_ADDRS_MAX];
};

static void
format_peer(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN], port[8];
    if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, outlen, "?");
        return;
    }
    if (ss->ss_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%s", host, port);
    else
        snprintf(out, outlen, "%s:%s", host, port);
}

static unsigned
port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void
set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static unsigned
bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    return getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 ? port_of(&ss) : 0;
}

/* ---- accepting ---- */

static void
set_accepting(struct listener *l, bool on)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->socks[i].fd < 0)
            continue;
        if (on)
            ev_io_start(l->loop, &l->socks[i].w);
        else
            ev_io_stop(l->loop, &l->socks[i].w);
    }
}

static void
resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    set_accepting(w->data, true);
}

/* Out of descriptors or memory: stop accepting for a moment instead of spinning on a listener
 * that stays readable. */
static void
pause_accepting(struct listener *l, int err)
{
    set_accepting(l, false);
    ev_timer_set(&l->pause_w, LISTENER_PAUSE, 0.);
    ev_timer_start(l->loop, &l->pause_w);
    if (l->on_pause)
        l->on_pause(l->arg, err);
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct sock *s = w->data;
    struct listener *l = s->l;
    for (int i = 0; i < LISTENER_ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(s->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EINTR || err == ECONNABORTED)
                continue;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
                pause_accepting(l, err);
            return; /* EAGAIN: all accepted */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char peer[LISTENER_PEER_MAX];
        format_peer(&ss, sl, peer, sizeof peer);
        l->on_accept(l->arg, fd, peer);
    }
}

/* ---- opening ---- */

/* Keeps the distinct addresses getaddrinfo gave: a name listed twice in /etc/hosts gives one
 * address twice, and a second bind of it would fail. */
static bool
resolve(struct listener *l, const char *host, char *errbuf, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *list;
    int rc = getaddrinfo(host, "0", &hints, &list);
    if (rc != 0) {
        snprintf(errbuf, errlen, "cannot resolve listen address %s: %s", host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return false;
    }
    for (struct addrinfo *ai = list; ai && l->n < LISTENER_ADDRS_MAX; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof l->socks[0].addr)
            continue;
        bool seen = false;
        for (size_t i = 0; i < l->n && !seen; i++)
            seen = l->socks[i].addrlen == ai->ai_addrlen &&
                   memcmp(&l->socks[i].addr, ai->ai_addr, ai->ai_addrlen) == 0;
        if (seen)
            continue;
        struct sock *s = &l->socks[l->n++];
        memcpy(&s->addr, ai->ai_addr, ai->ai_addrlen);
        s->addrlen = ai->ai_addrlen;
    }
    freeaddrinfo(list);
    return true;
}

/* Opens one listening socket; 0, or the errno of the step that failed. With several addresses
 * an IPv6 socket takes IPv6 only, so that "::" and "0.0.0.0" can both be bound. */
static int
open_one(struct sock *s, unsigned port, bool v6only)
{
    set_port(&s->addr, port);
    int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (v6only && s->addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, (struct sockaddr *)&s->addr, s->addrlen) != 0 ||
        listen(fd, LISTENER_BACKLOG) != 0) {
        int err = errno;
        close(fd);
        return err;
    }
    s->fd = fd;
    return 0;
}

/* The machine lacks this address's family, or the address itself (::1 with IPv6 off). */
static bool
family_missing(int err)
{
    return err == EAFNOSUPPORT || err == EPROTONOSUPPORT || err == EADDRNOTAVAIL;
}

static void
close_all(struct listener *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct sock *s = &l->socks[i];
        if (s->fd >= 0) {
            ev_io_stop(l->loop, &s->w);
            close(s->fd);
        }
        s->fd = -1;
        s->err = 0;
    }
}

/* Opens every address on `port` (0: the port picked for the first). Returns 0, or the errno
 * that fails the whole with the failing address in *failed. */
static int
open_all(struct listener *l, unsigned port, size_t *failed)
{
    unsigned want = port;
    size_t bound = 0, first_skipped = 0;
    for (size_t i = 0; i < l->n; i++) {
        struct sock *s = &l->socks[i];
        s->err = open_one(s, want, l->n > 1);
        if (s->err == 0) {
            want = bound_port(s->fd);
            bound++;
            continue;
        }
        if (!family_missing(s->err)) {
            *failed = i;
            return s->err;
        }
        if (l->socks[first_skipped].err == 0)
            first_skipped = i;
    }
    *failed = first_skipped;
    return bound ? 0 : l->socks[first_skipped].err;
}

static void
describe_failure(const struct listener *l, const char *host, unsigned port, size_t i, int err,
                 char *errbuf, size_t errlen)
{
    char addr[NI_MAXHOST];
    const struct sock *s = &l->socks[i];
    if (getnameinfo((const struct sockaddr *)&s->addr, s->addrlen, addr, sizeof addr, NULL, 0,
                    NI_NUMERICHOST) != 0 ||
        strcmp(addr, host) == 0)
        snprintf(errbuf, errlen, "cannot listen on %s port %u: %s", host, port, strerror(err));
    else
        snprintf(errbuf, errlen, "cannot listen on %s (%s) port %u: %s", host, addr, port,
                 strerror(err));
}

struct listener *
listener_new(struct ev_loop *loop, const char *host, unsigned port, listener_accept_fn *on_accept,
             listener_pause_fn *on_pause, void *arg, char *errbuf, size_t errlen)
{
    struct listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    *l = (struct listener){.loop = loop, .on_accept = on_accept, .on_pause = on_pause, .arg = arg};
    for (size_t i = 0; i < LISTENER_ADDRS_MAX; i++)
        l->socks[i].fd = -1;
    if (!resolve(l, host, errbuf, errlen)) {
        free(l);
        return NULL;
    }
    for (int tries = 1;; tries++) {
        size_t failed = 0;
        int err = open_all(l, port, &failed);
        if (err == 0)
            break;
        close_all(l);
        if (err != EADDRINUSE || port != 0 || tries == LISTENER_PICK_TRIES) {
            describe_failure(l, host, port, failed, err, errbuf, errlen);
            free(l);
            return NULL;
        }
    }
    ev_timer_init(&l->pause_w, resume_cb, LISTENER_PAUSE, 0.);
    l->pause_w.data = l;
    for (size_t i = 0; i < l->n; i++) {
        struct sock *s = &l->socks[i];
        s->l = l;
        if (s->fd < 0)
            continue;
        ev_io_init(&s->w, accept_cb, s->fd, EV_READ);
        s->w.data = s;
        ev_io_start(loop, &s->w);
    }
    return l;
}

size_t
listener_count(const struct listener *l)
{
    return l->n;
}

int
listener_address(const struct listener *l, size_t i, char host[LISTENER_HOST_MAX], unsigned *port)
{
    const struct sock *s = &l->socks[i];
    if (getnameinfo((const struct sockaddr *)&s->addr, s->addrlen, host, LISTENER_HOST_MAX, NULL, 0,
                    NI_NUMERICHOST) != 0)
        snprintf(host, LISTENER_HOST_MAX, "?");
    *port = s->fd >= 0 ? bound_port(s->fd) : port_of(&s->addr);
    return s->err;
}

void
listener_free(struct listener *l)
{
    if (!l)
        return;
    close_all(l);
    ev_timer_stop(l->loop, &l->pause_w);
    free(l);
}
