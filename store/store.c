/* store.c - the store's front: picks the backend from the URI, and keeps what every backend
 * shares about operations and batches. */
#include "store.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

static const struct store_backend *const backends[] = {&store_lmdb_backend, &store_pg_backend};

/* URI schemes a backend serves besides its own `scheme`: libpq reads both spellings. */
static const struct {
    const char *scheme;
    const struct store_backend *backend;
} aliases[] = {{"postgres", &store_pg_backend}};

static const char *const err_texts[STORE_NERRS] = {
    [STORE_OK] = "ok",
    [STORE_NO_COUPONS] = "no coupons left",
    [STORE_INVALID] = "invalid coupon",
    [STORE_EXHAUSTED] = "coupon exhausted",
    [STORE_EXPIRED] = "coupon expired",
    [STORE_REJECTED] = "batch rejected",
    [STORE_FULL] = "map full",
    [STORE_CORRUPT] = "store corrupt",
    [STORE_IO] = "storage error",
    [STORE_NO_STORE] = "no store",
    [STORE_ID_CONFLICT] = "request id used for another request",
    [STORE_UNKNOWN_HOLD] = "no such hold",
    [STORE_UNKNOWN_REDEMPTION] = "no such redemption",
    [STORE_UNAVAILABLE] = "store unavailable",
    [STORE_LIMITED] = "MEGADEAL limits shared by the nodes are taken",
    [STORE_KEY_MISMATCH] = "task key differs from the store's",
};

const char *
store_strerror(enum store_err e)
{
    return (unsigned)e < STORE_NERRS ? err_texts[e] : "unknown store error";
}

bool
store_op_writes(enum store_op_kind kind)
{
    switch (kind) {
    case STORE_OP_UPLOAD:
    case STORE_OP_ASSIGN:
    case STORE_OP_REDEEM:
    case STORE_OP_PURGE:
    case STORE_OP_HOLD:
    case STORE_OP_RELEASE:
    case STORE_OP_UNREDEEM:
    case STORE_OP_GENERATE:
    case STORE_OP_EXPIRE_HOLDS:
    case STORE_OP_EXPIRE_IDS:
    case STORE_OP_AUDIT_NOTE:
    case STORE_OP_GRANT_DONE:
        return true;
    default:
        return false;
    }
}

/* True when `uri` starts with "scheme:"; *location is then what follows. */
static bool
has_scheme(const char *uri, const char *scheme, const char **location)
{
    size_t n = strlen(scheme);

    if (strncmp(uri, scheme, n) != 0 || uri[n] != ':')
        return false;
    *location = uri + n + 1;
    return true;
}

/* The backend serving `uri`, and in *location the part it reads. A URI without a known
 * "scheme:" is a directory for the first backend (LMDB), the embedded default. */
static const struct store_backend *
backend_of(const char *uri, const char **location)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (has_scheme(uri, backends[i]->scheme, location))
            return backends[i];
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (has_scheme(uri, aliases[i].scheme, location))
            return aliases[i].backend;
    *location = uri;
    return backends[0];
}

enum store_err
store_open(const char *uri, const struct store_config *cfg, struct store **out, char *errbuf,
           size_t errlen)
{
    const char *location;
    const struct store_backend *b = backend_of(uri, &location);
    char scratch[STORE_ERR_MAX];

    *out = NULL;
    if (errbuf == NULL || errlen == 0) {
        errbuf = scratch;
        errlen = sizeof scratch;
    }
    errbuf[0] = '\0';
    if (sodium_init() < 0) { /* the audit chain's BLAKE2b; repeated calls are harmless */
        snprintf(errbuf, errlen, "store %s: cannot initialise libsodium", uri);
        return STORE_IO;
    }
    enum store_err e = b->open(location, cfg, out, errbuf, errlen);
    if (e != STORE_OK)
        *out = NULL;
    return e;
}

void
store_close(struct store *st)
{
    if (st != NULL)
        st->backend->close(st);
}

const char *
store_backend(const struct store *st)
{
    return st->backend->name;
}

unsigned
store_commit_delay(const struct store *st)
{
    return st->backend->version >= 2 ? st->backend->commit_delay_us : 0;
}

void
store_read(struct store *st, struct store_op *op)
{
    op->err = STORE_OK;
    op->out.msg[0] = '\0';
    op->next = NULL;
    st->backend->read(st, op);
}

void
store_batch_init(struct store_batch *b)
{
    b->head = NULL;
    b->tail = &b->head;
    b->n = b->writes = 0;
    b->msg[0] = '\0';
}

void
store_batch_add(struct store_batch *b, struct store_op *op)
{
    op->err = STORE_OK;
    op->out.msg[0] = '\0';
    op->next = NULL;
    *b->tail = op;
    b->tail = &op->next;
    b->n++;
    if (store_op_writes(op->kind))
        b->writes++;
}

void
store_commit(struct store *st, struct store_batch *b)
{
    b->msg[0] = '\0';
    st->backend->commit(st, b);
}

void
store_release(struct store *st)
{
    st->backend->release(st);
}

void
store_op_complete(struct store_op *op)
{
    op->done(op);
}

void
store_batch_complete(struct store_batch *b, enum store_err err)
{
    if (err != STORE_OK) {
        for (struct store_op *op = b->head; op != NULL; op = op->next) {
            op->err = err;
            snprintf(op->out.msg, sizeof op->out.msg, "%s", b->msg);
        }
    }
    b->done(b, err);
}

enum store_err
store_op_fail(struct store_op *op, enum store_err err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(op->out.msg, sizeof op->out.msg, fmt, ap);
    va_end(ap);
    op->err = err;
    return err;
}
