/* cmd.h - executing requests. A request is started when its line arrives and is done when its
 * outcome is known: at once (PING), when the store answers (a read, or a write once its group
 * commit is durable), or when a service calls back (WAIT, PURGE). Its reply is written later,
 * in order, by whoever holds the connection (session.c), through cmd_reply. The verbs, their
 * arities and which need AUTH are protocol/'s proto_verbs[]; this module adds what only the
 * server knows: the handlers and their dispatch table.
 *
 * Streaming replies. A reply that can be long (COUPONS, COUPON, EXPORT, GENERATE's codes) is
 * written in parts. Its request is done when its first part is ready; cmd_reply writes what is
 * ready, about `room` bytes of it, and says whether the reply is complete. When it is not, the
 * request stays at the head of the session's queue (replies after it wait, in order), and the
 * session calls cmd_more once the connection's output has room again (conn.h, on_drain): the
 * rows left are then ready at once, or the next chunk is read from the store (an EXPORT reads a
 * consistent snapshot through a cursor, STORE_EXPORT_CHUNK rows a call), and the request is
 * done again when it arrives. So a reply of a million lines never holds more than a chunk in
 * memory, never stalls the loop, and goes no faster than the client reads. */
#ifndef COUPOND_CMD_H
#define COUPOND_CMD_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "compat.h"
#include "backup.h"
#include "guess.h"
#include "log.h"
#include "megadeal.h"
#include "proto.h"
#include "purge.h"
#include "reply.h"
#include "stat.h"
#include "store.h"

struct auditkey;
struct cmd_stream;
struct group;
struct guess;
struct hold_key;
struct log;
struct opts;
struct upload;

#define CMD_AUTH_TRIES 3   /* wrong keys before the connection is closed */
#define CMD_MSG_MAX    256 /* an error reply's message */
/* Finished requests kept for reuse instead of freed: a request is about 4 KiB and every line
 * needs one, so this saves a malloc and a free per request at the rates of a busy server while
 * holding at most 4 MiB. */
#define CMD_SPARE_MAX 1024
/* Rows read from the store per EXPORT call (and COUPON's redemptions): about 250 KiB of
 * buffer, a millisecond or two of store work per call, and a few hundred calls for 100,000
 * coupons. The rows are written to the connection in parts of about CONN_OUT_SOFT anyway. */
#define CMD_EXPORT_CHUNK 1000
/* Audit records read per EXPORT AUDIT call: a record is up to about 2 KiB, so the same quarter
 * MiB of buffer as CMD_EXPORT_CHUNK's. */
#define CMD_AUDIT_CHUNK 100

/* MEGADEAL admissions that share one count of the coupons left (cmd.c's mega_admit). */
struct cmd_admit {
    struct store_op op;           /* the COUNTERS read in flight */
    struct cmd_req *head, **tail; /* the requests waiting for it, in arrival order */
    uint64_t batches;             /* the group's batches completed when it was sent */
    bool busy;                    /* op is in flight */
};

/* What commands reach; the server fills it once. */
struct cmd_env {
    struct ev_loop *loop;
    const struct opts *opts;
    struct store *store;
    struct group *group;
    struct megadeal *mega;
    struct purge *purge;
    struct backup *backup;
    struct log *log;
    struct access_keys keys; /* admin.key and the keys file's; the server reloads them */
    struct guess *guess;     /* the code-guessing defence's addresses */
    const struct hold_key *hold_key;
    const struct auditkey *audit_key; /* signs the audit chain's head (AUDIT) */
    /* The server's own values for STATS (uptime, connections, commits, ...). */
    void (*server_stats)(void *arg, struct proto_stats *out);
    void *server_stats_arg;
    uint64_t commands;     /* request lines executed */
    struct cmd_req *spare; /* finished requests kept for reuse */
    size_t n_spare;
    struct cmd_admit admit;
};

/* Every STATS value: the store's counters `c` (a STORE_OP_COUNTERS read's), the server's own
 * values and the MEGADEAL service's. STATS and the metrics exporter both read them here. */
void cmd_stats(const struct cmd_env *env, const struct store_counters *c, struct proto_stats *out);

/* Frees the requests kept for reuse (the server's end). */
void cmd_env_release(struct cmd_env *env);

_Static_assert(KEYRING_NAME_MAX <= STORE_SCOPE_MAX, "a key name is a request id's scope");

/* One connection's protocol state that commands read and change; the session owns it. */
struct cmd_client {
    /* What the Redis clients' commands show and change (compat.h): its number, address, start,
     * RESP version and the names a client gave. */
    struct compat_client wire;
    /* Who it is: its key's name is the scope of its request ids and the actor of its writes. */
    struct access_who who;
    unsigned auth_failures;
    struct guess_conn guess; /* its ERR INVALID answers (guess.h) */
    /* Writes of this client not yet durable: its reads go into the group behind them, so a
     * client always reads its own writes. */
    unsigned writes_unfinished;
};

