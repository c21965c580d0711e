/* client.c - one non-blocking connection to coupond, with AUTH, ordered replies and backoff. */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tlsc.h"

#define TAG_AUTH     UINT_MAX /* the internal AUTH request; callers' tags are never shown it */
#define OUT_MIN_CAP  4096     /* first output allocation: a STATS request and more */
#define PORT_STR_MAX 8        /* "65535" and a NUL */

struct client {
    struct client_config cfg;
    enum client_state state;
    int fd;
    struct tlsc_conn *tls; /* with TLS: the connection's, from connected() until close_fd() */
    bool tls_want_write;   /* a TLS read waits for the socket to be writable */
    char tls_error[CLIENT_ERROR_MAX]; /* why TLS failed, for the failure that follows */
    int addr_idx;                     /* the address the next attempt uses */
    unsigned failures;
    int64_t retry_at;
    int64_t connect_deadline;
    char error[CLIENT_ERROR_MAX];
    int64_t now;     /* the clock of the last client_step() */
    bool down_event; /* DOWN (or DENIED) to report once the buffered lines are out */
    bool denied;
    /* Requests awaiting replies, oldest first: a ring of tags. */
    unsigned tags[CLIENT_PENDING_MAX];
    size_t tag_head;
    size_t tag_count;
    /* Output: bytes [out_off, out_len) of out are unsent. */
    char *out;
    size_t out_off;
    size_t out_len;
    size_t out_cap;
    /* Input: bytes [in_off, in_len) of in are received and not yet handed out. */
    char in[CLIENT_IN_BUF];
    size_t in_off;
    size_t in_len;
};

bool
client_resolve(const char *host, unsigned port, struct client_addr *out, char *err, size_t errlen)
{
    struct addrinfo hints, *res, *ai;
    char port_str[PORT_STR_MAX];

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port_str, sizeof port_str, "%u", port);
    int rc = getaddrinfo(host, port_str, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return false;
    }
    memset(out, 0, sizeof *out);
    for (ai = res; ai != NULL && out->n < CLIENT_ADDRS_MAX; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof out->ss[0])
            continue;
        memcpy(&out->ss[out->n], ai->ai_addr, ai->ai_addrlen);
        out->len[out->n] = ai->ai_addrlen;
        out->n++;
    }
    freeaddrinfo(res);
    if (out->n == 0) {
        snprintf(err, errlen, "cannot resolve %s: no usable address", host);
        return false;
    }
    snprintf(out->host, sizeof out->host, "%s", host);
    snprintf(out->label, sizeof out->label, strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host,
             port);
    return true;
}

struct client *
client_new(const struct client_config *cfg)
{
    struct client *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->cfg = *cfg;
    c->fd = -1;
    c->state = CLIENT_WAITING;
    c->retry_at = INT64_MIN; /* due at once */
    return c;
}

static void
close_fd(struct client *c)
{
    tlsc_conn_free(c->tls);
    c->tls = NULL;
    c->tls_want_write = false;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void
client_free(struct client *c)
{
    if (c == NULL)
        return;
    close_fd(c);
    free(c->out);
    free(c);
}

int
client_fd(const struct client *c)
{
    return c->fd;
}

short
client_poll_events(const struct client *c)
{
    switch (c->state) {
    case CLIENT_CONNECTING:
        return POLLOUT;
    case CLIENT_AUTHENTICATING:
    case CLIENT_READY:
        return (short)(POLLIN | (c->out_len > c->out_off || c->tls_want_write ? POLLOUT : 0));
    default:
        return 0;
    }
}

static int64_t
backoff_ms(unsigned failures)
{
    int64_t d = CLIENT_BACKOFF_MIN_MS;

    for (unsigned i = 1; i < failures && d < CLIENT_BACKOFF_MAX_MS; i++)
        d *= 2;
    return d < CLIENT_BACKOFF_MAX_MS ? d : CLIENT_BACKOFF_MAX_MS;
}

/* The attempt or the connection failed: close, and wait or stop. Buffered reply lines stay
 * so that they are handed out before the DOWN event. */
static void
fail(struct client *c, const char *why, int64_t now)
{
    close_fd(c);
    snprintf(c->error, sizeof c->error, "%s", why);
    c->failures++;
    c->down_event = true;
    c->addr_idx = (c->addr_idx + 1) % c->cfg.addr->n;
    if (c->cfg.reconnect) {
        c->state = CLIENT_WAITING;
        c->retry_at = now + backoff_ms(c->failures);
    } else {
        c->state = CLIENT_CLOSED;
    }
}

static void
push_tag(struct client *c, unsigned tag)
{
    c->tags[(c->tag_head + c->tag_count) % CLIENT_PENDING_MAX] = tag;
    c->tag_count++;
}

static unsigned
pop_tag(struct client *c)
{
    unsigned tag = c->tags[c->tag_head];

    c->tag_head = (c->tag_head + 1) % CLIENT_PENDING_MAX;
    c->tag_count--;
    return tag;
}

/* Appends bytes to the output buffer; false when CLIENT_OUT_MAX would be exceeded. */
static bool
out_append(struct client *c, const struct iovec *iov, int iovcnt)
{
    size_t add = 0;

    for (int i = 0; i < iovcnt; i++)
        add += iov[i].iov_len;
    if (c->out_len - c->out_off + add > CLIENT_OUT_MAX)
        return false;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + add > c->out_cap) {
        size_t cap = c->out_cap > 0 ? c->out_cap : OUT_MIN_CAP;
        while (cap < c->out_len + add)
            cap *= 2;
        char *p = realloc(c->out, cap);
        if (p == NULL)
            return false;
        c->out = p;
        c->out_cap = cap;
    }
    for (int i = 0; i < iovcnt; i++) {
        memcpy(c->out + c->out_len, iov[i].iov_base, iov[i].iov_len);
        c->out_len += iov[i].iov_len;
    }
    return true;
}

