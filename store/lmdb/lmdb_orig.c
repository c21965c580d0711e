/* store.c - coupons in LMDB: record encodings, indexes, counters and group commit.
 * The data model and every contract are in store.h; this file says how they are kept. */
#include "store.h"

#include <inttypes.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Record format versions: a reader refuses a version it does not know rather than guess. */
#define COUPON_VERSION  1
#define HISTORY_VERSION 1
#define STATE_VERSION   1

#define FILE_MODE    0600    /* the environment holds user names: owner only */
#define PERCENT_MAX  10000   /* 100.00 % in hundredths */
#define MAX_USES_MAX 1000000 /* PROTOCOL.md: max_uses is 1 to 1000000 */
#define FIRST_SEQ    1       /* coupon and redemption sequences start here; 0 means "none" */
#define ERR_MAX      256     /* store_last_error text: an operation name plus mdb_strerror */
#define TIME_TEXT    64      /* RFC 3339 of any int64 second count, or the number itself */
/* Pages a direct operation (see op_begin) may dirty or add at most: a path of copied pages
 * and a split at every level, in each B-tree it writes, for trees far deeper than any we
 * reach. An assignment writes coupons and avail; a redemption coupons, expiry and history. */
#define DIRECT_TREE_PAGES   48
#define DIRECT_ASSIGN_PAGES (2 * DIRECT_TREE_PAGES)
#define DIRECT_REDEEM_PAGES (3 * DIRECT_TREE_PAGES)
#define NESTED              0 /* op_begin: run in a nested transaction */
/* Room kept for what the commit itself writes: the free-page list (8 bytes a page freed by a
 * large group) and the meta record. 4096 pages is 16 MiB. */
#define DIRECT_MARGIN_PAGES 4096

/* Big-endian field widths; keys sort in LMDB's memcmp order because of them. */
#define U8_LEN  1
#define U32_LEN 4
#define U64_LEN 8

/* avail key: type | expires | seq; expiry key: expires | seq; history key: seq. */
#define AVAIL_KEY_LEN  (U8_LEN + U64_LEN + U64_LEN)
#define EXPIRY_KEY_LEN (U64_LEN + U64_LEN)
#define SEQ_KEY_LEN    U64_LEN

/* coupon value: version type kind flags | discount expires | uses max_uses | seq assigned_at |
 * user_len user. COUPON_SEQ_OFF lets an upload read a stored record's seq without decoding it. */
#define COUPON_FIXED_LEN (4 * U8_LEN + 2 * U64_LEN + 2 * U32_LEN + 2 * U64_LEN + U8_LEN)
#define COUPON_REC_MAX   (COUPON_FIXED_LEN + STORE_USER_MAX)
#define COUPON_SEQ_OFF   (4 * U8_LEN + 2 * U64_LEN + 2 * U32_LEN)

/* history value: version time type code_len code user_len user */
#define HISTORY_REC_MAX (U8_LEN + U64_LEN + 3 * U8_LEN + STORE_CODE_MAX + STORE_USER_MAX)

/* meta "state": version next_coupon_seq next_redemption_seq, then per type the
 * STATE_TYPE_FIELDS counters of struct type_state that are stored. */
#define STATE_KEY         "state"
#define STATE_TYPE_FIELDS 6
#define STATE_REC_LEN     (U8_LEN + 2 * U64_LEN + STORE_NTYPES * STATE_TYPE_FIELDS * U64_LEN)

/* The sign bit flipped makes signed times sort as unsigned big-endian bytes. */
#define TIME_KEY_FLIP (UINT64_C(1) << 63)

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

enum db { DB_COUPONS, DB_AVAIL, DB_EXPIRY, DB_HISTORY, DB_META, NDB };
static const char *const db_names[NDB] = {"coupons", "avail", "expiry", "history", "meta"};
static const char *const type_names[STORE_NTYPES] = {"NONE", "FREE", "STANDARD", "MEGADEAL"};

static const char *const err_texts[] = {
    [STORE_OK] = "ok",
    [STORE_NO_COUPONS] = "no coupons left",
    [STORE_INVALID] = "no such coupon for this user",
    [STORE_EXHAUSTED] = "no uses left",
    [STORE_EXPIRED] = "coupon expired",
    [STORE_REJECTED] = "records rejected, nothing stored",
    [STORE_FULL] = "map full",
    [STORE_CORRUPT] = "store corrupt",
    [STORE_IO] = "storage error",
};

struct type_state {
    uint64_t created, assigned, redeemed, purged;
    uint64_t purged_assigned; /* assigned coupons later purged: assigned = records + this */
    uint64_t unassigned;      /* == avail index entries of the type */
    /* Not stored: avail entries of the type with expires < state.watermark (see
     * expired_unassigned_at()). */
    uint64_t expired_unassigned;
};

/* Everything the store keeps in memory about the data: the stored counters and sequences, plus
 * the `available` cache. One copy as of the last commit, one with the group's operations. */
struct state {
    uint64_t next_coupon_seq;
    uint64_t next_redemption_seq;
    int64_t watermark; /* not stored: expired_unassigned counts entries below it */
    struct type_state t[STORE_NTYPES];
};

struct store {
    MDB_env *env;
    MDB_dbi dbi[NDB];
    MDB_txn *group;   /* the open group (write transaction), or NULL */
    size_t group_ops; /* operations committed into the group */
    /* Read snapshot of the last commit: begun on first use, then reset and renewed (no
     * allocation); its cursors are renewed with it, tracked by generation. */
    MDB_txn *snap;
    bool snap_live;
    unsigned snap_gen;
    MDB_cursor *snap_cur[NDB];
    unsigned snap_cur_gen[NDB];
    /* Direct operations: see op_begin. Pages the group may still take from the end of the map
     * for them; false once an operation of unbounded size ran in the group; true when a direct
     * operation failed after it may have written, so the group must not be committed. */
    uint64_t direct_pages;
    bool direct_off;
    bool poisoned;
    MDB_cursor *group_cur[NDB]; /* the direct operations' cursors, closed with the group */
    struct state committed;     /* as of the last commit */
    struct state cur;           /* with the group's operations; == committed when no group */
    char err[ERR_MAX];
};

/* One write operation: its nested transaction, the state it leaves when it commits, and its
 * cursors, opened on first use and closed by LMDB with the transaction. Puts go through a
 * cursor because LMDB then skips the descent from the root when the key falls on the page the
 * cursor is on (see the upload). */
struct op {
    MDB_txn *txn;
    struct state s;
    MDB_cursor *cur[NDB];
    bool direct; /* runs in the group itself, not in a nested transaction */
};

/* --- byte order: LMDB values are unaligned, so fields are assembled byte by byte --- */

struct wbuf {
    uint8_t *p;
    size_t len;
};

struct rbuf {
    const uint8_t *p;
    size_t len, off;
    bool bad; /* a read went past the end */
};

