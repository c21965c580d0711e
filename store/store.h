/* store.h - the coupon store: coupond's whole data model, behind one interface that every
 * backend (store/lmdb/, ...) implements.
 *
 * The store knows coupons, users, counters and time; it never sees protocol text or sockets.
 * Time is always passed in (seconds since the epoch, UTC) so that tests control it.
 *
 * Operations. Everything the store does is a `struct store_op`: a kind, its inputs, its
 * outputs, and a completion callback. Two ways in:
 *   - store_read() runs a read against the last committed state. It never waits for a commit
 *     in progress. It may complete before it returns (LMDB does), or later (a networked
 *     database).
 *   - store_commit() runs a batch of operations, writes and reads mixed, in order, in one
 *     transaction, and makes it durable with one commit. Each operation is isolated: one that
 *     fails (a bad upload, no coupon left) is undone alone and the others stay. The batch
 *     completes later, never inside store_commit(), through the batch's one callback, with
 *     every operation's outputs set; the operations' own callbacks are not called (the caller
 *     walks the batch and completes its members). A read in a batch sees the writes before it
 *     in the batch, and its result is delivered only when they are durable, so a client reads
 *     its own writes.
 * At most one batch is in flight per store: the caller waits for a batch's completion before
 * it commits the next (server/group.c is the one caller that batches).
 *
 * Threads. Every function here is called from one thread, the one running `loop`, and every
 * callback runs on it. A backend may work on threads of its own (LMDB's writer thread runs the
 * batches and their fsyncs) but hands results back on the loop's thread.
 *
 * Ownership. An operation and its batch belong to the caller, who must keep them alive and
 * untouched from submission until their callbacks ran. Inputs that are pointers (an upload's
 * records and reject array) must stay valid as long.
 */
#ifndef COUPOND_STORE_H
#define COUPOND_STORE_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_CODE_MAX  64  /* bytes in a code (upper case A-Z 0-9 _ - .) */
#define STORE_USER_MAX  128 /* bytes in a user name */
#define STORE_ERR_MAX   256 /* a one-line reason: an operation name plus the engine's message */
#define STORE_RID_MAX   64 /* bytes in a request id (PROTOCOL.md: 1 to 64 of A-Z a-z 0-9 _ - . :) */
#define STORE_SCOPE_MAX 64 /* bytes in a request id's scope: a key name */
#define STORE_FP_BYTES  16 /* a request's fingerprint: a hash of its verb and arguments */
/* The LMDB backend's map size (store_config.map_size), repeated from store/lmdb/lmdb_env.h for
 * the server's --map-size flag. Default: the file grows as needed up to this, so a large value
 * costs only address space; 16 GiB holds well over 50 million coupons. Minimum: smaller maps
 * cannot even hold the databases. */
#define STORE_MAP_SIZE_DEFAULT (16ULL << 30)
#define STORE_MAP_SIZE_MIN     (1ULL << 20)

/* Types and kinds; same order and values as the protocol's enums. */
enum store_type { STORE_TYPE_NONE = 0, STORE_TYPE_FREE, STORE_TYPE_STANDARD, STORE_TYPE_MEGADEAL };
#define STORE_NTYPES 4
enum store_kind { STORE_KIND_FLAT = 0, STORE_KIND_PERCENT };