/* TCP is up: reset the buffers of any previous connection and send AUTH first (with TLS, the
 * handshake runs within the first writes and reads). */
static void
connected(struct client *c, int64_t now)
{
    static const char auth[] = "AUTH ";
    int one = 1;

    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->cfg.addr->tls != NULL &&
        (c->tls = tlsc_conn_new(c->cfg.addr->tls, c->fd, c->cfg.addr->host)) == NULL) {
        fail(c, "out of memory", now);
        return;
    }
    c->state = CLIENT_AUTHENTICATING;
    c->out_off = c->out_len = 0;
    c->in_off = c->in_len = 0;
    c->tag_head = c->tag_count = 0;
    struct iovec iov[3] = {
        {(void *)auth, sizeof auth - 1},
        {(void *)c->cfg.key, strlen(c->cfg.key)},
        {(void *)"\n", 1},
    };
    out_append(c, iov, 3); /* cannot fail: the buffer is empty and the key is short */
    push_tag(c, TAG_AUTH);
}

static void
start_attempt(struct client *c, int64_t now)
{
    const struct client_addr *a = c->cfg.addr;
    int i = c->addr_idx;

    c->fd = socket(a->ss[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail(c, strerror(errno), now);
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&a->ss[i], a->len[i]) == 0) {
        connected(c, now);
        return;
    }
    if (errno != EINPROGRESS) {
        fail(c, strerror(errno), now);
        return;
    }
    c->state = CLIENT_CONNECTING;
    c->connect_deadline = now + CLIENT_CONNECT_TIMEOUT_MS;
}

static void
finish_connect(struct client *c, short revents, int64_t now)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (revents == 0) {
        if (now >= c->connect_deadline)
            fail(c, "connection timed out", now);
        return;
    }
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        fail(c, strerror(err), now);
        return;
    }
    connected(c, now);
}

/* One receive into the input buffer: > 0 bytes, 0 at the server's EOF, -1 with errno set
 * (EAGAIN when it must wait; EPROTO after a TLS failure, whose reason is in c->error). */
static ssize_t
receive(struct client *c, size_t room)
{
    size_t n = 0;

    if (c->tls == NULL)
        return recv(c->fd, c->in + c->in_len, room, 0);
    switch (tlsc_conn_read(c->tls, c->in + c->in_len, room, &n)) {
    case TLSC_IO_OK:
        return (ssize_t)n;
    case TLSC_IO_EOF:
        return 0;
    case TLSC_IO_WANT_WRITE:
        c->tls_want_write = true;
        /* fall through */
    case TLSC_IO_WANT_READ:
        errno = EAGAIN;
        return -1;
    default:
        snprintf(c->tls_error, sizeof c->tls_error, "TLS: %s", tlsc_conn_error(c->tls));
        errno = EPROTO;
        return -1;
    }
}

