/* lmdb_audit.h - the audit chain in the LMDB backend: records in the `audit` database keyed by
 * seq (lmdb_codec.h), the head (seq, hash) in the meta state.
 *
 * A write's record is appended in the write's own operation, after the write (and its request
 * id) and before the operation is folded into the group, so the change and its record are
 * stored together or not at all; the head moves in the operation's state (gop->s), which the
 * group writes with the meta record once per batch. The append is an MDB_APPEND at the end of
 * `audit`: a page or two of one tree per write (LMDB_GROUP_AUDIT_TREES). */
#ifndef COUPOND_LMDB_AUDIT_H
#define COUPOND_LMDB_AUDIT_H

#include <lmdb.h>

#include "lmdb_group.h"
#include "lmdb_view.h"
#include "store.h"

/* Appends the record of `op`, a write that succeeded (audit_wanted), in operation gop: the next
 * seq, chained from gop->s.audit. Any failure fails op (a record that cannot be built is
 * STORE_IO: it never happens for a write whose inputs passed their checks). */
enum store_err lmdb_audit_append(struct lmdb_group *g, struct lmdb_group_op *gop,
                                 struct store_op *op);

/* AUDIT_NOTE: checks in.note (audit.h); the record is appended by the write's frame. */
enum store_err lmdb_audit_run_note(struct lmdb_group *g, struct lmdb_group_op *gop,
                                   struct store_op *op);

/* AUDIT_HEAD in view v: the head of v's state -> out.audit. */
enum store_err lmdb_audit_head(const struct lmdb_view *v, struct store_op *op);

/* The audit row of entry (k, v) into *row, prev left as it is; false when the entry cannot be
 * one (a key of the wrong length, a value too short or too long). */
bool lmdb_audit_row(const MDB_val *k, const MDB_val *v, struct store_audit_row *row);

/* The stored hash of record seq into hash (zeros for seq 0) in txn; STORE_OK, STORE_CORRUPT when
 * it is missing or malformed, STORE_IO; op failed on error. */
enum store_err lmdb_audit_hash_of(const struct lmdb_env *env, MDB_txn *txn, uint64_t seq,
                                  uint8_t hash[STORE_AUDIT_HASH_BYTES], struct store_op *op);

/* CHECK: the chain's records are numbered 1 to the head's seq without gaps, each entry is a row,
 * and the last one's stored hash is the head's (recomputing the chain is coupond
 * --verify-audit's work, not the consistency check's). */
enum store_err lmdb_audit_check(const struct lmdb_view *v, struct store_op *op);

#endif
