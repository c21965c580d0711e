/* lmdb_rid.h - request ids: a write that carries one is done once (store.h, struct store_rid).
 *
 * The id record (lmdb_codec.h: rid_log, keyed by time, scope and id) keeps the fingerprint, the
 * time, the kind and every output of the first run that a replay must give again: the coupon as
 * it was shown, the redemption, the hold, the count, a MEGADEAL grant's task, a GENERATE's codes.
 * rids finds it from scope and id. Both are written in the operation's own transaction, after
 * the operation succeeded and before it is folded into the group, so the write and its id are
 * stored together or not at all. EXPIRE_IDS walks rid_log from its head.
 *
 * Cost: a client's ids are random, so each new one dirties a page of rids of its own (where
 * every id is one small entry, to keep that tree small); the records go to the end of rid_log,
 * a few pages per batch. */
#ifndef COUPOND_LMDB_RID_H
#define COUPOND_LMDB_RID_H

#include <stdbool.h>

#include "lmdb_group.h"
#include "lmdb_view.h"
#include "store.h"

/* Fails op with STORE_IO when the id it carries cannot be one (empty, or id or scope too long:
 * a caller's mistake). Reads nothing: for before the operation begins. */
enum store_err lmdb_rid_valid(struct store_op *op);

/* Looks up op's request id in the operation's transaction: none, *replayed false; stored with
 * the same fingerprint and kind, *replayed and op's outputs are those of the first run (with
 * out.replayed and out.done_at); else STORE_ID_CONFLICT. The id must be valid (lmdb_rid_valid).
 * Reads only. */
enum store_err lmdb_rid_replay(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op,
                               bool *replayed);

/* Stores op's request id with the outputs of its successful run, in the operation. */
enum store_err lmdb_rid_put(struct lmdb_group *g, struct lmdb_group_op *gop, struct store_op *op);

/* EXPIRE_IDS: deletes the ids stored at a time < now, oldest first, at most in.max -> out.count,
 * out.more (one is left). */
enum store_err lmdb_rid_run_expire(struct lmdb_group *g, struct lmdb_group_op *gop,
                                   struct store_op *op);

/* RID_GET in view v: the stored outcome of in.rid into op's outputs (see lmdb_rid_replay, and
 * out.rid_kind); STORE_INVALID when it is not stored, STORE_ID_CONFLICT when it is stored with
 * another fingerprint. A GENERATE's codes go to in.codes when it is set and in.want has room for
 * them. */
enum store_err lmdb_rid_get(const struct lmdb_view *v, struct store_op *op);

#endif
