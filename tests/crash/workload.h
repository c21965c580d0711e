/* workload.h - one cycle of the crash test: the model's clients run a random mix of UPLOAD,
 * REQUEST, REDEEM and MEGADEAL (REQUEST user MEGADEAL, then WAIT task) against coupond, over
 * non-blocking sockets driven by poll, until the server is killed with SIGKILL. */
#ifndef CRASH_WORKLOAD_H
#define CRASH_WORKLOAD_H

#include "bb.h"
#include "model.h"

#define WL_DEPTH_MAX 3 /* requests one client pipelines at most (1..3, drawn per cycle) */

/* One cycle's kill moment and bulk upload, drawn by the caller from the seed. */
struct workload_plan {
    int kill_after_ms;         /* SIGKILL this long after the clients start */
    int bulk_lead_ms;          /* the bulk UPLOAD is queued this long before the kill */
    unsigned bulk_client;      /* by this client, on top of its pipelined requests */
    uint32_t bulk_n;           /* codes in it */
    enum proto_type bulk_type; /* of this type; expired already (see model.h) */
    /* PostgreSQL is stopped at once (pg_ctl stop -m immediate) just before the kill, under the
     * clients' load; a reply ERR UNAVAILABLE then counts as no reply (the write may or may not
     * have happened). The caller starts it again. */
    bool stop_store;
};

/* Connects every client of the model to the running server `s` (AUTH included), then lets them
 * send and read for plan->kill_after_ms, one of them sending the plan's bulk UPLOAD shortly
 * before, kills the server with SIGKILL, and reads whatever replies the dead server's sockets
 * still deliver. Every op is logged in the model as attempted before its
 * bytes are queued for sending, and as acknowledged when its whole reply has been read; each
 * reply is checked against the model at once (a coupon handed out twice, a lost use, ...).
 * On return the server is dead and reaped, the clients are closed, and the ops without a reply
 * are left pending in the model for the checks after the restart. */
void workload_run(struct model *m, struct bb_server *s, const struct workload_plan *plan);

/* Exactly-once mode, on the restarted server: the clients send every write of the cycle that
 * was not answered before the kill again, with the same request id, and every MEGADEAL REQUEST
 * whose queued task the kill lost (then WAIT for the task it gets), until each is answered.
 * Each reply is checked as in the workload (the same outcome whether the server replays it or
 * does it only now), and counted as replayed or afresh. Afterwards the model is exact. */
void workload_retry(struct model *m, struct bb_server *s);

#endif
