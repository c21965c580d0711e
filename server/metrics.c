/* metrics.c - GET /metrics in Prometheus's text format (see metrics.h): the exposition made from
 * stat.h's table, and the exporter's own small HTTP connections. */
#include "metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"

#define NAME_PREFIX   "coupond_"
#define COUNTER_TAIL  "_total"   /* Prometheus's suffix of a counter */
#define SECONDS_SHORT "_s"       /* the table's unit suffix ... */
#define SECONDS_LONG  "_seconds" /* ... as Prometheus spells its base unit */
#define HIST_NAME     "coupond_commit_seconds"
#define CONTENT_TYPE  "text/plain; version=0.0.4; charset=utf-8"
/* Room before a reply's body for its status line and headers, which are written right-aligned
 * against the body once its length is known: the longest (405's) is under 200 bytes. */
#define HEAD_ROOM 256
/* A body this long ends a 503 sent to a connection over the cap, in one send and no more. */
#define BUSY_REPLY                                                                                 \
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"              \
    "Content-Length: 25\r\nConnection: close\r\n\r\ntoo many metrics scrapes\n"

/* ---- the exposition ---- */

/* Text appended to a buffer that may be too small: len counts what it needs. */
struct text {
    char *buf;
    size_t cap, len;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    bool room = t->len < t->cap;

    va_start(ap, fmt);
    int n = vsnprintf(room ? t->buf + t->len : NULL, room ? t->cap - t->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n;
}

/* HELP's text, escaped as the format asks (backslash and newline). */
static void
put_help(struct text *t, const char *name, const char *doc)
{
    put(t, "# HELP %s ", name);
    for (const char *p = doc; *p != '\0'; p++) {
        if (*p == '\\')
            put(t, "\\\\");
        else if (*p == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *p);
    }
    put(t, "\n");
}

static bool
ends_with(const char *s, size_t len, const char *tail)
{
    size_t n = strlen(tail);

    return len >= n && memcmp(s + len - n, tail, n) == 0;
}

void
metrics_name(enum proto_stat stat, char name[METRICS_NAME_MAX])
{
    const struct proto_stat_def *d = &proto_stat_defs[stat];
    size_t pre = sizeof NAME_PREFIX - 1;
    int n = snprintf(name, METRICS_NAME_MAX, NAME_PREFIX "%s", d->name);
    size_t len = n < 0 ? 0 : (size_t)n < METRICS_NAME_MAX ? (size_t)n : METRICS_NAME_MAX - 1;

    for (size_t i = pre; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!ok)
            name[i] = '_'; /* '.' of "megadeal.queued"; nothing else is in the table now */
    }
    if (ends_with(name, len, SECONDS_SHORT)) {
        len -= sizeof SECONDS_SHORT - 1;
        len += (size_t)snprintf(name + len, METRICS_NAME_MAX - len, SECONDS_LONG);
    }
    if (d->kind == PROTO_STAT_COUNTER && !ends_with(name, len, COUNTER_TAIL))
        snprintf(name + len, METRICS_NAME_MAX - len, COUNTER_TAIL);
}

static void
put_stat(struct text *t, enum proto_stat i, const struct proto_stats *s)
{
    const struct proto_stat_def *d = &proto_stat_defs[i];
    char name[METRICS_NAME_MAX];

    metrics_name(i, name);
    put_help(t, name, d->doc);
    put(t, "# TYPE %s %s\n", name, d->kind == PROTO_STAT_COUNTER ? "counter" : "gauge");
    if (!d->per_type) {
        put(t, "%s %llu\n", name, (unsigned long long)s->v[i][0]);
        return;
    }
    for (int ty = 0; ty < PROTO_NTYPES; ty++)
        put(t, "%s{type=\"%s\"} %llu\n", name, proto_type_name((enum proto_type)ty),
            (unsigned long long)s->v[i][ty]);
}

