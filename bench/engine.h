/* engine.h - the load loop of coupond-bench: N connections on one epoll loop, each keeping up
 * to P flows in flight. A workload says what a flow sends and judges every reply; the engine
 * times each flow from its first command to its last reply and counts every error. */
#ifndef COUPOND_BENCH_ENGINE_H
#define COUPOND_BENCH_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bconn.h"
#include "hist.h"
#include "proto.h"

#define ENGINE_PIPELINE_MAX 1024 /* flows in flight per connection */
#define ENGINE_EVENTS       512  /* epoll events taken per wait */
#define ENGINE_TICK_MS      20   /* epoll wait: how often time limits are checked */
#define ENGINE_DRAIN_S      30.0 /* after the last flow started, how long replies may take */
#define ENGINE_SAMPLE_LEN   200  /* characters kept of one sample error line */
/* Error classes: one per protocol error code, then these. */
#define ENGINE_ERR_BAD_REPLY   PROTO_NERRS       /* an OK reply that is wrong (see workload) */
#define ENGINE_ERR_LOST        (PROTO_NERRS + 1) /* no reply: the connection was lost */
#define ENGINE_ERR_UNSOLICITED (PROTO_NERRS + 2) /* a reply with no request waiting for it */
#define ENGINE_ERR_CLASSES     (PROTO_NERRS + 3)

/* One flow: a sequence of commands on one connection, one in flight at a time. */
struct engine_flow {
    uint64_t id;      /* 0, 1, 2, ... across all connections of a run */
    uint64_t t_start; /* monotonic ns when its first command was queued */
    unsigned step;    /* the workload's step; 0 for the first command */
    char code[PROTO_CODE_MAX + 1];
    char task[PROTO_TASK_MAX + 1];
};

/* What the server's counters must have gained, from the OK replies the workload accepted. */
struct engine_tally {
    uint64_t created[PROTO_NTYPES];
    uint64_t assigned[PROTO_NTYPES];
    uint64_t redeemed[PROTO_NTYPES];
};

enum engine_next {
    ENGINE_FLOW_OK = 0, /* the flow is done and succeeded */
    ENGINE_FLOW_MORE,   /* the workload advanced f->step: send the next command */
    ENGINE_FLOW_FAIL    /* the flow failed: an ERR reply, or a wrong OK reply */
};

struct engine_workload {
    /* Queues the command for f's current step on c; false when out of memory. */
    bool (*send)(void *ctx, const struct engine_flow *f, struct bconn *c);
    /* Judges the status line answering f's current step (data lines before it are counted by
     * the engine, not passed). Adds what an OK changed on the server to *t. On FAIL with an
     * OK line, the engine counts a bad reply. */
    enum engine_next (*reply)(void *ctx, struct engine_flow *f, const char *line, size_t len,
                              struct engine_tally *t);
    void *ctx;
};

struct engine_params {
    const struct sockaddr *addr;
    socklen_t addrlen;
    const struct bconn_tls *tls; /* NULL: plain TCP; else every connection speaks TLS */
    unsigned conns;
    unsigned pipeline;   /* flows in flight per connection, 1..ENGINE_PIPELINE_MAX */
    uint64_t flows;      /* flows to run; 0 with seconds > 0: as many as the time allows */
    double seconds;      /* no flow starts after this; 0: no time limit */
    double hold_seconds; /* with flows == 0 and seconds == 0: keep the connections idle */
    const char *key;     /* when not NULL, every connection sends AUTH first (not timed) */
    /* Called once every connection is up (and authenticated), before the clock starts. When
     * it returns false the run does not take place: engine_run returns false with its reason,
     * which ready wrote into `why` (at most why_len bytes). */
    bool (*ready)(void *arg, char *why, size_t why_len);
    void *ready_arg;
};

struct engine_result {
    struct hist hist; /* latency of the flows that succeeded, ns */
    uint64_t started;
    uint64_t ok;
    uint64_t failed;
    uint64_t data_lines; /* data lines seen before status lines (e.g. REJECT) */
    uint64_t err[ENGINE_ERR_CLASSES];
    char sample[ENGINE_ERR_CLASSES][ENGINE_SAMPLE_LEN]; /* first line of each class */
    struct engine_tally tally;
    double seconds;      /* first command queued to last reply read */
    double cpu_seconds;  /* the bench's own CPU time meanwhile */
    unsigned conns_open; /* connections still open at the end */
    char why[256];       /* when engine_run returns false */
};

/* Runs the load. Returns true when the run took place (its errors are in *r), false when it
 * could not (cannot connect, AUTH refused, out of memory), with the reason in r->why. */
bool engine_run(const struct engine_params *p, const struct engine_workload *w,
                struct engine_result *r);

/* Sum of r->err over every class. */
uint64_t engine_errors(const struct engine_result *r);

/* Name of an error class: the protocol code ("BUSY") or "BAD_REPLY", "LOST", "UNSOLICITED". */
const char *engine_err_name(unsigned cls);

/* Monotonic clock in nanoseconds. */
uint64_t engine_now_ns(void);

#endif