enum store_err {
    STORE_OK = 0,
    STORE_NO_COUPONS,  /* assign: nothing unassigned and unexpired of that type */
    STORE_INVALID,     /* no such code, or not assigned to this user */
    STORE_EXHAUSTED,   /* uses == max_uses */
    STORE_EXPIRED,     /* now > expires */
    STORE_REJECTED,    /* upload: some records rejected, nothing stored */
    STORE_FULL,        /* no room (LMDB map full): nothing of this operation was written */
    STORE_CORRUPT,     /* store_check found an inconsistency, or a record fails to decode */
    STORE_IO,          /* any other engine or system error: nothing of this operation was written */
    STORE_NO_STORE,    /* open with STORE_OPEN_EXISTING: there is no store at that place */
    STORE_ID_CONFLICT, /* the request id was used by a request with another fingerprint */
    STORE_UNKNOWN_HOLD,       /* no live hold with that number (or not this coupon and user) */
    STORE_UNKNOWN_REDEMPTION, /* no such redemption of that user, or already undone */
    /* The store cannot be reached now (PostgreSQL: the connection is down or broke). A read
     * failed; a write may or may not have happened: the connection broke during its COMMIT and
     * the outcome could not be learned. Retrying a write with the same request id is safe. */
    STORE_UNAVAILABLE,
    /* (Added with limits shared by nodes:) an ASSIGN with in.limit found the limits shared by
     * every node of the store taken: nothing was done, the caller tries again later. */
    STORE_LIMITED,
    /* open: the store recorded another task key fingerprint than store_config.task_key_fp. */
    STORE_KEY_MISMATCH,
    STORE_NERRS
};

struct store;

struct store_coupon {
    char code[STORE_CODE_MAX + 1]; /* NUL-terminated */
    uint8_t type;                  /* enum store_type */
    uint8_t kind;                  /* enum store_kind */
    int64_t discount;              /* hundredths */
    int64_t expires;               /* seconds since the epoch; valid while now <= expires */
    uint32_t uses;                 /* uses counted and not undone */
    uint32_t max_uses;
    uint32_t held;                 /* holds live at the operation's time: uses + held <= max_uses;
                                      a hold past its end counts for nothing, removed or not */
    uint64_t seq;                  /* upload order, set by the store */
    char user[STORE_USER_MAX + 1]; /* assigned user, "" when unassigned */
    int64_t assigned_at;           /* 0 when unassigned */
};

struct store_type_counters {
    uint64_t created;    /* coupons uploaded */
    uint64_t assigned;   /* assignments made */
    uint64_t redeemed;   /* single uses counted */
    uint64_t purged;     /* coupons deleted by purges */
    uint64_t available;  /* unassigned and not expired at the time asked */
    uint64_t held;       /* live holds now */
    uint64_t unredeemed; /* uses given back by UNREDEEM (redeemed keeps counting them) */
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
    int64_t undone; /* when UNREDEEM undid it, 0 while it stands */
};

/* A hold: one use of a coupon reserved for a user until `expires`. */
struct store_hold {
    uint64_t seq; /* 1, 2, ... in the order holds were made; never reused */
    int64_t expires;
};

/* A request id: a write carrying one is done once. The id is the client's, within a scope
 * (the key name the client authenticated as, "" for none); the fingerprint tells a retry of
 * the same request (same verb and arguments) from another request reusing the id. (Added with
 * the LMDB backend:) RID_GET of an id stored with another fingerprint is STORE_ID_CONFLICT as
 * well, its outputs unset. */
struct store_rid {
    char scope[STORE_SCOPE_MAX + 1];
    char id[STORE_RID_MAX + 1]; /* "" for none */
    uint8_t fp[STORE_FP_BYTES];
};

/* What EXPORT reads. */
enum store_export_kind {
    STORE_EXPORT_COUPONS = 0,  /* every coupon (of in.type when in.any_type is false), code order */
    STORE_EXPORT_HISTORY,      /* redemptions with seq > in.after, seq order */
    STORE_EXPORT_CODE_HISTORY, /* the redemptions of coupon in.code, seq order */
    STORE_EXPORT_AUDIT         /* audit records with seq > in.after, seq order, into in.audit */
};

/* The audit chain: its head, and its records as EXPORT reads them (store/audit.h encodes and
 * verifies them). */
#define STORE_AUDIT_HASH_BYTES 32   /* BLAKE2b-256 */
#define STORE_AUDIT_REC_MAX    2048 /* bytes of an encoded record: the largest note fits */
#define STORE_AUDIT_NAME_MAX   32   /* bytes of a note's verb or a field's name */
#define STORE_AUDIT_VALUE_MAX  128  /* bytes of a note's field value */
#define STORE_AUDIT_NOTE_MAX   8    /* fields of a note */

