/* conn.c - one client connection: reads and frames lines, holds replies until their group is
 * durable, writes them with one send per flush, and cuts off clients that do not read. */
#include "conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd.h"
#include "log.h"
#include "server.h"
#include "upload.h"

static void read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void linger(struct conn *c);

static void
list_add(struct conn_list *l, struct conn *c)
{
    c->prev = NULL;
    c->next = l->head;
    if (l->head)
        l->head->prev = c;
    l->head = c;
    l->count++;
}

static void
list_remove(struct conn_list *l, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    l->count--;
}

/* A connection's own line; `reason` (NULL: none) says why it was dropped. */
static void
log_conn(struct conn *c, const char *op, const char *reason)
{
    const struct log_field extra = log_str("reason", reason);
    struct log_op lo = {
        .conn = c->id, .peer = c->peer, .op = op, .us = -1, .extra = &extra, .n_extra = 1};
    log_op(c->srv->log, server_now(c->srv), &lo);
}

struct conn *
conn_new(struct server *srv, int fd, const char *peer)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->srv = srv;
    c->id = ++srv->next_conn_id;
    c->fd = fd;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->last_active = ev_now(srv->loop);
    ev_io_init(&c->read_w, read_cb, fd, EV_READ);
    ev_io_init(&c->write_w, write_cb, fd, EV_WRITE);
    c->read_w.data = c->write_w.data = c->idle_w.data = c->delay_w.data = c;
    ev_io_start(srv->loop, &c->read_w);
    if (srv->opts->idle_timeout) {
        ev_timer_init(&c->idle_w, idle_cb, srv->opts->idle_timeout, 0.);
        ev_timer_start(srv->loop, &c->idle_w);
    }
    list_add(&srv->conns, c);
    srv->stats.connections_total++;
    log_conn(c, "CONNECT", NULL);
    return c;
}

void
conn_close(struct conn *c)
{
    if (c->dead)
        return;
    struct server *srv = c->srv;
    c->dead = true;
    ev_io_stop(srv->loop, &c->read_w);
    ev_io_stop(srv->loop, &c->write_w);
    ev_timer_stop(srv->loop, &c->idle_w);
    ev_timer_stop(srv->loop, &c->delay_w);
    cmd_conn_closed(c);
    close(c->fd);
    c->fd = -1;
    list_remove(&srv->conns, c);
    c->dead_next = srv->graveyard;
    srv->graveyard = c;
    log_conn(c, "CLOSE", NULL);
}

/* Gives up the input buffer, unless it is the server's shared read buffer (see read_cb). */
static void
drop_input(struct conn *c)
{
    if (c->in != c->srv->read_buf)
        free(c->in);
    c->in = NULL;
    c->in_len = 0;
}

void
conn_free(struct conn *c)
{
    upload_free(c->upload);
    drop_input(c);
    free(c->out);
    free(c);
}

static void
schedule_flush(struct conn *c)
{
    if (c->in_flush || c->dead)
        return;
    c->in_flush = true;
    c->flush_next = c->srv->flush;
    c->srv->flush = c;
}

/* Makes room for `len` more output bytes; false (and the connection closed) past the cap. */
static bool
out_reserve(struct conn *c, size_t len)
{
    if (c->out_len - c->out_off + len > CONN_OUT_MAX) {
        log_conn(c, "DROP", "output_cap");
        conn_close(c);
        return false;
    }
    if (c->out_len + len <= c->out_cap)
        return true;
    if (c->out_off > 0) { /* slide the unsent part to the front */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_sendable -= c->out_off;
        c->group_mark -= c->in_group ? c->out_off : 0;
        c->out_off = 0;
        if (c->out_len + len <= c->out_cap)
            return true;
    }
    size_t cap = c->out_cap ? c->out_cap : CONN_OUT_MIN;
    while (cap < c->out_len + len)
        cap *= 2;
    char *p = realloc(c->out, cap);
    if (!p) {
        log_conn(c, "DROP", "out_of_memory");
        conn_close(c);
        return false;
    }
    c->out = p;
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
}

