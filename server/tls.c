/* tls.c - the TLS transport on OpenSSL 3 (see tls.h): one SSL_CTX per load of the files, one
 * SSL per connection on a non-blocking socket, OpenSSL's errors turned into one-line reasons. */
#include "tls.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keys.h"

/* Names this server's sessions, so that a session resumed with a client certificate is one this
 * server made (OpenSSL refuses resumption with verification on when it is unset). */
static const unsigned char tls_session_context[] = "coupond";

struct tls_ctx {
    struct tls_files files;
    SSL_CTX *ctx; /* for new connections; those open hold a reference to theirs */
};

struct tls_conn {
    SSL *ssl;
    char err[TLS_ERROR_MAX];
};

/* The reason of the oldest error OpenSSL queued ("" when none); empties the queue, so the next
 * call on any connection starts clean. */
static void
take_error(char *out, size_t len)
{
    unsigned long e = ERR_get_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (r != NULL)
        snprintf(out, len, "%s", r);
    else if (e != 0)
        snprintf(out, len, "error %lu", e);
    else
        snprintf(out, len, "%s", "");
    ERR_clear_error();
}

/* A file that fopen cannot read gets errno's reason, which says more than OpenSSL's. */
static bool
readable(const char *what, const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(errbuf, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

/* The private key must be no one else's to read (keys.h's rule, root's key readable by its
 * group). */
static bool
key_private(const char *path, char *errbuf, size_t errlen)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        snprintf(errbuf, errlen, "cannot read --tls-key %s: %s", path, strerror(errno));
        return false;
    }
    switch (keys_exposure(&st, true)) {
    case KEYS_PRIVATE:
        return true;
    case KEYS_NOT_REGULAR:
        snprintf(errbuf, errlen, "--tls-key %s is not a regular file", path);
        return false;
    case KEYS_OTHER_OWNER:
        snprintf(errbuf, errlen, "--tls-key %s belongs to uid %u: it must be this user's or root's",
                 path, (unsigned)st.st_uid);
        return false;
    case KEYS_EXPOSED:
        break;
    }
    snprintf(errbuf, errlen,
             "--tls-key %s has mode %04o: others may read it; chmod 600 it (640 if root "
             "owns it and a group must read it)",
             path, (unsigned)(st.st_mode & 07777));
    return false;
}

static bool
failed(const char *what, const char *path, char *errbuf, size_t errlen)
{
    char why[TLS_ERROR_MAX];

    take_error(why, sizeof why);
    snprintf(errbuf, errlen, "%s %s: %s", what, path, why[0] != '\0' ? why : "unusable");
    return false;
}

/* Client certificates signed by files->ca are required: the handshake fails without one. */
static bool
load_ca(SSL_CTX *ctx, const char *ca, char *errbuf, size_t errlen)
{
    STACK_OF(X509_NAME) * names;

    if (!readable("--tls-ca", ca, errbuf, errlen))
        return false;
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
        (names = SSL_load_client_CA_file(ca)) == NULL)
        return failed("no CA certificate in --tls-ca", ca, errbuf, errlen);
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return true;
}

static bool
load_files(SSL_CTX *ctx, const struct tls_files *f, char *errbuf, size_t errlen)
{
    if (!readable("--tls-cert", f->cert, errbuf, errlen) ||
        !readable("--tls-key", f->key, errbuf, errlen) || !key_private(f->key, errbuf, errlen))
        return false;
    if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1)
        return failed("no certificate in --tls-cert", f->cert, errbuf, errlen);
    bool used = SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) == 1;
    if (!used && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
        return failed("no private key in --tls-key", f->key, errbuf, errlen);
    if (!used || SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(errbuf, errlen, "--tls-key %s does not match the certificate in --tls-cert %s",
                 f->key, f->cert);
        return false;
    }
    return f->ca == NULL || load_ca(ctx, f->ca, errbuf, errlen);
}

/* A context of the files as they are now: TLS 1.2 and 1.3 only, no renegotiation, writes that
 * may be partial from a buffer that moves, and no buffers kept while a connection is idle. */