struct store_audit_head {
    uint64_t seq;                         /* the last record's, 0 while the chain is empty */
    uint8_t hash[STORE_AUDIT_HASH_BYTES]; /* its hash; 32 zero bytes while the chain is empty */
};

struct store_audit_row {
    uint64_t seq;
    uint8_t prev[STORE_AUDIT_HASH_BYTES]; /* the stored hash of record seq - 1 (zeros for 1) */
    uint8_t hash[STORE_AUDIT_HASH_BYTES]; /* the stored hash of this record */
    size_t len;
    uint8_t rec[STORE_AUDIT_REC_MAX]; /* the encoded record as stored, len bytes */
};

/* An administrative record (a key change): a verb and up to STORE_AUDIT_NOTE_MAX fields. The
 * verb is 1 to STORE_AUDIT_NAME_MAX of A-Z 0-9 _ . -; a name 1 to STORE_AUDIT_NAME_MAX of
 * a-z 0-9 _ . and not one the record's line uses itself (seq time actor verb outcome prev
 * hash); a value 1 to STORE_AUDIT_VALUE_MAX bytes of printable ASCII without spaces. */
struct store_audit_note {
    char verb[STORE_AUDIT_NAME_MAX + 1];
    size_t n;
    struct {
        char name[STORE_AUDIT_NAME_MAX + 1];
        char value[STORE_AUDIT_VALUE_MAX + 1];
    } f[STORE_AUDIT_NOTE_MAX];
};

/* What an operation does. R: a read (store_read, or in a batch); W: a write (only in a batch). */
enum store_op_kind {
    STORE_OP_UPLOAD = 0, /* W: in.upload -> out.n_rejected, the rejects array */
    STORE_OP_ASSIGN,     /* W: in.type, in.user -> out.coupon */
    STORE_OP_REDEEM,     /* W: in.code, in.user -> out.coupon */
    STORE_OP_PURGE,      /* W: in.max -> out.count, out.more */
    STORE_OP_VALIDATE,   /* R: in.code, in.user -> out.coupon */
    STORE_OP_GET,        /* R: in.code -> out.coupon */
    STORE_OP_COUNTERS,   /* R: -> out.counters */
    STORE_OP_HISTORY,    /* R: in.after, in.rows/in.cap -> out.count rows */
    STORE_OP_CHECK,      /* R: full consistency check -> out.msg on STORE_CORRUPT */
    /* Version 2 (request ids, lookups, holds, undo, generation, export). */
    STORE_OP_HOLD,         /* W: in.code, in.user, in.until -> out.coupon, out.hold */
    STORE_OP_RELEASE,      /* W: in.hold_seq -> out.coupon */
    STORE_OP_UNREDEEM,     /* W: in.user, in.after (the redemption's seq) -> out.coupon */
    STORE_OP_GENERATE,     /* W: in.recs candidates, in.want -> in.chosen, out.count */
    STORE_OP_EXPIRE_HOLDS, /* W: holds with expires < now, at most in.max -> out.count, more */
    STORE_OP_EXPIRE_IDS,   /* W: request ids kept since before now, at most in.max -> count */
    STORE_OP_RID_GET,      /* R: in.rid -> out (the stored outcome), STORE_INVALID if none */
    STORE_OP_COUPONS,      /* R: in.user, in.coupons/in.cap -> out.count (all), rows newest first */
    STORE_OP_EXPORT,       /* R: in.export, in.cursor, rows -> out.count rows, out.more */
    STORE_OP_NOOP,         /* R: nothing; in a batch it completes once the writes before it are
                              durable (a client waits for its own writes this way) */
    /* The audit chain (see "Audit chain" below). */
    STORE_OP_AUDIT_NOTE, /* W: in.note -> an administrative record, and nothing else */
    STORE_OP_AUDIT_HEAD, /* R: -> out.audit, the chain's head */
    /* Backup and metrics. */
    STORE_OP_BACKUP, /* R: in.path -> out.count (bytes written); store_read only, see below */
    /* Limits shared by nodes (see "MEGADEAL grants shared by nodes" below). */
    STORE_OP_GRANT_DONE, /* W: in.grant: that grant's slot is closed; changes no coupon */
    STORE_NOPS
};