/* The group commit's latency: cumulative buckets, as Prometheus's histograms are. */
static void
put_histogram(struct text *t, const struct group_stats *gs)
{
    uint64_t below = 0;

    put_help(t, HIST_NAME, "time a group commit took to become durable, since start");
    put(t, "# TYPE %s histogram\n", HIST_NAME);
    for (int i = 0; i < GROUP_HIST_BUCKETS; i++) {
        below += gs->hist[i];
        put(t, "%s_bucket{le=\"%g\"} %llu\n", HIST_NAME, group_hist_bounds[i],
            (unsigned long long)below);
    }
    below += gs->hist[GROUP_HIST_BUCKETS];
    put(t, "%s_bucket{le=\"+Inf\"} %llu\n", HIST_NAME, (unsigned long long)below);
    put(t, "%s_sum %.9g\n", HIST_NAME, gs->seconds);
    put(t, "%s_count %llu\n", HIST_NAME, (unsigned long long)below);
}

size_t
metrics_render(char *buf, size_t cap, const struct proto_stats *s, const struct group_stats *gs,
               const char *version, const char *store)
{
    struct text t = {buf, cap, 0};

    for (int i = 0; i < PROTO_NSTATS; i++)
        put_stat(&t, (enum proto_stat)i, s);
    put_histogram(&t, gs);
    put_help(&t, "coupond_build_info", "the running coupond's version and store; always 1");
    put(&t, "# TYPE coupond_build_info gauge\n");
    put(&t, "coupond_build_info{version=\"%s\",store=\"%s\"} 1\n", version, store);
    if (cap > 0 && t.len >= cap)
        buf[cap - 1] = '\0';
    return t.len;
}

/* ---- connections ---- */

enum mstate {
    MC_READ = 0, /* reading the request */
    MC_STORE,    /* waiting for the store's counters */
    MC_WRITE,    /* writing the reply */
    MC_LINGER    /* reply sent and our side shut: reading until the client closes */
};

struct mconn {
    struct metrics *m;
    struct mconn *prev, *next;
    int fd; /* -1 once closed: an orphan whose store read is still pending */
    ev_io io;
    ev_timer deadline;
    enum mstate state;
    bool reading; /* the store read is pending */
    size_t in_len;
    char in[METRICS_REQ_MAX];
    char *out; /* METRICS_REPLY_MAX bytes once a reply is made */
    size_t out_start, out_end;
    struct store_op op;
};

struct metrics {
    struct ev_loop *loop;
    struct metrics_source src;
    struct log *log;
    struct listener *listener;
    struct mconn *conns;
    size_t n; /* connections, orphans included: what METRICS_CONN_MAX counts */
};

static void
conn_free(struct mconn *c)
{
    struct metrics *m = c->m;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        m->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    m->n--;
    free(c->out);
    free(c);
}

/* Closes the socket; the connection goes too unless its store read is pending. */
static void
conn_close(struct mconn *c)
{
    struct ev_loop *loop = c->m->loop;

    if (c->fd >= 0) {
        ev_io_stop(loop, &c->io);
        ev_timer_stop(loop, &c->deadline);
        close(c->fd);
        c->fd = -1;
    }
    if (!c->reading)
        conn_free(c);
}

/* Watches fd for `events` only. */
static void
watch(struct mconn *c, int events)
{
    ev_io_stop(c->m->loop, &c->io);
    if (events != 0) {
        ev_io_set(&c->io, c->fd, events);
        ev_io_start(c->m->loop, &c->io);
    }
}

