/* client.h - one non-blocking connection to coupond: connect, AUTH, requests pipelined with
 * their replies matched in order, line buffering, and reconnection with exponential backoff.
 * It never blocks: the caller polls client_fd() and calls client_step() every loop turn. */
#ifndef COUPONCTL_CLIENT_H
#define COUPONCTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "proto.h"

struct tlsc;

#define CLIENT_ADDRS_MAX   8     /* addresses of one host name tried in turn */
#define CLIENT_LABEL_MAX   300   /* "host:port": a 255-byte DNS name, brackets, a port */
#define CLIENT_ERROR_MAX   200   /* a failure reason, or the ERR line that refused the key */
#define CLIENT_LINE_MAX    16384 /* longest reply line accepted; coupond's are a few hundred bytes */
#define CLIENT_IN_BUF      (4 * CLIENT_LINE_MAX) /* reads in big gulps, always room for a line */
#define CLIENT_PENDING_MAX 64 /* requests awaiting replies: the dashboard has one or two */
/* Unsent request bytes at most: a largest UPLOAD (50000 records of the longest form) twice. */
#define CLIENT_OUT_MAX            ((size_t)PROTO_UPLOAD_MAX * PROTO_RECORD_BUF * 2)
#define CLIENT_BACKOFF_MIN_MS     250  /* first retry: a restart is usually that quick */
#define CLIENT_BACKOFF_MAX_MS     5000 /* the delay doubles up to this, then stays */
#define CLIENT_CONNECT_TIMEOUT_MS 5000 /* a SYN that goes unanswered this long has failed */

/* Where coupond is, and how it is spoken to: the resolved addresses of one host and port, and
 * TLS or not. */
struct client_addr {
    struct sockaddr_storage ss[CLIENT_ADDRS_MAX];
    socklen_t len[CLIENT_ADDRS_MAX];
    int n;
    char label[CLIENT_LABEL_MAX]; /* "127.0.0.1:7070", "[::1]:7070" */
    char host[CLIENT_LABEL_MAX];  /* the host as given: the name the server's certificate holds */
    const struct tlsc *tls;       /* NULL: plain TCP; else TLS with this context (tlsc.h) */
};

/* Resolves host and port (getaddrinfo, so it may block on DNS: call it before any loop).
 * Returns true and fills *out (plain TCP: the caller sets out->tls for TLS), or false with a
 * one-line reason in err. */
bool client_resolve(const char *host, unsigned port, struct client_addr *out, char *err,
                    size_t errlen);

enum client_state {
    CLIENT_WAITING = 0,    /* not connected: the next attempt is at client_retry_at() */
    CLIENT_CONNECTING,     /* TCP connect in progress */
    CLIENT_AUTHENTICATING, /* connected (with TLS: the handshake goes on), AUTH sent */
    CLIENT_READY,          /* authenticated: client_send() works */
    CLIENT_DENIED,         /* the server refused the key (DENIED, BAD_REQUEST); final */
    CLIENT_CLOSED          /* failed or lost with reconnection off; final */
};

enum client_event_kind {
    CLIENT_EV_READY = 0, /* connected and authenticated */
    CLIENT_EV_LINE,      /* one reply line of a request */
    CLIENT_EV_DOWN,      /* an attempt failed or the connection ended; reason: client_error().
                          * An ERR to AUTH that is not about the key is such a failure: BUSY
                          * (the server is at --max-clients) or any other but DENIED and
                          * BAD_REQUEST, and is retried like a refused connection. */
    CLIENT_EV_DENIED     /* AUTH was refused; the ERR line is in client_error() */
};

struct client_event {
    enum client_event_kind kind;
    unsigned tag;                /* LINE: the tag given to client_send() for this request */
    const char *line;            /* LINE: without CR/LF; valid until the next client call */
    size_t len;                  /* LINE: bytes in line */
    enum proto_reply_kind reply; /* LINE: DATA, or OK/ERR, which end the request's reply */
    unsigned dropped;            /* DOWN: requests sent whose replies will never come */
};

struct client_config {
    const struct client_addr *addr; /* must outlive the client */
    const char *key;                /* the admin key; must outlive the client */
    bool reconnect;                 /* retry with backoff forever, or stop at the first failure */
};

/* Creates a client, which attempts its first connection on its first client_step(). Returns
 * NULL when out of memory. Free with client_free(). */
struct client *client_new(const struct client_config *cfg);

/* Closes the connection and frees everything. NULL is allowed. */
void client_free(struct client *c);

/* The descriptor to poll and the events to poll it for; -1 and 0 when there is none. */
int client_fd(const struct client *c);
short client_poll_events(const struct client *c);

/* Does the I/O that poll reported in revents (0 when nothing) and the timed work: a due
 * reconnection attempt, a connect timeout. Call it every loop turn, then drain the events. */
void client_step(struct client *c, short revents, int64_t now_ms);

/* Milliseconds until client_step() has timed work to do, or -1 for none. */
int64_t client_timeout(const struct client *c, int64_t now_ms);

/* Takes the next event: true and fills *ev, or false when there is none. Reply lines come in
 * request order; DOWN comes after every line that arrived before the connection ended. */
bool client_next_event(struct client *c, struct client_event *ev);

/* Queues one request: the bytes of iov, which must hold whole request lines making exactly
 * one request (one status line in reply, like "STATS\n" or "UPLOAD n\n" + n records).
 * Returns false, queueing nothing, unless the client is READY and the request fits
 * CLIENT_PENDING_MAX and CLIENT_OUT_MAX. The bytes are copied. */
bool client_send(struct client *c, unsigned tag, const struct iovec *iov, int iovcnt);

/* Bytes queued and not yet accepted by the socket. After a DOWN event: the bytes that never
 * went out on the lost connection, until the next attempt starts. */
size_t client_unsent(const struct client *c);

/* Requests sent whose status line has not arrived. */
size_t client_pending(const struct client *c);

/* Ends a live connection as failed, with `why` as the reason: for a reply that never comes.
 * Nothing happens when there is no connection. */
void client_drop(struct client *c, const char *why);

enum client_state client_state(const struct client *c);

/* The last failure ("Connection refused", the refusing ERR line), "" when none. Valid until
 * the next client call. */
const char *client_error(const struct client *c);

/* When the next attempt is due (WAITING only), on the clock of client_step(). */
int64_t client_retry_at(const struct client *c);

/* Attempts that failed in a row; 0 once authenticated. */
unsigned client_failures(const struct client *c);

#endif
