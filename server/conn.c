/* conn.c - the transport (see conn.h): reads and frames input, writes output with one send per
 * iteration, stops taking input while its output backs up, and closes without a reset. */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "tls.h"

struct conn {
    struct conn_pool *pool;
    uint64_t id;
    int fd;
    char peer[CONN_PEER_MAX];
    const struct conn_handler *h;
    void *arg;
    ev_io read_w, write_w;
    ev_timer timer_w; /* idle and line timeouts; the linger bound when lingering */
    double last_active;
    double last_sent;    /* when the output last made progress, or became backed up */
    double line_started; /* when the unfinished line in `in` began to arrive, or 0 */
    double accepted; /* when the connection was made: the TLS handshake's bound counts from it */

    struct tls_conn *tls;      /* NULL: plain TCP */
    bool tls_read_wants_write; /* a TLS read waits for the socket to be writable */
    bool tls_write_wants_read; /* a TLS write waits for the socket to be readable */

    struct proto_framer framer;
    char *in; /* CONN_IN_BUF bytes (the pool's scratch while a read is handled), or NULL */
    size_t in_len;
    char *out;
    size_t out_off, out_len, out_cap;

    bool started;
    bool paused;    /* the handler takes no frames until conn_resume */
    bool backed_up; /* output above CONN_OUT_SOFT: no frames until it drains */
    bool drained;   /* backed_up was cleared: on_drain is due at the next resume */
    bool waiting;   /* the handler owes replies: not idle */
    bool eof;       /* the peer closed its side */
    bool eof_told;  /* on_eof was called */
    bool closing;   /* close once the output is written */
    bool lingering; /* output written; draining the peer's input before the close */
    bool dead;      /* closed; freed at the iteration's end */
    bool in_flush, in_resume;
    struct conn *prev, *next; /* the pool's open connections */
    struct conn *flush_next, *resume_next, *dead_next;
};

struct conn_pool {
    struct ev_loop *loop;
    struct conn_config cfg;
    struct log *log;
    char *scratch; /* CONN_IN_BUF bytes: where a connection with no leftover input reads */
    struct conn *head;
    size_t count;
    uint64_t total, next_id;
    struct conn *flush, *resume, *dead;
    ev_timer resume_w; /* runs resumed connections at the next iteration */
};

static void read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void resume_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void process_input(struct conn *c);
static void arm_timer(struct conn *c);

/* ---- the pool ---- */

struct conn_pool *
conn_pool_new(struct ev_loop *loop, const struct conn_config *cfg, struct log *lg)
{
    struct conn_pool *p = calloc(1, sizeof *p);

    if (p == NULL || (p->scratch = malloc(CONN_IN_BUF)) == NULL) {
        free(p);
        return NULL;
    }
    p->loop = loop;
    p->cfg = *cfg;
    p->log = lg;
    ev_timer_init(&p->resume_w, resume_cb, 0., 0.);
    p->resume_w.data = p;
    return p;
}

size_t
conn_pool_count(const struct conn_pool *p)
{
    return p->count;
}

uint64_t
conn_pool_total(const struct conn_pool *p)
{
    return p->total;
}

static void
log_conn_fields(struct conn *c, const char *op, const struct log_field *f, size_t n)
{
    struct log_op lo = {
        .conn = c->id, .peer = c->peer, .op = op, .us = -1, .extra = f, .n_extra = n};

    log_op(c->pool->log, ev_now(c->pool->loop), &lo);
}

static void
log_conn(struct conn *c, const char *op, const char *reason)
{
    const struct log_field f[] = {log_str("reason", reason)};

    log_conn_fields(c, op, reason != NULL ? f : NULL, reason != NULL ? 1 : 0);
}

/* Gives up the input buffer, unless it is the pool's scratch. */
static void
drop_input(struct conn *c)
{
    if (c->in != c->pool->scratch)
        free(c->in);
    c->in = NULL;
    c->in_len = 0;
}

static void
conn_free(struct conn *c)
{
    drop_input(c);
    tls_conn_free(c->tls);
    free(c->out);
    free(c);
}

