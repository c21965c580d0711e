/* upload.c - UPLOAD batches, one at a time, with progress, cancel and an exact result. */
#include "upload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reqid.h"

/* "UPLOAD 50000 id=" and the longest request id, LF and NUL, with room */
#define HEADER_MAX (32 + PROTO_RID_MAX)
#define MS_PER_S   1000.0

static const char reject_word[] = "REJECT ";

struct upload {
    const struct csvload_records *recs;
    size_t batch_size;
    size_t nbatches;
    enum upload_batch_state *state;
    enum upload_outcome outcome;
    size_t next;    /* the batch to send next, from 0 */
    bool in_flight; /* batch next is sent and awaits its reply */
    bool cancel;
    size_t stored;             /* records confirmed */
    size_t head_len;           /* bytes of the "UPLOAD n\n" line of the batch in flight */
    int64_t start_ms;          /* the first batch went out; -1 before */
    int64_t end_ms;            /* the outcome was settled; -1 before */
    char why[UPLOAD_TEXT_MAX]; /* the ERR line of a failed batch, or why the connection ended */
    struct upload_reject rejects[PROTO_REJECT_SHOWN];
    size_t nrejects;
};

struct upload *
upload_new(const struct csvload_records *recs, size_t batch_size)
{
    struct upload *up = calloc(1, sizeof *up);

    if (up == NULL)
        return NULL;
    up->recs = recs;
    up->batch_size = batch_size;
    up->nbatches = (recs->n + batch_size - 1) / batch_size;
    up->state = calloc(up->nbatches > 0 ? up->nbatches : 1, sizeof *up->state);
    if (up->state == NULL) {
        free(up);
        return NULL;
    }
    up->start_ms = -1;
    up->end_ms = -1;
    return up;
}

void
upload_free(struct upload *up)
{
    if (up == NULL)
        return;
    free(up->state);
    free(up);
}

/* Records [first, last) of batch b. */
static size_t
batch_first(const struct upload *up, size_t b)
{
    return b * up->batch_size;
}

static size_t
batch_last(const struct upload *up, size_t b)
{
    size_t last = (b + 1) * up->batch_size;
    return last < up->recs->n ? last : up->recs->n;
}

static size_t
rec_start(const struct upload *up, size_t i)
{
    return i > 0 ? up->recs->end[i - 1] : 0;
}

static void
settle(struct upload *up, enum upload_outcome outcome, int64_t now)
{
    if (up->outcome != UPLOAD_RUNNING)
        return;
    up->outcome = outcome;
    up->end_ms = now;
    up->in_flight = false;
}

static void
send_batch(struct upload *up, struct client *c, int64_t now)
{
    char head[HEADER_MAX], rid[REQID_BUF];
    size_t b = up->next;
    size_t first = batch_first(up, b), last = batch_last(up, b);
    size_t off = rec_start(up, first), len = up->recs->end[last - 1] - off;

    reqid_upload(rid, b + 1, up->recs->text + off, len);
    up->head_len = (size_t)snprintf(head, sizeof head, "UPLOAD %zu id=%s\n", last - first, rid);
    struct iovec iov[2] = {
        {head, up->head_len},
        {(void *)(up->recs->text + off), len},
    };
    if (!client_send(c, b, iov, 2)) {
        snprintf(up->why, sizeof up->why, "batch %zu could not be queued: out of memory", b + 1);
        settle(up, UPLOAD_STOPPED, now);
        return;
    }
    if (up->start_ms < 0)
        up->start_ms = now;
    up->state[b] = UPLOAD_BATCH_SENDING;
    up->in_flight = true;
}

void
upload_pump(struct upload *up, struct client *c, int64_t now_ms)
{
    if (up->outcome != UPLOAD_RUNNING || up->in_flight || client_state(c) != CLIENT_READY)
        return;
    if (up->next == up->nbatches) {
        settle(up, UPLOAD_COMPLETE, now_ms);
        return;
    }
    if (up->cancel) {
        settle(up, UPLOAD_CANCELLED, now_ms);
        return;
    }
    send_batch(up, c, now_ms);
}

