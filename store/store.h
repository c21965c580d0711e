/* store.h - coupons in LMDB: the whole data model of coupond.
 *
 * The store knows coupons, users, counters and time; it never sees protocol text or sockets.
 * Time is always passed in (seconds since the epoch, UTC) so that tests control it.
 *
 * Transactions. Writes are group-committed: the first write after a commit opens one LMDB
 * write transaction (the "group"); every write operation runs in its own nested transaction
 * inside the group, so a failing operation (bad batch, map full) is undone alone and the others
 * stay. store_commit() makes the whole group durable with one commit and one fsync. Reads run
 * inside the group when one is open (so they see the writes before them), otherwise on a
 * read snapshot of the last commit, which store_commit() and store_release() refresh.
 * The store is single-threaded: one thread calls every function of one store.
 *
 * Data (one LMDB environment, named sub-databases, every record with a version byte):
 *   coupons  code -> coupon record (type, kind, discount, expiry, uses, max_uses, upload
 *            sequence, assigned user and time)
 *   avail    (type, expiry, sequence) -> code, for unassigned coupons: "next coupon" is one
 *            cursor seek from (type, now)
 *   expiry   (expiry, sequence) -> code, for never-redeemed coupons: what PURGE may delete
 *   history  redemption sequence -> (time, code, type, user)
 *   meta     "state" -> next sequences and the per-type counters
 */
#ifndef COUPOND_STORE_H
#define COUPOND_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_CODE_MAX 64  /* bytes in a code (upper case A-Z 0-9 _ - .) */
#define STORE_USER_MAX 128 /* bytes in a user name */
/* Default LMDB map size: the file grows as needed up to this, so a large value costs only
 * address space. 16 GiB holds well over 50 million coupons. */
#define STORE_MAP_SIZE_DEFAULT (16ULL << 30)
#define STORE_MAP_SIZE_MIN     (1ULL << 20) /* smaller maps cannot even hold the DBIs */

/* Types and kinds; same order and values as the protocol's enums. */
enum store_type { STORE_TYPE_NONE = 0, STORE_TYPE_FREE, STORE_TYPE_STANDARD, STORE_TYPE_MEGADEAL };
#define STORE_NTYPES 4
enum store_kind { STORE_KIND_FLAT = 0, STORE_KIND_PERCENT };

enum store_err {
    STORE_OK = 0,
    STORE_NO_COUPONS, /* assign: nothing unassigned and unexpired of that type */
    STORE_INVALID,    /* no such code, or not assigned to this user */
    STORE_EXHAUSTED,  /* uses == max_uses */
    STORE_EXPIRED,    /* now > expires */
    STORE_REJECTED,   /* upload: some records rejected, nothing stored */
    STORE_FULL,       /* LMDB map full: nothing of this operation was written */
    STORE_CORRUPT,    /* store_check found an inconsistency, or a record fails to decode */
    STORE_IO          /* any other LMDB or system error: nothing of this operation was written */
};

struct store;

struct store_coupon {
    char code[STORE_CODE_MAX + 1]; /* NUL-terminated */
    uint8_t type;                  /* enum store_type */
    uint8_t kind;                  /* enum store_kind */
    int64_t discount;              /* hundredths */
    int64_t expires;               /* seconds since the epoch; valid while now <= expires */
    uint32_t uses;
    uint32_t max_uses;
    uint64_t seq;                  /* upload order, set by the store */
    char user[STORE_USER_MAX + 1]; /* assigned user, "" when unassigned */
    int64_t assigned_at;           /* 0 when unassigned */
};

struct store_type_counters {
    uint64_t created;   /* coupons uploaded */
    uint64_t assigned;  /* assignments made */
    uint64_t redeemed;  /* single uses counted */
    uint64_t purged;    /* coupons deleted by purges */
    uint64_t available; /* unassigned and not expired at the time asked */
};

struct store_counters {
    struct store_type_counters type[STORE_NTYPES];
};

/* Why an upload record was rejected. */
enum store_reject_reason {
    STORE_REJECT_EXISTS = 1, /* the code is already stored */
    STORE_REJECT_DUPLICATE,  /* the code repeats an earlier record of the same batch */
    STORE_REJECT_INVALID     /* a field is out of range (callers should have caught it) */
};

struct store_reject {
    size_t index; /* index of the rejected record in the batch */
    size_t first; /* DUPLICATE: index of the earlier record with the same code */
    enum store_reject_reason reason;
};

struct store_redemption {
    uint64_t seq; /* 1, 2, ... in redemption order */
    int64_t time;
    char code[STORE_CODE_MAX + 1];
    uint8_t type;
    char user[STORE_USER_MAX + 1];
};

/* Opens (creating if needed) the store in directory `dir`, which must exist. `map_size` is the
 * LMDB map size in bytes (rounded as LMDB requires; at least STORE_MAP_SIZE_MIN).
 * On failure returns STORE_IO or STORE_CORRUPT, *out is NULL, and `errbuf` (when not NULL)
 * holds a one-line reason. */
