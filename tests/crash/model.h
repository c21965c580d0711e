/* model.h - the crash test's oracle: every operation the clients attempted and which of them
 * were acknowledged, and from that what the server's store must hold after a kill -9.
 *
 * Two modes. Plain: writes carry no request id, and the checks after a restart find out which
 * unacknowledged writes were done. Exactly-once (CRASH_MODE=exactly-once): every write carries
 * a request id (id=w<op>), and after each restart every unacknowledged write is sent again
 * with its id until it is answered; the model is then exact again, and every id must have had
 * one outcome: a retry of a write that was done before the kill is answered with its first
 * reply and replayed=1, one that was not is done now, never both. That mode adds the checkout
 * writes HOLD, RELEASE, REDEEM hold= and UNREDEEM, whose outcomes the model predicts exactly.
 *
 * The objects are kept in growing arrays and named by their index:
 *   batch   one UPLOAD: codes "K<batch>-<i>" for i in 0..n-1, all of one type; a bulk batch
 *           (large, sent just before the kill) is expired already, so that it never adds
 *           candidates to the search for an unanswered REQUEST's coupon
 *   coupon  one code of a batch: who holds it, its acknowledged uses, unacknowledged REDEEMs
 *   user    one REQUEST (plain or MEGADEAL) has a user of its own, "u<user>", so that an
 *           unacknowledged REQUEST can be told apart from every other by VALIDATE
 *   op      one line of the operation log: attempted before it is sent, acknowledged (with the
 *           reply's result) when its reply has been read
 *   task    a MEGADEAL task id acknowledged as queued in the current cycle
 * A coupon, batch or user with an outcome that the kill left open is "pending" until the checks
 * after the next restart settle it; between two kills the model is exact. */
#ifndef CRASH_MODEL_H
#define CRASH_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define MODEL_NONE     UINT32_MAX /* "no batch, coupon, user, op or task" */
#define MODEL_CODE_MAX 32         /* "K<batch>-<i>" with 32-bit numbers, and the NUL */
#define MODEL_USER_MAX 16         /* "u<user>" with a 32-bit number, and the NUL */
#define MODEL_RID_MAX  16         /* "w<op>" with a 32-bit number, and the NUL */
#define MODEL_HISTORY  40         /* op log lines printed with a violation */
/* HOLD's seconds: a day, the most, so that no hold of a run expires by itself and every
 * outcome stays predictable. */
#define MODEL_HOLD_SECONDS 86400
#define MODEL_REPLAYED     " replayed=1"          /* what a replayed reply adds to its OK line */
#define MODEL_FAR_EXPIRY   "2099-12-31T23:59:59Z" /* no coupon of the test expires, */
#define MODEL_PAST_EXPIRY  "2000-01-01T00:00:00Z" /* but those of bulk uploads are expired */

enum crash_mode { MODE_PLAIN = 0, MODE_EXACTLY_ONCE };

/* Operations of the workload, as counted in the report. */
enum op_kind {
    OP_UPLOAD = 0, /* UPLOAD n + n records */
    OP_REQUEST,    /* REQUEST user [NONE|FREE|STANDARD] */
    OP_REDEEM,     /* REDEEM user code [hold=HID] */
    OP_MEGADEAL,   /* REQUEST user MEGADEAL */
    OP_WAIT,       /* WAIT task */
    OP_HOLD,       /* HOLD user code MODEL_HOLD_SECONDS (exactly-once mode) */
    OP_RELEASE,    /* RELEASE HID (exactly-once mode) */
    OP_UNREDEEM,   /* UNREDEEM user seq (exactly-once mode) */
    OP_NKINDS
};

