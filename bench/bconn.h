/* bconn.h - one non-blocking client connection of coupond-bench: an output buffer that grows
 * as commands are queued and a fixed input buffer that is cut into reply lines. */
#ifndef COUPOND_BENCH_BCONN_H
#define COUPOND_BENCH_BCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Input buffer per connection. The longest reply line coupond sends is a coupon or a REJECT
 * line, well under 1 KiB; 16 KiB lets one read take about a hundred replies at once. */
#define BCONN_IN_BUF 16384
/* First allocation of the output buffer; it doubles as needed (an UPLOAD of 50,000 records
 * queues about 3 MB). */
#define BCONN_OUT_MIN 4096

struct ssl_st;    /* OpenSSL's SSL */
struct bconn_tls; /* a TLS client context: bconn_tls_new */

/* The fields are the module's; callers use the functions below. */
struct bconn {
    int fd;             /* -1 when closed */
    struct ssl_st *ssl; /* NULL: plain TCP */
    char *out;          /* queued bytes not yet written: out[out_off .. out_len) */
    size_t out_off;
    size_t out_len;
    size_t out_cap;
    char *in;       /* BCONN_IN_BUF bytes, allocated by the first read */
    size_t in_len;  /* bytes in `in` */
    size_t in_used; /* bytes of `in` already handed out as lines */
};

/* Result of an I/O call. */
enum bconn_io {
    BCONN_IO_OK = 0, /* done: all queued bytes written, or some bytes read */
    BCONN_IO_AGAIN,  /* would block: bytes still queued, or nothing to read now */
    BCONN_IO_CLOSED, /* the peer closed the connection */
    BCONN_IO_FAIL    /* a socket error (errno tells), an out-of-memory, or a line too long */
};

/* A context for TLS 1.2 and 1.3 to coupond's --tls-port that verifies the server's certificate
 * chain against the PEM CA in ca_file (the host name is not checked: the bench names servers by
 * address). Every connection makes a full handshake (no session is resumed). NULL with a reason
 * in why. */
struct bconn_tls *bconn_tls_new(const char *ca_file, char *why, size_t why_len);
void bconn_tls_free(struct bconn_tls *t);

/* Connects (blocking) to addr, with tls (or NULL: plain TCP) the TLS handshake too (blocking),
 * then makes the socket non-blocking with TCP_NODELAY. Returns true with c ready; false with
 * errno set (EPROTO when TLS failed) and c closed. */
bool bconn_connect(struct bconn *c, const struct sockaddr *addr, socklen_t addrlen,
                   const struct bconn_tls *tls);

/* TLS decrypted text not yet read, which epoll does not report: bconn_fill again. */
bool bconn_pending(const struct bconn *c);

/* Closes the socket and frees the buffers; c may be connected again. Safe on a closed c. */
void bconn_close(struct bconn *c);

/* Returns room for n more output bytes, or NULL when out of memory. The caller writes at most n
 * bytes there and then calls bconn_commit with the count written. */
char *bconn_reserve(struct bconn *c, size_t n);
void bconn_commit(struct bconn *c, size_t n);

/* Queues bytes / printf-formatted text. False when out of memory (nothing is queued). */
bool bconn_append(struct bconn *c, const char *s, size_t n);
bool bconn_printf(struct bconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when queued output waits to be written. */
bool bconn_has_output(const struct bconn *c);

/* Writes as much queued output as the socket takes: OK when all is written, AGAIN when some is
 * left, FAIL (errno set) on an error. */
enum bconn_io bconn_flush(struct bconn *c);

/* Reads once into the input buffer: OK when bytes came, AGAIN when none were ready, CLOSED on
 * EOF or reset, FAIL on another error or when the buffer holds a line longer than BCONN_IN_BUF. */
enum bconn_io bconn_fill(struct bconn *c);

/* Hands out the next complete line (LF and a CR before it excluded) and returns true, or
 * returns false when no complete line is buffered. The line is valid until the next
 * bconn_fill or bconn_close. */
bool bconn_line(struct bconn *c, const char **line, size_t *len);

/* Waits up to timeout_ms for one line, reading as needed (for the blocking admin session).
 * OK with the line set, AGAIN on a timeout, CLOSED or FAIL as for bconn_fill. */
enum bconn_io bconn_wait_line(struct bconn *c, int timeout_ms, const char **line, size_t *len);

/* Writes all queued output, waiting up to timeout_ms in total. OK, AGAIN on a timeout, FAIL. */
enum bconn_io bconn_wait_flush(struct bconn *c, int timeout_ms);

#endif