/* Frees the closed connections that no list still holds. */
static void
bury(struct conn_pool *p)
{
    struct conn *keep = NULL, *c = p->dead, *next;

    p->dead = NULL;
    for (; c != NULL; c = next) {
        next = c->dead_next;
        if (c->in_resume || c->in_flush) {
            c->dead_next = keep;
            keep = c;
            continue;
        }
        if (c->started && c->h->on_close != NULL) {
            c->started = false;
            c->h->on_close(c->arg);
        }
        conn_free(c);
    }
    p->dead = keep;
}

static void conn_flush(struct conn *c);

void
conn_pool_flush(struct conn_pool *p)
{
    struct conn *c = p->flush;

    p->flush = NULL;
    while (c != NULL) {
        struct conn *next = c->flush_next;
        c->in_flush = false;
        conn_flush(c);
        c = next;
    }
    bury(p);
}

void
conn_pool_close_all(struct conn_pool *p)
{
    while (p->head != NULL)
        conn_close(p->head, NULL);
}

void
conn_pool_free(struct conn_pool *p)
{
    if (p == NULL)
        return;
    conn_pool_close_all(p);
    ev_timer_stop(p->loop, &p->resume_w);
    for (struct conn *c = p->dead; c != NULL; c = c->dead_next)
        c->in_resume = c->in_flush = false;
    p->flush = p->resume = NULL;
    bury(p);
    free(p->scratch);
    free(p);
}

/* ---- life ---- */

struct conn *
conn_new(struct conn_pool *p, int fd, const char *peer)
{
    struct conn *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->pool = p;
    c->id = ++p->next_id;
    c->fd = fd;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->last_active = c->accepted = ev_now(p->loop);
    c->framer.resp = true; /* a request that starts with `*` is the Redis wire form */
    ev_io_init(&c->read_w, read_cb, fd, EV_READ);
    ev_io_init(&c->write_w, write_cb, fd, EV_WRITE);
    ev_init(&c->timer_w, timer_cb);
    c->read_w.data = c->write_w.data = c->timer_w.data = c;
    c->next = p->head;
    if (p->head != NULL)
        p->head->prev = c;
    p->head = c;
    p->count++;
    p->total++;
    log_conn(c, "CONNECT", NULL);
    return c;
}

/* Whether a TLS handshake is still going on. */
static bool
handshaking(const struct conn *c)
{
    return c->tls != NULL && !tls_conn_ready(c->tls);
}

/* Arms the timer for the idle timeout, or for the line timeout or the TLS handshake's bound when
 * that comes first. */
static void
arm_timer(struct conn *c)
{
    struct ev_loop *loop = c->pool->loop;
    double idle = c->pool->cfg.idle_timeout, now = ev_now(loop);
    bool hs = handshaking(c);

    ev_timer_stop(loop, &c->timer_w);
    if (c->dead || c->lingering || (idle <= 0 && !c->backed_up && !hs))
        return;
    double at = idle > 0 ? c->last_active + idle : c->last_sent + CONN_OUT_STALL;
    double line_bound = idle < CONN_LINE_TIMEOUT ? idle : CONN_LINE_TIMEOUT;
    if (c->line_started > 0 && c->line_started + line_bound < at)
        at = c->line_started + line_bound;
    if (c->backed_up && c->last_sent + CONN_OUT_STALL < at)
        at = c->last_sent + CONN_OUT_STALL;
    if (hs && (c->accepted + TLS_HANDSHAKE_TIMEOUT < at || (idle <= 0 && !c->backed_up)))
        at = c->accepted + TLS_HANDSHAKE_TIMEOUT;
    ev_timer_set(&c->timer_w, at > now ? at - now : 0., 0.);
    ev_timer_start(loop, &c->timer_w);
}

bool
conn_use_tls(struct conn *c, struct tls_ctx *t)
{
    c->tls = tls_conn_new(t, c->fd);
    return c->tls != NULL;
}

void
conn_start(struct conn *c, const struct conn_handler *h, void *arg)
{
    c->h = h;
    c->arg = arg;
    c->started = true;
    ev_io_start(c->pool->loop, &c->read_w);
    arm_timer(c);
}

uint64_t
conn_id(const struct conn *c)
{
    return c->id;
}

const char *
conn_peer(const struct conn *c)
{
    return c->peer;
}