struct op {
    uint32_t cycle;
    uint32_t target; /* batch (UPLOAD), user (REQUEST, MEGADEAL, WAIT), coupon (the others) */
    /* HOLD: the hold it makes; REDEEM: the hold it uses, or MODEL_NONE; RELEASE: the hold;
     * UNREDEEM: the redemption; else MODEL_NONE */
    uint32_t arg;
    uint16_t client;
    uint8_t kind;   /* enum op_kind */
    uint8_t result; /* enum proto_err of the reply, once acknowledged */
    uint8_t sends;  /* times sent: more than 1 when retried after a restart */
    bool acked;     /* its reply has been read (for the latest send) */
    bool answered;  /* it was acknowledged at least once (counted in the tally) */
    /* Exactly-once: the OK line of its outcome, without " replayed=1" (for a MEGADEAL REQUEST:
     * the grant's line), which a replay must repeat; NULL when it had none. Owned. */
    char *reply;
    /* REQUEST only, for judging ERR NO_COUPONS: coupons of its type that were certainly stored
     * and free when it was sent, and how many REQUESTs of the type could have taken one before
     * it: those in flight when it was sent, and those sent after it (counted at the reply). */
    uint32_t free_at_send;
    uint32_t rivals_at_send;
    uint64_t started_at_send;
};

enum batch_state {
    BATCH_PENDING = 0, /* sent, no reply: the next restart tells whether it is stored */
    BATCH_ACKED,       /* OK uploaded=n: must be wholly stored; not yet probed after a kill */
    BATCH_PRESENT,     /* found wholly stored after a restart */
    BATCH_ABSENT,      /* unacknowledged and found wholly absent after a restart */
    BATCH_REFUSED      /* answered with an error: nothing was stored */
};

struct batch {
    uint32_t first; /* index of its first coupon */
    uint32_t n;
    uint32_t op;
    uint8_t type;  /* enum proto_type */
    uint8_t state; /* enum batch_state */
    bool seen;     /* a reply named one of its codes, so it must be stored */
    bool expired;  /* a bulk batch, expired when uploaded: never assigned */
};

struct coupon {
    uint32_t batch;
    uint32_t user;      /* holder, or MODEL_NONE while the model knows of no assignment */
    uint32_t uses;      /* acknowledged, or found after a restart */
    uint32_t touched;   /* last cycle with an assignment or REDEEM of it (checked after it) */
    uint32_t slot;      /* its place in the holder's client's owned list, or MODEL_NONE */
    uint32_t live_hold; /* exactly-once: its live hold (one at most), or MODEL_NONE */
    uint32_t last_use;  /* exactly-once: its latest redemption not undone, or MODEL_NONE */
    uint16_t max_uses;
    uint16_t undone;  /* uses given back by UNREDEEM */
    uint8_t type;     /* enum proto_type */
    uint8_t kind;     /* enum proto_kind, as uploaded */
    uint8_t discount; /* whole units, as uploaded */
    uint8_t unacked;  /* REDEEMs sent and never answered, since the last restart (plain) */
    bool busy;        /* an op of it is in flight (exactly-once: until it is answered) */
};

enum hold_state {
    HOLD_PENDING = 0, /* HOLD sent, not answered */
    HOLD_LIVE,        /* held: one use reserved */
    HOLD_ENDED,       /* used by REDEEM or released */
    HOLD_REFUSED      /* the HOLD was answered with an error */
};

struct hold {
    uint32_t coupon;
    uint8_t state; /* enum hold_state */
    char id[PROTO_HOLD_MAX + 1];
};

/* One use counted by REDEEM (exactly-once mode), for UNREDEEM. */
struct redemption {
    uint64_t seq;
    uint32_t coupon;
    uint32_t prev; /* the coupon's redemption not undone before this one, or MODEL_NONE */
    bool undone;
};

enum user_state {
    USER_PENDING = 0, /* REQUEST sent, no reply: may or may not hold a coupon */
    USER_QUEUED,      /* MEGADEAL task queued, its grant not (yet) acknowledged */
    USER_ASSIGNED,    /* holds `coupon` */
    USER_NONE         /* refused, failed, or found without a coupon after a restart */
};