/* "REJECT lineno reason": kept with the file line of the record it names. */
static void
on_reject(struct upload *up, const char *line, size_t len)
{
    size_t pos = sizeof reject_word - 1, record = 0;

    if (up->nrejects == PROTO_REJECT_SHOWN)
        return;
    while (pos < len && line[pos] >= '0' && line[pos] <= '9' && record < up->batch_size + 1)
        record = record * 10 + (size_t)(line[pos++] - '0');
    while (pos < len && line[pos] == ' ')
        pos++;
    struct upload_reject *r = &up->rejects[up->nrejects++];
    size_t b = up->next, first = batch_first(up, b);
    r->batch = b + 1;
    r->record = record;
    r->line = 0;
    if (record >= 1 && first + record - 1 < batch_last(up, b))
        r->line = up->recs->line[first + record - 1];
    snprintf(r->reason, sizeof r->reason, "%.*s", (int)(len - pos), line + pos);
}

/* Whether an OK line says the server replayed a stored outcome: " replayed=1". */
static bool
replayed(const char *line, size_t len)
{
    const char *val;
    size_t vlen;

    return proto_reply_field(line, len, "replayed", &val, &vlen) && vlen == 1 && val[0] == '1';
}

static void
on_ok(struct upload *up, const char *line, size_t len, int64_t now)
{
    size_t b = up->next;

    up->state[b] = replayed(line, len) ? UPLOAD_BATCH_REPLAYED : UPLOAD_BATCH_STORED;
    up->stored += batch_last(up, b) - batch_first(up, b);
    up->in_flight = false;
    up->next++;
    if (up->next == up->nbatches)
        settle(up, UPLOAD_COMPLETE, now);
    else if (up->cancel)
        settle(up, UPLOAD_CANCELLED, now);
}

static void
on_err(struct upload *up, const char *line, size_t len, int64_t now)
{
    size_t b = up->next;

    up->state[b] = proto_reply_err(line, len) == PROTO_ERR_BAD_BATCH ? UPLOAD_BATCH_REJECTED
                                                                     : UPLOAD_BATCH_FAILED;
    snprintf(up->why, sizeof up->why, "%.*s", (int)len, line);
    settle(up, UPLOAD_STOPPED, now);
}

void
upload_on_line(struct upload *up, const char *line, size_t len, enum proto_reply_kind kind,
               int64_t now_ms)
{
    if (!up->in_flight)
        return;
    switch (kind) {
    case PROTO_REPLY_DATA:
        if (len > sizeof reject_word - 1 && memcmp(line, reject_word, sizeof reject_word - 1) == 0)
            on_reject(up, line, len);
        return;
    case PROTO_REPLY_OK:
        on_ok(up, line, len, now_ms);
        return;
    case PROTO_REPLY_ERR:
        on_err(up, line, len, now_ms);
        return;
    }
}

void
upload_on_down(struct upload *up, size_t unsent, const char *why, int64_t now_ms)
{
    if (up->outcome != UPLOAD_RUNNING)
        return;
    if (up->in_flight)
        up->state[up->next] = unsent > 0 ? UPLOAD_BATCH_CUT : UPLOAD_BATCH_UNKNOWN;
    snprintf(up->why, sizeof up->why, "%s", why);
    settle(up, UPLOAD_LOST, now_ms);
}

void
upload_abandon(struct upload *up, size_t unsent, int64_t now_ms)
{
    if (up->outcome != UPLOAD_RUNNING)
        return;
    if (up->in_flight)
        up->state[up->next] = unsent > 0 ? UPLOAD_BATCH_CUT : UPLOAD_BATCH_UNKNOWN;
    snprintf(up->why, sizeof up->why, "couponctl quit");
    settle(up, UPLOAD_QUIT, now_ms);
}

void
upload_on_denied(struct upload *up, const char *why, int64_t now_ms)
{
    if (up->outcome != UPLOAD_RUNNING)
        return;
    snprintf(up->why, sizeof up->why, "%s", why);
    settle(up, UPLOAD_DENIED, now_ms);
}

void
upload_cancel(struct upload *up)
{
    up->cancel = true;
}

