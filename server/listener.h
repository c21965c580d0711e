/* listener.h - the listening sockets: resolves a host name or address literal, listens on every
 * address it gives, accepts, and hands each new connection to a callback. It knows nothing of
 * connections, clients or the log. */
#ifndef COUPOND_LISTENER_H
#define COUPOND_LISTENER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#define LISTENER_BACKLOG      4096 /* the kernel caps it at net.core.somaxconn */
#define LISTENER_ACCEPT_BATCH 64   /* accepts per readiness event, so a flood can't starve others */
/* Accepting stops this long after accept() fails for lack of descriptors (EMFILE), so a full
 * table does not spin the loop; by then some connection has usually gone. */
#define LISTENER_PAUSE    0.1
#define LISTENER_PEER_MAX 64 /* "[ipv6]:port" and its NUL */
#define LISTENER_HOST_MAX 64 /* an address as text: INET6_ADDRSTRLEN and a %zone */
/* Addresses one name may give: a few per family is usual; more is a mistake in the name's
 * records, not a reason to open hundreds of sockets. */
#define LISTENER_ADDRS_MAX 16

struct listener;

/* A new connection: `fd` is non-blocking and close-on-exec, and the callee owns it. `peer` is
 * the client's numeric address and port ("127.0.0.1:5000", "[::1]:5000"), valid during the
 * call. */
typedef void listener_accept_fn(void *arg, int fd, const char *peer);

/* accept() failed for lack of descriptors or memory (`err` is its errno): accepting pauses for
 * LISTENER_PAUSE seconds. */
typedef void listener_pause_fn(void *arg, int err);

/* Resolves `host` (a name, or an IPv4 or IPv6 literal) with getaddrinfo and listens on `port`
 * (0: one free port the system picks, the same on every address) on each distinct address it
 * gives, up to LISTENER_ADDRS_MAX. An address whose family the machine lacks (EAFNOSUPPORT,
 * or EADDRNOTAVAIL as ::1 gives without IPv6 on the loopback) is skipped; any other failure,
 * or none bound, fails the whole: NULL with a one-line reason in errbuf. `on_pause` may be
 * NULL. The watchers start at once in `loop`. */
struct listener *listener_new(struct ev_loop *loop, const char *host, unsigned port,
                              listener_accept_fn *on_accept, listener_pause_fn *on_pause, void *arg,
                              char *errbuf, size_t errlen);

/* The addresses the host name gave, bound or skipped, for the log. */
size_t listener_count(const struct listener *l);

/* Address i (below listener_count) as numeric text into host[LISTENER_HOST_MAX] and its port.
 * Returns 0 when it is listened on, or the errno it was skipped for. */
int listener_address(const struct listener *l, size_t i, char host[LISTENER_HOST_MAX],
                     unsigned *port);

/* Stops accepting, closes every socket and frees the listener. NULL is a no-op. */
void listener_free(struct listener *l);

#endif
