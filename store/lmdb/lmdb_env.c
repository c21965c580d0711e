/* lmdb_env.c - opening and closing the LMDB environment, the meta state and coupon records
 * (see lmdb_env.h). */
#include "lmdb_env.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include "lmdb_migrate.h"
#include "rules.h"

#define FILE_MODE 0600       /* the environment holds user names: owner only */
#define DATA_FILE "data.mdb" /* LMDB's data file in a directory environment */

_Static_assert(LMDB_MAP_SIZE_DEFAULT == STORE_MAP_SIZE_DEFAULT, "store.h repeats the default");
_Static_assert(LMDB_MAP_SIZE_MIN == STORE_MAP_SIZE_MIN, "store.h repeats the minimum");

static const char *const db_names[LMDB_NDB] = {
    "coupons", "avail",    "expiry",    "history", "meta",    "users", "code_hist",
    "holds",   "hold_exp", "hold_code", "rids",    "rid_log", "audit"};

const char *
lmdb_env_db_name(enum lmdb_db db)
{
    return db_names[db];
}

enum store_err
lmdb_env_err(int rc)
{
    return (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) ? STORE_FULL : STORE_IO;
}

enum store_err
lmdb_env_fail(struct store_op *op, int rc, const char *what)
{
    return store_op_fail(op, lmdb_env_err(rc), "%s: %s", what, mdb_strerror(rc));
}

__attribute__((format(printf, 4, 5))) static enum store_err
say(enum store_err e, char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return e;
}

static enum store_err
say_mdb(int rc, const char *what, char *msg, size_t len)
{
    return say(lmdb_env_err(rc), msg, len, "%s: %s", what, mdb_strerror(rc));
}

/* STORE_OPEN_EXISTING: is there an environment to open, without creating anything? */
static enum store_err
env_exists(const char *dir, char *msg, size_t len)
{
    char path[PATH_MAX];
    struct stat sb;

    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return say(STORE_NO_STORE, msg, len, "no store in %s", dir);
    if (snprintf(path, sizeof path, "%s/%s", dir, DATA_FILE) >= (int)sizeof path)
        return say(STORE_IO, msg, len, "store %s: path too long", dir);
    if (stat(path, &sb) != 0)
        return errno == ENOENT ? say(STORE_NO_STORE, msg, len, "no store in %s", dir)
                               : say(STORE_IO, msg, len, "%s: %s", path, strerror(errno));
    return STORE_OK;
}

static uint64_t
map_size_of(uint64_t asked)
{
    uint64_t size = asked == 0 ? LMDB_MAP_SIZE_DEFAULT : asked;

    if (size < LMDB_MAP_SIZE_MIN)
        size = LMDB_MAP_SIZE_MIN;
    return size > SIZE_MAX ? SIZE_MAX : size;
}

static enum store_err
env_create(struct lmdb_env *e, const char *dir, uint64_t map_size, char *msg, size_t len)
{
    /* MDB_NOTLS: a reader slot belongs to its read transaction, not to a thread, so the loop's
     * snapshot keeps its slot across reset and renew. Default sync flags: every commit is
     * durable. */
    unsigned flags = MDB_NOTLS | (e->rdonly ? MDB_RDONLY : 0);
    int rc, dead;

    if ((rc = mdb_env_create(&e->env)) != 0) {
        e->env = NULL;
        return say_mdb(rc, "mdb_env_create", msg, len);
    }
    if ((rc = mdb_env_set_maxdbs(e->env, LMDB_NDB)) != 0)
        return say_mdb(rc, "mdb_env_set_maxdbs", msg, len);
    if ((rc = mdb_env_set_mapsize(e->env, (size_t)map_size)) != 0)
        return say_mdb(rc, "mdb_env_set_mapsize", msg, len);
    if ((rc = mdb_env_open(e->env, dir, flags, FILE_MODE)) != 0)
        return say_mdb(rc, "mdb_env_open", msg, len);
    if (mdb_env_get_maxkeysize(e->env) < LMDB_CODEC_KEY_MAX)
        return say(STORE_IO, msg, len, "LMDB max key size %d is below %d",
                   mdb_env_get_maxkeysize(e->env), LMDB_CODEC_KEY_MAX);
    /* Reader slots of a crashed process would pin old pages forever. */
    if ((rc = mdb_reader_check(e->env, &dead)) != 0)
        return say_mdb(rc, "mdb_reader_check", msg, len);
    return STORE_OK;
}