static void
be_put(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t
be_get(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int64_t
u64_to_i64(uint64_t u)
{
    int64_t v;

    memcpy(&v, &u, sizeof v); /* two's complement without implementation-defined casts */
    return v;
}

static uint64_t
i64_to_u64(int64_t v)
{
    uint64_t u;

    memcpy(&u, &v, sizeof u);
    return u;
}

static void
w_uint(struct wbuf *w, uint64_t v, size_t n)
{
    be_put(w->p + w->len, v, n);
    w->len += n;
}

static void
w_bytes(struct wbuf *w, const void *src, size_t n)
{
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static uint64_t
r_uint(struct rbuf *r, size_t n)
{
    uint64_t v;

    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return 0;
    }
    v = be_get(r->p + r->off, n);
    r->off += n;
    return v;
}

static const uint8_t *
r_bytes(struct rbuf *r, size_t n)
{
    const uint8_t *p = r->p + r->off;

    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    r->off += n;
    return p;
}

static struct rbuf
rbuf_of(const MDB_val *v)
{
    return (struct rbuf){.p = v->mv_data, .len = v->mv_size};
}

/* --- keys --- */

static uint64_t
time_key(int64_t t)
{
    return i64_to_u64(t) ^ TIME_KEY_FLIP;
}

static void
avail_key(uint8_t type, int64_t expires, uint64_t seq, uint8_t *k)
{
    k[0] = type;
    be_put(k + U8_LEN, time_key(expires), U64_LEN);
    be_put(k + U8_LEN + U64_LEN, seq, U64_LEN);
}

static bool
avail_key_decode(const MDB_val *k, uint8_t *type, int64_t *expires, uint64_t *seq)
{
    const uint8_t *p = k->mv_data;

    if (k->mv_size != AVAIL_KEY_LEN || p[0] >= STORE_NTYPES)
        return false;
    *type = p[0];
    *expires = u64_to_i64(be_get(p + U8_LEN, U64_LEN) ^ TIME_KEY_FLIP);
    *seq = be_get(p + U8_LEN + U64_LEN, U64_LEN);
    return true;
}

static void
expiry_key(int64_t expires, uint64_t seq, uint8_t *k)
{
    be_put(k, time_key(expires), U64_LEN);
    be_put(k + U64_LEN, seq, U64_LEN);
}

static bool
expiry_key_decode(const MDB_val *k, int64_t *expires, uint64_t *seq)
{
    const uint8_t *p = k->mv_data;

    if (k->mv_size != EXPIRY_KEY_LEN)
        return false;
    *expires = u64_to_i64(be_get(p, U64_LEN) ^ TIME_KEY_FLIP);
    *seq = be_get(p + U64_LEN, U64_LEN);
    return true;
}

/* --- codes and users --- */

static bool
code_char_ok(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
           ch == '.';
}

/* Length of a valid code (1 to STORE_CODE_MAX of A-Z 0-9 _ - .), 0 when not valid. */
static size_t
code_len(const char *code)
{
    size_t n = strnlen(code, STORE_CODE_MAX + 1);

    if (n > STORE_CODE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!code_char_ok(code[i]))
            return 0;
    return n;
}

/* Copies an LMDB value holding a code into `code` (NUL-terminated); false when not a code. */
static bool
code_from_val(const MDB_val *v, char *code)
{
    if (v->mv_size == 0 || v->mv_size > STORE_CODE_MAX)
        return false;
    memcpy(code, v->mv_data, v->mv_size);
    code[v->mv_size] = '\0';
    return code_len(code) == v->mv_size;
}

/* Length of a usable user name (1 to STORE_USER_MAX bytes), 0 when not usable. */
static size_t
user_len(const char *user)
{
    size_t n = strnlen(user, STORE_USER_MAX + 1);

    return n > STORE_USER_MAX ? 0 : n;
}

/* --- records --- */

static size_t
coupon_encode(const struct store_coupon *c, uint8_t *buf)
{
    struct wbuf w = {buf, 0};
    size_t ulen = strnlen(c->user, STORE_USER_MAX);

    w_uint(&w, COUPON_VERSION, U8_LEN);
    w_uint(&w, c->type, U8_LEN);
    w_uint(&w, c->kind, U8_LEN);
    w_uint(&w, 0, U8_LEN); /* flags: none defined yet */
    w_uint(&w, i64_to_u64(c->discount), U64_LEN);
    w_uint(&w, i64_to_u64(c->expires), U64_LEN);
    w_uint(&w, c->uses, U32_LEN);
    w_uint(&w, c->max_uses, U32_LEN);
    w_uint(&w, c->seq, U64_LEN);
    w_uint(&w, i64_to_u64(c->assigned_at), U64_LEN);
    w_uint(&w, ulen, U8_LEN);
    w_bytes(&w, c->user, ulen);
    return w.len;
}

/* Decodes the record `v` stored under code `k` into *c; false when it is not one. */
static bool
coupon_decode(const MDB_val *k, const MDB_val *v, struct store_coupon *c)
{
    struct rbuf r = rbuf_of(v);
    const uint8_t *user;
    size_t ulen;

    if (!code_from_val(k, c->code) || r_uint(&r, U8_LEN) != COUPON_VERSION)
        return false;
    c->type = (uint8_t)r_uint(&r, U8_LEN);
    c->kind = (uint8_t)r_uint(&r, U8_LEN);
    (void)r_uint(&r, U8_LEN); /* flags: reserved */
    c->discount = u64_to_i64(r_uint(&r, U64_LEN));
    c->expires = u64_to_i64(r_uint(&r, U64_LEN));
    c->uses = (uint32_t)r_uint(&r, U32_LEN);
    c->max_uses = (uint32_t)r_uint(&r, U32_LEN);
    c->seq = r_uint(&r, U64_LEN);
    c->assigned_at = u64_to_i64(r_uint(&r, U64_LEN));
    ulen = (size_t)r_uint(&r, U8_LEN);
    user = r_bytes(&r, ulen);
    if (r.bad || r.off != r.len || c->type >= STORE_NTYPES || c->kind > STORE_KIND_PERCENT ||
        ulen > STORE_USER_MAX)
        return false;
    memcpy(c->user, user, ulen);
    c->user[ulen] = '\0';
    return true;
}

/* The upload sequence of a stored coupon record, read without decoding the rest. */
static bool
coupon_seq(const MDB_val *v, uint64_t *seq)
{
    const uint8_t *p = v->mv_data;

    if (v->mv_size < COUPON_FIXED_LEN || p[0] != COUPON_VERSION)
        return false;
    *seq = be_get(p + COUPON_SEQ_OFF, U64_LEN);
    return true;
}

static size_t
history_encode(const struct store_redemption *h, uint8_t *buf)
{
    struct wbuf w = {buf, 0};
    size_t clen = strnlen(h->code, STORE_CODE_MAX);
    size_t ulen = strnlen(h->user, STORE_USER_MAX);

    w_uint(&w, HISTORY_VERSION, U8_LEN);
    w_uint(&w, i64_to_u64(h->time), U64_LEN);
    w_uint(&w, h->type, U8_LEN);
    w_uint(&w, clen, U8_LEN);
    w_bytes(&w, h->code, clen);
    w_uint(&w, ulen, U8_LEN);
    w_bytes(&w, h->user, ulen);
    return w.len;
}

static bool
history_decode(const MDB_val *k, const MDB_val *v, struct store_redemption *h)
{
    struct rbuf r = rbuf_of(v);
    const uint8_t *code, *user;
    size_t clen, ulen;

    if (k->mv_size != SEQ_KEY_LEN || r_uint(&r, U8_LEN) != HISTORY_VERSION)
        return false;
    h->seq = be_get(k->mv_data, SEQ_KEY_LEN);
    h->time = u64_to_i64(r_uint(&r, U64_LEN));
    h->type = (uint8_t)r_uint(&r, U8_LEN);
    clen = (size_t)r_uint(&r, U8_LEN);
    code = r_bytes(&r, clen);
    ulen = (size_t)r_uint(&r, U8_LEN);
    user = r_bytes(&r, ulen);
    if (r.bad || r.off != r.len || h->type >= STORE_NTYPES || clen == 0 || clen > STORE_CODE_MAX ||
        ulen == 0 || ulen > STORE_USER_MAX)
        return false;
    memcpy(h->code, code, clen);
    h->code[clen] = '\0';
    memcpy(h->user, user, ulen);
    h->user[ulen] = '\0';
    return true;
}

static void
state_init(struct state *s)
{
    memset(s, 0, sizeof *s);
    s->next_coupon_seq = FIRST_SEQ;
    s->next_redemption_seq = FIRST_SEQ;
    s->watermark = INT64_MIN; /* nothing expires before the first instant */
}

static void
state_encode(const struct state *s, uint8_t *buf)
{
    struct wbuf w = {buf, 0};

    w_uint(&w, STATE_VERSION, U8_LEN);
    w_uint(&w, s->next_coupon_seq, U64_LEN);
    w_uint(&w, s->next_redemption_seq, U64_LEN);
    for (int t = 0; t < STORE_NTYPES; t++) {
        const struct type_state *ts = &s->t[t];
        const uint64_t f[STATE_TYPE_FIELDS] = {ts->created, ts->assigned,        ts->redeemed,
                                               ts->purged,  ts->purged_assigned, ts->unassigned};

        for (int i = 0; i < STATE_TYPE_FIELDS; i++)
            w_uint(&w, f[i], U64_LEN);
    }
}

/* Decodes the meta record into a fresh state (empty `available` cache). */
static bool
state_decode(const MDB_val *v, struct state *s)
{
    struct rbuf r = rbuf_of(v);

    state_init(s);
    if (r_uint(&r, U8_LEN) != STATE_VERSION)
        return false;
    s->next_coupon_seq = r_uint(&r, U64_LEN);
    s->next_redemption_seq = r_uint(&r, U64_LEN);
    for (int t = 0; t < STORE_NTYPES; t++) {
        struct type_state *ts = &s->t[t];
        uint64_t *f[STATE_TYPE_FIELDS] = {&ts->created, &ts->assigned,        &ts->redeemed,
                                          &ts->purged,  &ts->purged_assigned, &ts->unassigned};

        for (int i = 0; i < STATE_TYPE_FIELDS; i++)
            *f[i] = r_uint(&r, U64_LEN);
    }
    return !r.bad && r.off == r.len;
}

/* True when the stored parts of two states agree. */
static bool
state_stored_equal(const struct state *a, const struct state *b)
{
    uint8_t ea[STATE_REC_LEN], eb[STATE_REC_LEN];

    state_encode(a, ea);
    state_encode(b, eb);
    return memcmp(ea, eb, sizeof ea) == 0;
}

/* An avail entry was added or removed: keep `unassigned` and the expired cache in step. */
static void
avail_added(struct state *s, uint8_t type, int64_t expires)
{
    s->t[type].unassigned++;
    if (expires < s->watermark)
        s->t[type].expired_unassigned++;
}

static void
avail_removed(struct state *s, uint8_t type, int64_t expires)
{
    s->t[type].unassigned--;
    if (expires < s->watermark)
        s->t[type].expired_unassigned--;
}

/* --- errors --- */

PRINTF_LIKE(3, 4)
static enum store_err
fail(struct store *st, enum store_err e, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
    return e;
}

/* Records an LMDB error of operation `what`: a full map (or a transaction too big for LMDB's
 * dirty-page list) is STORE_FULL, anything else STORE_IO. */
static enum store_err
mdb_fail(struct store *st, int rc, const char *what)
{
    enum store_err e = (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) ? STORE_FULL : STORE_IO;

    return fail(st, e, "%s: %s", what, mdb_strerror(rc));
}

static void
time_text(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if ((int64_t)tt == t && gmtime_r(&tt, &tm) != NULL &&
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
        return;
    snprintf(buf, len, "%" PRId64, t);
}

/* --- the read snapshot and read cursors --- */

static void
snap_reset(struct store *st)
{
    if (st->snap_live) {
        mdb_txn_reset(st->snap);
        st->snap_live = false;
    }
}

/* The transaction reads run in: the group when one is open (it sees the group's writes), else
 * the snapshot of the last commit. */
static enum store_err
read_begin(struct store *st, MDB_txn **txn)
{
    int rc = 0;

    if (st->group != NULL) {
        *txn = st->group;
        return STORE_OK;
    }
    if (st->snap == NULL)
        rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &st->snap);
    else if (!st->snap_live)
        rc = mdb_txn_renew(st->snap);
    if (rc != 0)
        return mdb_fail(st, rc, "begin read snapshot");
    if (!st->snap_live) {
        st->snap_live = true;
        st->snap_gen++;
    }
    *txn = st->snap;
    return STORE_OK;
}

/* A cursor on `db` for reading in `txn`: the snapshot's own cursor (renewed, not allocated),
 * or a new one on the group, which read_cursor_done() closes (an open cursor on the group
 * would be shadowed by every nested transaction). */
static int
read_cursor(struct store *st, MDB_txn *txn, enum db db, MDB_cursor **cur)
{
    int rc = 0;

    if (txn != st->snap)
        return mdb_cursor_open(txn, st->dbi[db], cur);
    if (st->snap_cur[db] == NULL)
        rc = mdb_cursor_open(txn, st->dbi[db], &st->snap_cur[db]);
    else if (st->snap_cur_gen[db] != st->snap_gen)
        rc = mdb_cursor_renew(txn, st->snap_cur[db]);
    if (rc == 0) {
        st->snap_cur_gen[db] = st->snap_gen;
        *cur = st->snap_cur[db];
    }
    return rc;
}

static void
read_cursor_done(struct store *st, MDB_cursor *cur)
{
    if (mdb_cursor_txn(cur) != st->snap)
        mdb_cursor_close(cur);
}

/* --- the group and its operations --- */

/* Forgets the ended group's transaction and what belonged to it (LMDB freed its cursors). */
static void
group_reset(struct store *st)
{
    st->group = NULL;
    st->group_ops = 0;
    st->direct_off = false;
    st->poisoned = false;
    memset(st->group_cur, 0, sizeof st->group_cur);
}

/* Pages at the end of the map that no commit has used yet, less a margin for what the commit
 * itself writes (the free-page list, the meta record): the most the group may take from the end
 * of the map for direct operations without any chance of MDB_MAP_FULL. */
static uint64_t
direct_budget(struct store *st)
{
    MDB_envinfo info;
    MDB_stat stat;
    if (mdb_env_info(st->env, &info) != 0 || mdb_env_stat(st->env, &stat) != 0)
        return 0;
    uint64_t total = info.me_mapsize / stat.ms_psize, used = (uint64_t)info.me_last_pgno + 1;
    return total > used + DIRECT_MARGIN_PAGES ? total - used - DIRECT_MARGIN_PAGES : 0;
}

/* Drops the group: nothing of it is stored, the counters go back to the last commit. */
static void
group_abort(struct store *st)
{
    if (st->group == NULL)
        return;
    mdb_txn_abort(st->group);
    group_reset(st);
    st->cur = st->committed;
}

/* Starts a write operation, opening the group first when needed. The snapshot is reset then:
 * reads go through the group, and a reader pinning the last commit would keep the group from
 * reusing the pages that commit freed.
 *
 * An operation normally runs in a nested transaction, so that its failure undoes it alone. But
 * a nested transaction costs a copy of every page it touches, a 3 MB dirty list and a merge
 * into the group, which is most of the work of a small write. So an operation that makes all
 * its checks before it writes, and can dirty at most `pages` pages, runs directly in the group
 * ("direct") while the map is known to have room for it at its end: its only possible failure
 * after a write, MDB_MAP_FULL, is then ruled out. `pages` == 0 asks for a nested transaction,
 * and ends direct operations for the rest of the group, whose room can no longer be counted. */
static enum store_err
op_begin(struct store *st, struct op *op, unsigned pages)
{
    int rc;

    if (st->group == NULL) {
        snap_reset(st);
        rc = mdb_txn_begin(st->env, NULL, 0, &st->group);
        if (rc != 0) {
            st->group = NULL;
            return mdb_fail(st, rc, "begin group");
        }
        st->group_ops = 0;
        st->direct_pages = direct_budget(st); /* counted afresh for every group */
    }
    if (st->poisoned)
        return fail(st, STORE_IO, "an earlier operation of this group failed");
    op->s = st->cur;
    memset(op->cur, 0, sizeof op->cur);
    op->direct = pages > 0 && !st->direct_off && st->direct_pages >= pages;
    if (op->direct) {
        st->direct_pages -= pages;
        op->txn = st->group;
        return STORE_OK;
    }
    if (pages == 0)
        st->direct_off = true;
    rc = mdb_txn_begin(st->env, st->group, 0, &op->txn);
    if (rc != 0) {
        if (st->group_ops == 0)
            group_abort(st);
        return mdb_fail(st, rc, "begin operation");
    }
    return STORE_OK;
}

/* The operation's cursor on `db`. */
static int
op_cursor(struct store *st, struct op *op, enum db db, MDB_cursor **cur)
{
    int rc = 0;
    MDB_cursor **slot = op->direct ? &st->group_cur[db] : &op->cur[db];

    if (*slot == NULL)
        rc = mdb_cursor_open(op->txn, st->dbi[db], slot);
    *cur = *slot;
    return rc;
}

/* Puts key -> val in `db` through the operation's cursor. */
static int
op_put(struct store *st, struct op *op, enum db db, MDB_val *key, MDB_val *val, unsigned flags)
{
    MDB_cursor *cur;
    int rc = op_cursor(st, op, db, &cur);

    return rc != 0 ? rc : mdb_cursor_put(cur, key, val, flags);
}

/* Undoes the operation alone and returns `e`. A group left with no operation is closed, so an
 * idle store never holds the write lock. Cursors of the nested transaction close with it. */
static enum store_err
op_abort(struct store *st, struct op *op, enum store_err e)
{
    if (op->direct) {
        /* Checks fail before any write; anything else may have written into the group. */
        bool clean = e == STORE_NO_COUPONS || e == STORE_INVALID || e == STORE_EXHAUSTED ||
                     e == STORE_EXPIRED;
        if (!clean)
            st->poisoned = true;
        op->txn = NULL;
        if (st->group_ops == 0 && clean)
            group_abort(st);
        return e;
    }
    mdb_txn_abort(op->txn);
    op->txn = NULL;
    if (st->group_ops == 0)
        group_abort(st);
    return e;
}

/* Folds the operation into the group, and its counters into the group's copy. A failed nested
 * commit may leave the group unusable (LMDB flags it): its store_commit() then fails. */
static enum store_err
op_commit(struct store *st, struct op *op, const char *what)
{
    int rc = op->direct ? 0 : mdb_txn_commit(op->txn);

    op->txn = NULL;
    if (rc != 0) {
        if (st->group_ops == 0)
            group_abort(st);
        return mdb_fail(st, rc, what);
    }
    st->cur = op->s;
    st->group_ops++;
    return STORE_OK;
}

/* --- open and close --- */

static enum store_err
env_open(struct store *st, const char *dir, uint64_t map_size)
{
    int rc, dead;

    if (map_size < STORE_MAP_SIZE_MIN)
        map_size = STORE_MAP_SIZE_MIN;
    if (map_size > SIZE_MAX)
        map_size = SIZE_MAX;
    rc = mdb_env_create(&st->env);
    if (rc != 0) {
        st->env = NULL;
        return mdb_fail(st, rc, "mdb_env_create");
    }
    if ((rc = mdb_env_set_maxdbs(st->env, NDB)) != 0)
        return mdb_fail(st, rc, "mdb_env_set_maxdbs");
    if ((rc = mdb_env_set_mapsize(st->env, (size_t)map_size)) != 0)
        return mdb_fail(st, rc, "mdb_env_set_mapsize");
    /* MDB_NOTLS: the read snapshot and the group live together in the one thread. Default sync
     * flags: every commit is durable. */
    if ((rc = mdb_env_open(st->env, dir, MDB_NOTLS, FILE_MODE)) != 0)
        return mdb_fail(st, rc, "mdb_env_open");
    if (mdb_env_get_maxkeysize(st->env) < STORE_CODE_MAX)
        return fail(st, STORE_IO, "LMDB max key size %d is below %d",
                    mdb_env_get_maxkeysize(st->env), STORE_CODE_MAX);
    /* Reader slots of a crashed process would pin old pages forever. */
    if ((rc = mdb_reader_check(st->env, &dead)) != 0)
        return mdb_fail(st, rc, "mdb_reader_check");
    return STORE_OK;
}

/* Opens every database in one transaction and loads (or creates) the meta state. */
static enum store_err
dbs_open(struct store *st, MDB_txn *txn)
{
    MDB_val k = {sizeof STATE_KEY - 1, STATE_KEY}, v;
    uint8_t buf[STATE_REC_LEN];
    int rc;

    for (int i = 0; i < NDB; i++)
        if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &st->dbi[i])) != 0)
            return mdb_fail(st, rc, db_names[i]);
    rc = mdb_get(txn, st->dbi[DB_META], &k, &v);
    if (rc == 0)
        return state_decode(&v, &st->cur) ? STORE_OK
                                          : fail(st, STORE_CORRUPT, "meta state does not decode");
    if (rc != MDB_NOTFOUND)
        return mdb_fail(st, rc, "read meta state");
    state_init(&st->cur);
    state_encode(&st->cur, buf);
    v = (MDB_val){sizeof buf, buf};
    if ((rc = mdb_put(txn, st->dbi[DB_META], &k, &v, 0)) != 0)
        return mdb_fail(st, rc, "write meta state");
    return STORE_OK;
}

