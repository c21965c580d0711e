/* tls.h - the TLS transport: the server's certificate, key and client CA (one context, which a
 * reload replaces for new connections), and one connection's TLS state with non-blocking
 * handshake, read, write and close. It knows sockets and OpenSSL, nothing of the protocol; the
 * caller owns the socket and its watchers and turns TLS_IO_WANT_READ/WRITE into them. */
#ifndef COUPOND_TLS_H
#define COUPOND_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct tls_ctx;
struct tls_conn;

/* A handshake must be done this many seconds after the connection was accepted: a real
 * client needs a few round trips (well under a second even across continents), and a client
 * that opens the socket and says nothing must not hold its slot until the idle timeout. */
#define TLS_HANDSHAKE_TIMEOUT 10.0
/* The longest reason tls_conn_error() gives: one OpenSSL reason string ("wrong version
 * number", "peer did not return a certificate"), which are short. */
#define TLS_ERROR_MAX 128
/* TLS 1.2's cipher suites: only ECDHE key exchange (forward secrecy) with AEAD ciphers, for
 * RSA and ECDSA certificates alike; every TLS 1.2 client of the last decade offers one. TLS
 * 1.3's suites are all of that kind and stay OpenSSL's default. */
#define TLS_CIPHERS_TLS12 "ECDHE+AESGCM:ECDHE+CHACHA20"
/* A certificate's serial as hex, for the log: RFC 5280 allows 20 octets, 40 digits. */
#define TLS_SERIAL_MAX 64
/* A client certificate's subject for the log ("CN=alice,O=shop"); longer ones are cut. */
#define TLS_SUBJECT_MAX 256

/* The files of a TLS listener: paths that the context reads at tls_ctx_new and again at every
 * tls_ctx_reload. `ca` NULL: no client certificate is asked for. */
struct tls_files {
    const char *cert; /* PEM: the server's certificate, then any intermediates */
    const char *key;  /* PEM: its private key */
    const char *ca;   /* PEM: the CA that client certificates must be signed by, or NULL */
};

/* Loads the files (which must outlive the context) into a context for TLS 1.2 and 1.3:
 * NULL with a one-line reason in errbuf when a file is missing or unreadable, is no
 * certificate or key, or the key does not match the certificate. */
struct tls_ctx *tls_ctx_new(const struct tls_files *files, char *errbuf, size_t errlen);

/* Reads the files again into a new context for the connections accepted from now on; those
 * open keep the one they started with. False with a reason in errbuf when the files do not
 * load (as for tls_ctx_new): the old context stays in use. */
bool tls_ctx_reload(struct tls_ctx *t, char *errbuf, size_t errlen);

/* The serial of the certificate new connections get, as hex, into out[TLS_SERIAL_MAX]. */
void tls_ctx_serial(const struct tls_ctx *t, char out[TLS_SERIAL_MAX]);

/* Frees the context; connections made from it keep what they need until they are freed. NULL is
 * a no-op. */
void tls_ctx_free(struct tls_ctx *t);

/* What a TLS call did. */
enum tls_io {
    TLS_IO_OK = 0,     /* done: the handshake finished, or *n bytes moved (> 0) */
    TLS_IO_WANT_READ,  /* call again once the socket is readable */
    TLS_IO_WANT_WRITE, /* call again once the socket is writable */
    TLS_IO_EOF,        /* the peer closed the connection (with or without close_notify) */
    TLS_IO_ERROR       /* a protocol or socket error: tls_conn_error says which */
};

/* TLS on accepted socket `fd` (the caller keeps owning it), as the server side, with t's
 * current context. NULL when out of memory. */
struct tls_conn *tls_conn_new(struct tls_ctx *t, int fd);

/* Frees the connection's TLS state (not the socket). NULL is a no-op. */
void tls_conn_free(struct tls_conn *tc);

/* Whether the handshake is done. */
bool tls_conn_ready(const struct tls_conn *tc);

/* Moves the handshake on: OK once it is done, WANT_* while it waits, ERROR when it failed (a
 * client that speaks no TLS, an old version, a missing or untrusted client certificate). */
enum tls_io tls_conn_handshake(struct tls_conn *tc);

/* Reads up to len (> 0) bytes of plain text into buf; on OK, *n is the count. */
enum tls_io tls_conn_read(struct tls_conn *tc, void *buf, size_t len, size_t *n);

/* Writes up to len (> 0) bytes of buf; on OK, *n were taken. After WANT_*, call again with the
 * same bytes at the front of buf (the buffer may move, and more may follow them). */
enum tls_io tls_conn_write(struct tls_conn *tc, const void *buf, size_t len, size_t *n);

/* Plain text already decrypted and not yet read: the socket may not become readable for it. */
bool tls_conn_pending(const struct tls_conn *tc);

/* Sends close_notify if the socket takes it now; never waits. */
void tls_conn_close_notify(struct tls_conn *tc);

/* The reason of the last ERROR ("" when none); valid while tc lives. */
const char *tls_conn_error(const struct tls_conn *tc);

/* After the handshake: the protocol version ("TLSv1.3"), and the client certificate's subject
 * into out[TLS_SUBJECT_MAX] ("" when the client sent none). */
const char *tls_conn_version(const struct tls_conn *tc);
void tls_conn_subject(const struct tls_conn *tc, char out[TLS_SUBJECT_MAX]);

#endif
