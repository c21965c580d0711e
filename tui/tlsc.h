/* tlsc.h - couponctl's side of TLS: a context that trusts one CA (or the system's) and may carry
 * a client certificate, and one connection's TLS on a non-blocking socket, with the server's
 * certificate checked against the host name or address couponctl was given. */
#ifndef COUPONCTL_TLSC_H
#define COUPONCTL_TLSC_H

#include <stdbool.h>
#include <stddef.h>

/* The longest reason tlsc_conn_error() gives: OpenSSL's reason and, for a certificate that
 * failed verification, the verifier's ("certificate verify failed: hostname mismatch"). */
#define TLSC_ERROR_MAX 160

struct tlsc;
struct tlsc_conn;

/* What the context is made of; paths must be readable when tlsc_new runs. */
struct tlsc_config {
    const char *ca;   /* PEM CA the server's certificate must chain to; NULL: the system's */
    const char *cert; /* PEM client certificate for a server with --tls-ca, or NULL */
    const char *key;  /* its private key (NULL: in cert's file) */
};

/* A context for TLS 1.2 and 1.3 that verifies the server. NULL with a one-line reason in err
 * when a file is unreadable or holds no certificate or key. */
struct tlsc *tlsc_new(const struct tlsc_config *cfg, char *err, size_t errlen);
void tlsc_free(struct tlsc *t);

enum tlsc_io {
    TLSC_IO_OK = 0,     /* *n bytes moved (> 0) */
    TLSC_IO_WANT_READ,  /* call again once the socket is readable */
    TLSC_IO_WANT_WRITE, /* call again once the socket is writable */
    TLSC_IO_EOF,        /* the server closed the connection */
    TLSC_IO_ERROR       /* the handshake or the connection failed: tlsc_conn_error says why */
};

/* TLS as the client on connected socket fd (the caller keeps owning it). The server's
 * certificate must name `host`: a DNS name in its subjectAltName (or its common name when it has
 * none) for a host name, an IP address in its subjectAltName for an address literal. The
 * handshake runs within the first reads and writes. NULL when out of memory. */
struct tlsc_conn *tlsc_conn_new(const struct tlsc *t, int fd, const char *host);
void tlsc_conn_free(struct tlsc_conn *tc);

/* Reads up to len (> 0) bytes into buf / writes up to len (> 0) bytes of buf; on OK, *n is the
 * count. A write that must wait is repeated with the same bytes at the front of buf. */
enum tlsc_io tlsc_conn_read(struct tlsc_conn *tc, void *buf, size_t len, size_t *n);
enum tlsc_io tlsc_conn_write(struct tlsc_conn *tc, const void *buf, size_t len, size_t *n);

/* Decrypted text not yet read, which no poll will report. */
bool tlsc_conn_pending(const struct tlsc_conn *tc);

/* The reason of the last ERROR; valid while tc lives. */
const char *tlsc_conn_error(const struct tlsc_conn *tc);

#endif