static enum store_err
store_load(struct store *st)
{
    MDB_txn *txn = NULL;
    enum store_err e;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);

    if (rc != 0)
        return mdb_fail(st, rc, "begin open transaction");
    e = dbs_open(st, txn);
    if (e != STORE_OK) {
        mdb_txn_abort(txn);
        return e;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return mdb_fail(st, rc, "commit open transaction");
    st->committed = st->cur;
    return STORE_OK;
}

enum store_err
store_open(const char *dir, uint64_t map_size, struct store **out, char *errbuf, size_t errlen)
{
    struct store *st = calloc(1, sizeof *st);
    enum store_err e;

    *out = NULL;
    if (st == NULL) {
        if (errbuf != NULL && errlen > 0)
            snprintf(errbuf, errlen, "store %s: out of memory", dir);
        return STORE_IO;
    }
    e = env_open(st, dir, map_size);
    if (e == STORE_OK)
        e = store_load(st);
    if (e != STORE_OK) {
        if (errbuf != NULL && errlen > 0)
            snprintf(errbuf, errlen, "store %s: %s", dir, st->err);
        store_close(st);
        return e;
    }
    *out = st;
    return STORE_OK;
}

void
store_close(struct store *st)
{
    if (st == NULL)
        return;
    group_abort(st);
    for (int i = 0; i < NDB; i++)
        if (st->snap_cur[i] != NULL)
            mdb_cursor_close(st->snap_cur[i]);
    if (st->snap != NULL)
        mdb_txn_abort(st->snap);
    if (st->env != NULL)
        mdb_env_close(st->env);
    free(st);
}

