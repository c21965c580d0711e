/* lmdb_migrate.h - the upgrade of a store written by the previous release (meta state version
 * 1): the indexes that release did not keep are built from the records it did.
 *
 * Version 1 records stay as they are (lmdb_codec.h reads both versions) and are rewritten in
 * version 2 when they change; only the new indexes need the old data: the users index from the
 * assigned coupons, the code_hist index from the history. That release had no holds, request
 * ids or undo, so their databases start empty. The upgrade runs once, in the transaction that
 * opens the store, so it is all or nothing; it reads every coupon and redemption once. */
#ifndef COUPOND_LMDB_MIGRATE_H
#define COUPOND_LMDB_MIGRATE_H

#include <lmdb.h>
#include <stddef.h>

/* The databases the upgrade reads and fills. */
struct lmdb_migrate_dbs {
    MDB_dbi coupons, history; /* read */
    MDB_dbi users, code_hist; /* filled */
};

/* Fills the users and code_hist indexes in write transaction `txn` from the coupons and history
 * there. Returns 0, or LMDB's code (or MDB_CORRUPTED for a record that does not decode) with a
 * one-line reason in msg. */
int lmdb_migrate_v1(MDB_txn *txn, const struct lmdb_migrate_dbs *dbs, char *msg, size_t len);

#endif