void
conn_close(struct conn *c, const char *reason)
{
    struct conn_pool *p = c->pool;

    if (c->dead)
        return;
    c->dead = true;
    ev_io_stop(p->loop, &c->read_w);
    ev_io_stop(p->loop, &c->write_w);
    ev_timer_stop(p->loop, &c->timer_w);
    close(c->fd);
    c->fd = -1;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        p->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    p->count--;
    c->dead_next = p->dead;
    p->dead = c;
    if (reason != NULL)
        log_conn(c, "DROP", reason);
    log_conn(c, "CLOSE", NULL);
    /* The handler hears of it at the iteration's end (bury), never from inside one of its own
     * calls into the connection. */
}

/* ---- output ---- */

static void
schedule_flush(struct conn *c)
{
    if (c->in_flush || c->dead)
        return;
    c->in_flush = true;
    c->flush_next = c->pool->flush;
    c->pool->flush = c;
}

static size_t
unsent(const struct conn *c)
{
    return c->out_len - c->out_off;
}

/* Makes room for `len` more output bytes; false (and the connection closed) past the cap. */
static bool
out_reserve(struct conn *c, size_t len)
{
    if (unsent(c) + len > CONN_OUT_MAX) {
        conn_close(c, "output_cap");
        return false;
    }
    if (c->out_len + len <= c->out_cap)
        return true;
    if (c->out_off > 0) { /* slide the unsent part to the front */
        memmove(c->out, c->out + c->out_off, unsent(c));
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + len <= c->out_cap)
            return true;
    }
    size_t cap = c->out_cap ? c->out_cap : CONN_OUT_MIN;
    while (cap < c->out_len + len)
        cap *= 2;
    char *np = realloc(c->out, cap);
    if (np == NULL) {
        conn_close(c, "out_of_memory");
        return false;
    }
    c->out = np;
    c->out_cap = cap;
    return true;
}

void
conn_write(struct conn *c, const char *data, size_t len)
{
    if (c->dead || !out_reserve(c, len))
        return;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    if (!c->backed_up && unsent(c) > CONN_OUT_SOFT) {
        c->backed_up = true;
        c->last_sent = ev_now(c->pool->loop);
        arm_timer(c);
    }
    schedule_flush(c);
}

static void schedule_resume(struct conn *c);
static void linger(struct conn *c);

size_t
conn_out_room(const struct conn *c)
{
    size_t n = unsent(c);

    if (c->dead || c->backed_up || n > CONN_OUT_SOFT)
        return 0;
    return CONN_OUT_SOFT + 1 - n;
}

/* The output fell back below CONN_OUT_SOFT: frames are taken again, and the handler hears of
 * it at the next iteration (on_drain). */
static void
unblock(struct conn *c)
{
    c->backed_up = false;
    c->drained = true;
    schedule_resume(c);
}

/* What one send or receive did. */
enum conn_io {
    CONN_IO_OK = 0, /* bytes moved */
    CONN_IO_AGAIN,  /* the socket is not ready: the right watcher is armed */
    CONN_IO_EOF,    /* the peer is gone */
    CONN_IO_ERROR   /* TLS failed: the connection is closed */
};

/* A TLS call must wait: WANT_READ and WANT_WRITE arm the watcher that the call waits for. A
 * write that waits to read arms the reader even while flow control keeps it off, and a read
 * that waits to write arms the writer, so neither direction can stall the other. */
static enum conn_io
tls_outcome(struct conn *c, enum tls_io r, bool writing)
{
    struct ev_loop *loop = c->pool->loop;

    switch (r) {
    case TLS_IO_OK:
        return CONN_IO_OK;
    case TLS_IO_WANT_READ:
        if (writing) {
            c->tls_write_wants_read = true;
            ev_io_stop(loop, &c->write_w);
            ev_io_start(loop, &c->read_w);
        }
        return CONN_IO_AGAIN;
    case TLS_IO_WANT_WRITE:
        if (!writing) { /* the socket's input waits until the write is done: no busy reads */
            c->tls_read_wants_write = true;
            ev_io_stop(loop, &c->read_w);
        }
        ev_io_start(loop, &c->write_w);
        return CONN_IO_AGAIN;
    case TLS_IO_EOF:
        return CONN_IO_EOF;
    default: {
        const struct log_field f[] = {log_str("reason", "tls_error"),
                                      log_str("error", tls_conn_error(c->tls))};
        log_conn_fields(c, "DROP", f, LOG_NFIELDS(f));
        conn_close(c, NULL);
        return CONN_IO_ERROR;
    }
    }
}

