/* pg_export.h - EXPORT in the PostgreSQL backend: each export is a connection of its own (so
 * a long export never holds up reads or batches) with a REPEATABLE READ READ ONLY transaction
 * and a server-side cursor: one consistent snapshot, read in pages of in.cap rows, one FETCH
 * per call, other clients served in between. Each FETCH asks for one row beyond the page when
 * it can, and keeps it for the next call, so out.more is exact: false once the last row is out.
 *
 * The `cursor` store.h hands out is the export's number, never a pointer: a cursor passed
 * after its export ended is looked up, not followed, and fails with STORE_IO. The export is
 * released when its last row is out (out.more false), at in.close, on any failure (the
 * operation fails, out.more false), and at the store's close. At most PG_EXPORT_MAX are open at
 * once; the next first call fails with STORE_IO. */
#ifndef COUPOND_PG_EXPORT_H
#define COUPOND_PG_EXPORT_H

#include <ev.h>
#include <stdint.h>

#include "store.h"

/* Open exports at most. Each holds a connection of PostgreSQL's max_connections (100 by
 * default), shared by every node: a few admins exporting at once is plenty, and 8 is the LMDB
 * backend's bound too. */
#define PG_EXPORT_MAX 8

struct pg_export;

/* The store's exports in progress. */
struct pg_exports {
    struct ev_loop *loop;
    const char *const *keys; /* libpq connection keywords and values (the store's) */
    const char *const *vals;
    const char *node; /* this node's name: the audit chain exported is its own */
    struct pg_export *list;
    uint64_t last_id; /* the number of the export begun last */
};

/* Runs one EXPORT call (see store.h); completes through op->done, later or at once. */
void pg_export_read(struct pg_exports *xs, struct store_op *op);

/* Releases every export (their calls in flight do not complete). */
void pg_export_close_all(struct pg_exports *xs);

#endif