bool
upload_cancel_requested(const struct upload *up)
{
    return up->cancel;
}

enum upload_outcome
upload_outcome(const struct upload *up)
{
    return up->outcome;
}

size_t
upload_stored(const struct upload *up)
{
    return up->stored;
}

int64_t
upload_elapsed_ms(const struct upload *up)
{
    if (up->start_ms < 0)
        return 0;
    return (up->end_ms >= 0 ? up->end_ms : up->start_ms) - up->start_ms;
}

/* Records of the batch in flight wholly written to the socket. */
static size_t
records_written(const struct upload *up, const struct client *c)
{
    size_t b = up->next, first = batch_first(up, b), last = batch_last(up, b);
    size_t base = rec_start(up, first);
    size_t total = up->head_len + up->recs->end[last - 1] - base;
    size_t unsent = client_unsent(c);

    if (unsent >= total)
        return 0;
    size_t written = total - unsent;
    if (written <= up->head_len)
        return 0;
    size_t body = written - up->head_len;
    /* Binary search: the number of records whose end is within the written body. */
    size_t lo = first, hi = last;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (up->recs->end[mid] - base <= body)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - first;
}

void
upload_progress(const struct upload *up, const struct client *c, int64_t now_ms,
                struct upload_progress *p)
{
    memset(p, 0, sizeof *p);
    p->total = up->recs->n;
    p->stored = up->stored;
    p->sent = up->stored;
    p->nbatches = up->nbatches;
    p->batch = up->next < up->nbatches ? up->next + 1 : up->nbatches;
    if (up->in_flight && c != NULL)
        p->sent += records_written(up, c);
    p->eta_ms = -1;
    if (up->start_ms < 0)
        return;
    int64_t end = up->end_ms >= 0 ? up->end_ms : now_ms;
    p->elapsed_ms = end - up->start_ms;
    if (p->elapsed_ms <= 0 || p->sent == 0)
        return;
    p->rate = (double)p->sent * MS_PER_S / (double)p->elapsed_ms;
    p->eta_ms = (int64_t)((double)(p->total - p->sent) * MS_PER_S / p->rate);
}

/* ---- The result as text ---- */

static size_t
batches_in(const struct upload *up, enum upload_batch_state s)
{
    size_t n = 0;

    for (size_t b = 0; b < up->nbatches; b++)
        if (up->state[b] == s)
            n++;
    return n;
}

size_t
upload_batches_uploaded(const struct upload *up)
{
    return batches_in(up, UPLOAD_BATCH_STORED);
}

size_t
upload_batches_replayed(const struct upload *up)
{
    return batches_in(up, UPLOAD_BATCH_REPLAYED);
}

static size_t
batches_stored(const struct upload *up)
{
    return upload_batches_uploaded(up) + upload_batches_replayed(up);
}

bool
upload_resumable(const struct upload *up)
{
    return (up->outcome == UPLOAD_LOST || up->outcome == UPLOAD_CANCELLED ||
            up->outcome == UPLOAD_QUIT) &&
           batches_in(up, UPLOAD_BATCH_REJECTED) == 0 && batches_in(up, UPLOAD_BATCH_FAILED) == 0;
}

static const char *
outcome_word(enum upload_outcome o)
{
    switch (o) {
    case UPLOAD_RUNNING:
        return "uploading";
    case UPLOAD_COMPLETE:
        return "done";
    case UPLOAD_STOPPED:
        return "stopped";
    case UPLOAD_CANCELLED:
        return "cancelled";
    case UPLOAD_LOST:
        return "connection lost";
    case UPLOAD_DENIED:
        return "key refused";
    case UPLOAD_QUIT:
        return "quit";
    }
    return "?";
}