const char *
store_strerror(enum store_err e)
{
    if ((unsigned)e >= sizeof err_texts / sizeof err_texts[0] || err_texts[e] == NULL)
        return "unknown store error";
    return err_texts[e];
}

const char *
store_last_error(const struct store *st)
{
    return st->err;
}

/* --- group commit --- */

bool
store_pending(const struct store *st)
{
    /* A poisoned group holds writes that must be thrown away: its commit reports that. */
    return st->group != NULL && (st->group_ops > 0 || st->poisoned);
}

enum store_err
store_commit(struct store *st)
{
    MDB_val k = {sizeof STATE_KEY - 1, STATE_KEY}, v;
    uint8_t buf[STATE_REC_LEN];
    int rc;

    if (st->group == NULL)
        return STORE_OK;
    if (st->poisoned) {
        group_abort(st);
        return fail(st, STORE_IO, "commit: an operation failed inside the group");
    }
    if (st->group_ops == 0) {
        group_abort(st);
        return STORE_OK;
    }
    /* The counters go in once per group, not once per operation. */
    state_encode(&st->cur, buf);
    v = (MDB_val){sizeof buf, buf};
    if ((rc = mdb_put(st->group, st->dbi[DB_META], &k, &v, 0)) != 0) {
        group_abort(st);
        return mdb_fail(st, rc, "commit: write meta state");
    }
    rc = mdb_txn_commit(st->group); /* frees the transaction, committed or not */
    group_reset(st);
    if (rc != 0) {
        st->cur = st->committed;
        return mdb_fail(st, rc, "commit");
    }
    st->committed = st->cur;
    return STORE_OK;
}

void
store_release(struct store *st)
{
    snap_reset(st);
}

/* --- reading coupons --- */

/* Reads coupon `code` in `txn`: STORE_OK, STORE_INVALID when there is none, or an error. */
static enum store_err
coupon_read(struct store *st, MDB_txn *txn, const char *code, struct store_coupon *c)
{
    size_t n = code_len(code);
    MDB_val k = {n, (void *)code}, v;
    int rc;

    if (n == 0)
        return STORE_INVALID;
    rc = mdb_get(txn, st->dbi[DB_COUPONS], &k, &v);
    if (rc == MDB_NOTFOUND)
        return STORE_INVALID;
    if (rc != 0)
        return mdb_fail(st, rc, "read coupon");
    if (!coupon_decode(&k, &v, c))
        return fail(st, STORE_CORRUPT, "coupon %s does not decode", code);
    return STORE_OK;
}

static enum store_err
coupon_write(struct store *st, MDB_txn *txn, const struct store_coupon *c, const char *what)
{
    uint8_t buf[COUPON_REC_MAX];
    MDB_val k = {strlen(c->code), (void *)c->code}, v = {coupon_encode(c, buf), buf};
    int rc = mdb_put(txn, st->dbi[DB_COUPONS], &k, &v, 0);

    return rc == 0 ? STORE_OK : mdb_fail(st, rc, what);
}

/* The checks of store_validate, in its order. */
static enum store_err
coupon_usable(const struct store_coupon *c, const char *user, int64_t now)
{
    if (c->user[0] == '\0' || strcmp(c->user, user) != 0)
        return STORE_INVALID;
    if (c->uses >= c->max_uses)
        return STORE_EXHAUSTED;
    if (now > c->expires)
        return STORE_EXPIRED;
    return STORE_OK;
}

/* --- upload --- */

/* A batch is put in key order, one sort per database: LMDB puts a run of ascending keys through
 * one cursor without descending from the root each time, and fills its pages more densely.
 * Measured on 50,000 records: a random-order batch takes about 30% less CPU than puts in batch
 * order, and a batch already in order (no sort needed) half. */

/* A record of the batch in code order; ties (repeated codes) in batch order, so that the
 * earliest record of a code is the one stored and the later ones are its duplicates. */
struct by_code {
    const char *code;
    size_t idx;
};

/* A record's avail or expiry key, for sorting the index entries of the batch. */
struct by_key {
    uint8_t key[AVAIL_KEY_LEN];
    size_t idx;
};

struct upload {
    struct store *st;
    struct op *op;
    const struct store_coupon *recs;
    size_t n;
    uint64_t base;            /* seq of recs[0]; recs[i] gets base + i */
    struct store_reject *why; /* per record; reason 0 while accepted */
    size_t n_rej;
};