/* Reads and drops what the client still sends; true at its end (or an error). */
static bool
drain(struct mconn *c)
{
    char scrap[512];

    for (;;) {
        ssize_t n = recv(c->fd, scrap, sizeof scrap, 0);
        if (n > 0)
            continue;
        return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
}

/* Sends what is left of the reply; once it is all out, shuts our side and lingers, so the
 * client reads the whole reply before the socket closes. */
static void
flush_reply(struct mconn *c)
{
    while (c->out_start < c->out_end) {
        ssize_t n = send(c->fd, c->out + c->out_start, c->out_end - c->out_start, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_start += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch(c, EV_WRITE);
            return;
        } else if (n < 0 && errno != EINTR) {
            conn_close(c);
            return;
        }
    }
    shutdown(c->fd, SHUT_WR);
    c->state = MC_LINGER;
    if (drain(c))
        conn_close(c);
    else
        watch(c, EV_READ);
}

/* Sends a reply whose body is at out + HEAD_ROOM, body_len bytes. */
static void
send_reply(struct mconn *c, const char *status, const char *type, const char *extra,
           size_t body_len)
{
    char head[HEAD_ROOM];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n%s\r\n",
                     status, type, body_len, extra);

    if (n < 0 || (size_t)n >= sizeof head) { /* cannot happen: the statuses are ours */
        conn_close(c);
        return;
    }
    c->out_start = HEAD_ROOM - (size_t)n;
    memcpy(c->out + c->out_start, head, (size_t)n);
    c->out_end = HEAD_ROOM + body_len;
    c->state = MC_WRITE;
    flush_reply(c);
}

static bool
reply_buffer(struct mconn *c)
{
    if (c->out == NULL && (c->out = malloc(HEAD_ROOM + METRICS_REPLY_MAX)) == NULL) {
        conn_close(c);
        return false;
    }
    return true;
}

/* A short error reply: a status and one line saying why. */
static void
send_error(struct mconn *c, const char *status, const char *extra, const char *why)
{
    if (!reply_buffer(c))
        return;
    int n = snprintf(c->out + HEAD_ROOM, METRICS_REPLY_MAX, "%s\n", why);
    send_reply(c, status, "text/plain; charset=utf-8", extra, (size_t)n);
}

static void
counters_done(struct store_op *op)
{
    struct mconn *c = op->arg;
    struct metrics *m = c->m;
    struct proto_stats s;

    c->reading = false;
    if (c->fd < 0) { /* closed while the store read: nobody to answer */
        conn_free(c);
        return;
    }
    if (op->err != STORE_OK) {
        send_error(c, "503 Service Unavailable", "", store_strerror(op->err));
        return;
    }
    if (!reply_buffer(c))
        return;
    m->src.gather(m->src.arg, &op->out.counters, &s);
    size_t n = metrics_render(c->out + HEAD_ROOM, METRICS_REPLY_MAX, &s, group_stats(m->src.group),
                              COUPOND_VERSION, store_backend(m->src.store));
    if (n >= METRICS_REPLY_MAX) {
        send_error(c, "500 Internal Server Error", "", "the metrics do not fit the reply");
        return;
    }
    send_reply(c, "200 OK", CONTENT_TYPE, "", n);
}

/* Where the request's line and headers end (the blank line), or NULL while it has not come. */
static const char *
head_end(const struct mconn *c)
{
    for (size_t i = 0; i + 1 < c->in_len; i++) {
        if (c->in[i] != '\n')
            continue;
        if (c->in[i + 1] == '\n' ||
            (c->in[i + 1] == '\r' && i + 2 < c->in_len && c->in[i + 2] == '\n'))
            return c->in + i;
    }
    return NULL;
}