/* True for the kinds that change the store (allowed only in a batch). */
bool store_op_writes(enum store_op_kind kind);

struct store_op {
    enum store_op_kind kind;
    int64_t now; /* the time the operation happens at */

    /* inputs, as the kind needs them */
    struct {
        enum store_type type;
        char user[STORE_USER_MAX + 1];
        char code[STORE_CODE_MAX + 1];
        int64_t min_expires; /* ASSIGN: only a coupon with expires >= this (and >= now) */
        int64_t until;       /* HOLD: when the hold ends */
        uint64_t hold_seq;   /* RELEASE; REDEEM: redeem with this live hold (0: none) */
        /* ASSIGN, REDEEM, UPLOAD, HOLD, RELEASE, UNREDEEM, GENERATE: done at most once for
         * rid.id (see struct store_rid). A write whose id is stored changes nothing and
         * completes with out.replayed and the outputs of its first run; one whose id is stored
         * with another fingerprint is STORE_ID_CONFLICT. The id is stored with the outcome, in
         * the same transaction, only when the write succeeds. Kept until EXPIRE_IDS. */
        struct store_rid rid;
        /* ASSIGN of a MEGADEAL grant: the task, kept with the request id so that a retry after
         * a restart can name it (out.task_seq, out.task_stamp). */
        uint64_t task_seq;
        int64_t task_stamp;
        /* ASSIGN of a MEGADEAL grant: the limits every node of the store shares (see "MEGADEAL
         * grants shared by nodes" below); rate 0: none. */
        struct store_limit {
            unsigned rate;        /* grants in any window_ms, at most */
            unsigned concurrency; /* grants open (made and not closed by GRANT_DONE), at most */
            int64_t window_ms;
        } limit;
        uint64_t grant; /* GRANT_DONE: the grant whose slot closes (an ASSIGN's out.grant) */
        size_t max;     /* PURGE: coupons deleted at most */
        uint64_t after; /* HISTORY: redemptions with seq > after */
        /* UPLOAD: the records, each with a valid code, type, kind, discount (> 0; <= 10000 for
         * PERCENT), max_uses (1..1000000) and uses == 0; seq, user, assigned_at are ignored.
         * With check_only, or when any record is rejected, nothing is stored. Up to rej_cap
         * rejects are written to `rejects` in batch order. */
        const struct store_coupon *recs;
        size_t n;
        bool check_only;
        struct store_reject *rejects;
        size_t rej_cap;
        /* GENERATE: the first `want` of the `n` candidate records (`recs`, as for an upload)
         * whose codes neither exist nor repeat an earlier candidate are stored, all or none;
         * their indexes go to chosen[want]. Fewer than `want` usable: STORE_REJECTED, nothing
         * stored (the caller draws new candidates). */
        size_t want;
        size_t *chosen;
        /* HISTORY, EXPORT of redemptions: room for `cap` rows */
        struct store_redemption *rows;
        size_t cap;
        /* COUPONS, EXPORT of coupons: room for `cap` coupons */
        struct store_coupon *coupons;
        /* EXPORT: what, and where it stands. The first call (cursor NULL) takes a consistent
         * snapshot; each call fills up to `cap` rows and sets out.cursor and out.more; the
         * caller passes out.cursor back as in.cursor for the next rows, until out.more is false,
         * when the store has released it. STORE_OP_EXPORT with in.close releases a cursor early
         * (a client went away). Other clients are served between calls. */
        enum store_export_kind export_kind;
        bool any_type;
        bool close;
        void *cursor;
        /* EXPORT, first call: also count the rows the whole export gives, in its snapshot, into
         * out.total (a reply in the Redis wire form says its length first). */
        bool count;
        /* GENERATE (and RID_GET of a GENERATE's id): room for `want` codes, which a successful
         * GENERATE fills with the codes it stored, in the order of chosen[]. A replay fills them
         * with the codes of the first run and leaves chosen[] alone: the retry's candidates are
         * new, so no index into them names a stored code. NULL: not filled; a replay then fails
         * with STORE_IO, having nowhere to give the codes. */
        char (*codes)[STORE_CODE_MAX + 1];
        /* Every write: the key name that made it (the scope of its request ids), "" for none,
         * the admin key, or the server itself; its audit record names it. */
        char actor[STORE_SCOPE_MAX + 1];
        /* AUDIT_NOTE: the record's verb and fields (a bad one: STORE_INVALID, nothing done). */
        const struct store_audit_note *note;
        /* EXPORT of audit records: room for `cap` rows */
        struct store_audit_row *audit;
        /* BACKUP: an existing directory, NUL-terminated (see the notes at the end). */
        const char *path;
    } in;