struct user {
    uint32_t coupon;
    uint32_t op;     /* its latest op */
    uint32_t req_op; /* the REQUEST (or MEGADEAL REQUEST) that made it, whose id it keeps */
    uint32_t cycle;  /* the last cycle that changed it */
    uint32_t task;   /* index into the cycle's tasks, or MODEL_NONE */
    uint16_t client;
    uint8_t type;  /* enum proto_type */
    uint8_t state; /* enum user_state */
};

struct task {
    uint32_t user;
    char id[PROTO_TASK_MAX + 1];
};

/* Deterministic pseudo-random numbers (splitmix64): the same seed, the same choices. */
struct rng {
    uint64_t s;
};

/* What one client keeps from cycle to cycle. */
struct mclient {
    struct rng rng;
    uint32_t *owned; /* coupons it holds and may REDEEM */
    size_t n_owned, cap_owned;
};

/* Totals for the report. */
struct tally {
    uint64_t attempted[OP_NKINDS];
    uint64_t acked[OP_NKINDS];
    uint64_t landed[OP_NKINDS];   /* unacknowledged ops found done after the restart */
    uint64_t vanished[OP_NKINDS]; /* unacknowledged ops found without a trace */
    uint64_t idle_landed;         /* tasks queued at the kill, no WAIT sent yet: granted */
    uint64_t idle_vanished;       /* the same: lost with the queue */
    uint64_t checks;              /* invariant evaluations */
    uint64_t violations;          /* failed ones */
    uint64_t internal;            /* ERR INTERNAL replies (allowed: "nothing was changed") */
    /* exactly-once mode */
    uint64_t retried[OP_NKINDS];  /* sends of a write again with its id, after a restart */
    uint64_t replayed[OP_NKINDS]; /* retries answered with replayed=1: done before the kill */
    uint64_t afresh[OP_NKINDS];   /* retries answered without: done only now */
    uint64_t replay_checks;       /* acknowledged writes sent again to see their replay */
};

struct model {
    uint64_t seed;
    enum crash_mode mode;
    uint32_t cycle;
    struct batch *batches;
    struct coupon *coupons;
    struct user *users;
    struct op *ops;
    struct task *tasks; /* of the current cycle */
    struct hold *holds;
    struct redemption *redemptions;
    size_t n_batches, n_coupons, n_users, n_ops, n_tasks, n_holds, n_redemptions;
    size_t cap_batches, cap_coupons, cap_users, cap_ops, cap_tasks, cap_holds, cap_redemptions;
    int64_t far_expiry, past_expiry; /* the expiry of ordinary and of bulk (expired) coupons */
    struct mclient *clients;
    unsigned n_clients;
    /* Per type, kept up to date by the workload: */
    /* (free: unassigned and unexpired) */
    uint32_t free_acked[PROTO_NTYPES];    /* free coupons of acknowledged uploads */
    uint32_t pool[PROTO_NTYPES];          /* free coupons of uploads not known to be absent */
    uint32_t in_flight[PROTO_NTYPES];     /* REQUESTs (plain) sent and not answered */
    uint64_t started[PROTO_NTYPES];       /* REQUESTs (plain) sent in all */
    size_t probe_cursor, validate_cursor; /* where the rotating re-checks go on */
    size_t cycle_op0, cycle_user0;        /* the first op and user of the current cycle */
    struct tally tally;
};

/* Sets up an empty model of `mode` for `n_clients` clients; the clients' generators derive
 * from `seed`. Fails the test when out of memory. */
void model_init(struct model *m, enum crash_mode mode, uint64_t seed, unsigned n_clients);

/* Frees what model_init and the model's growth allocated. */
void model_free(struct model *m);

/* Random numbers: the next 64 bits, and a number in 0..n-1 (n > 0). */
uint64_t rng_next(struct rng *r);
uint32_t rng_below(struct rng *r, uint32_t n);

