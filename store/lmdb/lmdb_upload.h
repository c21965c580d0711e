/* lmdb_upload.h - UPLOAD and GENERATE: new coupons, stored whole or not at all, in a group
 * operation of the writer (lmdb_group.h). Writer thread only. */
#ifndef COUPOND_LMDB_UPLOAD_H
#define COUPOND_LMDB_UPLOAD_H

#include "lmdb_group.h"
#include "store.h"

/* UPLOAD: in.recs[in.n] -> out.n_rejected, the rejects array, out.count (records stored); with
 * in.check_only or a reject nothing is stored (see store.h). */
enum store_err lmdb_upload_run(struct lmdb_group *g, struct lmdb_group_op *gop,
                               struct store_op *op);

/* GENERATE: the first in.want usable candidates of in.recs[in.n] (a valid record whose code is
 * neither stored nor an earlier candidate's) are stored as one upload; their indexes go to
 * in.chosen, their codes to in.codes when set, their number to out.count. Fewer usable:
 * STORE_REJECTED, nothing stored. */
enum store_err lmdb_upload_generate(struct lmdb_group *g, struct lmdb_group_op *gop,
                                    struct store_op *op);

#endif
