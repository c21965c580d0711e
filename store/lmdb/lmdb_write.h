/* lmdb_write.h - the writing operations of a batch (UPLOAD, ASSIGN, REDEEM, PURGE), each run in
 * the batch's group as lmdb_group.h says. Used by the writer thread only. */
#ifndef COUPOND_LMDB_WRITE_H
#define COUPOND_LMDB_WRITE_H

#include "lmdb_group.h"
#include "store.h"

/* Runs the write operation `op` (store_op_writes(op->kind)) in group g: sets its outputs and
 * op->err; a failure leaves the group as if the operation had not run (unless it poisons the
 * group, see lmdb_group.h) and says why in op->out.msg. */
void lmdb_write_run(struct lmdb_group *g, struct store_op *op);

#endif
