/* lmdb_store.h - the LMDB backend of store.h: `store_lmdb_backend` (declared in backend.h),
 * which store.c picks for "lmdb:DIR" or a plain directory.
 *
 * Threads and who owns what.
 *   - The environment (lmdb_env.h) is written only by open and close; in between both threads
 *     read it.
 *   - The loop thread runs store_read on its read snapshot of the last completed commit, with
 *     `committed`, the state (sequences, counters, `available` cache) that matches it. Both are
 *     the loop thread's alone.
 *   - store_commit copies `committed` into the batch's working state and hands both to the
 *     writer thread (lmdb_writer.h), which runs the batch in one write transaction, commits
 *     (fsync) and hands them back. Only then, on the loop thread, does `committed` become the
 *     batch's state, the snapshot get reset so the next read sees the commit, and the batch
 *     complete: nothing is completed before it is durable.
 *   - While a batch is in flight, the snapshot stays on the commit before it (begun at the
 *     latest by store_commit, not reset by store_release) and `committed` does not change: a
 *     read sees exactly the last completed commit, even after the writer committed the next.
 *     COUNTERS then walks the `available` cache forward without storing it.
 *   - EXPORT runs on the loop thread only, each open export in a read transaction of its own
 *     kept between calls (lmdb_export.h); in a batch it fails. The exports are the loop
 *     thread's alone.
 *   - Read-only stores (STORE_OPEN_EXISTING) have no writer thread; their commits complete,
 *     later, with STORE_IO.
 *   - BACKUP runs on a thread of its own, started for each backup, which reads only the
 *     environment and its own copy of the path and hands the outcome back through an ev_async
 *     (lmdb_backup.h); close waits for it. */
#ifndef COUPOND_LMDB_STORE_H
#define COUPOND_LMDB_STORE_H

#include "backend.h"

#endif