    /* outputs, set when the operation completes */
    enum store_err err;
    struct {
        /* ASSIGN, REDEEM, VALIDATE, GET: the coupon as stored after the operation; on
         * EXHAUSTED/EXPIRED (and VALIDATE's, REDEEM's INVALID of a coupon assigned to someone
         * else: not filled) the coupon as found. */
        struct store_coupon coupon;
        struct store_counters counters; /* COUNTERS */
        uint64_t count;          /* PURGE: deleted; HISTORY: rows filled; BACKUP: bytes written */
        bool more;               /* PURGE: expired coupons are left */
        size_t n_rejected;       /* UPLOAD: all rejected records */
        char msg[STORE_ERR_MAX]; /* any error: a one-line reason for logs */
        bool replayed;           /* the request id was stored: nothing was done again */
        struct store_hold hold;  /* HOLD: the hold made */
        uint64_t redemption;     /* REDEEM: the redemption's seq */
        int64_t done_at;         /* RID_GET: when the first run was; replays: too */
        enum store_op_kind rid_kind; /* RID_GET: the kind of the write that stored the id */
        uint64_t task_seq;           /* RID_GET of a MEGADEAL grant: the task */
        int64_t task_stamp;
        void *cursor;   /* EXPORT: pass back as in.cursor */
        uint64_t total; /* EXPORT with in.count, first call: rows of the whole export */
        struct store_audit_head audit; /* AUDIT_HEAD */
        uint64_t grant; /* ASSIGN with in.limit: the grant's open slot, 0 when none was taken */
    } out;

    /* completion of store_read, on the loop's thread (not called for a batch's operations) */
    void (*done)(struct store_op *op);
    void *arg;
    struct store_op *next; /* the batch's list; the store's while submitted */
};

/* A batch: operations committed together. */
struct store_batch {
    struct store_op *head, **tail;
    size_t n;
    size_t writes; /* operations of writing kinds */
    /* completion, on the loop's thread: err is STORE_OK when the batch is durable, and each
     * operation has its own outcome; else nothing of it was stored, and every operation's err
     * is `err` too (its other outputs mean nothing). */
    void (*done)(struct store_batch *b, enum store_err err);
    void *arg;
    char msg[STORE_ERR_MAX]; /* on failure: a one-line reason for logs */
};

/* How to open. */
enum store_open_mode {
    STORE_OPEN_CREATE = 0, /* open, creating an empty store when there is none */
    STORE_OPEN_EXISTING    /* open read-only what exists, create nothing (coupond --check) */
};