/* Declared with its format attribute so that clang's -Wformat-nonliteral accepts the call. */
static void conn_vprintf(struct conn *c, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
conn_vprintf(struct conn *c, const char *fmt, va_list ap)
{
    char line[PROTO_MAX_LINE];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0)
        return;
    conn_write(c, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void
conn_printf(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conn_vprintf(c, fmt, ap);
    va_end(ap);
}

void
conn_error(struct conn *c, enum proto_err code, const char *fmt, ...)
{
    char msg[PROTO_MAX_LINE / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    conn_printf(c, "ERR %s %s\n", proto_err_name(code), msg);
}

void
conn_reply_done(struct conn *c)
{
    if (c->dead)
        return;
    if (c->in_group) {
        c->group_cmds++;
        return;
    }
    c->out_sendable = c->out_len;
    schedule_flush(c);
}

void
conn_join_group(struct conn *c)
{
    if (c->in_group || c->dead)
        return;
    c->in_group = true;
    c->group_mark = c->out_len;
    c->group_cmds = 0;
    c->group_next = c->srv->group;
    c->srv->group = c;
}

void
conn_group_done(struct conn *c, bool committed, const char *why)
{
    if (!c->in_group)
        return;
    c->in_group = false;
    if (c->dead)
        return;
    if (!committed) {
        /* Nothing of the group is stored: every reply in it becomes an error, so that no
         * client is told of a write that was lost. */
        unsigned cmds = c->group_cmds;
        c->out_len = c->group_mark;
        for (unsigned i = 0; i < cmds && !c->dead; i++)
            conn_error(c, PROTO_ERR_INTERNAL, "commit failed, nothing was changed: %s", why);
    }
    c->group_cmds = 0;
    if (c->dead)
        return;
    c->out_sendable = c->out_len;
    schedule_flush(c);
}

void
conn_flush(struct conn *c)
{
    c->in_flush = false;
    if (c->dead)
        return;
    while (c->out_off < c->out_sendable) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_sendable - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(c->srv->loop, &c->write_w);
            return;
        }
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    ev_io_stop(c->srv->loop, &c->write_w);
    if (c->out_off == c->out_len) { /* all written: hold no memory while idle */
        free(c->out);
        c->out = NULL;
        c->out_off = c->out_len = c->out_cap = c->out_sendable = 0;
        if (c->closing)
            linger(c);
    }
}

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    conn_flush(w->data);
}

static void
linger_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct conn *c = w->data;
    char sink[CONN_LINGER_BUF];
    ssize_t n = read(c->fd, sink, sizeof sink);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        conn_close(c);
}

static void
linger_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    conn_close(w->data);
}

/* Every reply is written: tell the peer we are done, and close once it is done too (or after
 * CONN_LINGER_TIMEOUT), discarding what it still sends, so no reset destroys our replies. */
static void
linger(struct conn *c)
{
    struct ev_loop *loop = c->srv->loop;
    if (c->lingering || c->dead)
        return;
    c->lingering = true;
    drop_input(c);
    if (shutdown(c->fd, SHUT_WR) != 0) {
        conn_close(c);
        return;
    }
    ev_timer_stop(loop, &c->idle_w);
    ev_timer_stop(loop, &c->delay_w);
    ev_io_stop(loop, &c->read_w);
    ev_set_cb(&c->read_w, linger_read_cb);
    ev_io_start(loop, &c->read_w);
    ev_timer_init(&c->delay_w, linger_timeout_cb, CONN_LINGER_TIMEOUT, 0.);
    ev_timer_start(loop, &c->delay_w);
}

void
conn_close_after_flush(struct conn *c)
{
    if (c->dead)
        return;
    c->closing = true;
    ev_io_stop(c->srv->loop, &c->read_w);
    schedule_flush(c);
}

void
conn_block(struct conn *c)
{
    c->blocked = true;
    ev_io_stop(c->srv->loop, &c->read_w);
}

void
conn_unblock(struct conn *c)
{
    c->blocked = false;
    if (c->dead || c->in_resume)
        return;
    c->in_resume = true;
    c->resume_next = c->srv->resume;
    c->srv->resume = c;
    server_defer(c->srv);
}

/* One complete line (LF and CR removed), or a line that was too long (line == NULL). */
static void
handle_line(struct conn *c, const char *line, size_t len)
{
    if (c->upload) {
        if (upload_line(c->upload, line, len))
            cmd_upload_complete(c);
        return;
    }
    if (c->drop_lines) {
        if (--c->drop_lines == 0)
            cmd_upload_dropped(c);
        return;
    }
    if (!line) {
        conn_error(c, PROTO_ERR_TOO_LONG, "line longer than %d bytes", PROTO_MAX_LINE);
        conn_reply_done(c);
        return;
    }
    if (!proto_line_is_blank(line, len))
        cmd_execute(c, line, len);
}

/* The bound on completing a line (CONN_LINE_TIMEOUT, or a shorter --idle-timeout); 0: none. */
static double
line_timeout(const struct server *srv)
{
    double idle = srv->opts->idle_timeout;
    return idle < CONN_LINE_TIMEOUT ? idle : CONN_LINE_TIMEOUT;
}

/* An unfinished line began: make sure the timer fires by its bound (the idle timer may be set
 * for much later). */
static void
watch_line(struct conn *c)
{
    struct ev_loop *loop = c->srv->loop;
    double bound = line_timeout(c->srv);
    if (bound <= 0 || !ev_is_active(&c->idle_w) || ev_timer_remaining(loop, &c->idle_w) <= bound)
        return;
    ev_timer_stop(loop, &c->idle_w);
    ev_timer_set(&c->idle_w, bound, 0.);
    ev_timer_start(loop, &c->idle_w);
}