enum store_err store_open(const char *dir, uint64_t map_size, struct store **out, char *errbuf,
                          size_t errlen);

/* Aborts any open group (its writes are lost: they were never acknowledged) and closes. */
void store_close(struct store *st);

/* One-line text for an error code ("map full", ...). */
const char *store_strerror(enum store_err e);

/* Text of the last LMDB/system error behind a STORE_IO/STORE_FULL/STORE_CORRUPT, for logs.
 * Valid until the next store call. */
const char *store_last_error(const struct store *st);

/* --- group commit --- */

/* True when a group (write transaction) is open with at least one operation in it. */
bool store_pending(const struct store *st);

/* Commits the open group durably (fsync). With no group open: returns STORE_OK.
 * On failure nothing of the group is stored (STORE_FULL or STORE_IO) and the group is gone. */
enum store_err store_commit(struct store *st);

/* Drops the read snapshot, so that LMDB can reuse old pages; the next read takes a new one.
 * Call it when the caller goes idle (the server: once per loop iteration). */
void store_release(struct store *st);

/* --- writes (each in its own nested transaction of the group, opening the group if needed) */

/* Stores a batch atomically: every record or none. Each record must have a valid code, type,
 * kind, discount (> 0; <= 10000 for PERCENT), max_uses (>= 1) and uses == 0; `seq`, `user` and
 * `assigned_at` are ignored. Checks every record: a code that already exists or repeats one of
 * the batch is rejected, and so is a record with a field out of range. Up to `rej_cap` rejects
 * are written to `rejects` in batch order; *n_rejected gets the total count.
 * When there are rejects, or when `check_only` is true, nothing is stored and the result is
 * STORE_REJECTED (rejects) or STORE_OK (check_only, no rejects). Otherwise STORE_OK: the batch
 * is in the group, upload order as given. STORE_FULL/STORE_IO: nothing stored. */
enum store_err store_upload(struct store *st, const struct store_coupon *recs, size_t n,
                            bool check_only, struct store_reject *rejects, size_t rej_cap,
                            size_t *n_rejected);

/* Assigns to `user` the unassigned, unexpired (expires >= now) coupon of `type` that expires
 * first, ties to the earliest uploaded; fills *out with the coupon as now stored.
 * STORE_NO_COUPONS when there is none. One cursor seek: expired index entries are skipped by
 * seeking to (type, now), never walked. */
enum store_err store_assign(struct store *st, enum store_type type, const char *user, int64_t now,
                            struct store_coupon *out);

/* Counts one use of `code` by `user` at `now` and records the redemption in the history, after
 * the same checks as store_validate. *out (when not NULL) gets the coupon with the new use
 * counted; on INVALID/EXHAUSTED/EXPIRED it gets the coupon as found when there is one. */
enum store_err store_redeem(struct store *st, const char *code, const char *user, int64_t now,
                            struct store_coupon *out);

/* Deletes up to `max` coupons that expired before `now` (expires < now) and were never
 * redeemed, assigned or not; adds the number to *purged and sets *more when expired ones are
 * left. Redeemed coupons and the history are kept. */
enum store_err store_purge(struct store *st, int64_t now, size_t max, uint64_t *purged, bool *more);

/* --- reads --- */

/* Checks, in this order: `code` exists and is assigned to `user` (else STORE_INVALID);
 * uses < max_uses (else STORE_EXHAUSTED); now <= expires (else STORE_EXPIRED).
 * *out (when not NULL) gets the coupon whenever it exists and belongs to `user`. */
enum store_err store_validate(struct store *st, const char *code, const char *user, int64_t now,
                              struct store_coupon *out);

/* Reads one coupon by code, whoever holds it (STORE_INVALID when there is none). */
enum store_err store_get(struct store *st, const char *code, struct store_coupon *out);

/* The counters, with `available` as of `now`. Costs O(types), plus, amortised, one visit per
 * coupon that expired since the previous call. */
enum store_err store_counters(struct store *st, int64_t now, struct store_counters *out);

/* Calls fn for each redemption with seq > after, in order, until fn returns false or `max`
 * were visited. */
enum store_err store_history(struct store *st, uint64_t after, size_t max,
                             bool (*fn)(const struct store_redemption *r, void *arg), void *arg);

/* Full consistency check (reads everything): every record decodes; the avail index holds
 * exactly the unassigned coupons and the expiry index exactly the never-redeemed ones, each
 * entry matching its record; no coupon has uses > max_uses; an assigned coupon has a user;
 * the history agrees with the redeemed counters and records; the counters equal a recount.
 * STORE_OK, or STORE_CORRUPT with the first inconsistency described in `msg`. */
enum store_err store_check(struct store *st, int64_t now, char *msg, size_t msglen);

#endif