/* A BACKUP: its directory, copied from the line, and its ticket with the backup service. */
struct cmd_backup {
    struct backup_ticket ticket;
    char dir[PROTO_PATH_MAX + 1];
};

/* A request. The session reads the public part; the rest is cmd.c's. */
struct cmd_req {
    /* public */
    struct cmd_req *next;                /* the session's queue */
    void (*complete)(struct cmd_req *r); /* the session's: the reply may be written now */
    void *owner;                         /* the session */
    bool done;                           /* the outcome is known: cmd_reply may run */
    bool blocks;                         /* no further line may start until this one is done */
    bool closes;                         /* the connection closes after this reply */
    bool streaming;                      /* part of its reply is written; more follows */
    uint64_t records_left;               /* UPLOAD: the next lines are its records */
    enum proto_form form; /* its reply's: the line form for a line, the client's RESP else */

    /* cmd.c's own */
    struct cmd_env *env;
    struct cmd_client *client; /* NULL once the connection is gone */
    const struct cmd_entry *entry;
    void (*after)(struct cmd_req *r); /* runs when the store operation completes */
    struct proto_request preq;
    const char *verb; /* for the log line */
    double started;
    enum proto_err err;
    char msg[CMD_MSG_MAX];
    struct log_note note; /* its log line's extra fields */
    bool parsed;          /* preq holds a parsed request */
    bool counted_write;   /* counted in client->writes_unfinished */
    bool op_busy;         /* the store operation is submitted and not completed */
    bool logged_reads;    /* a read that is logged only with --log-reads */
    bool logged;          /* its log line is written */
    struct store_op op;
    struct upload *upload;
    enum proto_err drop_err; /* UPLOAD refused: the error once its records are dropped */
    ev_timer delay_w;        /* a wrong AUTH's delay */
    struct megadeal_ticket mega_ticket;
    struct purge_ticket purge_ticket;
    bool ticket_held;           /* one of the tickets is with its service */
    struct cmd_stream *stream;  /* a long reply's rows and where it stands */
    struct cmd_req *admit_next; /* waiting for the MEGADEAL admission's count (cmd_admit) */
    struct compat_req compat;   /* the commands of Redis clients (compat.h) */
    union {
        struct megadeal_view mega;
        struct proto_stats stats;
        struct cmd_backup backup;
    } u;
};

/* A new request of `client`, or NULL when out of memory. */
struct cmd_req *cmd_req_new(struct cmd_env *env, struct cmd_client *client,
                            void (*complete)(struct cmd_req *r), void *owner);

/* The session is done with the request: it is freed now, or, when the store or a service
 * still holds it, left to free itself when that completes (its reply then goes nowhere). */
void cmd_req_free(struct cmd_req *r);

/* Starts a request line (as framed, not blank). */
void cmd_line(struct cmd_req *r, const char *line, size_t len);

/* Starts a RESP request (frame.h): its first `nargs` of `argc` arguments, answered in the
 * client's RESP version. An UPLOAD takes the records among them at once; the rest follow with
 * cmd_record while r->records_left > 0. The arguments are read before this returns. */
void cmd_args(struct cmd_req *r, const struct proto_arg *args, size_t nargs, size_t argc);

/* A RESP request the framer refused (frame.h's PROTO_FRAME_RESP_ERROR): answered with `err`
 * and `why`; when `fatal`, the connection closes after that reply. */
void cmd_frame_error(struct cmd_req *r, enum proto_err err, const char *why, bool fatal);

/* A line over PROTO_MAX_LINE: ERR TOO_LONG. */
void cmd_too_long(struct cmd_req *r);

/* A first line that speaks HTTP: ERR BAD_REQUEST, then the close. */
void cmd_http(struct cmd_req *r);

/* One record of an UPLOAD (r->records_left > 0): a line, or in RESP an argument (a null one
 * given as ""); NULL for one over the limit. */
void cmd_record(struct cmd_req *r, const char *line, size_t len);

/* Writes the reply of a done request, or its next part: at least one line, and for a long
 * reply more while fewer than `room` bytes went out. True when the reply is complete; false
 * when more follows (then call cmd_more when there is room again). */
bool cmd_reply(struct cmd_req *r, struct proto_out *o, uint64_t room);

/* A long reply may go on: the rest of its rows are ready at once (r->done stays true), or the
 * next chunk is asked of the store: r->done is false until it arrives, and r->complete runs then
 * (possibly before cmd_more returns). */
void cmd_more(struct cmd_req *r);

#endif