struct store_config {
    struct ev_loop *loop; /* completions are delivered on the thread running this loop */
    enum store_open_mode mode;
    uint64_t map_size; /* LMDB: map size in bytes, 0 for the backend's default */
    /* PostgreSQL: this node's name (coupond --node-name), 1 to STORE_NODE_MAX bytes; NULL or ""
     * for the host name. Each node keeps its own counter rows under it, so two nodes sharing a
     * store must have different names. LMDB ignores it. */
    const char *node_name;
    /* A fingerprint of the node's task key (1 to STORE_KEY_FP_MAX bytes of printable ASCII;
     * NULL: none). A store several nodes can open records the first one it is opened with
     * (mode CREATE) and refuses another with STORE_KEY_MISMATCH, errbuf naming both, so that
     * every node verifies every task id. A store one node opens alone (LMDB, whose data dir
     * holds the key itself) ignores it. */
    const char *task_key_fp;
};

#define STORE_KEY_FP_MAX 64 /* bytes of a key fingerprint: a 32-byte hash in hex fits */

#define STORE_NODE_MAX 64 /* bytes in a node name: a host name fits (HOST_NAME_MAX is 64) */

/* Opens the store at `uri`: `lmdb:DIR` (or a plain path, taken as an LMDB directory that must
 * exist), or a PostgreSQL URI (`postgresql://...` or `postgres://...`, anything libpq reads,
 * such as several hosts with target_session_attrs=read-write). On failure returns the error,
 * *out is NULL and errbuf (when not NULL) holds a one-line reason naming the place.
 * STORE_NO_STORE: mode EXISTING and nothing there. PostgreSQL: open connects and creates or
 * checks the schema before it returns (the loop is not running yet); STORE_UNAVAILABLE when the
 * database cannot be reached. Afterwards the backend reconnects by itself: while it cannot
 * reach PostgreSQL, reads and batches complete promptly with STORE_UNAVAILABLE. */
enum store_err store_open(const char *uri, const struct store_config *cfg, struct store **out,
                          char *errbuf, size_t errlen);

/* Waits for a batch in flight (its callbacks do not run), then closes. NULL is a no-op. */
void store_close(struct store *st);

/* The backend's name: "lmdb" or "postgresql". */
const char *store_backend(const struct store *st);

/* How long, in microseconds, the group commit should hold a batch for more members by default
 * (server/group.h): the backend's choice, from what one of its batches costs. LMDB: 0 (a
 * batch's cost is its two flushes, which the disk runs back to back, so the next batch is best
 * started at once); PostgreSQL: PG_COMMIT_DELAY_US in store/pg/pg_store.h. */
unsigned store_commit_delay(const struct store *st);

/* One-line text for an error code ("map full", ...). */
const char *store_strerror(enum store_err e);

/* Runs a read now, against the last committed state (see the top of this file). */
void store_read(struct store *st, struct store_op *op);

/* Empties a batch; `done` and `arg` are the caller's to set. */
void store_batch_init(struct store_batch *b);

/* Appends an operation to a batch not yet committed. */
void store_batch_add(struct store_batch *b, struct store_op *op);

/* Commits a non-empty batch (see the top of this file). The caller must not commit another
 * batch before this one completed. */
void store_commit(struct store *st, struct store_batch *b);

/* Drops the read snapshot, so the engine can reuse old pages; the next read takes a new one.
 * Call it when idle (the server: once per loop iteration). */
void store_release(struct store *st);

