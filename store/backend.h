/* backend.h - what a store backend implements (store/lmdb/, ...): a table of operations with a
 * version, and the common part every backend's store struct embeds first. Only store/ includes
 * this header; the rest of coupond sees store.h alone.
 *
 * A backend fills a `struct store_backend` and embeds `struct store` as the first member of its
 * own struct, so store.c can hand it the pointer it got from open. Methods are only ever
 * appended to the table, and `version` says how many there are, so an older backend keeps
 * working when the table grows (as SQLite's sqlite3_vfs does). */
#ifndef COUPOND_STORE_BACKEND_H
#define COUPOND_STORE_BACKEND_H

#include "store.h"

/* 1: the methods below, through `release`; 2: and `commit_delay_us`. */
#define STORE_BACKEND_VERSION 2

struct store_backend {
    unsigned version;   /* STORE_BACKEND_VERSION when it was written */
    const char *name;   /* "lmdb" */
    const char *scheme; /* the URI scheme it serves, without ':' ("lmdb") */
    /* `location` is the URI with "scheme:" (or an alias of it) removed. Same contract as
     * store_open. */
    enum store_err (*open)(const char *location, const struct store_config *cfg, struct store **out,
                           char *errbuf, size_t errlen);
    void (*close)(struct store *st);
    void (*read)(struct store *st, struct store_op *op);
    void (*commit)(struct store *st, struct store_batch *b);
    void (*release)(struct store *st);
    /* Version 2. How long the group commit holds the next batch for more members by default,
     * in microseconds (store_commit_delay): long where a batch costs much whatever its size,
     * 0 where the next batch is best started at once. */
    unsigned commit_delay_us;
};

/* The common part: first member of every backend's store. */
struct store {
    const struct store_backend *backend;
};

/* Completes a read: calls op->done. For backends. */
void store_op_complete(struct store_op *op);

/* Completes a batch on the loop's thread: when it failed, sets `err` and b->msg on every
 * operation; then calls the batch's callback. For backends. */
void store_batch_complete(struct store_batch *b, enum store_err err);

/* Sets op->err and a printf-formatted one-line reason in op->out.msg; returns err. */
enum store_err store_op_fail(struct store_op *op, enum store_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

extern const struct store_backend store_lmdb_backend;
extern const struct store_backend store_pg_backend; /* store/pg/: "postgresql:" and "postgres:" */

#endif