/* Sends from the output, through TLS when the connection has it. */
static enum conn_io
sock_send(struct conn *c, size_t *sent)
{
    if (c->tls != NULL)
        return tls_outcome(c, tls_conn_write(c->tls, c->out + c->out_off, unsent(c), sent), true);
    ssize_t n;
    do
        n = send(c->fd, c->out + c->out_off, unsent(c), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        ev_io_start(c->pool->loop, &c->write_w);
        return CONN_IO_AGAIN;
    }
    if (n <= 0)
        return CONN_IO_EOF;
    *sent = (size_t)n;
    return CONN_IO_OK;
}

/* Writes what is pending; arms the write watcher when the socket is full. Nothing goes out
 * before a TLS handshake is done: the handshake sends what is owed once it is, and a connection
 * closed before then (the server shutting down) owes nothing and closes at once. */
static void
conn_flush(struct conn *c)
{
    if (c->dead)
        return;
    if (handshaking(c)) {
        if (c->closing)
            conn_close(c, NULL);
        return;
    }
    while (c->out_off < c->out_len) {
        size_t n = 0;
        enum conn_io r = sock_send(c, &n);
        if (r == CONN_IO_AGAIN || r == CONN_IO_ERROR)
            return;
        if (r == CONN_IO_EOF) {
            conn_close(c, NULL);
            return;
        }
        c->out_off += n;
        c->last_active = c->last_sent = ev_now(c->pool->loop);
    }
    if (!c->tls_read_wants_write)
        ev_io_stop(c->pool->loop, &c->write_w);
    free(c->out); /* all written: hold no memory while idle */
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
    if (c->backed_up)
        unblock(c);
    if (c->closing)
        linger(c);
}

static void handshake(struct conn *c);
static void do_read(struct conn *c);

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct conn *c = w->data;

    if (handshaking(c)) {
        handshake(c);
        return;
    }
    if (c->tls_read_wants_write) {
        c->tls_read_wants_write = false;
        do_read(c);
        if (c->dead)
            return;
    }
    conn_flush(c);
    if (!c->dead && c->backed_up && unsent(c) <= CONN_OUT_SOFT)
        unblock(c);
}

/* ---- closing without a reset ---- */

static void
linger_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct conn *c = w->data;
    char sink[CONN_LINGER_BUF];
    ssize_t n = read(c->fd, sink, sizeof sink);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        conn_close(c, NULL);
}

/* Every reply is written: tell the peer we are done, and close once it is done too (or after
 * CONN_LINGER_TIMEOUT), discarding what it still sends, so no reset destroys our replies. */
static void
linger(struct conn *c)
{
    struct ev_loop *loop = c->pool->loop;

    if (c->lingering || c->dead)
        return;
    c->lingering = true;
    drop_input(c);
    if (c->tls != NULL)
        tls_conn_close_notify(c->tls);
    if (shutdown(c->fd, SHUT_WR) != 0) {
        conn_close(c, NULL);
        return;
    }
    ev_io_stop(loop, &c->read_w);
    ev_set_cb(&c->read_w, linger_read_cb);
    ev_io_start(loop, &c->read_w);
    ev_timer_stop(loop, &c->timer_w);
    ev_timer_set(&c->timer_w, CONN_LINGER_TIMEOUT, 0.);
    ev_timer_start(loop, &c->timer_w);
}

void
conn_close_after_flush(struct conn *c)
{
    if (c->dead || c->closing)
        return;
    c->closing = true;
    ev_io_stop(c->pool->loop, &c->read_w);
    schedule_flush(c);
}

/* ---- input ---- */

void
conn_set_resp(struct conn *c, bool on)
{
    c->framer.resp = on;
}

void
conn_set_waiting(struct conn *c, bool waiting)
{
    if (c->waiting == waiting || c->dead)
        return;
    c->waiting = waiting;
    if (!waiting) /* the server answered: idleness counts from now */
        c->last_active = ev_now(c->pool->loop);
}