/* Reads the meta state in `txn` into *s and its version into *version; when it is missing and
 * `create` is set, writes a fresh one (a new store). */
static enum store_err
state_load(const struct lmdb_env *e, MDB_txn *txn, struct lmdb_state *s, unsigned *version,
           bool create, char *msg, size_t len)
{
    MDB_val k = {sizeof LMDB_CODEC_STATE_KEY - 1, LMDB_CODEC_STATE_KEY}, v;
    int rc = mdb_get(txn, e->dbi[LMDB_DB_META], &k, &v);

    *version = LMDB_CODEC_STATE_VERSION;
    if (rc == MDB_NOTFOUND && create) {
        lmdb_codec_state_init(s);
        rc = lmdb_env_state_put(e, txn, s);
        return rc == 0 ? STORE_OK : say_mdb(rc, "write meta state", msg, len);
    }
    if (rc == MDB_NOTFOUND)
        return say(STORE_CORRUPT, msg, len, "meta state is missing");
    if (rc != 0)
        return say_mdb(rc, "read meta state", msg, len);
    if (!lmdb_codec_state_decode(&v, s, version))
        return say(STORE_CORRUPT, msg, len, "meta state does not decode");
    return STORE_OK;
}

/* Opens databases [from, to) in `txn`, creating them when allowed; *missing counts those that
 * do not exist, *first names one. */
static enum store_err
dbs_open_range(struct lmdb_env *e, MDB_txn *txn, int from, int to, int *missing, int *first,
               char *msg, size_t len)
{
    unsigned flags = e->rdonly ? 0 : MDB_CREATE;
    int rc;

    *missing = 0;
    for (int i = from; i < to; i++) {
        rc = mdb_dbi_open(txn, db_names[i], flags, &e->dbi[i]);
        if (rc == MDB_NOTFOUND && (*missing)++ == 0)
            *first = i;
        else if (rc != 0 && rc != MDB_NOTFOUND)
            return say_mdb(rc, db_names[i], msg, len);
    }
    return STORE_OK;
}

/* Builds the version 2 indexes of a version 1 store and writes its state as version 2. */
static enum store_err
upgrade(const struct lmdb_env *e, MDB_txn *txn, const struct lmdb_state *s, char *msg, size_t len)
{
    const struct lmdb_migrate_dbs dbs = {
        .coupons = e->dbi[LMDB_DB_COUPONS],
        .history = e->dbi[LMDB_DB_HISTORY],
        .users = e->dbi[LMDB_DB_USERS],
        .code_hist = e->dbi[LMDB_DB_CODE_HIST],
    };
    int rc = lmdb_migrate_v1(txn, &dbs, msg, len);

    if (rc == MDB_CORRUPTED)
        return STORE_CORRUPT;
    if (rc != 0)
        return lmdb_env_err(rc);
    rc = lmdb_env_state_put(e, txn, s);
    return rc == 0 ? STORE_OK : say_mdb(rc, "upgrade: write meta state", msg, len);
}

/* Opens the audit database (version 3): created when writable; read-only, a store from before
 * it opens without (no_audit). */