/* A connection's first line may be over the limit and still be an HTTP request (a long URL):
 * it is refused as cmd.c refuses every first line that starts with an HTTP method, so that a web
 * page can never make a browser's request body run as commands. `start` is the beginning of
 * the line, of which at least PROTO_MAX_LINE bytes are there. True when it was refused. */
static bool
refuse_long_http(struct conn *c, const char *start)
{
    if (c->spoke || !proto_looks_like_http(start, PROTO_MAX_LINE))
        return false;
    cmd_execute(c, start, PROTO_MAX_LINE); /* takes its HTTP branch: ERR, then the close */
    return true;
}

/* Frames and handles the complete lines in `in`, stopping when the connection blocks. */
static void
process_input(struct conn *c)
{
    size_t pos = 0;
    bool ended = false; /* a line ended: what is left began with this input */
    while (pos < c->in_len && !c->blocked && !c->dead && !c->closing) {
        char *start = c->in + pos;
        char *lf = memchr(start, '\n', c->in_len - pos);
        if (!lf) {
            /* No end in sight: a line this long is over the limit even with a CR. */
            if (c->in_len - pos > PROTO_MAX_LINE + 1) {
                if (!c->skipping && refuse_long_http(c, start))
                    break;
                c->skipping = true;
                pos = c->in_len;
            }
            break;
        }
        size_t len = (size_t)(lf - start);
        pos += len + 1;
        ended = true;
        if (len > 0 && start[len - 1] == '\r')
            len--;
        if (c->skipping || len > PROTO_MAX_LINE) {
            bool judged = c->skipping; /* its start was seen when the skipping began */
            c->skipping = false;
            if (!judged && refuse_long_http(c, start))
                break;
            handle_line(c, NULL, 0);
        } else {
            handle_line(c, start, len);
        }
    }
    if (c->dead)
        return;
    c->in_len -= pos;
    if (c->in_len == 0) {
        drop_input(c);
    } else if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len);
    }
    if (c->in_len == 0 && !c->skipping) {
        c->line_started = 0;
    } else if (ended || c->line_started == 0) {
        c->line_started = ev_now(c->srv->loop);
        watch_line(c);
    }
}

/* After the peer closed its side and every complete line it sent was handled: an unfinished
 * line or upload is dropped whole (nothing of it was stored), and the connection closes once
 * its replies are written. */
static void
finish_eof(struct conn *c)
{
    if (c->dead || c->blocked || !c->eof)
        return;
    if (c->upload || c->drop_lines || c->in_len > 0)
        conn_close(c);
    else
        conn_close_after_flush(c);
}

/* Moves what is left in the shared read buffer (a partial line, or lines waiting behind a
 * blocked command) into a buffer of the connection's own. */
static void
keep_input(struct conn *c)
{
    if (c->dead || c->in_len == 0) {
        c->in = NULL;
        c->in_len = 0;
        return;
    }
    char *own = malloc(CONN_IN_BUF);
    if (!own) {
        c->in = NULL;
        conn_close(c);
        return;
    }
    memcpy(own, c->in, c->in_len);
    c->in = own;
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct conn *c = w->data;
    /* A connection with no input left over reads into the server's shared buffer: most reads
     * hold whole requests, and then it never needs a buffer of its own. */
    if (!c->in)
        c->in = c->srv->read_buf;
    ssize_t n = read(c->fd, c->in + c->in_len, CONN_IN_BUF - c->in_len);
    if (n <= 0 && c->in == c->srv->read_buf)
        c->in = NULL;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        c->eof = true;
        ev_io_stop(loop, &c->read_w);
        finish_eof(c);
        return;
    }
    c->in_len += (size_t)n;
    c->last_active = ev_now(loop);
    process_input(c);
    if (c->in == c->srv->read_buf)
        keep_input(c);
}

void
conn_resume(struct conn *c)
{
    c->in_resume = false;
    if (c->dead || c->blocked)
        return;
    c->line_started = 0; /* nothing was read while blocked: an unfinished line starts anew */
    process_input(c);
    if (c->eof)
        finish_eof(c);
    else if (!c->dead && !c->blocked && !c->closing && !c->srv->shutting_down)
        ev_io_start(c->srv->loop, &c->read_w);
}

/* The idle timer, which also bounds how long an unfinished line may take (CONN_LINE_TIMEOUT). */
static void
idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct conn *c = w->data;
    double timeout = c->srv->opts->idle_timeout;
    double left = c->last_active + timeout - ev_now(loop);
    double line_left =
        c->line_started > 0 ? c->line_started + line_timeout(c->srv) - ev_now(loop) : timeout;
    if (c->blocked) { /* waiting on the server is neither idleness nor slowness */
        ev_timer_set(w, left > 0 ? left : timeout, 0.);
        ev_timer_start(loop, w);
        return;
    }
    if (left <= 0 || line_left <= 0) {
        log_conn(c, "DROP", left <= 0 ? "idle_timeout" : "line_timeout");
        conn_close(c);
        return;
    }
    ev_timer_set(w, left < line_left ? left : line_left, 0.);
    ev_timer_start(loop, w);
}
