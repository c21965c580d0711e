/* pg_store.c - the PostgreSQL backend's table: open, close, read, commit, release (see
 * pg_store.h). */
#include "pg_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg_audit.h"
#include "pg_export.h"
#include "pg_reader.h"
#include "pg_schema.h"
#include "pg_val.h"
#include "pg_writer.h"

/* libpq's keywords: ours first, so that the URI (expanded from dbname) overrides them; the
 * client encoding last, so that it does not: the store's text is UTF-8. connect_timeout bounds
 * the blocking connection of open (the others have PG_CONN_CONNECT_TIMEOUT_S). */
enum { KEY_APP, KEY_TIMEOUT, KEY_DBNAME, KEY_ENCODING, NKEYS };

#define TIMEOUT_TEXT 16 /* PG_CONN_CONNECT_TIMEOUT_S in whole seconds, as libpq reads it */

struct pg_store {
    struct store base; /* first: store.c hands this pointer back */
    char *uri;
    char node[STORE_NODE_MAX + 1];
    char where[PG_STORE_WHERE_MAX];
    char timeout[TIMEOUT_TEXT];
    const char *keys[NKEYS + 1];
    const char *vals[NKEYS + 1];
    struct pg_writer writer;
    struct pg_reader reader;
    struct pg_exports exports;
};

static struct pg_store *
pg_of(struct store *st)
{
    return (struct pg_store *)(void *)st;
}

/* "postgresql db@host:port" for messages, from the URI without connecting. */
static void
name_place(struct pg_store *st)
{
    PQconninfoOption *opts = PQconninfoParse(st->uri, NULL);
    const char *db = "", *host = "", *port = "";

    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        if (o->val == NULL)
            continue;
        if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
        else if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
    }
    snprintf(st->where, sizeof st->where, "postgresql %s@%s%s%s", db[0] ? db : "(default)",
             host[0] ? host : "(default)", port[0] ? ":" : "", port);
    PQconninfoFree(opts);
}

/* The node's name: the configured one or the host name. */
static bool
name_node(struct pg_store *st, const char *name, char *errbuf, size_t errlen)
{
    char host[STORE_NODE_MAX + 1] = "";

    if (name == NULL || name[0] == '\0') {
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "node");
        host[STORE_NODE_MAX] = '\0';
        name = host;
    }
    if (strlen(name) > STORE_NODE_MAX || !pg_val_text_ok(name)) {
        snprintf(errbuf, errlen, "store %s: node name \"%.*s\" is not 1 to %d bytes of UTF-8",
                 st->where, STORE_NODE_MAX, name, STORE_NODE_MAX);
        return false;
    }
    snprintf(st->node, sizeof st->node, "%s", name);
    return true;
}

static struct pg_store *
make(const char *location)
{
    struct pg_store *st = calloc(1, sizeof *st);
    size_t n = strlen("postgresql:") + strlen(location) + 1;

    if (st == NULL || (st->uri = malloc(n)) == NULL) {
        free(st);
        return NULL;
    }
    /* Both schemes are libpq's own: the URI goes to libpq as it came. */
    snprintf(st->uri, n, "postgresql:%s", location);
    st->base.backend = &store_pg_backend;
    st->keys[KEY_APP] = "application_name";
    st->vals[KEY_APP] = "coupond";
    st->keys[KEY_TIMEOUT] = "connect_timeout";
    snprintf(st->timeout, sizeof st->timeout, "%.0f", PG_CONN_CONNECT_TIMEOUT_S);
    st->vals[KEY_TIMEOUT] = st->timeout;
    st->keys[KEY_DBNAME] = "dbname";
    st->vals[KEY_DBNAME] = st->uri;
    st->keys[KEY_ENCODING] = "client_encoding";
    st->vals[KEY_ENCODING] = "UTF8";
    return st;
}

static void
destroy(struct pg_store *st)
{
    free(st->uri);
    free(st);
}

static void pg_read(struct store *base, struct store_op *op);