/* Where the operations' comments above leave it open, what backends do and the server relies
 * on. Nothing above changes meaning.
 *
 * - Replays. A replayed write (out.replayed) sets the outputs its reply is made of as its
 *   first run set them: ASSIGN, REDEEM, HOLD, RELEASE, UNREDEEM out.coupon; REDEEM
 *   out.redemption; HOLD out.hold (the server re-signs the hold id from it, so the same id is
 *   shown again); UPLOAD out.done_at (the server counts expired= at that time); GENERATE the
 *   first run's codes in in.codes (see in.codes).
 * - GENERATE. On success out.count = in.want.
 * - RID_GET. STORE_ID_CONFLICT when the id is stored with another fingerprint than
 *   in.rid.fp, as for a write. out.task_seq is 0 when the write that stored the id was not a
 *   MEGADEAL grant (an ASSIGN without in.task_seq).
 * - EXPIRE_IDS sets out.more as EXPIRE_HOLDS does (ids are left beyond in.max).
 * - EXPORT runs through store_read only (its cursor is a read of the loop's own). An EXPORT
 *   that fails has released its cursor (the caller passes it no more). A close (in.close)
 *   completes with STORE_OK and needs no other input. STORE_EXPORT_CODE_HISTORY takes in.code
 *   on its first call. A client that must see its own writes in an export starts the export
 *   once they are durable.
 * - BACKUP writes a compacted, consistent copy of the whole store into the existing directory
 *   in.path, as the files this backend opens as a store at that place, and makes the directory
 *   durable: on STORE_OK every regular file in it (the caller's too, written before) and the
 *   directory itself are synced, and out.count holds the bytes of the store's files. The copy
 *   is one snapshot, taken when it starts: every commit completed before store_read, perhaps
 *   one in flight (durable already, as an EXPORT's may show). It runs through store_read only,
 *   never in a batch; the copy may take minutes and goes on after store_read returns, reads and
 *   batches going on meanwhile, and the operation completes when it has ended. One backup at a
 *   time. A BACKUP that cannot start (another runs, a path too long, or a backend that cannot
 *   copy itself: PostgreSQL, whose out.msg names the engine's own tool) fails at once with
 *   STORE_IO. On failure, files may be left in in.path: the caller removes them. store_close
 *   waits for a backup in progress to end; its callback does not run.
 */

/* MEGADEAL grants shared by nodes. PROTOCOL.md counts the MEGADEAL limits (grants in any
 * window, grants in flight) over every node of a store at once. An ASSIGN with in.limit.rate > 0
 * is such a grant:
 * - A store several nodes can open (PostgreSQL) decides inside the write's transaction, under
 *   a lock that every node's grants take, on the store's own clock: when fewer than limit.rate
 *   grants were made in the last limit.window_ms and fewer than limit.concurrency are open, the
 *   ASSIGN runs as any other and opens a slot for its grant, named by out.grant (not 0), which
 *   stays open until a GRANT_DONE of it commits (the caller sends it once it has answered) or,
 *   for a node that died, for a lease of the backend's. Otherwise STORE_LIMITED: nothing done.
 *   Two nodes never both take the last slot. GRANT_DONE changes no coupon: it appends no audit
 *   record, takes no request id, and one of a slot already closed or gone is STORE_OK.
 * - A store only one node opens (LMDB: the data dir's lock) has the caller's own queue as the
 *   only place that counts grants (server/mega.c, with the same limits): it ignores in.limit,
 *   never answers STORE_LIMITED and leaves out.grant 0, which needs no GRANT_DONE. */

/* Audit chain. Every write that changes the store (UPLOAD, GENERATE, ASSIGN, REDEEM, HOLD,
 * RELEASE, UNREDEEM, PURGE, EXPIRE_HOLDS, EXPIRE_IDS, AUDIT_NOTE) appends exactly one record to
 * the chain, in the same transaction as its change: its sequence (1, 2, ... without gaps), its
 * time (op->now), in.actor, its verb, its arguments and its outcome, encoded as store/audit.h
 * says, and hash = BLAKE2b-256(the previous record's hash || the record), the first record's
 * previous hash being 32 zero bytes. A write that fails, is replayed (its request id was
 * stored), or changes nothing (a PURGE or expiry that deleted nothing, a check-only UPLOAD)
 * appends nothing. A batch's records are appended in the batch's order. The head (the last
 * record's seq and hash) is stored with the chain in the same transaction.
 * - PostgreSQL keeps one chain per node (store_config.node_name): the records of the writes
 *   that node committed. AUDIT_HEAD and EXPORT of audit records read that node's chain.
 * - AUDIT_HEAD in a batch sees the records of the writes before it in the batch.
 * - EXPORT of audit records (STORE_EXPORT_AUDIT) gives the records as stored, bytes and
 *   hashes, without judging them: a record that does not decode or match its hash is for the
 *   verifier (audit.h) to name. */

#endif