static int
by_code_cmp(const void *a, const void *b)
{
    const struct by_code *x = a, *y = b;
    int c = strcmp(x->code, y->code);

    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int
by_key_cmp(const void *a, const void *b)
{
    return memcmp(((const struct by_key *)a)->key, ((const struct by_key *)b)->key, AVAIL_KEY_LEN);
}

/* Generated batches often come in order (codes counting up, one expiry): one pass is cheaper
 * than a sort. */
static void
sort_unless_sorted(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    const char *p = base;

    for (size_t i = 1; i < n; i++)
        if (cmp(p + (i - 1) * size, p + i * size) > 0) {
            qsort(base, n, size, cmp);
            return;
        }
}

static bool
record_ok(const struct store_coupon *c)
{
    if (c->type >= STORE_NTYPES || c->kind > STORE_KIND_PERCENT || c->discount <= 0)
        return false;
    if (c->kind == STORE_KIND_PERCENT && c->discount > PERCENT_MAX)
        return false;
    return c->max_uses >= 1 && c->max_uses <= MAX_USES_MAX && c->uses == 0;
}

static void
reject(struct upload *u, size_t i, enum store_reject_reason reason, size_t first)
{
    u->why[i] = (struct store_reject){.index = i, .first = first, .reason = reason};
    u->n_rej++;
}

/* Why a record whose code is already stored (existing record `v`) is rejected: a seq from this
 * batch (>= base) means the batch repeats the code, and tells at which index. */
static enum store_err
upload_clash(struct upload *u, size_t i, const MDB_val *v)
{
    uint64_t seq;

    if (!coupon_seq(v, &seq))
        return fail(u->st, STORE_CORRUPT, "upload: a stored coupon record does not decode");
    if (seq >= u->base)
        reject(u, i, STORE_REJECT_DUPLICATE, (size_t)(seq - u->base));
    else
        reject(u, i, STORE_REJECT_EXISTS, 0);
    return STORE_OK;
}

/* Puts the coupon record of recs[i] (valid code). A record with bad fields is put as well, so
 * that a later repeat of its code is found, and rejected. */
static enum store_err
upload_coupon(struct upload *u, size_t i)
{
    struct store_coupon rec = u->recs[i];
    uint8_t buf[COUPON_REC_MAX];
    MDB_val k = {strlen(rec.code), rec.code}, v = {0, buf};
    int rc;

    rec.seq = u->base + i;
    rec.user[0] = '\0';
    rec.assigned_at = 0;
    v.mv_size = coupon_encode(&rec, buf);
    rc = op_put(u->st, u->op, DB_COUPONS, &k, &v, MDB_NOOVERWRITE);
    if (rc != 0 && rc != MDB_KEYEXIST)
        return mdb_fail(u->st, rc, "upload: put coupon");
    if (!record_ok(&rec))
        reject(u, i, STORE_REJECT_INVALID, 0);
    else if (rc == MDB_KEYEXIST)
        return upload_clash(u, i, &v);
    return STORE_OK;
}

/* Puts every coupon record in code order, finding every reject. */
static enum store_err
upload_coupons(struct upload *u)
{
    struct by_code *order = malloc(u->n * sizeof *order);
    enum store_err e = STORE_OK;
    size_t m = 0;

    if (order == NULL)
        return fail(u->st, STORE_IO, "upload: out of memory");
    for (size_t i = 0; i < u->n; i++) {
        if (code_len(u->recs[i].code) == 0)
            reject(u, i, STORE_REJECT_INVALID, 0);
        else
            order[m++] = (struct by_code){u->recs[i].code, i};
    }
    sort_unless_sorted(order, m, sizeof *order, by_code_cmp);
    for (size_t j = 0; j < m && e == STORE_OK; j++)
        e = upload_coupon(u, order[j].idx);
    free(order);
    return e;
}

/* Puts the avail (or expiry) entries of the whole batch, in key order. */
static enum store_err
upload_index(struct upload *u, struct by_key *keys, enum db db)
{
    const size_t klen = db == DB_AVAIL ? AVAIL_KEY_LEN : EXPIRY_KEY_LEN;
    int rc;

    for (size_t i = 0; i < u->n; i++) {
        const struct store_coupon *c = &u->recs[i];

        memset(keys[i].key, 0, sizeof keys[i].key);
        if (db == DB_AVAIL)
            avail_key(c->type, c->expires, u->base + i, keys[i].key);
        else
            expiry_key(c->expires, u->base + i, keys[i].key);
        keys[i].idx = i;
    }
    sort_unless_sorted(keys, u->n, sizeof *keys, by_key_cmp);
    for (size_t j = 0; j < u->n; j++) {
        const struct store_coupon *c = &u->recs[keys[j].idx];
        MDB_val k = {klen, keys[j].key}, v = {strlen(c->code), (void *)c->code};

        if ((rc = op_put(u->st, u->op, db, &k, &v, MDB_NOOVERWRITE)) != 0)
            return rc == MDB_KEYEXIST
                       ? fail(u->st, STORE_CORRUPT, "upload: seq reused in %s", db_names[db])
                       : mdb_fail(u->st, rc, "upload: put index entry");
    }
    return STORE_OK;
}

/* Indexes and counts the accepted batch. */
static enum store_err
upload_indexes(struct upload *u)
{
    struct by_key *keys = malloc(u->n * sizeof *keys);
    enum store_err e;

    if (keys == NULL)
        return fail(u->st, STORE_IO, "upload: out of memory");
    e = upload_index(u, keys, DB_AVAIL);
    if (e == STORE_OK)
        e = upload_index(u, keys, DB_EXPIRY);
    free(keys);
    for (size_t i = 0; i < u->n && e == STORE_OK; i++) {
        u->op->s.t[u->recs[i].type].created++;
        avail_added(&u->op->s, u->recs[i].type, u->recs[i].expires);
    }
    return e;
}

/* Runs the batch in u->op: every coupon record, then, when nothing is rejected and the batch is
 * to be kept, the index entries and counters. */
static enum store_err
upload_run(struct upload *u, bool check_only)
{
    enum store_err e;

    u->why = calloc(u->n, sizeof *u->why);
    if (u->why == NULL)
        return fail(u->st, STORE_IO, "upload: out of memory");
    e = upload_coupons(u);
    if (e != STORE_OK || u->n_rej > 0 || check_only)
        return e;
    u->op->s.next_coupon_seq = u->base + u->n;
    return upload_indexes(u);
}

/* Copies the first `cap` rejects, in batch order. */
static void
upload_report(const struct upload *u, struct store_reject *rejects, size_t cap)
{
    size_t m = 0;

    for (size_t i = 0; i < u->n && m < cap && rejects != NULL; i++)
        if (u->why[i].reason != 0)
            rejects[m++] = u->why[i];
}

enum store_err
store_upload(struct store *st, const struct store_coupon *recs, size_t n, bool check_only,
             struct store_reject *rejects, size_t rej_cap, size_t *n_rejected)
{
    struct op op;
    struct upload u = {.st = st, .op = &op, .recs = recs, .n = n};
    enum store_err e;

    if (n_rejected != NULL)
        *n_rejected = 0;
    if (n == 0)
        return STORE_OK;
    if (n > SIZE_MAX / sizeof(struct by_key))
        return fail(st, STORE_IO, "upload: batch of %zu records is too large", n);
    if ((e = op_begin(st, &op, NESTED)) != STORE_OK)
        return e;
    u.base = op.s.next_coupon_seq;
    e = upload_run(&u, check_only);
    if (e == STORE_OK) {
        upload_report(&u, rejects, rej_cap);
        if (n_rejected != NULL)
            *n_rejected = u.n_rej;
    }
    free(u.why);
    if (e != STORE_OK)
        return op_abort(st, &op, e);
    if (u.n_rej > 0)
        return op_abort(st, &op, STORE_REJECTED);
    if (check_only)
        return op_abort(st, &op, STORE_OK);
    return op_commit(st, &op, "upload: commit operation");
}

/* --- assign --- */

/* The first avail entry at or after (type, now, 0) is the answer when it is of `type`: it
 * expires first among the unexpired, ties broken by seq (upload order). */
static enum store_err
assign_next(struct store *st, struct op *op, uint8_t type, const char *user, int64_t now,
            struct store_coupon *c)
{
    uint8_t kb[AVAIL_KEY_LEN], t;
    MDB_val k = {sizeof kb, kb}, v;
    MDB_cursor *cur;
    char code[STORE_CODE_MAX + 1];
    int64_t expires;
    uint64_t seq;
    enum store_err e;
    int rc;

    if ((rc = op_cursor(st, op, DB_AVAIL, &cur)) != 0)
        return mdb_fail(st, rc, "assign: open cursor");
    avail_key(type, now, 0, kb);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        return STORE_NO_COUPONS;
    if (rc != 0)
        return mdb_fail(st, rc, "assign: seek");
    if (!avail_key_decode(&k, &t, &expires, &seq) || !code_from_val(&v, code))
        return fail(st, STORE_CORRUPT, "assign: avail index entry does not decode");
    if (t != type)
        return STORE_NO_COUPONS;
    if ((e = coupon_read(st, op->txn, code, c)) != STORE_OK)
        return e == STORE_INVALID ? fail(st, STORE_CORRUPT, "avail entry names missing %s", code)
                                  : e;
    if (c->user[0] != '\0' || c->seq != seq || c->expires != expires || c->type != type)
        return fail(st, STORE_CORRUPT, "avail entry does not match coupon %s", code);
    if ((rc = mdb_cursor_del(cur, 0)) != 0)
        return mdb_fail(st, rc, "assign: delete avail entry");
    memcpy(c->user, user, strlen(user) + 1);
    c->assigned_at = now;
    op->s.t[type].assigned++;
    avail_removed(&op->s, type, expires);
    return coupon_write(st, op->txn, c, "assign: put coupon");
}

enum store_err
store_assign(struct store *st, enum store_type type, const char *user, int64_t now,
             struct store_coupon *out)
{
    struct store_coupon c;
    struct op op;
    enum store_err e;

    /* The store's own rules: an assigned coupon is one with a user. */
    if ((unsigned)type >= STORE_NTYPES || user_len(user) == 0)
        return STORE_INVALID;
    if ((e = op_begin(st, &op, DIRECT_ASSIGN_PAGES)) != STORE_OK)
        return e;
    if ((e = assign_next(st, &op, (uint8_t)type, user, now, &c)) != STORE_OK)
        return op_abort(st, &op, e);
    if ((e = op_commit(st, &op, "assign: commit operation")) != STORE_OK)
        return e;
    if (out != NULL)
        *out = c;
    return STORE_OK;
}

/* --- redeem --- */

/* Counts one use of *c (checked usable) and appends the history record. */
static enum store_err
redeem_apply(struct store *st, struct op *op, struct store_coupon *c, int64_t now)
{
    uint8_t ek[EXPIRY_KEY_LEN], sk[SEQ_KEY_LEN], hb[HISTORY_REC_MAX];
    struct store_redemption h = {.time = now, .type = c->type};
    MDB_val k = {sizeof ek, ek}, v;
    enum store_err e;
    int rc;

    if (c->uses == 0) { /* redeemed once: no longer purgeable */
        expiry_key(c->expires, c->seq, ek);
        rc = mdb_del(op->txn, st->dbi[DB_EXPIRY], &k, NULL);
        if (rc == MDB_NOTFOUND)
            return fail(st, STORE_CORRUPT, "coupon %s has no expiry index entry", c->code);
        if (rc != 0)
            return mdb_fail(st, rc, "redeem: delete expiry entry");
    }
    c->uses++;
    if ((e = coupon_write(st, op->txn, c, "redeem: put coupon")) != STORE_OK)
        return e;
    memcpy(h.code, c->code, sizeof h.code);
    memcpy(h.user, c->user, sizeof h.user);
    be_put(sk, op->s.next_redemption_seq, SEQ_KEY_LEN);
    k = (MDB_val){sizeof sk, sk};
    v = (MDB_val){history_encode(&h, hb), hb};
    if ((rc = mdb_put(op->txn, st->dbi[DB_HISTORY], &k, &v, MDB_APPEND)) != 0)
        return mdb_fail(st, rc, "redeem: append history");
    op->s.next_redemption_seq++;
    op->s.t[c->type].redeemed++;
    return STORE_OK;
}

enum store_err
store_redeem(struct store *st, const char *code, const char *user, int64_t now,
             struct store_coupon *out)
{
    struct store_coupon c;
    struct op op;
    enum store_err e;

    if ((e = op_begin(st, &op, DIRECT_REDEEM_PAGES)) != STORE_OK)
        return e;
    if ((e = coupon_read(st, op.txn, code, &c)) != STORE_OK)
        return op_abort(st, &op, e);
    if ((e = coupon_usable(&c, user, now)) != STORE_OK) {
        if (out != NULL)
            *out = c;
        return op_abort(st, &op, e);
    }
    if ((e = redeem_apply(st, &op, &c, now)) != STORE_OK)
        return op_abort(st, &op, e);
    if ((e = op_commit(st, &op, "redeem: commit operation")) != STORE_OK)
        return e;
    if (out != NULL)
        *out = c;
    return STORE_OK;
}

/* --- purge --- */

/* Deletes the never-redeemed coupon `code` named by the expiry entry (expires, seq) and its
 * avail entry; the caller deletes the expiry entry. */
static enum store_err
purge_one(struct store *st, struct op *op, const char *code, int64_t expires, uint64_t seq)
{
    uint8_t ak[AVAIL_KEY_LEN];
    MDB_val k = {strlen(code), (void *)code};
    struct store_coupon c;
    enum store_err e;
    int rc;

    if ((e = coupon_read(st, op->txn, code, &c)) != STORE_OK)
        return e == STORE_INVALID ? fail(st, STORE_CORRUPT, "expiry entry names missing %s", code)
                                  : e;
    if (c.seq != seq || c.expires != expires || c.uses != 0)
        return fail(st, STORE_CORRUPT, "expiry entry does not match coupon %s", code);
    if ((rc = mdb_del(op->txn, st->dbi[DB_COUPONS], &k, NULL)) != 0)
        return mdb_fail(st, rc, "purge: delete coupon");
    op->s.t[c.type].purged++;
    if (c.user[0] != '\0') {
        op->s.t[c.type].purged_assigned++;
        return STORE_OK;
    }
    avail_key(c.type, c.expires, c.seq, ak);
    k = (MDB_val){sizeof ak, ak};
    if ((rc = mdb_del(op->txn, st->dbi[DB_AVAIL], &k, NULL)) != 0)
        return rc == MDB_NOTFOUND ? fail(st, STORE_CORRUPT, "coupon %s has no avail entry", code)
                                  : mdb_fail(st, rc, "purge: delete avail entry");
    avail_removed(&op->s, c.type, c.expires);
    return STORE_OK;
}

/* Deletes from the head of the expiry index (oldest expiry first) while entries are expired,
 * at most `max`; *more tells whether an expired entry is left. */
static enum store_err
purge_run(struct store *st, struct op *op, int64_t now, size_t max, uint64_t *n, bool *more)
{
    char code[STORE_CODE_MAX + 1];
    MDB_cursor *cur;
    MDB_val k, v;
    int64_t expires;
    uint64_t seq;
    enum store_err e;
    int rc;

    if ((rc = op_cursor(st, op, DB_EXPIRY, &cur)) != 0)
        return mdb_fail(st, rc, "purge: open cursor");
    /* MDB_FIRST after each delete: the head is always the next candidate. */
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        if (!expiry_key_decode(&k, &expires, &seq) || !code_from_val(&v, code))
            return fail(st, STORE_CORRUPT, "purge: expiry index entry does not decode");
        if (expires >= now)
            return STORE_OK;
        if (*n == max) {
            *more = true;
            return STORE_OK;
        }
        if ((e = purge_one(st, op, code, expires, seq)) != STORE_OK)
            return e;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            return mdb_fail(st, rc, "purge: delete expiry entry");
        (*n)++;
    }
    return rc == MDB_NOTFOUND ? STORE_OK : mdb_fail(st, rc, "purge: read expiry index");
}