/* A read that waited for the reader's connection runs now. */
static void
read_again(void *arg, struct store_op *op)
{
    pg_read(arg, op);
}

/* Opens the writer and reader connections, paired: when one is back after an outage, the other
 * tries at once. */
static enum store_err
connect_all(struct pg_store *st, const struct store_config *cfg, char *errbuf, size_t errlen)
{
    char why[STORE_ERR_MAX];
    bool ro = cfg->mode == STORE_OPEN_EXISTING;

    if (!pg_writer_open(&st->writer, cfg->loop, st->keys, st->vals, st->node, ro, why,
                        sizeof why)) {
        snprintf(errbuf, errlen, "store %s: %s", st->where, why);
        return STORE_UNAVAILABLE;
    }
    if (!pg_reader_open(&st->reader, cfg->loop, st->keys, st->vals, read_again, &st->base, why,
                        sizeof why)) {
        pg_writer_close(&st->writer);
        snprintf(errbuf, errlen, "store %s: %s", st->where, why);
        return STORE_UNAVAILABLE;
    }
    pg_conn_pair(&st->writer.conn, &st->reader.conn);
    return STORE_OK;
}

static enum store_err
pg_open(const char *location, const struct store_config *cfg, struct store **out, char *errbuf,
        size_t errlen)
{
    struct pg_store *st = make(location);
    enum store_err e;

    if (st == NULL) {
        snprintf(errbuf, errlen, "store postgresql: out of memory");
        return STORE_IO;
    }
    name_place(st);
    if (cfg->loop == NULL) {
        snprintf(errbuf, errlen, "store %s: no event loop to complete operations on", st->where);
        destroy(st);
        return STORE_IO;
    }
    if (!name_node(st, cfg->node_name, errbuf, errlen)) {
        destroy(st);
        return STORE_IO;
    }
    e = pg_schema_open(st->keys, st->vals, cfg->mode, cfg->task_key_fp, st->where, errbuf, errlen);
    if (e == STORE_OK)
        e = pg_audit_schema(st->keys, st->vals, cfg->mode, st->where, errbuf, errlen);
    if (e == STORE_OK)
        e = connect_all(st, cfg, errbuf, errlen);
    st->exports = (struct pg_exports){
        .loop = cfg->loop, .keys = st->keys, .vals = st->vals, .node = st->node};
    if (e != STORE_OK) {
        destroy(st);
        return e;
    }
    *out = &st->base;
    return STORE_OK;
}

static void
pg_close(struct store *base)
{
    struct pg_store *st = pg_of(base);

    pg_writer_close(&st->writer);
    pg_reader_close(&st->reader);
    pg_export_close_all(&st->exports);
    destroy(st);
}

static void
pg_read(struct store *base, struct store_op *op)
{
    struct pg_store *st = pg_of(base);

    const char *node[1] = {st->node};

    if (op->kind == STORE_OP_BACKUP) { /* store.h: a backend that cannot copy itself */
        store_op_fail(op, STORE_IO,
                      "backup: the coupons are in PostgreSQL; back it up with pg_basebackup "
                      "(see coupond(8))");
        store_op_complete(op);
    } else if (op->kind == STORE_OP_EXPORT) {
        pg_export_read(&st->exports, op);
    } else if (op->kind == STORE_OP_AUDIT_HEAD) {
        pg_reader_read_stmt(&st->reader, op, PG_STMT_AUDIT_HEAD, 1, node);
    } else {
        pg_reader_read(&st->reader, op);
    }
}

static void
pg_commit(struct store *base, struct store_batch *b)
{
    pg_writer_commit(&pg_of(base)->writer, b);
}

static void
pg_release(struct store *base)
{
    (void)base; /* every read has a snapshot of its own */
}

const struct store_backend store_pg_backend = {
    .version = STORE_BACKEND_VERSION,
    .name = "postgresql",
    .scheme = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .read = pg_read,
    .commit = pg_commit,
    .release = pg_release,
    .commit_delay_us = PG_COMMIT_DELAY_US,
};