static enum store_err
audit_open(struct lmdb_env *e, MDB_txn *txn, unsigned version, char *msg, size_t len)
{
    int missing, first;
    enum store_err err = dbs_open_range(e, txn, LMDB_NDB_V2, LMDB_NDB, &missing, &first, msg, len);

    if (err != STORE_OK)
        return err;
    if (missing > 0 && version >= 3)
        return say(STORE_CORRUPT, msg, len, "database %s is missing", db_names[first]);
    e->no_audit = missing > 0;
    return STORE_OK;
}

/* Opens every database in `txn` and loads the meta state, creating both when allowed. A store of
 * the first release (all of the version 2 databases missing) is upgraded when writable, else
 * opened legacy; one of the second (no audit chain) gets its chain, or opens no_audit (see
 * lmdb_env.h). */
static enum store_err
dbs_open(struct lmdb_env *e, MDB_txn *txn, struct lmdb_state *s, char *msg, size_t len)
{
    const int v2 = LMDB_NDB_V2 - LMDB_NDB_V1;
    int missing, first;
    unsigned version;
    enum store_err err = dbs_open_range(e, txn, 0, LMDB_NDB_V1, &missing, &first, msg, len);

    if (err == STORE_OK && missing > 0)
        return say(STORE_CORRUPT, msg, len, "database %s is missing", db_names[first]);
    if (err == STORE_OK)
        err = state_load(e, txn, s, &version, !e->rdonly, msg, len);
    if (err == STORE_OK)
        err = dbs_open_range(e, txn, LMDB_NDB_V1, LMDB_NDB_V2, &missing, &first, msg, len);
    if (err != STORE_OK)
        return err;
    if (missing > 0 && (missing < v2 || version != 1))
        return say(STORE_CORRUPT, msg, len, "database %s is missing", db_names[first]);
    e->legacy = missing > 0;
    if ((err = audit_open(e, txn, version, msg, len)) != STORE_OK)
        return err;
    if (version == 1 && !e->rdonly)
        return upgrade(e, txn, s, msg, len);
    if (version < LMDB_CODEC_STATE_VERSION && !e->rdonly) {
        /* The chain starts empty; the state now records its head. */
        int rc = lmdb_env_state_put(e, txn, s);
        return rc == 0 ? STORE_OK : say_mdb(rc, "upgrade: write meta state", msg, len);
    }
    return STORE_OK;
}

/* Opens the databases and loads the state in one transaction: a write transaction that creates
 * them, or in read-only mode a read transaction (committed, so the handles outlive it). */