enum store_err
store_purge(struct store *st, int64_t now, size_t max, uint64_t *purged, bool *more)
{
    struct op op;
    uint64_t n = 0;
    bool left = false;
    enum store_err e;

    if ((e = op_begin(st, &op, NESTED)) != STORE_OK)
        return e;
    e = purge_run(st, &op, now, max, &n, &left);
    if (e != STORE_OK || n == 0)
        e = op_abort(st, &op, e);
    else
        e = op_commit(st, &op, "purge: commit operation");
    if (e != STORE_OK)
        return e;
    if (purged != NULL)
        *purged += n;
    if (more != NULL)
        *more = left;
    return STORE_OK;
}

/* --- reads --- */

enum store_err
store_validate(struct store *st, const char *code, const char *user, int64_t now,
               struct store_coupon *out)
{
    struct store_coupon c;
    MDB_txn *txn = NULL;
    enum store_err e;

    if ((e = read_begin(st, &txn)) != STORE_OK)
        return e;
    if ((e = coupon_read(st, txn, code, &c)) != STORE_OK)
        return e;
    e = coupon_usable(&c, user, now);
    if (e != STORE_INVALID && out != NULL)
        *out = c;
    return e;
}

enum store_err
store_get(struct store *st, const char *code, struct store_coupon *out)
{
    MDB_txn *txn = NULL;
    enum store_err e;

    if ((e = read_begin(st, &txn)) != STORE_OK)
        return e;
    return coupon_read(st, txn, code, out);
}

/* Counts the avail entries of `type` with from <= expires < to. */
static enum store_err
avail_count(struct store *st, MDB_cursor *cur, uint8_t type, int64_t from, int64_t to, uint64_t *n)
{
    uint8_t kb[AVAIL_KEY_LEN], t;
    MDB_val k = {sizeof kb, kb}, v;
    int64_t expires;
    uint64_t seq;
    int rc;

    *n = 0;
    avail_key(type, from, 0, kb);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!avail_key_decode(&k, &t, &expires, &seq))
            return fail(st, STORE_CORRUPT, "avail index key does not decode");
        if (t != type || expires >= to)
            return STORE_OK;
        (*n)++;
    }
    return rc == MDB_NOTFOUND ? STORE_OK : mdb_fail(st, rc, "count avail entries");
}

