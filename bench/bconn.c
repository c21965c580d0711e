/* bconn.c - non-blocking client connection with queued output and line input (see bconn.h). */
#include "bconn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct bconn_tls {
    SSL_CTX *ctx;
};

struct bconn_tls *
bconn_tls_new(const char *ca_file, char *why, size_t why_len)
{
    struct bconn_tls *t = calloc(1, sizeof *t);

    if (t == NULL || (t->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        snprintf(why, why_len, "cannot make a TLS context");
        free(t);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
        unsigned long e = ERR_get_error();
        snprintf(why, why_len, "--tls %s: %s", ca_file,
                 e ? ERR_reason_error_string(e) : "no CA certificate");
        ERR_clear_error();
        bconn_tls_free(t);
        return NULL;
    }
    return t;
}

void
bconn_tls_free(struct bconn_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* The blocking handshake on c's connected socket. */
static bool
handshake(struct bconn *c, const struct bconn_tls *tls)
{
    c->ssl = SSL_new(tls->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1) {
        ERR_clear_error();
        errno = EPROTO;
        return false;
    }
    return true;
}

bool
bconn_connect(struct bconn *c, const struct sockaddr *addr, socklen_t addrlen,
              const struct bconn_tls *tls)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return false;
    int rc;
    do
        rc = connect(c->fd, addr, addrlen);
    while (rc < 0 && errno == EINTR);
    int one = 1;
    if (rc < 0 || setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        (tls != NULL && !handshake(c, tls)) || fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0) {
        int saved = errno;
        bconn_close(c);
        errno = saved;
        return false;
    }
    return true;
}

void
bconn_close(struct bconn *c)
{
    SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    free(c->out);
    free(c->in);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

char *
bconn_reserve(struct bconn *c, size_t n)
{
    /* Slide written bytes out first, so a steady stream never grows the buffer. */
    if (c->out_off > 0 && c->out_off == c->out_len) {
        c->out_off = 0;
        c->out_len = 0;
    }
    if (c->out_cap - c->out_len >= n)
        return c->out + c->out_len;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_cap - c->out_len >= n)
            return c->out + c->out_len;
    }
    size_t cap = c->out_cap ? c->out_cap : BCONN_OUT_MIN;
    while (cap - c->out_len < n)
        cap *= 2;
    char *p = realloc(c->out, cap);
    if (!p)
        return NULL;
    c->out = p;
    c->out_cap = cap;
    return c->out + c->out_len;
}

void
bconn_commit(struct bconn *c, size_t n)
{
    c->out_len += n;
}

bool
bconn_append(struct bconn *c, const char *s, size_t n)
{
    char *p = bconn_reserve(c, n);
    if (!p)
        return false;
    memcpy(p, s, n);
    bconn_commit(c, n);
    return true;
}

bool
bconn_printf(struct bconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return false;
    char *p = bconn_reserve(c, (size_t)n + 1);
    if (!p)
        return false;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    bconn_commit(c, (size_t)n);
    return true;
}

bool
bconn_has_output(const struct bconn *c)
{
    return c->out_off < c->out_len;
}

/* send() or recv(), through TLS when c has it: the count, 0 at EOF, or -1 with errno set. */
static ssize_t
tls_result(struct bconn *c, int ok, size_t n)
{
    if (ok == 1)
        return (ssize_t)n;
    switch (SSL_get_error(c->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return errno == 0 ? 0 : -1;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

static ssize_t
io_send(struct bconn *c)
{
    size_t n = 0;

    if (c->ssl == NULL)
        return send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    errno = 0;
    int ok = SSL_write_ex(c->ssl, c->out + c->out_off, c->out_len - c->out_off, &n);
    return tls_result(c, ok, n);
}

static ssize_t
io_recv(struct bconn *c)
{
    size_t n = 0;

    if (c->ssl == NULL)
        return recv(c->fd, c->in + c->in_len, BCONN_IN_BUF - c->in_len, 0);
    errno = 0;
    int ok = SSL_read_ex(c->ssl, c->in + c->in_len, BCONN_IN_BUF - c->in_len, &n);
    return tls_result(c, ok, n);
}

bool
bconn_pending(const struct bconn *c)
{
    return c->ssl != NULL && SSL_pending(c->ssl) > 0;
}

enum bconn_io
bconn_flush(struct bconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = io_send(c);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return BCONN_IO_AGAIN;
            return BCONN_IO_FAIL;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = 0;
    c->out_len = 0;
    return BCONN_IO_OK;
}

enum bconn_io
bconn_fill(struct bconn *c)
{
    if (!c->in) {
        c->in = malloc(BCONN_IN_BUF);
        if (!c->in)
            return BCONN_IO_FAIL;
    }
    /* Keep only the partial line that was not handed out yet. */
    if (c->in_used > 0) {
        memmove(c->in, c->in + c->in_used, c->in_len - c->in_used);
        c->in_len -= c->in_used;
        c->in_used = 0;
    }
    if (c->in_len == BCONN_IN_BUF) {
        errno = EMSGSIZE;
        return BCONN_IO_FAIL;
    }
    for (;;) {
        ssize_t n = io_recv(c);
        if (n > 0) {
            c->in_len += (size_t)n;
            return BCONN_IO_OK;
        }
        if (n == 0)
            return BCONN_IO_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return BCONN_IO_AGAIN;
        if (errno == ECONNRESET)
            return BCONN_IO_CLOSED;
        return BCONN_IO_FAIL;
    }
}

bool
bconn_line(struct bconn *c, const char **line, size_t *len)
{
    if (!c->in || c->in_used >= c->in_len)
        return false;
    const char *start = c->in + c->in_used;
    const char *lf = memchr(start, '\n', c->in_len - c->in_used);
    if (!lf)
        return false;
    size_t n = (size_t)(lf - start);
    c->in_used += n + 1;
    if (n > 0 && start[n - 1] == '\r')
        n--;
    *line = start;
    *len = n;
    return true;
}

static long long
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for `events` on the socket until `deadline` (mono_ms); false on a timeout. */
static bool
wait_fd(const struct bconn *c, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - mono_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = c->fd, .events = events};
        int rc = poll(&p, 1, (int)left);
        if (rc > 0)
            return true;
        if (rc < 0 && errno != EINTR)
            return true; /* let the next I/O call report the error */
    }
}

enum bconn_io
bconn_wait_line(struct bconn *c, int timeout_ms, const char **line, size_t *len)
{
    long long deadline = mono_ms() + timeout_ms;
    for (;;) {
        if (bconn_line(c, line, len))
            return BCONN_IO_OK;
        enum bconn_io r = bconn_fill(c);
        if (r == BCONN_IO_CLOSED || r == BCONN_IO_FAIL)
            return r;
        if (r == BCONN_IO_AGAIN && !wait_fd(c, POLLIN, deadline))
            return BCONN_IO_AGAIN;
    }
}

enum bconn_io
bconn_wait_flush(struct bconn *c, int timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    for (;;) {
        enum bconn_io r = bconn_flush(c);
        if (r != BCONN_IO_AGAIN)
            return r;
        if (!wait_fd(c, POLLOUT, deadline))
            return BCONN_IO_AGAIN;
    }
}
