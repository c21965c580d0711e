/* tlsc.c - couponctl's TLS on OpenSSL 3 (see tlsc.h): a verifying client context, and the
 * reads and writes of one connection with OpenSSL's errors as one-line reasons. */
#include "tlsc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The two halves of a verification failure's reason in TLSC_ERROR_MAX: OpenSSL's reason
 * ("certificate verify failed") and the verifier's ("hostname mismatch", "unable to get local
 * issuer certificate"), each well within its bound. */
#define TLSC_REASON_MAX 64
#define TLSC_VERIFY_MAX 80

struct tlsc {
    SSL_CTX *ctx;
};

struct tlsc_conn {
    SSL *ssl;
    char err[TLSC_ERROR_MAX];
};

/* OpenSSL's reason for the oldest queued error, "" when none; empties the queue. */
static void
take_error(char *out, size_t len)
{
    unsigned long e = ERR_get_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    snprintf(out, len, "%s", r != NULL ? r : "");
    ERR_clear_error();
}

static bool
readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

static bool
failed(const char *what, const char *path, char *err, size_t errlen)
{
    char why[TLSC_ERROR_MAX];

    take_error(why, sizeof why);
    snprintf(err, errlen, "%s %s: %s", what, path, why[0] != '\0' ? why : "unusable");
    return false;
}

static bool
load(SSL_CTX *ctx, const struct tlsc_config *cfg, char *err, size_t errlen)
{
    const char *key = cfg->key != NULL ? cfg->key : cfg->cert;

    if (cfg->ca == NULL)
        SSL_CTX_set_default_verify_paths(ctx);
    else if (!readable("--tls-ca", cfg->ca, err, errlen))
        return false;
    else if (SSL_CTX_load_verify_locations(ctx, cfg->ca, NULL) != 1)
        return failed("no CA certificate in --tls-ca", cfg->ca, err, errlen);
    if (cfg->cert == NULL)
        return true;
    if (!readable("--tls-cert", cfg->cert, err, errlen) || !readable("--tls-key", key, err, errlen))
        return false;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1)
        return failed("no certificate in --tls-cert", cfg->cert, err, errlen);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        return failed("no private key of --tls-cert in", key, err, errlen);
    return true;
}

struct tlsc *
tlsc_new(const struct tlsc_config *cfg, char *err, size_t errlen)
{
    struct tlsc *t = calloc(1, sizeof *t);

    if (t == NULL || (t->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        snprintf(err, errlen, "cannot make a TLS context");
        free(t);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (!load(t->ctx, cfg, err, errlen)) {
        ERR_clear_error();
        tlsc_free(t);
        return NULL;
    }
    return t;
}

void
tlsc_free(struct tlsc *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* The name the certificate must hold: an address literal as an IP address, else a DNS name,
 * which is also sent as SNI. */
static bool
expect_host(SSL *ssl, const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];

    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    return SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
}

struct tlsc_conn *
tlsc_conn_new(const struct tlsc *t, int fd, const char *host)
{
    struct tlsc_conn *tc = calloc(1, sizeof *tc);

    if (tc == NULL)
        return NULL;
    tc->ssl = SSL_new(t->ctx);
    if (tc->ssl == NULL || SSL_set_fd(tc->ssl, fd) != 1 || !expect_host(tc->ssl, host)) {
        ERR_clear_error();
        tlsc_conn_free(tc);
        return NULL;
    }
    SSL_set_connect_state(tc->ssl);
    return tc;
}

void
tlsc_conn_free(struct tlsc_conn *tc)
{
    if (tc == NULL)
        return;
    SSL_free(tc->ssl);
    free(tc);
}

/* A failed certificate check says why: the verifier's reason follows OpenSSL's. */
static enum tlsc_io
error(struct tlsc_conn *tc)
{
    char why[TLSC_ERROR_MAX];
    long v = SSL_get_verify_result(tc->ssl);

    take_error(why, sizeof why);
    if (v != X509_V_OK)
        snprintf(tc->err, sizeof tc->err, "%.*s: %.*s", TLSC_REASON_MAX, why, TLSC_VERIFY_MAX,
                 X509_verify_cert_error_string(v));
    else
        snprintf(tc->err, sizeof tc->err, "%s", why[0] != '\0' ? why : "TLS failed");
    return TLSC_IO_ERROR;
}

static enum tlsc_io
outcome(struct tlsc_conn *tc)
{
    switch (SSL_get_error(tc->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
        return TLSC_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLSC_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return TLSC_IO_EOF;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (errno == 0)
            return TLSC_IO_EOF;
        snprintf(tc->err, sizeof tc->err, "%s", strerror(errno));
        return TLSC_IO_ERROR;
    default:
        return error(tc);
    }
}

enum tlsc_io
tlsc_conn_read(struct tlsc_conn *tc, void *buf, size_t len, size_t *n)
{
    errno = 0;
    return SSL_read_ex(tc->ssl, buf, len, n) == 1 ? TLSC_IO_OK : outcome(tc);
}

enum tlsc_io
tlsc_conn_write(struct tlsc_conn *tc, const void *buf, size_t len, size_t *n)
{
    errno = 0;
    return SSL_write_ex(tc->ssl, buf, len, n) == 1 ? TLSC_IO_OK : outcome(tc);
}

bool
tlsc_conn_pending(const struct tlsc_conn *tc)
{
    return SSL_pending(tc->ssl) > 0;
}

const char *
tlsc_conn_error(const struct tlsc_conn *tc)
{
    return tc->err;
}