/* Appends an op (state attempted) and returns its index; counts it as attempted. */
uint32_t model_op_attempt(struct model *m, enum op_kind kind, unsigned client, uint32_t target);

/* Marks op `op` acknowledged with the reply's result. */
void model_op_ack(struct model *m, uint32_t op, enum proto_err result);

/* Whether ops of `kind` are writes (they carry a request id in exactly-once mode). */
bool model_op_is_write(enum op_kind kind);

/* Marks op `op` as sent again with its id after a restart (exactly-once mode): unacknowledged
 * again until the reply comes, and counted as retried. */
void model_op_resend(struct model *m, uint32_t op);

/* Exactly-once mode, after the reply's handler: counts a retry's reply as replayed or afresh,
 * checks that a first send is never answered as a replay, and keeps the OK line `line` (without
 * " replayed=1") as the op's outcome unless it has one. */
void model_op_reply(struct model *m, uint32_t op, const char *line);

/* Keeps `line` (without " replayed=1") as op's outcome, replacing what it had: for a
 * MEGADEAL REQUEST, the grant. */
void model_op_keep(struct model *m, uint32_t op, const char *line);

/* The request id of op: "w<op>". */
void model_rid(uint32_t op, char out[MODEL_RID_MAX]);

/* Writes op's request into *buf (growing it, *cap its size): its line, and an UPLOAD's record
 * lines, each with its LF; writes carry " id=w<op>" in exactly-once mode. The same op always
 * gets the same bytes. Returns the length. Fails the test when out of memory. */
size_t model_op_request(const struct model *m, uint32_t op, char **buf, size_t *cap);

/* Appends a hold of coupon (state pending) and a redemption, and returns their index. */
uint32_t model_hold_add(struct model *m, uint32_t coupon);
uint32_t model_redemption_add(struct model *m, uint32_t coupon, uint64_t seq);

/* Appends a batch of `n` coupons of `type` (state pending), `expired` or not, and returns its
 * index; the coupons' max_uses are filled in by the caller. */
uint32_t model_batch_add(struct model *m, enum proto_type type, uint32_t n, bool expired);

/* Appends a user of `client` asking for `type` (state pending) and returns its index. */
uint32_t model_user_add(struct model *m, enum proto_type type, unsigned client);

/* Appends a task of the current cycle for `user` and returns its index. */
uint32_t model_task_add(struct model *m, uint32_t user, const char *id, size_t id_len);

/* Gives coupon `coupon` to `user`, who becomes its holder, and adds it to the user's client's
 * owned list; keeps free_acked and pool in step. */
void model_assign(struct model *m, uint32_t coupon, uint32_t user);

/* Removes a coupon from its holder client's owned list (it is used up). */
void model_disown(struct model *m, uint32_t coupon);

/* Moves a batch to `state`, keeping free_acked and pool in step. */
void model_batch_settle(struct model *m, uint32_t batch, enum batch_state state);

/* True when the batch's codes were acknowledged (or found) as stored. */
bool model_batch_stored(const struct batch *b);

/* Recomputes free_acked and pool from the records (after a restart settled everything). */
void model_recount(struct model *m);

/* Formats the code of a coupon, a user's name. */
void model_code(const struct model *m, uint32_t coupon, char out[MODEL_CODE_MAX]);
void model_user_name(uint32_t user, char out[MODEL_USER_MAX]);

/* Finds the coupon of a code as the server shows it; MODEL_NONE when it is not one of ours. */
uint32_t model_find_code(const struct model *m, const char *code);

/* Counts one invariant evaluation; when `ok` is false, prints the violation (with the seed and
 * cycle) and counts it. Returns `ok`. */
bool model_check(struct model *m, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints the op log lines that concern a coupon (its upload, its holder's request, its REDEEMs),
 * the last MODEL_HISTORY of them. */
void model_history(const struct model *m, uint32_t coupon);

/* Name of an op kind, for the report. */
const char *model_op_name(enum op_kind kind);

#endif
