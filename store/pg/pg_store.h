/* pg_store.h - the PostgreSQL backend of store.h: `store_pg_backend` (declared in backend.h),
 * which store.c picks for "postgresql:" and "postgres:" URIs, passed to libpq whole.
 *
 * Connections, all on the loop's thread: the schema's at open (blocking, then closed), the
 * writer's (pg_writer.h: batches, one at a time), the reader's (pg_reader.h: store_read), and
 * one per EXPORT in progress (pg_export.h).
 * Every watcher is unreferenced; the store holds one loop reference per batch or read owed, so
 * ev_run keeps going exactly while something is owed. store_release has nothing to drop: each
 * read takes its own snapshot. A read-only store (STORE_OPEN_EXISTING) has no writer
 * connection and refuses batches, later, with STORE_IO. */
#ifndef COUPOND_PG_STORE_H
#define COUPOND_PG_STORE_H

#include "backend.h"

/* Bytes of the text naming a store in messages: the database, hosts and ports (never the
 * password). */
#define PG_STORE_WHERE_MAX 160

#endif
