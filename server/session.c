/* session.c - one client's conversation (see session.h): frames in, requests started in
 * order, replies out in order. */
#include "session.h"

#include <stdlib.h>

#include "cmd.h"
#include "conn.h"
#include "reply.h"

struct session_set {
    struct cmd_env *env;
    struct session *head;
    size_t count;
    bool stopping;
    /* One reply writer for every session: replies are written one at a time, and its line
     * buffer (4.5 KiB) would otherwise be most of an idle connection's memory. */
    struct proto_out out;
    char scratch[PROTO_OUT_SCRATCH]; /* where it holds a RESP reply's data lines (reply.h) */
};

struct session {
    struct session_set *set;
    struct session *prev, *next; /* the set's */
    struct cmd_env *env;
    struct conn *conn;
    struct cmd_client client;
    struct cmd_req *head, **tail; /* requests not yet answered, in arrival order */
    struct cmd_req *last;         /* the newest of them */
    unsigned queued;
    /* An UPLOAD taking the next lines (a line's), or the next arguments (a RESP request's), as
     * its records. While a line's takes them, every line is a record, also one that starts
     * with `*`: the connection frames no RESP meanwhile. */
    struct cmd_req *feeding;
    /* The head's streamed reply between two of its portions (reply.h): the writer serves
     * other sessions in between. */
    struct proto_out_reply saved;
    bool spoke;    /* a first line was seen: the HTTP check is done */
    bool paused;   /* the connection was told to stop handing frames */
    bool eof;      /* the peer is done sending: close once every reply is written */
    bool stopping; /* shutdown: start nothing new */
    bool closing;  /* conn_close_after_flush was called */
    bool in_frame; /* inside on_frame: replies are written when it returns */
    bool writing;  /* inside write_replies: a request done meanwhile is written there */
};

static void
sink(void *arg, const char *data, size_t len)
{
    struct session *s = arg;

    conn_write(s->conn, data, len);
}

/* The queue is full, or its newest request holds back what follows: one that blocks until it
 * is done (WAIT, PURGE, a wrong AUTH), or one after whose reply the connection closes. No
 * request starts after such a one, so it is always the newest. */
static bool
must_pause(const struct session *s)
{
    const struct cmd_req *r = s->last;

    if (s->stopping || s->closing || s->queued >= SESSION_PIPELINE_MAX)
        return true;
    return r != NULL && ((r->blocks && !r->done) || r->closes);
}

static void
close_when_done(struct session *s)
{
    if (s->head == NULL && !s->closing && (s->eof || s->stopping)) {
        s->closing = true;
        conn_close_after_flush(s->conn);
    }
}

/* The UPLOAD being fed has its records (or is gone): frames are requests again. */
static void
stop_feeding(struct session *s)
{
    if (s->feeding != NULL && s->feeding->form == PROTO_FORM_LINE)
        conn_set_resp(s->conn, true);
    s->feeding = NULL;
}

/* The head request's reply is complete: it leaves the queue. */
static void
pop_head(struct session *s, struct cmd_req *r)
{
    s->head = r->next;
    if (s->head == NULL) {
        s->tail = &s->head;
        s->last = NULL;
    }
    s->queued--;
    if (s->feeding == r)
        stop_feeding(s);
    bool closes = r->closes;
    cmd_req_free(r);
    if (closes) {
        s->closing = true;
        conn_close_after_flush(s->conn);
    }
}

/* Writes (a part of) the head's reply; true when it is complete. A long reply goes on while
 * the output has room: the next rows are ready at once or asked of the store (cmd_more), which
 * may answer before cmd_more returns; the loop then finds the head done again. */
static bool
write_head(struct session *s, struct cmd_req *r)
{
    struct proto_out *o = &s->set->out;

    o->arg = s;
    if (r->streaming) /* a long reply goes on where its last portion left it */
        o->reply = s->saved;
    else
        proto_out_set_form(o, r->form);
    if (cmd_reply(r, o, conn_out_room(s->conn)))
        return true;
    s->saved = o->reply;
    if (conn_out_room(s->conn) > 0)
        cmd_more(r);
    return false;
}