/* "METHOD TARGET HTTP/1.x": answers it, or starts the store read for GET /metrics. */
static void
serve(struct mconn *c)
{
    char method[16], target[128], version[16];
    size_t path_len;

    c->in[c->in_len < sizeof c->in ? c->in_len : sizeof c->in - 1] = '\0';
    if (sscanf(c->in, "%15s %127s %15s", method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        send_error(c, "400 Bad Request", "", "not an HTTP/1 request");
        return;
    }
    if (strcmp(method, "GET") != 0) {
        send_error(c, "405 Method Not Allowed", "Allow: GET\r\n", "only GET is served here");
        return;
    }
    path_len = strcspn(target, "?"); /* a query string changes nothing */
    if (path_len != sizeof "/metrics" - 1 || memcmp(target, "/metrics", path_len) != 0) {
        send_error(c, "404 Not Found", "", "only /metrics is served here");
        return;
    }
    watch(c, 0);
    c->state = MC_STORE;
    c->reading = true;
    memset(&c->op, 0, sizeof c->op);
    c->op.kind = STORE_OP_COUNTERS;
    c->op.now = (int64_t)ev_now(c->m->loop);
    c->op.done = counters_done;
    c->op.arg = c;
    store_read(c->m->src.store, &c->op);
}

static void
read_request(struct mconn *c)
{
    for (;;) {
        if (c->in_len == sizeof c->in) {
            send_error(c, "431 Request Header Fields Too Large", "", "request too long");
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            conn_close(c);
            return;
        }
        if (n < 0 && errno != EINTR)
            return; /* the rest later */
        if (n > 0)
            c->in_len += (size_t)n;
        if (head_end(c) != NULL) {
            serve(c);
            return;
        }
    }
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mconn *c = w->data;

    (void)loop;
    (void)revents;
    if (c->state == MC_READ)
        read_request(c);
    else if (c->state == MC_WRITE)
        flush_reply(c);
    else if (c->state == MC_LINGER && drain(c))
        conn_close(c);
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    conn_close(w->data);
}

static void
accepted(void *arg, int fd, const char *peer)
{
    struct metrics *m = arg;
    struct mconn *c = m->n < METRICS_CONN_MAX ? calloc(1, sizeof *c) : NULL;

    (void)peer;
    if (c == NULL) {
        if (send(fd, BUSY_REPLY, sizeof BUSY_REPLY - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            /* the client is gone already: closing is all that is left */
        }
        close(fd);
        return;
    }
    c->m = m;
    c->fd = fd;
    c->next = m->conns;
    if (m->conns != NULL)
        m->conns->prev = c;
    m->conns = c;
    m->n++;
    ev_io_init(&c->io, io_cb, fd, EV_READ);
    c->io.data = c;
    ev_io_start(m->loop, &c->io);
    ev_timer_init(&c->deadline, deadline_cb, METRICS_TIMEOUT, 0.);
    c->deadline.data = c;
    ev_timer_start(m->loop, &c->deadline);
}

/* ---- the exporter ---- */

static void
log_listening(struct metrics *m)
{
    for (size_t i = 0; i < listener_count(m->listener); i++) {
        char addr[LISTENER_HOST_MAX];
        unsigned port;
        int err = listener_address(m->listener, i, addr, &port);
        const struct log_field f[] = {log_str("addr", addr), log_uint("port", port),
                                      log_str("reason", err ? strerror(err) : NULL)};
        log_event(m->log, ev_time(), err ? "METRICS_LISTEN_SKIPPED" : "METRICS_LISTEN", f,
                  LOG_NFIELDS(f));
    }
}

struct metrics *
metrics_new(struct ev_loop *loop, const char *host, unsigned port, const struct metrics_source *src,
            struct log *lg, char *errbuf, size_t errlen)
{
    struct metrics *m = calloc(1, sizeof *m);
    char why[256];

    if (m == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    m->loop = loop;
    m->src = *src;
    m->log = lg;
    m->listener = listener_new(loop, host, port, accepted, NULL, m, why, sizeof why);
    if (m->listener == NULL) {
        snprintf(errbuf, errlen, "--metrics-listen: %s", why);
        free(m);
        return NULL;
    }
    log_listening(m);
    return m;
}

void
metrics_stop(struct metrics *m)
{
    if (m == NULL)
        return;
    listener_free(m->listener);
    m->listener = NULL;
    for (struct mconn *c = m->conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
}

void
metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    metrics_stop(m);
    while (m->conns != NULL) /* orphans: the store, closed, will not complete their reads */
        conn_free(m->conns);
    free(m);
}
