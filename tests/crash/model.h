/* model.h - the crash test's oracle: every operation the clients attempted and which of them
 * were acknowledged, and from that what the server's store must hold after a kill -9.
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
#define MODEL_HISTORY  40         /* op log lines printed with a violation */

/* Operations of the workload, as counted in the report. */
enum op_kind {
    OP_UPLOAD = 0, /* UPLOAD n + n records */
    OP_REQUEST,    /* REQUEST user [NONE|FREE|STANDARD] */
    OP_REDEEM,     /* REDEEM user code */
    OP_MEGADEAL,   /* REQUEST user MEGADEAL */
    OP_WAIT,       /* WAIT task */
    OP_NKINDS
};

struct op {
    uint32_t cycle;
    uint32_t target; /* batch (UPLOAD), user (REQUEST, MEGADEAL, WAIT), coupon (REDEEM) */
    uint16_t client;
    uint8_t kind;   /* enum op_kind */
    uint8_t result; /* enum proto_err of the reply, once acknowledged */
    bool acked;
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
    uint32_t user;    /* holder, or MODEL_NONE while the model knows of no assignment */
    uint32_t uses;    /* acknowledged, or found after a restart */
    uint32_t touched; /* last cycle with an assignment or REDEEM of it (checked after it) */
    uint32_t slot;    /* its place in the holder's client's owned list, or MODEL_NONE */
    uint16_t max_uses;
    uint8_t type;    /* enum proto_type */
    uint8_t unacked; /* REDEEMs sent and never answered, since the last restart */
    bool busy;       /* a REDEEM of it is in flight */
};

enum user_state {
    USER_PENDING = 0, /* REQUEST sent, no reply: may or may not hold a coupon */
    USER_QUEUED,      /* MEGADEAL task queued, its grant not (yet) acknowledged */
    USER_ASSIGNED,    /* holds `coupon` */
    USER_NONE         /* refused, failed, or found without a coupon after a restart */
};

struct user {
    uint32_t coupon;
    uint32_t op;
    uint32_t task; /* index into the cycle's tasks, or MODEL_NONE */
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
};

struct model {
    uint64_t seed;
    uint32_t cycle;
    struct batch *batches;
    struct coupon *coupons;
    struct user *users;
    struct op *ops;
    struct task *tasks; /* of the current cycle */
    size_t n_batches, n_coupons, n_users, n_ops, n_tasks;
    size_t cap_batches, cap_coupons, cap_users, cap_ops, cap_tasks;
    struct mclient *clients;
    unsigned n_clients;
    /* Per type, kept up to date by the workload: */
    /* (free: unassigned and unexpired) */
    uint32_t free_acked[PROTO_NTYPES];    /* free coupons of acknowledged uploads */
    uint32_t pool[PROTO_NTYPES];          /* free coupons of uploads not known to be absent */
    uint32_t in_flight[PROTO_NTYPES];     /* REQUESTs (plain) sent and not answered */
    uint64_t started[PROTO_NTYPES];       /* REQUESTs (plain) sent in all */
    size_t probe_cursor, validate_cursor; /* where the rotating re-checks go on */
    struct tally tally;
};

/* Sets up an empty model for `n_clients` clients; the clients' generators derive from `seed`.
 * Fails the test when out of memory. */
void model_init(struct model *m, uint64_t seed, unsigned n_clients);

/* Frees what model_init and the model's growth allocated. */
void model_free(struct model *m);

/* Random numbers: the next 64 bits, and a number in 0..n-1 (n > 0). */
uint64_t rng_next(struct rng *r);
uint32_t rng_below(struct rng *r, uint32_t n);

/* Appends an op (state attempted) and returns its index; counts it as attempted. */
uint32_t model_op_attempt(struct model *m, enum op_kind kind, unsigned client, uint32_t target);

/* Marks op `op` acknowledged with the reply's result. */
void model_op_ack(struct model *m, uint32_t op, enum proto_err result);

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