/* Writes the replies of the done requests at the head of the queue, in order. A long reply at
 * the head holds back the ones after it until it is complete; it waits for the store, or for
 * the output to drain (on_drain). */
static void
write_replies(struct session *s)
{
    struct cmd_req *r;

    if (s->writing)
        return;
    s->writing = true;
    while ((r = s->head) != NULL && r->done && !s->closing) {
        if (r->streaming && conn_out_room(s->conn) == 0)
            break;
        if (write_head(s, r))
            pop_head(s, r);
    }
    s->writing = false;
    conn_set_waiting(s->conn, s->head != NULL);
    close_when_done(s);
    if (s->paused && !must_pause(s) && (s->queued <= SESSION_PIPELINE_LOW || s->head == NULL)) {
        s->paused = false;
        conn_resume(s->conn);
    }
}

static void
req_complete(struct cmd_req *r)
{
    struct session *s = r->owner;

    if (!s->in_frame)
        write_replies(s);
}

/* A new request at the tail of the queue; NULL (and the connection closed) when out of
 * memory. */
static struct cmd_req *
enqueue(struct session *s)
{
    struct cmd_req *r = cmd_req_new(s->env, &s->client, req_complete, s);

    if (r == NULL) {
        conn_close(s->conn, "out_of_memory");
        return NULL;
    }
    *s->tail = r;
    s->tail = &r->next;
    s->last = r;
    s->queued++;
    return r;
}

/* The first line of a connection that speaks HTTP is refused, and the connection closed. */
static bool
refuse_http(struct session *s, const char *start, size_t len)
{
    bool first = !s->spoke;

    s->spoke = true;
    if (!first || start == NULL || !proto_looks_like_http(start, len))
        return false;
    struct cmd_req *r = enqueue(s);
    if (r != NULL)
        cmd_http(r);
    return true;
}

/* A frame while an UPLOAD takes its records: a line, or a RESP argument (null: an empty
 * record; too long: one over the limit, as a line's). */
static void
feed_record(struct session *s, const struct proto_frame *f)
{
    struct cmd_req *r = s->feeding;
    const struct proto_arg *a = &f->args[0];

    if (f->resp == PROTO_FRAME_RESP_ARG && a->kind == PROTO_ARG_STRING)
        cmd_record(r, a->p, a->len);
    else if (f->resp == PROTO_FRAME_RESP_ARG && a->kind == PROTO_ARG_NULL)
        cmd_record(r, "", 0);
    else if (f->resp == PROTO_FRAME_RESP_ARG || f->kind == PROTO_FRAME_TOO_LONG)
        cmd_record(r, NULL, 0);
    else if (f->kind == PROTO_FRAME_LINE)
        cmd_record(r, f->start, f->len);
    if (r->records_left == 0)
        stop_feeding(s);
}

/* A RESP request (frame.h): the same command path as a line, answered in RESP. Arguments after
 * its first frame are an UPLOAD's records, or belong to a request already refused (dropped). */
static void
take_resp(struct session *s, const struct proto_frame *f)
{
    s->spoke = true; /* no HTTP request starts with `*` */
    if (f->resp == PROTO_FRAME_RESP_ARG)
        return;
    struct cmd_req *r = enqueue(s);
    if (r == NULL)
        return;
    if (f->resp == PROTO_FRAME_RESP_ERROR) {
        cmd_frame_error(r, f->err, f->why, f->fatal);
        return;
    }
    cmd_args(r, f->args, f->nargs, f->argc);
    if (r->records_left > 0)
        s->feeding = r;
}