static void
schedule_resume(struct conn *c)
{
    if (c->in_resume || c->dead)
        return;
    c->in_resume = true;
    c->resume_next = c->pool->resume;
    c->pool->resume = c;
    if (!ev_is_active(&c->pool->resume_w))
        ev_timer_start(c->pool->loop, &c->pool->resume_w);
}

void
conn_resume(struct conn *c)
{
    if (c->dead || !c->paused)
        return;
    c->paused = false;
    schedule_resume(c);
}

/* Whether frames may be handed over now. */
static bool
taking(const struct conn *c)
{
    return !c->paused && !c->backed_up && !c->closing && !c->dead;
}

/* Reads only while frames are taken and the peer may still send (or a TLS write waits to
 * read), and not while a TLS read waits to write. Text that TLS decrypted already makes the
 * socket no more readable: a read is fed in. */
static void
update_reading(struct conn *c)
{
    struct ev_loop *loop = c->pool->loop;
    bool want = taking(c) && !c->eof;

    if (c->dead || c->lingering)
        return;
    if ((want && !c->tls_read_wants_write) || c->tls_write_wants_read)
        ev_io_start(loop, &c->read_w);
    else
        ev_io_stop(loop, &c->read_w);
    if (want && c->tls != NULL && tls_conn_pending(c->tls))
        ev_feed_event(loop, &c->read_w, EV_READ);
}

/* Hands the complete frames in `in` to the handler while it takes them. */
static void
hand_over(struct conn *c)
{
    size_t pos = 0;
    bool ended = false; /* a line ended: what is left began with this input */

    while (taking(c)) {
        struct proto_frame f;
        proto_frame_next(&c->framer, c->in + pos, c->in_len - pos, &f);
        pos += f.used;
        if (proto_frame_need_more(&f))
            break;
        ended = ended || f.kind != PROTO_FRAME_LONG_BEGIN;
        if (!c->h->on_frame(c->arg, &f))
            c->paused = true;
    }
    if (c->dead)
        return;
    c->in_len -= pos;
    if (c->in_len == 0)
        drop_input(c);
    else if (pos > 0)
        memmove(c->in, c->in + pos, c->in_len);
    if (c->in_len == 0 && !proto_framer_busy(&c->framer))
        c->line_started = 0;
    else if (ended || c->line_started == 0)
        c->line_started = ev_now(c->pool->loop);
}

/* Moves what is left in the pool's scratch buffer into a buffer of the connection's own. */
static void
keep_input(struct conn *c)
{
    if (c->dead || c->in_len == 0) {
        c->in = NULL;
        c->in_len = 0;
        return;
    }
    char *own = malloc(CONN_IN_BUF);
    if (own == NULL) {
        c->in = NULL;
        c->in_len = 0;
        conn_close(c, "out_of_memory");
        return;
    }
    memcpy(own, c->in, c->in_len);
    c->in = own;
}

/* After the peer's EOF, once every complete frame was taken: tell the handler, once. */
static void
tell_eof(struct conn *c)
{
    if (c->dead || !c->eof || c->eof_told || !taking(c))
        return;
    c->eof_told = true;
    c->h->on_eof(c->arg, c->in_len > 0 || proto_framer_busy(&c->framer));
}

static void
process_input(struct conn *c)
{
    if (c->in_len > 0)
        hand_over(c);
    tell_eof(c);
    update_reading(c);
    if (!c->dead)
        arm_timer(c);
}

