/* bconn.c - non-blocking client connection with queued output and line input (see bconn.h). */
#include "bconn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool
bconn_connect(struct bconn *c, const struct sockaddr *addr, socklen_t addrlen)
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
        fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0) {
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

enum bconn_io
bconn_flush(struct bconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
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
        ssize_t n = recv(c->fd, c->in + c->in_len, BCONN_IN_BUF - c->in_len, 0);
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
