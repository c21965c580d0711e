/* pg_export.h - EXPORT in the PostgreSQL backend: each export is a connection of its own (so
 * a long export never holds up reads or batches) with a REPEATABLE READ READ ONLY transaction
 * and a server-side cursor: one consistent snapshot, read in pages of in.cap rows, one FETCH
 * per call, other clients served in between. The export (the `cursor` store.h hands out) is
 * released when a page comes back short (out.more false), at in.close, on any failure (the
 * operation fails, out.more false), and at the store's close. */
#ifndef COUPOND_PG_EXPORT_H
#define COUPOND_PG_EXPORT_H

#include <ev.h>

#include "store.h"

struct pg_export;

/* The store's exports in progress. */
struct pg_exports {
    struct ev_loop *loop;
    const char *const *keys; /* libpq connection keywords and values (the store's) */
    const char *const *vals;
    const char *node; /* this node's name: the audit chain exported is its own */
    struct pg_export *list;
};

/* Runs one EXPORT call (see store.h); completes through op->done, later. */
void pg_export_read(struct pg_exports *xs, struct store_op *op);

/* Releases every export (their calls in flight do not complete). */
void pg_export_close_all(struct pg_exports *xs);

#endif