/* Receives into `in`, through TLS when the connection has it. */
static enum conn_io
sock_recv(struct conn *c, size_t *got)
{
    size_t room = CONN_IN_BUF - c->in_len;

    if (c->tls != NULL)
        return tls_outcome(c, tls_conn_read(c->tls, c->in + c->in_len, room, got), false);
    ssize_t n = read(c->fd, c->in + c->in_len, room);
    if (n > 0) {
        *got = (size_t)n;
        return CONN_IO_OK;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return CONN_IO_AGAIN;
    return CONN_IO_EOF;
}

/* One read of what the peer sent, and the frames it completes handed over. */
static void
do_read(struct conn *c)
{
    /* With no leftover input, read into the pool's scratch buffer: most reads hold whole
     * requests, and then the connection never needs a buffer of its own. */
    if (c->in == NULL)
        c->in = c->pool->scratch;
    size_t n = 0;
    enum conn_io r = c->in_len < CONN_IN_BUF ? sock_recv(c, &n) : CONN_IO_AGAIN;
    if (r == CONN_IO_ERROR) { /* closed: the scratch buffer is not the connection's */
        if (c->in == c->pool->scratch)
            keep_input(c);
        return;
    }
    if (r == CONN_IO_OK) {
        c->in_len += n;
        c->last_active = ev_now(c->pool->loop);
    } else if (r == CONN_IO_EOF) {
        c->eof = true;
    }
    process_input(c);
    if (c->in == c->pool->scratch)
        keep_input(c);
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct conn *c = w->data;

    if (handshaking(c)) {
        handshake(c);
        return;
    }
    if (c->tls_write_wants_read) {
        c->tls_write_wants_read = false;
        conn_flush(c);
        if (c->dead)
            return;
        if (!taking(c) || c->eof) {
            update_reading(c);
            return;
        }
    }
    do_read(c);
}

/* The TLS handshake's step when the socket is ready; once it is done, the connection reads
 * and writes as any other, and the log says which version and client certificate it has. */
static void
handshake(struct conn *c)
{
    struct ev_loop *loop = c->pool->loop;
    char subject[TLS_SUBJECT_MAX];

    switch (tls_conn_handshake(c->tls)) {
    case TLS_IO_WANT_READ:
        ev_io_stop(loop, &c->write_w);
        ev_io_start(loop, &c->read_w);
        return;
    case TLS_IO_WANT_WRITE:
        ev_io_stop(loop, &c->read_w);
        ev_io_start(loop, &c->write_w);
        return;
    case TLS_IO_OK:
        break;
    default: {
        const struct log_field f[] = {log_str("reason", "tls_handshake"),
                                      log_str("error", tls_conn_error(c->tls))};
        log_conn_fields(c, "DROP", f, LOG_NFIELDS(f));
        /* The alert OpenSSL wrote is on its way: a lingering close lets the client read it,
         * where closing with its unread bytes would send a reset instead. */
        ev_io_stop(loop, &c->write_w);
        linger(c);
        return;
    }
    }
    tls_conn_subject(c->tls, subject);
    const struct log_field f[] = {log_str("version", tls_conn_version(c->tls)),
                                  log_str("client", subject)};
    log_conn_fields(c, "TLS", f, LOG_NFIELDS(f));
    ev_io_stop(loop, &c->write_w);
    c->last_active = ev_now(loop);
    arm_timer(c);
    update_reading(c);
    if (c->out_len > c->out_off)
        schedule_flush(c);
}

static void
resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct conn_pool *p = w->data;
    struct conn *c = p->resume;

    p->resume = NULL;
    while (c != NULL) {
        struct conn *next = c->resume_next;
        c->in_resume = false;
        if (!c->dead && c->drained) {
            c->drained = false;
            if (c->h->on_drain != NULL)
                c->h->on_drain(c->arg);
        }
        if (!c->dead && taking(c)) {
            c->line_started = 0; /* nothing was read meanwhile: an unfinished line starts anew */
            process_input(c);
        }
        c = next;
    }
}

/* Idle and line timeouts; the linger bound while lingering. */
static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct conn *c = w->data;
    double idle = c->pool->cfg.idle_timeout, now = ev_now(loop);

    if (c->lingering) {
        conn_close(c, NULL);
        return;
    }
    if (handshaking(c) && now >= c->accepted + TLS_HANDSHAKE_TIMEOUT) {
        conn_close(c, "tls_handshake_timeout");
        return;
    }
    if (c->backed_up && now >= c->last_sent + CONN_OUT_STALL) {
        conn_close(c, "output_stalled");
        return;
    }
    double line_bound = idle < CONN_LINE_TIMEOUT ? idle : CONN_LINE_TIMEOUT;
    if (idle > 0 && c->line_started > 0 && taking(c) && now >= c->line_started + line_bound) {
        conn_close(c, "line_timeout");
        return;
    }
    if (c->waiting) /* waiting on the server is neither idleness nor slowness */
        c->last_active = now;
    else if (idle > 0 && now >= c->last_active + idle) {
        conn_close(c, "idle_timeout");
        return;
    }
    arm_timer(c);
}
