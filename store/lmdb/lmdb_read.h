/* lmdb_read.h - the reading operations (VALIDATE, GET, COUNTERS, HISTORY, CHECK, RID_GET,
 * COUPONS) in a view: the loop's snapshot for store_read, the group for a read inside a batch.
 * EXPORT has a transaction of its own (lmdb_export.h); in a batch it fails with STORE_IO. */
#ifndef COUPOND_LMDB_READ_H
#define COUPOND_LMDB_READ_H

#include "lmdb_view.h"
#include "store.h"

/* Runs the read operation `op` in view v: sets its outputs and op->err, and on failure a
 * one-line reason in op->out.msg. A write kind fails with STORE_IO (a caller's mistake). */
void lmdb_read_run(const struct lmdb_view *v, struct store_op *op);

#endif
