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

/* The group commit's default hold on this backend, in microseconds (store_commit_delay). A
 * batch costs the PostgreSQL backend about a millisecond of CPU whatever its size (a round of
 * statements and the COMMIT) and 20 microseconds a row; with no hold, batches alternate between
 * two halves of the clients, so two nodes' batches are half the size of one node's. Held up to
 * half a millisecond for the clients just answered to send again, a node's batches hold about
 * all of its clients: in bench/pg-run's interleaved rounds two nodes served 1.46x one node
 * (1.07x with no hold) and one node 0.32x LMDB (0.35x); 200 was too short to fill a batch on a
 * busy machine. See PERFORMANCE.md, "Before and after the hold". */
#define PG_COMMIT_DELAY_US 500

#endif