static enum store_err
env_load(struct lmdb_env *e, struct lmdb_state *s, char *msg, size_t len)
{
    MDB_txn *txn = NULL;
    enum store_err err;
    int rc = mdb_txn_begin(e->env, NULL, e->rdonly ? MDB_RDONLY : 0, &txn);

    if (rc != 0)
        return say_mdb(rc, "begin open transaction", msg, len);
    err = dbs_open(e, txn, s, msg, len);
    if (err != STORE_OK) {
        mdb_txn_abort(txn);
        return err;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return say_mdb(rc, "commit open transaction", msg, len);
    return STORE_OK;
}

enum store_err
lmdb_env_open(struct lmdb_env *e, const char *dir, const struct store_config *cfg,
              struct lmdb_state *s, char *msg, size_t len)
{
    char why[STORE_ERR_MAX] = "";
    enum store_err err = STORE_OK;

    memset(e, 0, sizeof *e);
    e->rdonly = cfg->mode == STORE_OPEN_EXISTING;
    if (e->rdonly && (err = env_exists(dir, msg, len)) != STORE_OK)
        return err;
    err = env_create(e, dir, map_size_of(cfg->map_size), why, sizeof why);
    if (err == STORE_OK)
        err = env_load(e, s, why, sizeof why);
    if (err != STORE_OK) {
        snprintf(msg, len, "store %s: %s", dir, why);
        lmdb_env_close(e);
    }
    return err;
}

void
lmdb_env_close(struct lmdb_env *e)
{
    if (e->env != NULL)
        mdb_env_close(e->env);
    e->env = NULL;
}

enum store_err
lmdb_env_need(const struct lmdb_env *e, enum lmdb_db db, const char *what, struct store_op *op)
{
    if (!e->legacy || db < LMDB_NDB_V1 || db >= LMDB_NDB_V2) /* no_audit: an empty chain */
        return STORE_OK;
    return store_op_fail(op, STORE_IO,
                         "%s: the store is of the previous release and open read-only; the %s "
                         "index is built when it is first opened for writing",
                         what, db_names[db]);
}

enum store_err
lmdb_env_coupon_get(const struct lmdb_env *e, MDB_txn *txn, const char *code, struct lmdb_coupon *c,
                    struct store_op *op)
{
    size_t n = rules_code_len(code);
    MDB_val k = {n, (void *)code}, v;
    int rc;

    if (n == 0)
        return STORE_INVALID;
    rc = mdb_get(txn, e->dbi[LMDB_DB_COUPONS], &k, &v);
    if (rc == MDB_NOTFOUND)
        return STORE_INVALID;
    if (rc != 0)
        return lmdb_env_fail(op, rc, "read coupon");
    if (!lmdb_codec_coupon_decode(&k, &v, c))
        return store_op_fail(op, STORE_CORRUPT, "coupon %s does not decode", code);
    return STORE_OK;
}

enum store_err
lmdb_env_coupon_put(const struct lmdb_env *e, MDB_txn *txn, const struct lmdb_coupon *c,
                    const char *what, struct store_op *op)
{
    uint8_t buf[LMDB_CODEC_COUPON_REC_MAX];
    MDB_val k = {strlen(c->pub.code), (void *)c->pub.code};
    MDB_val v = {lmdb_codec_coupon_encode(c, buf), buf};
    int rc = mdb_put(txn, e->dbi[LMDB_DB_COUPONS], &k, &v, 0);

    return rc == 0 ? STORE_OK : lmdb_env_fail(op, rc, what);
}

enum store_err
lmdb_env_history_get(const struct lmdb_env *e, MDB_txn *txn, uint64_t seq,
                     struct store_redemption *h, struct store_op *op)
{
    uint8_t kb[LMDB_CODEC_SEQ_KEY_LEN];
    MDB_val k = {sizeof kb, kb}, v;
    int rc;

    lmdb_codec_put_be(kb, seq, sizeof kb);
    rc = mdb_get(txn, e->dbi[LMDB_DB_HISTORY], &k, &v);
    if (rc == MDB_NOTFOUND)
        return STORE_UNKNOWN_REDEMPTION;
    if (rc != 0)
        return lmdb_env_fail(op, rc, "read history");
    if (!lmdb_codec_history_decode(&k, &v, h))
        return store_op_fail(op, STORE_CORRUPT, "history record %llu does not decode",
                             (unsigned long long)seq);
    return STORE_OK;
}

enum store_err
lmdb_env_state_get(const struct lmdb_env *e, MDB_txn *txn, struct lmdb_state *s, char *msg,
                   size_t len)
{
    unsigned version;
    enum store_err err = state_load(e, txn, s, &version, false, msg, len);

    /* The stored state of an upgraded store is always the current version. */
    if (err == STORE_OK && version != LMDB_CODEC_STATE_VERSION && !e->legacy && !e->no_audit)
        return say(STORE_CORRUPT, msg, len, "meta state is of version %u", version);
    return err;
}

int
lmdb_env_state_put(const struct lmdb_env *e, MDB_txn *txn, const struct lmdb_state *s)
{
    MDB_val k = {sizeof LMDB_CODEC_STATE_KEY - 1, LMDB_CODEC_STATE_KEY};
    uint8_t buf[LMDB_CODEC_STATE_LEN];
    MDB_val v = {sizeof buf, buf};

    lmdb_codec_state_encode(s, buf);
    return mdb_put(txn, e->dbi[LMDB_DB_META], &k, &v, 0);
}