static SSL_CTX *
make_ctx(const struct tls_files *f, char *errbuf, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL) {
        failed("cannot make a TLS context for", f->cert, errbuf, errlen);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, tls_session_context, sizeof tls_session_context - 1);
    if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_TLS12) != 1) {
        failed("cannot set the cipher suites for", f->cert, errbuf, errlen);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (!load_files(ctx, f, errbuf, errlen)) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

struct tls_ctx *
tls_ctx_new(const struct tls_files *files, char *errbuf, size_t errlen)
{
    struct tls_ctx *t = calloc(1, sizeof *t);

    if (t == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    t->files = *files;
    t->ctx = make_ctx(files, errbuf, errlen);
    if (t->ctx == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

bool
tls_ctx_reload(struct tls_ctx *t, char *errbuf, size_t errlen)
{
    SSL_CTX *ctx = make_ctx(&t->files, errbuf, errlen);

    if (ctx == NULL)
        return false;
    SSL_CTX_free(t->ctx); /* the connections open hold their own references */
    t->ctx = ctx;
    return true;
}

void
tls_ctx_serial(const struct tls_ctx *t, char out[TLS_SERIAL_MAX])
{
    X509 *cert = SSL_CTX_get0_certificate(t->ctx);
    BIGNUM *bn = cert != NULL ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL) : NULL;
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

    snprintf(out, TLS_SERIAL_MAX, "%s", hex != NULL ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
    ERR_clear_error();
}

void
tls_ctx_free(struct tls_ctx *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* ---- one connection ---- */

struct tls_conn *
tls_conn_new(struct tls_ctx *t, int fd)
{
    struct tls_conn *tc = calloc(1, sizeof *tc);

    if (tc == NULL)
        return NULL;
    tc->ssl = SSL_new(t->ctx);
    if (tc->ssl == NULL || SSL_set_fd(tc->ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(tc->ssl);
        free(tc);
        return NULL;
    }
    SSL_set_accept_state(tc->ssl);
    return tc;
}

void
tls_conn_free(struct tls_conn *tc)
{
    if (tc == NULL)
        return;
    SSL_free(tc->ssl);
    free(tc);
}

bool
tls_conn_ready(const struct tls_conn *tc)
{
    return SSL_is_init_finished(tc->ssl);
}

/* What the result `rc` of an SSL call means; the error's reason is kept for the log. */
static enum tls_io
outcome(struct tls_conn *tc, int rc)
{
    int e = SSL_get_error(tc->ssl, rc);

    switch (e) {
    case SSL_ERROR_WANT_READ:
        return TLS_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return TLS_IO_EOF;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (errno == 0 || errno == ECONNRESET || errno == EPIPE)
            return TLS_IO_EOF;
        snprintf(tc->err, sizeof tc->err, "%s", strerror(errno));
        return TLS_IO_ERROR;
    default:
        take_error(tc->err, sizeof tc->err);
        return TLS_IO_ERROR;
    }
}

enum tls_io
tls_conn_handshake(struct tls_conn *tc)
{
    errno = 0;
    int rc = SSL_do_handshake(tc->ssl);
    if (rc == 1)
        return TLS_IO_OK;
    enum tls_io r = outcome(tc, rc);
    if (r == TLS_IO_EOF) { /* the client left before the handshake was done */
        snprintf(tc->err, sizeof tc->err, "%s", "closed during the handshake");
        return TLS_IO_ERROR;
    }
    return r;
}

enum tls_io
tls_conn_read(struct tls_conn *tc, void *buf, size_t len, size_t *n)
{
    errno = 0;
    if (SSL_read_ex(tc->ssl, buf, len, n) == 1)
        return TLS_IO_OK;
    return outcome(tc, 0);
}

enum tls_io
tls_conn_write(struct tls_conn *tc, const void *buf, size_t len, size_t *n)
{
    errno = 0;
    if (SSL_write_ex(tc->ssl, buf, len, n) == 1)
        return TLS_IO_OK;
    return outcome(tc, 0);
}

bool
tls_conn_pending(const struct tls_conn *tc)
{
    return SSL_pending(tc->ssl) > 0;
}

void
tls_conn_close_notify(struct tls_conn *tc)
{
    if (SSL_is_init_finished(tc->ssl))
        SSL_shutdown(tc->ssl);
    ERR_clear_error();
}

const char *
tls_conn_error(const struct tls_conn *tc)
{
    return tc->err;
}

const char *
tls_conn_version(const struct tls_conn *tc)
{
    return SSL_get_version(tc->ssl);
}

void
tls_conn_subject(const struct tls_conn *tc, char out[TLS_SUBJECT_MAX])
{
    X509 *peer = SSL_get0_peer_certificate(tc->ssl);

    out[0] = '\0';
    if (peer != NULL)
        X509_NAME_oneline(X509_get_subject_name(peer), out, TLS_SUBJECT_MAX);
}
