/* upload.h - the upload engine: cuts checked records into UPLOAD batches of at most the
 * server's limit, sends one batch at a time on a connection of its own, reads each reply,
 * measures progress, cancels between batches, and says exactly which batches were stored.
 * Each batch carries a request id derived from its records (reqid.h), so an upload run again
 * after a failure is resumed: coupond replays the batches it stored the first time and stores
 * the rest. It does no I/O: the caller owns the client, polls it, and hands the engine its
 * events. */
#ifndef COUPONCTL_UPLOAD_H
#define COUPONCTL_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "csvload.h"

#define UPLOAD_TEXT_MAX 240 /* bytes of one report line or kept reply, NUL included */

enum upload_batch_state {
    UPLOAD_BATCH_NOT_SENT = 0, /* not sent (yet) */
    UPLOAD_BATCH_SENDING,      /* sent or being sent, reply awaited */
    UPLOAD_BATCH_STORED,       /* OK uploaded=n */
    UPLOAD_BATCH_REPLAYED,     /* OK uploaded=n replayed=1: an earlier run stored it */
    UPLOAD_BATCH_REJECTED,     /* REJECT lines and ERR BAD_BATCH: nothing of it stored */
    UPLOAD_BATCH_FAILED,       /* another ERR: nothing of it stored */
    UPLOAD_BATCH_CUT,          /* the connection ended before all of it was written */
    UPLOAD_BATCH_UNKNOWN       /* written whole, then the connection ended: stored or not */
};

enum upload_outcome {
    UPLOAD_RUNNING = 0,
    UPLOAD_COMPLETE,  /* every batch stored */
    UPLOAD_STOPPED,   /* a batch was rejected or failed; the later ones were not sent */
    UPLOAD_CANCELLED, /* cancelled between batches */
    UPLOAD_LOST,      /* the connection failed or was lost */
    UPLOAD_DENIED,    /* the server refused the key */
    UPLOAD_QUIT       /* abandoned: couponctl quit while a batch was in flight */
};

/* A REJECT line of the server, placed in the file. */
struct upload_reject {
    size_t batch;  /* from 1 */
    size_t record; /* from 1 within the batch, as the server counts */
    uint32_t line; /* the file line of the record; 0 when the server named no record of ours */
    char reason[UPLOAD_TEXT_MAX];
};

struct upload_progress {
    size_t total;       /* records to upload */
    size_t sent;        /* records written to the socket, stored ones included */
    size_t stored;      /* records the server confirmed */
    size_t batch;       /* the batch being sent, from 1; 0 before the first */
    size_t nbatches;    /* batches in all */
    double rate;        /* records sent per second so far */
    int64_t eta_ms;     /* time left at that rate; -1 while unknown */
    int64_t elapsed_ms; /* since the first batch went out */
};

/* A new upload of `recs` in batches of `batch_size` (1..PROTO_UPLOAD_MAX) records. `recs` must
 * stay valid and unchanged while the upload lives. Returns NULL when out of memory. */
struct upload *upload_new(const struct csvload_records *recs, size_t batch_size);

/* Frees the upload. NULL is allowed. */
void upload_free(struct upload *up);

/* Call every loop turn with the upload's client: sends the next batch when the client is
 * READY and no batch is awaiting its reply, and notices cancellation and completion. */
void upload_pump(struct upload *up, struct client *c, int64_t now_ms);

/* The client's events, for the caller to pass on: a reply line of the batch in flight; the
 * connection's loss with the bytes that never went out (client_unsent() after DOWN) and the
 * reason; the key refused with the server's ERR line. */
void upload_on_line(struct upload *up, const char *line, size_t len, enum proto_reply_kind kind,
                    int64_t now_ms);
void upload_on_down(struct upload *up, size_t unsent, const char *why, int64_t now_ms);
void upload_on_denied(struct upload *up, const char *why, int64_t now_ms);

/* Settles a running upload as UPLOAD_QUIT, for a caller that is about to close its client:
 * the batch in flight is reported cut (`unsent`, client_unsent(), > 0: the server never got
 * all of it) or of unknown outcome (written whole: the server may store it). */
void upload_abandon(struct upload *up, size_t unsent, int64_t now_ms);

/* Asks to stop after the batch in flight; the batches after it are not sent. */
void upload_cancel(struct upload *up);
bool upload_cancel_requested(const struct upload *up);

enum upload_outcome upload_outcome(const struct upload *up);

/* Progress now; `c` is the upload's client, whose unsent bytes tell how far the batch in
 * flight has gone out. */
void upload_progress(const struct upload *up, const struct client *c, int64_t now_ms,
                     struct upload_progress *p);

/* The result, as text for people and scripts. The summary is one line: "uploaded 120000
 * records in 3 batches: 2 uploaded, 1 replayed", or "cancelled: uploaded 50000 of 120000
 * records; batch 1 of 3 stored (1 uploaded, 0 replayed)". Stored batches, replayed or not,
 * are always batches 1..k. The details are one line per run of batches in the same state
 * ("batches 1-2 of 4, records 1-100000, lines 2-100001: stored", "batch 3 of 4, records
 * 100001-150000, lines 100002-150001: rejected, nothing of it stored - ERR BAD_BATCH ...")
 * followed by one line per REJECT ("line 100017 (batch 3, record 16): code X already
 * exists"). */
void upload_summary(const struct upload *up, char *buf, size_t len);
size_t upload_detail_count(const struct upload *up);
void upload_detail(const struct upload *up, size_t i, char *buf, size_t len);

/* Records stored (replayed batches included), and the time from the first batch sent to the
 * last reply. */
size_t upload_stored(const struct upload *up);

/* Batches stored by this run, and batches the server replayed (stored by an earlier run). */
size_t upload_batches_uploaded(const struct upload *up);
size_t upload_batches_replayed(const struct upload *up);

/* Whether running the upload again would resume it: it ended without a rejected or failed
 * batch, and not all batches are stored. */
bool upload_resumable(const struct upload *up);
int64_t upload_elapsed_ms(const struct upload *up);

#endif