/* `available` = unassigned - (avail entries with expires < now), exact and without a scan of
 * the coupons. The state keeps a watermark T and, per type, expired_unassigned = the number of
 * avail entries with expires < T. A read at now > T walks only the entries in [T, now), adds
 * them and moves T to now, so each coupon is visited about once, when it has expired. Writes
 * that add or remove an avail entry below T adjust the count in their operation's state, so a
 * failed operation or group restores it with the rest. A read at now < T (the clock went back)
 * counts [INT64_MIN, now) afresh for that call and leaves T alone. The walk reads the same
 * transaction as the state it updates: the group with the group's copy, else the snapshot of the
 * last commit with the committed copy. */
static enum store_err
expired_unassigned_at(struct store *st, MDB_txn *txn, int64_t now, uint64_t *expired)
{
    struct state *s = &st->cur;
    const bool back = now < s->watermark;
    MDB_cursor *cur;
    enum store_err e = STORE_OK;
    int rc;

    for (int t = 0; t < STORE_NTYPES; t++)
        expired[t] = back ? 0 : s->t[t].expired_unassigned;
    if (now == s->watermark)
        return STORE_OK;
    if ((rc = read_cursor(st, txn, DB_AVAIL, &cur)) != 0)
        return mdb_fail(st, rc, "open avail cursor");
    for (int t = 0; t < STORE_NTYPES && e == STORE_OK; t++) {
        uint64_t n;

        e = avail_count(st, cur, (uint8_t)t, back ? INT64_MIN : s->watermark, now, &n);
        expired[t] += n;
    }
    read_cursor_done(st, cur);
    if (e != STORE_OK || back)
        return e;
    for (int t = 0; t < STORE_NTYPES; t++)
        s->t[t].expired_unassigned = expired[t];
    s->watermark = now;
    if (st->group == NULL)
        st->committed = st->cur;
    return STORE_OK;
}

enum store_err
store_counters(struct store *st, int64_t now, struct store_counters *out)
{
    uint64_t expired[STORE_NTYPES];
    MDB_txn *txn = NULL;
    enum store_err e;

    if ((e = read_begin(st, &txn)) != STORE_OK)
        return e;
    if ((e = expired_unassigned_at(st, txn, now, expired)) != STORE_OK)
        return e;
    for (int t = 0; t < STORE_NTYPES; t++) {
        const struct type_state *ts = &st->cur.t[t];

        if (expired[t] > ts->unassigned)
            return fail(st, STORE_CORRUPT, "%s: %" PRIu64 " expired of %" PRIu64 " unassigned",
                        type_names[t], expired[t], ts->unassigned);
        out->type[t] = (struct store_type_counters){
            .created = ts->created,
            .assigned = ts->assigned,
            .redeemed = ts->redeemed,
            .purged = ts->purged,
            .available = ts->unassigned - expired[t],
        };
    }
    return STORE_OK;
}

/* fn gets a copy; it may call store reads other than store_history, but no writes: the walk's
 * cursor lives in the read transaction. */
enum store_err
store_history(struct store *st, uint64_t after, size_t max,
              bool (*fn)(const struct store_redemption *r, void *arg), void *arg)
{
    uint8_t kb[SEQ_KEY_LEN];
    MDB_val k = {sizeof kb, kb}, v;
    struct store_redemption r;
    MDB_cursor *cur;
    MDB_txn *txn = NULL;
    enum store_err e;
    size_t seen = 0;
    int rc;

    if (max == 0 || after == UINT64_MAX)
        return STORE_OK;
    if ((e = read_begin(st, &txn)) != STORE_OK)
        return e;
    if ((rc = read_cursor(st, txn, DB_HISTORY, &cur)) != 0)
        return mdb_fail(st, rc, "history: open cursor");
    be_put(kb, after + 1, SEQ_KEY_LEN);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && seen < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!history_decode(&k, &v, &r)) {
            e = fail(st, STORE_CORRUPT, "history record does not decode");
            break;
        }
        seen++;
        if (!fn(&r, arg))
            break;
    }
    read_cursor_done(st, cur);
    if (e == STORE_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = mdb_fail(st, rc, "history: read");
    return e;
}

/* --- store_check --- */

struct check {
    struct store *st;
    MDB_txn *txn;
    const struct state *s; /* the counters to verify: the group's when a group is open */
    int64_t now;
    char *msg;
    size_t msglen;
    /* recounts, per type */
    uint64_t records[STORE_NTYPES], assigned[STORE_NTYPES], unassigned[STORE_NTYPES];
    uint64_t uses[STORE_NTYPES], available[STORE_NTYPES];
    uint64_t avail[STORE_NTYPES], below_watermark[STORE_NTYPES], history[STORE_NTYPES];
    uint64_t never_redeemed, expiry_entries;
};

PRINTF_LIKE(2, 3)
static enum store_err
corrupt(struct check *ck, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ck->st->err, sizeof ck->st->err, fmt, ap);
    va_end(ap);
    if (ck->msg != NULL && ck->msglen > 0)
        snprintf(ck->msg, ck->msglen, "%s", ck->st->err);
    return STORE_CORRUPT;
}

/* "TYPE/expires/seq" (type < 0: "expires/seq"), as messages name index entries. */
static const char *
entry_text(int type, int64_t expires, uint64_t seq, char *buf, size_t len)
{
    char tt[TIME_TEXT];

    time_text(expires, tt, sizeof tt);
    if (type < 0)
        snprintf(buf, len, "%s/%" PRIu64, tt, seq);
    else
        snprintf(buf, len, "%s/%s/%" PRIu64, type_names[type], tt, seq);
    return buf;
}

/* The index entry `key` in `db` must exist and hold `code`. */
static enum store_err
check_entry(struct check *ck, enum db db, uint8_t *key, size_t klen, const char *code,
            const char *entry)
{
    MDB_val k = {klen, key}, v;
    char held[STORE_CODE_MAX + 1];
    int rc = mdb_get(ck->txn, ck->st->dbi[db], &k, &v);

    if (rc == MDB_NOTFOUND)
        return corrupt(ck, "coupon %s has no %s index entry %s", code, db_names[db], entry);
    if (rc != 0)
        return mdb_fail(ck->st, rc, "check: read index entry");
    if (!code_from_val(&v, held) || strcmp(held, code) != 0)
        return corrupt(ck, "%s index entry %s does not hold coupon %s", db_names[db], entry, code);
    return STORE_OK;
}

static enum store_err
check_coupon_entries(struct check *ck, const struct store_coupon *c)
{
    uint8_t key[AVAIL_KEY_LEN];
    char entry[TIME_TEXT * 2];
    enum store_err e;

    if (c->user[0] == '\0') {
        avail_key(c->type, c->expires, c->seq, key);
        entry_text(c->type, c->expires, c->seq, entry, sizeof entry);
        if ((e = check_entry(ck, DB_AVAIL, key, AVAIL_KEY_LEN, c->code, entry)) != STORE_OK)
            return e;
    }
    if (c->uses > 0)
        return STORE_OK;
    expiry_key(c->expires, c->seq, key);
    entry_text(-1, c->expires, c->seq, entry, sizeof entry);
    return check_entry(ck, DB_EXPIRY, key, EXPIRY_KEY_LEN, c->code, entry);
}

static enum store_err
check_coupon(struct check *ck, const MDB_val *k, const MDB_val *v)
{
    struct store_coupon c;

    if (!coupon_decode(k, v, &c))
        return corrupt(ck, "coupon record %.*s does not decode", (int)k->mv_size,
                       (const char *)k->mv_data);
    if (c.uses > c.max_uses)
        return corrupt(ck, "coupon %s has %" PRIu32 " uses of max %" PRIu32, c.code, c.uses,
                       c.max_uses);
    if (c.uses > 0 && c.user[0] == '\0')
        return corrupt(ck, "coupon %s is redeemed but has no user", c.code);
    if (c.seq < FIRST_SEQ || c.seq >= ck->s->next_coupon_seq)
        return corrupt(ck, "coupon %s has seq %" PRIu64 ", next seq is %" PRIu64, c.code, c.seq,
                       ck->s->next_coupon_seq);
    ck->records[c.type]++;
    ck->uses[c.type] += c.uses;
    if (c.user[0] != '\0')
        ck->assigned[c.type]++;
    else
        ck->unassigned[c.type]++;
    if (c.user[0] == '\0' && c.expires >= ck->now)
        ck->available[c.type]++;
    if (c.uses == 0)
        ck->never_redeemed++;
    return check_coupon_entries(ck, &c);
}

/* The coupon an index entry names; STORE_INVALID (with *c unset) when missing. */
static enum store_err
check_target(struct check *ck, const MDB_val *v, const char *entry, struct store_coupon *c)
{
    char code[STORE_CODE_MAX + 1];
    enum store_err e;

    if (!code_from_val(v, code))
        return corrupt(ck, "index entry %s holds no code", entry);
    e = coupon_read(ck->st, ck->txn, code, c);
    if (e == STORE_INVALID)
        return corrupt(ck, "index entry %s points at missing coupon %s", entry, code);
    return e == STORE_CORRUPT ? corrupt(ck, "coupon %s does not decode", code) : e;
}