static void
take_frame(struct session *s, const struct proto_frame *f)
{
    if (s->feeding != NULL) {
        feed_record(s, f);
        return;
    }
    if (f->resp != PROTO_FRAME_NOT_RESP) {
        take_resp(s, f);
        return;
    }
    switch (f->kind) {
    case PROTO_FRAME_LINE:
        if (proto_line_is_blank(f->start, f->len) || refuse_http(s, f->start, f->len))
            return;
        break;
    case PROTO_FRAME_LONG_BEGIN: /* judged by its start; answered when it ends */
        refuse_http(s, f->start, PROTO_MAX_LINE);
        return;
    case PROTO_FRAME_TOO_LONG:
        if (refuse_http(s, f->start, PROTO_MAX_LINE))
            return;
        break;
    case PROTO_FRAME_NEED_MORE:
        return;
    }
    struct cmd_req *r = enqueue(s);
    if (r == NULL)
        return;
    if (f->kind == PROTO_FRAME_TOO_LONG) {
        cmd_too_long(r);
        return;
    }
    cmd_line(r, f->start, f->len);
    if (r->records_left > 0) {
        s->feeding = r;
        conn_set_resp(s->conn, false); /* its records are lines, whatever they start with */
    }
}

static bool
on_frame(void *arg, const struct proto_frame *f)
{
    struct session *s = arg;

    if (s->stopping || s->closing)
        return false;
    s->in_frame = true;
    take_frame(s, f);
    s->in_frame = false;
    if (s->closing) /* closed inside (out of memory) */
        return false;
    write_replies(s);
    if (s->feeding != NULL)
        return true; /* an UPLOAD's records come before any limit */
    if (must_pause(s)) {
        s->paused = true;
        return false;
    }
    return true;
}

static void
on_eof(void *arg, bool partial)
{
    struct session *s = arg;

    /* An unfinished line or upload is dropped whole (nothing of it was stored). */
    if (partial || s->feeding != NULL) {
        conn_close(s->conn, NULL);
        return;
    }
    s->eof = true;
    close_when_done(s);
}

static void
on_close(void *arg)
{
    struct session *s = arg;
    struct cmd_req *r = s->head, *next;

    for (; r != NULL; r = next) {
        next = r->next;
        cmd_req_free(r);
    }
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        s->set->head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->set->count--;
    free(s);
}

/* The output drained below its soft limit: a long reply at the head may go on. */
static void
on_drain(void *arg)
{
    write_replies(arg);
}

static const struct conn_handler handler = {on_frame, on_eof, on_close, on_drain};

struct session_set *
session_set_new(struct cmd_env *env)
{
    struct session_set *set = calloc(1, sizeof *set);

    if (set == NULL)
        return NULL;
    set->env = env;
    proto_out_init(&set->out, sink, NULL);
    proto_out_set_scratch(&set->out, set->scratch, sizeof set->scratch);
    return set;
}

void
session_set_free(struct session_set *set)
{
    free(set);
}

size_t
session_set_count(const struct session_set *set)
{
    return set->count;
}

struct session *
session_new(struct session_set *set, struct conn *c)
{
    struct session *s = calloc(1, sizeof *s);

    if (s == NULL)
        return NULL;
    s->set = set;
    s->env = set->env;
    s->conn = c;
    s->stopping = set->stopping;
    s->next = set->head;
    if (set->head != NULL)
        set->head->prev = s;
    set->head = s;
    set->count++;
    s->client.wire.conn = conn_id(c);
    s->client.wire.peer = conn_peer(c);
    s->client.wire.since = ev_now(set->env->loop);
    s->client.wire.resp = PROTO_FORM_RESP2; /* until HELLO 3 */
    s->tail = &s->head;
    conn_start(c, &handler, s);
    return s;
}

void
session_set_shutdown(struct session_set *set)
{
    set->stopping = true;
    for (struct session *s = set->head; s != NULL; s = s->next) {
        s->stopping = true;
        close_when_done(s);
    }
}
