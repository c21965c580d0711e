/* lmdb_env.h - the LMDB environment of a store: opening it in either mode, its databases, the
 * meta state record, coupon records by code, and what LMDB's errors mean to the store.
 *
 * Once open, a `struct lmdb_env` is never written again until it is closed: the loop thread and
 * the writer thread both read it without locks. */
#ifndef COUPOND_LMDB_ENV_H
#define COUPOND_LMDB_ENV_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>

#include "lmdb_codec.h"
#include "store.h"

/* Default map size: the file grows as needed up to this, so a large value costs only address
 * space. 16 GiB holds well over 50 million coupons. store.h repeats it as STORE_MAP_SIZE_DEFAULT
 * for the server's --map-size flag; lmdb_env.c checks that the two agree. */
#define LMDB_MAP_SIZE_DEFAULT (16ULL << 30)
#define LMDB_MAP_SIZE_MIN     (1ULL << 20) /* smaller maps cannot even hold the databases */

/* The databases (lmdb_codec.h); the version 2 ones from LMDB_DB_USERS on, version 3's audit. */
enum lmdb_db {
    LMDB_DB_COUPONS,
    LMDB_DB_AVAIL,
    LMDB_DB_EXPIRY,
    LMDB_DB_HISTORY,
    LMDB_DB_META,
    LMDB_DB_USERS,
    LMDB_DB_CODE_HIST,
    LMDB_DB_HOLDS,
    LMDB_DB_HOLD_EXP,
    LMDB_DB_HOLD_CODE,
    LMDB_DB_RIDS,
    LMDB_DB_RID_LOG,
    LMDB_DB_AUDIT
};
#define LMDB_NDB    13
#define LMDB_NDB_V1 5  /* the databases of the first release, which has no others */
#define LMDB_NDB_V2 12 /* the databases of the second release: all but the audit chain */

struct lmdb_env {
    MDB_env *env;
    MDB_dbi dbi[LMDB_NDB];
    bool rdonly; /* opened with STORE_OPEN_EXISTING: no write transaction, ever */
    /* Read-only, a store of the previous release, not yet upgraded: the version 2 databases do
     * not exist (their dbi are unset) and must not be read; they would be empty. */
    bool legacy;
    /* Read-only, a store from before the audit chain, not yet upgraded: there is no audit
     * database (its dbi is unset); the chain is empty. */
    bool no_audit;
};

/* "coupons", "avail", ... for messages. */
const char *lmdb_env_db_name(enum lmdb_db db);

/* Opens the environment in directory `dir` as cfg->mode says, and loads the meta state into *s.
 * STORE_OPEN_CREATE: the directory must exist; the databases and the meta state are created
 * when missing (files 0600), and a store of the previous release is upgraded (lmdb_migrate.h);
 * a store without the audit chain gets an empty one. STORE_OPEN_EXISTING: a store of the first
 * release opens `legacy`, one without the audit chain `no_audit`; read-only; STORE_NO_STORE
 * when `dir` is missing or holds no data.mdb, and then nothing is created (beside an existing
 * data.mdb, LMDB itself creates its lock.mdb if that is missing). On failure *e is closed and msg
 * holds a one-line reason naming `dir`. */
enum store_err lmdb_env_open(struct lmdb_env *e, const char *dir, const struct store_config *cfg,
                             struct lmdb_state *s, char *msg, size_t len);

/* Closes the environment; every transaction on it must be gone. A closed env is a no-op. */
void lmdb_env_close(struct lmdb_env *e);

/* STORE_FULL for LMDB's "no room" errors (a full map, or a transaction too large for LMDB's
 * dirty-page list), STORE_IO for any other. */
enum store_err lmdb_env_err(int rc);

/* Fails `op` with lmdb_env_err(rc) and "what: LMDB's message"; returns the error. */
enum store_err lmdb_env_fail(struct store_op *op, int rc, const char *what);

/* Fails op with STORE_IO when `db` does not exist in a legacy store ("what needs the version 2
 * indexes"); STORE_OK otherwise. */
enum store_err lmdb_env_need(const struct lmdb_env *e, enum lmdb_db db, const char *what,
                             struct store_op *op);

/* Reads coupon `code` in `txn` (pub.held 0: see lmdb_hold.h): STORE_OK; STORE_INVALID (op
 * untouched) when the code is not a valid one or not stored; STORE_CORRUPT or STORE_IO with op
 * failed. */
enum store_err lmdb_env_coupon_get(const struct lmdb_env *e, MDB_txn *txn, const char *code,
                                   struct lmdb_coupon *c, struct store_op *op);

/* Writes coupon *c under its code in `txn`; on failure fails op with "what: ...". */
enum store_err lmdb_env_coupon_put(const struct lmdb_env *e, MDB_txn *txn,
                                   const struct lmdb_coupon *c, const char *what,
                                   struct store_op *op);

/* Reads redemption `seq` in `txn`: STORE_OK; STORE_UNKNOWN_REDEMPTION (op untouched) when there
 * is none; STORE_CORRUPT or STORE_IO with op failed. */
enum store_err lmdb_env_history_get(const struct lmdb_env *e, MDB_txn *txn, uint64_t seq,
                                    struct store_redemption *h, struct store_op *op);

/* Reads the meta state in `txn` into *s: STORE_OK, STORE_CORRUPT (missing or not decoding) or
 * STORE_IO, with a reason in msg. */
enum store_err lmdb_env_state_get(const struct lmdb_env *e, MDB_txn *txn, struct lmdb_state *s,
                                  char *msg, size_t len);

/* Writes the stored part of *s as the meta state in `txn`; returns LMDB's code. */
int lmdb_env_state_put(const struct lmdb_env *e, MDB_txn *txn, const struct lmdb_state *s);

#endif