static enum store_err
check_avail(struct check *ck, const MDB_val *k, const MDB_val *v)
{
    char entry[TIME_TEXT * 2];
    struct store_coupon c;
    int64_t expires;
    uint64_t seq;
    uint8_t type;
    enum store_err e;

    if (!avail_key_decode(k, &type, &expires, &seq))
        return corrupt(ck, "avail index key of %zu bytes does not decode", k->mv_size);
    entry_text(type, expires, seq, entry, sizeof entry);
    if ((e = check_target(ck, v, entry, &c)) != STORE_OK)
        return e;
    if (c.user[0] != '\0')
        return corrupt(ck, "avail index entry %s points at assigned coupon %s", entry, c.code);
    if (c.type != type || c.expires != expires || c.seq != seq)
        return corrupt(ck, "avail index entry %s does not match coupon %s", entry, c.code);
    ck->avail[type]++;
    if (expires < ck->s->watermark)
        ck->below_watermark[type]++;
    return STORE_OK;
}

static enum store_err
check_expiry(struct check *ck, const MDB_val *k, const MDB_val *v)
{
    char entry[TIME_TEXT * 2];
    struct store_coupon c;
    int64_t expires;
    uint64_t seq;
    enum store_err e;

    if (!expiry_key_decode(k, &expires, &seq))
        return corrupt(ck, "expiry index key of %zu bytes does not decode", k->mv_size);
    entry_text(-1, expires, seq, entry, sizeof entry);
    if ((e = check_target(ck, v, entry, &c)) != STORE_OK)
        return e;
    if (c.uses > 0)
        return corrupt(ck, "expiry index entry %s points at redeemed coupon %s", entry, c.code);
    if (c.expires != expires || c.seq != seq)
        return corrupt(ck, "expiry index entry %s does not match coupon %s", entry, c.code);
    ck->expiry_entries++;
    return STORE_OK;
}

static uint64_t
history_total(const struct check *ck)
{
    uint64_t n = 0;

    for (int t = 0; t < STORE_NTYPES; t++)
        n += ck->history[t];
    return n;
}

/* History records are numbered FIRST_SEQ, FIRST_SEQ + 1, ... without gaps (nothing deletes
 * them), and each names a redeemed coupon of its type and user. */
static enum store_err
check_history(struct check *ck, const MDB_val *k, const MDB_val *v)
{
    const uint64_t want = FIRST_SEQ + history_total(ck);
    struct store_redemption h;
    struct store_coupon c;
    enum store_err e;

    if (!history_decode(k, v, &h))
        return corrupt(ck, "history record %" PRIu64 " does not decode", want);
    if (h.seq != want)
        return corrupt(ck, "history record %" PRIu64 " found where %" PRIu64 " belongs", h.seq,
                       want);
    e = coupon_read(ck->st, ck->txn, h.code, &c);
    if (e == STORE_INVALID)
        return corrupt(ck, "history record %" PRIu64 " names missing coupon %s", h.seq, h.code);
    if (e != STORE_OK)
        return e == STORE_CORRUPT ? corrupt(ck, "coupon %s does not decode", h.code) : e;
    if (c.type != h.type || strcmp(c.user, h.user) != 0 || c.uses == 0)
        return corrupt(ck, "history record %" PRIu64 " (%s %s) does not match coupon %s", h.seq,
                       type_names[h.type], h.user, c.code);
    ck->history[h.type]++;
    return STORE_OK;
}

typedef enum store_err (*check_fn)(struct check *ck, const MDB_val *k, const MDB_val *v);

static enum store_err
check_walk(struct check *ck, enum db db, check_fn fn)
{
    enum store_err e = STORE_OK;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = read_cursor(ck->st, ck->txn, db, &cur)) != 0)
        return mdb_fail(ck->st, rc, "check: open cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && e == STORE_OK;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        e = fn(ck, &k, &v);
    read_cursor_done(ck->st, cur);
    if (e == STORE_OK && rc != MDB_NOTFOUND)
        e = mdb_fail(ck->st, rc, "check: walk");
    return e;
}

/* The counters of one type against the recounts. */
static enum store_err
check_type(struct check *ck, int t)
{
    const struct type_state *ts = &ck->s->t[t];
    const char *n = type_names[t];

    if (ts->redeemed != ck->history[t] || ts->redeemed != ck->uses[t])
        return corrupt(ck,
                       "redeemed.%s is %" PRIu64 ": %" PRIu64 " history records, %" PRIu64 " uses",
                       n, ts->redeemed, ck->history[t], ck->uses[t]);
    if (ts->created != ck->records[t] + ts->purged)
        return corrupt(ck, "created.%s is %" PRIu64 ": %" PRIu64 " records + %" PRIu64 " purged", n,
                       ts->created, ck->records[t], ts->purged);
    if (ts->assigned != ck->assigned[t] + ts->purged_assigned)
        return corrupt(ck, "assigned.%s is %" PRIu64 ": %" PRIu64 " records + %" PRIu64 " purged",
                       n, ts->assigned, ck->assigned[t], ts->purged_assigned);
    if (ts->unassigned != ck->avail[t] || ts->unassigned != ck->unassigned[t])
        return corrupt(
            ck, "unassigned.%s is %" PRIu64 ": %" PRIu64 " avail entries, %" PRIu64 " records", n,
            ts->unassigned, ck->avail[t], ck->unassigned[t]);
    if (ts->expired_unassigned != ck->below_watermark[t])
        return corrupt(ck, "cached expired.%s is %" PRIu64 ", recount %" PRIu64, n,
                       ts->expired_unassigned, ck->below_watermark[t]);
    return STORE_OK;
}

static enum store_err
check_counters(struct check *ck)
{
    enum store_err e;

    for (int t = 0; t < STORE_NTYPES; t++)
        if ((e = check_type(ck, t)) != STORE_OK)
            return e;
    if (ck->expiry_entries != ck->never_redeemed)
        return corrupt(ck, "%" PRIu64 " expiry index entries for %" PRIu64 " unredeemed coupons",
                       ck->expiry_entries, ck->never_redeemed);
    if (ck->s->next_redemption_seq != FIRST_SEQ + history_total(ck))
        return corrupt(ck, "next redemption seq is %" PRIu64 " after %" PRIu64 " records",
                       ck->s->next_redemption_seq, history_total(ck));
    return STORE_OK;
}

/* Outside a group the stored meta state must be the committed one. */
static enum store_err
check_meta(struct check *ck)
{
    MDB_val k = {sizeof STATE_KEY - 1, STATE_KEY}, v;
    struct state stored;
    int rc;

    if (ck->st->group != NULL)
        return STORE_OK;
    rc = mdb_get(ck->txn, ck->st->dbi[DB_META], &k, &v);
    if (rc == MDB_NOTFOUND)
        return corrupt(ck, "meta state is missing");
    if (rc != 0)
        return mdb_fail(ck->st, rc, "check: read meta state");
    if (!state_decode(&v, &stored))
        return corrupt(ck, "meta state does not decode");
    if (!state_stored_equal(&stored, &ck->st->committed))
        return corrupt(ck, "stored meta state differs from the committed counters");
    return STORE_OK;
}

/* `available` as store_counters reports it, against the recount. */
static enum store_err
check_available(struct check *ck)
{
    struct store_counters c;
    enum store_err e = store_counters(ck->st, ck->now, &c);

    if (e == STORE_CORRUPT)
        return corrupt(ck, "%s", ck->st->err);
    if (e != STORE_OK)
        return e;
    for (int t = 0; t < STORE_NTYPES; t++)
        if (c.type[t].available != ck->available[t])
            return corrupt(ck, "available.%s is %" PRIu64 ", recount %" PRIu64, type_names[t],
                           c.type[t].available, ck->available[t]);
    return STORE_OK;
}

enum store_err
store_check(struct store *st, int64_t now, char *msg, size_t msglen)
{
    struct check ck = {.st = st, .s = &st->cur, .now = now, .msg = msg, .msglen = msglen};
    static const struct {
        enum db db;
        check_fn fn;
    } walks[] = {
        {DB_COUPONS, check_coupon},
        {DB_AVAIL, check_avail},
        {DB_EXPIRY, check_expiry},
        {DB_HISTORY, check_history},
    };
    enum store_err e;

    if (msg != NULL && msglen > 0)
        msg[0] = '\0';
    if ((e = read_begin(st, &ck.txn)) != STORE_OK)
        return e;
    for (size_t i = 0; i < sizeof walks / sizeof walks[0]; i++)
        if ((e = check_walk(&ck, walks[i].db, walks[i].fn)) != STORE_OK)
            return e;
    if ((e = check_counters(&ck)) != STORE_OK)
        return e;
    if ((e = check_meta(&ck)) != STORE_OK)
        return e;
    return check_available(&ck);
}