/* One send from the output buffer, as receive() answers. */
static ssize_t
transmit(struct client *c)
{
    size_t n = 0;

    if (c->tls == NULL)
        return send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    switch (tlsc_conn_write(c->tls, c->out + c->out_off, c->out_len - c->out_off, &n)) {
    case TLSC_IO_OK:
        return (ssize_t)n;
    case TLSC_IO_WANT_READ:
    case TLSC_IO_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case TLSC_IO_EOF:
        errno = EPIPE;
        return -1;
    default:
        snprintf(c->tls_error, sizeof c->tls_error, "TLS: %s", tlsc_conn_error(c->tls));
        errno = EPROTO;
        return -1;
    }
}

/* The reason for a failed receive or send: TLS's when TLS failed. */
static const char *
io_reason(const struct client *c, int err)
{
    return err == EPROTO && c->tls != NULL ? c->tls_error : strerror(err);
}

/* Reads what the socket has, as far as the input buffer has room. */
static void
do_read(struct client *c, int64_t now)
{
    for (;;) {
        if (c->in_off > 0) {
            memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
            c->in_len -= c->in_off;
            c->in_off = 0;
        }
        if (c->in_len == sizeof c->in)
            return; /* full of lines not yet handed out; client_next_event() makes room */
        ssize_t n = receive(c, sizeof c->in - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n == 0) {
            fail(c, "the server closed the connection", now);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            fail(c, io_reason(c, errno), now);
        return;
    }
}

/* A send failed: the server may have said why before it closed (ERR BUSY, then close), so
 * what it sent is read first and handed out before the failure. */
static void
write_failed(struct client *c, int err, int64_t now)
{
    if (err != EPROTO) /* TLS failed: nothing more can be read */
        do_read(c, now);
    if (c->fd >= 0)
        fail(c, io_reason(c, err), now);
}

static void
do_write(struct client *c, int64_t now)
{
    while (c->out_off < c->out_len) {
        ssize_t n = transmit(c);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            write_failed(c, errno, now);
        return;
    }
    c->out_off = c->out_len = 0;
}

void
client_step(struct client *c, short revents, int64_t now_ms)
{
    c->now = now_ms;
    switch (c->state) {
    case CLIENT_WAITING:
        /* A new attempt waits until the last failure has been reported. */
        if (!c->down_event && now_ms >= c->retry_at)
            start_attempt(c, now_ms);
        return;
    case CLIENT_CONNECTING:
        finish_connect(c, revents, now_ms);
        if (c->state != CLIENT_AUTHENTICATING)
            return;
        break;
    case CLIENT_AUTHENTICATING:
    case CLIENT_READY:
        break;
    default:
        return;
    }
    /* TLS reads whenever the socket is ready either way: a read may have waited to write, and
     * text it decrypted already is no readiness poll reports. */
    bool tls_read = c->tls != NULL && (revents != 0 || tlsc_conn_pending(c->tls));
    c->tls_want_write = false;
    if ((revents & (POLLIN | POLLHUP | POLLERR)) || tls_read)
        do_read(c, now_ms);
    if (c->fd >= 0 && c->out_len > c->out_off)
        do_write(c, now_ms);
}

int64_t
client_timeout(const struct client *c, int64_t now_ms)
{
    switch (c->state) {
    case CLIENT_WAITING:
        if (c->down_event)
            return 0;
        return c->retry_at > now_ms ? c->retry_at - now_ms : 0;
    case CLIENT_CONNECTING:
        return c->connect_deadline > now_ms ? c->connect_deadline - now_ms : 0;
    default:
        /* Text TLS decrypted already is read at once, when the input buffer has room. */
        return c->tls != NULL && tlsc_conn_pending(c->tls) && c->in_len < sizeof c->in ? 0 : -1;
    }
}

/* Takes the next complete line out of the input buffer; false when there is none. A line too
 * long to ever fit ends the connection. */
static bool
take_line(struct client *c, const char **line, size_t *len)
{
    const char *start = c->in + c->in_off;
    size_t avail = c->in_len - c->in_off;
    const char *lf = memchr(start, '\n', avail);

    if (lf == NULL) {
        if (avail > CLIENT_LINE_MAX && c->fd >= 0)
            fail(c, "the server sent a reply line too long", c->now);
        return false;
    }
    size_t n = (size_t)(lf - start);
    c->in_off += n + 1;
    if (n > 0 && start[n - 1] == '\r')
        n--;
    *line = start;
    *len = n;
    return true;
}

/* Whether an ERR reply to AUTH is about the key. DENIED is; so is BAD_REQUEST, which a key
 * of a form the server does not take gets. Any other ERR (BUSY: the server is at its
 * --max-clients and closes) is about this connection, and a later attempt may succeed. */
static bool
refuses_key(const char *line, size_t len)
{
    enum proto_err e = proto_reply_err(line, len);

    return e == PROTO_ERR_DENIED || e == PROTO_ERR_BAD_REQUEST;
}

/* An ERR reply to AUTH that is not about the key: the attempt failed, as a lost connection
 * does, with the server's words as the reason. The server may have closed the connection
 * already (it does after BUSY); then the failure is counted once, with the better reason. */
static void
auth_failed(struct client *c, const char *line, size_t len)
{
    char why[CLIENT_ERROR_MAX];

    if (proto_reply_err(line, len) == PROTO_ERR_BUSY)
        snprintf(why, sizeof why, "the server is busy (%.*s)", (int)len, line);
    else
        snprintf(why, sizeof why, "the server cannot serve now (%.*s)", (int)len, line);
    if (c->fd >= 0)
        fail(c, why, c->now);
    else
        snprintf(c->error, sizeof c->error, "%s", why);
    c->in_off = c->in_len = 0; /* whatever follows the refusal is not ours */
}

/* The AUTH reply: READY; DENIED for good when the key is refused; else a failed attempt. */
static bool
auth_reply(struct client *c, const char *line, size_t len, enum proto_reply_kind kind,
           struct client_event *ev)
{
    if (kind == PROTO_REPLY_OK) {
        c->state = CLIENT_READY;
        c->failures = 0;
        c->error[0] = '\0';
        ev->kind = CLIENT_EV_READY;
        return true;
    }
    if (!refuses_key(line, len)) {
        auth_failed(c, line, len);
        return false;
    }
    snprintf(c->error, sizeof c->error, "%.*s", (int)len, line);
    close_fd(c);
    c->state = CLIENT_DENIED;
    c->denied = true;
    c->in_off = c->in_len = 0;
    return false;
}

static unsigned
caller_requests(const struct client *c)
{
    unsigned n = 0;

    for (size_t i = 0; i < c->tag_count; i++)
        if (c->tags[(c->tag_head + i) % CLIENT_PENDING_MAX] != TAG_AUTH)
            n++;
    return n;
}

/* After the last buffered line: the DENIED or DOWN event, once. */
static bool
final_event(struct client *c, struct client_event *ev)
{
    if (c->denied) {
        c->denied = false;
        c->down_event = false;
        ev->kind = CLIENT_EV_DENIED;
        return true;
    }
    if (!c->down_event)
        return false;
    c->down_event = false;
    ev->kind = CLIENT_EV_DOWN;
    ev->dropped = caller_requests(c);
    c->tag_head = c->tag_count = 0;
    c->in_off = c->in_len = 0;
    /* The output stays until the next connection, so client_unsent() still tells how much
     * of the last request never left. */
    return true;
}

bool
client_next_event(struct client *c, struct client_event *ev)
{
    const char *line;
    size_t len;

    memset(ev, 0, sizeof *ev);
    while (!c->denied && take_line(c, &line, &len)) {
        if (c->tag_count == 0) {
            fail(c, "the server sent a reply nobody asked for", c->now);
            break;
        }
        enum proto_reply_kind kind = proto_reply_kind(line, len);
        unsigned tag = c->tags[c->tag_head];
        if (kind != PROTO_REPLY_DATA)
            pop_tag(c);
        if (tag == TAG_AUTH) {
            if (kind != PROTO_REPLY_DATA && auth_reply(c, line, len, kind, ev))
                return true;
            continue;
        }
        ev->kind = CLIENT_EV_LINE;
        ev->tag = tag;
        ev->line = line;
        ev->len = len;
        ev->reply = kind;
        return true;
    }
    return final_event(c, ev);
}

bool
client_send(struct client *c, unsigned tag, const struct iovec *iov, int iovcnt)
{
    if (c->state != CLIENT_READY || c->tag_count == CLIENT_PENDING_MAX || tag == TAG_AUTH)
        return false;
    if (!out_append(c, iov, iovcnt))
        return false;
    push_tag(c, tag);
    return true;
}

size_t
client_unsent(const struct client *c)
{
    return c->out_len - c->out_off;
}

size_t
client_pending(const struct client *c)
{
    return caller_requests(c);
}

void
client_drop(struct client *c, const char *why)
{
    if (c->fd >= 0)
        fail(c, why, c->now);
}

enum client_state
client_state(const struct client *c)
{
    return c->state;
}

const char *
client_error(const struct client *c)
{
    return c->error;
}

int64_t
client_retry_at(const struct client *c)
{
    return c->retry_at;
}

unsigned
client_failures(const struct client *c)
{
    return c->failures;
}