void
upload_summary(const struct upload *up, char *buf, size_t len)
{
    size_t ok = batches_stored(up);
    size_t fresh = upload_batches_uploaded(up), again = upload_batches_replayed(up);

    if (up->outcome == UPLOAD_COMPLETE) {
        snprintf(buf, len, "uploaded %zu records in %zu batch%s: %zu uploaded, %zu replayed",
                 up->stored, up->nbatches, up->nbatches == 1 ? "" : "es", fresh, again);
        return;
    }
    /* Batches are sent in order and stop at the first that is not stored: the stored ones
     * are always batches 1..ok. */
    char stored[UPLOAD_TEXT_MAX];
    if (ok == 0)
        snprintf(stored, sizeof stored, "no batch of %zu stored", up->nbatches);
    else if (ok == 1)
        snprintf(stored, sizeof stored, "batch 1 of %zu stored (%zu uploaded, %zu replayed)",
                 up->nbatches, fresh, again);
    else
        snprintf(stored, sizeof stored, "batches 1-%zu of %zu stored (%zu uploaded, %zu replayed)",
                 ok, up->nbatches, fresh, again);
    /* Cancelled and quit say it all with their first word. */
    bool with_why =
        up->outcome != UPLOAD_CANCELLED && up->outcome != UPLOAD_QUIT && up->why[0] != '\0';
    snprintf(buf, len, "%s: uploaded %zu of %zu records; %s%s%s", outcome_word(up->outcome),
             up->stored, up->recs->n, stored, with_why ? " - " : "", with_why ? up->why : "");
}

/* Batches [b, end of its run): the following batches in the same state. */
static size_t
run_end(const struct upload *up, size_t b)
{
    size_t e = b + 1;

    while (e < up->nbatches && up->state[e] == up->state[b])
        e++;
    return e;
}

static size_t
run_count(const struct upload *up)
{
    size_t n = 0;

    for (size_t b = 0; b < up->nbatches; b = run_end(up, b))
        n++;
    return n;
}

size_t
upload_detail_count(const struct upload *up)
{
    return run_count(up) + up->nrejects;
}

static const char *
state_text(enum upload_batch_state s)
{
    switch (s) {
    case UPLOAD_BATCH_NOT_SENT:
        return "not sent";
    case UPLOAD_BATCH_SENDING:
        return "sending";
    case UPLOAD_BATCH_STORED:
        return "stored";
    case UPLOAD_BATCH_REPLAYED:
        return "stored by an earlier run (replayed)";
    case UPLOAD_BATCH_REJECTED:
        return "rejected, nothing of it stored";
    case UPLOAD_BATCH_FAILED:
        return "failed, nothing of it stored";
    case UPLOAD_BATCH_CUT:
        return "not stored: the connection ended while sending it";
    case UPLOAD_BATCH_UNKNOWN:
        return "outcome unknown: the connection ended before the reply";
    }
    return "?";
}

/* One line for the batches [b, e), which share a state. */
static void
run_detail(const struct upload *up, size_t b, size_t e, char *buf, size_t len)
{
    size_t first = batch_first(up, b), last = batch_last(up, e - 1);
    enum upload_batch_state s = up->state[b];
    bool with_why = s == UPLOAD_BATCH_REJECTED || s == UPLOAD_BATCH_FAILED ||
                    s == UPLOAD_BATCH_CUT || s == UPLOAD_BATCH_UNKNOWN;
    char which[UPLOAD_TEXT_MAX];

    if (e - b == 1)
        snprintf(which, sizeof which, "batch %zu", b + 1);
    else
        snprintf(which, sizeof which, "batches %zu-%zu", b + 1, e);
    snprintf(buf, len, "%s of %zu, records %zu-%zu, lines %u-%u: %s%s%s", which, up->nbatches,
             first + 1, last, (unsigned)up->recs->line[first], (unsigned)up->recs->line[last - 1],
             state_text(s), with_why ? " - " : "", with_why ? up->why : "");
}

void
upload_detail(const struct upload *up, size_t i, char *buf, size_t len)
{
    size_t runs = 0;

    for (size_t b = 0; b < up->nbatches; b = run_end(up, b)) {
        if (runs++ == i) {
            run_detail(up, b, run_end(up, b), buf, len);
            return;
        }
    }
    const struct upload_reject *r = &up->rejects[i - runs];
    if (r->line > 0)
        snprintf(buf, len, "line %u (batch %zu, record %zu): %s", (unsigned)r->line, r->batch,
                 r->record, r->reason);
    else
        snprintf(buf, len, "batch %zu: %s", r->batch, r->reason);
}
