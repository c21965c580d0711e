/* resp.c - the Redis wire form (see resp.h): where a RESP request ends, and RESP headers. */
#include "resp.h"

#include "frame.h"

/* The messages below spell the limit out; keep them in step. */
_Static_assert(PROTO_RESP_ARGS_MAX == 50002, "update the TOO_LARGE message");
_Static_assert(PROTO_RESP_HEAD_ARGS >= 1, "a first frame holds at least the verb");
_Static_assert(PROTO_RESP_HEAD_MAX >= PROTO_RESP_BULK_MAX + 2 * PROTO_RESP_HEADER_MAX + 2,
               "a first frame holds the longest verb, its array header and its own");
_Static_assert(PROTO_RESP_NUM_MAX < 1000000000, "a header's number has at most 9 digits");
_Static_assert(PROTO_RESP_HEADER_MAX >= 1 + 1 + 9 + 2, "the longest header fits");

/* The answers to bad requests. Redis words them "Protocol error: ...", and so do we, so that a
 * Redis user knows the kind; the code in front is ours. */
static const char msg_array_len[] = "Protocol error: invalid multibulk length";
static const char msg_negative[] = "Protocol error: negative multibulk length";
static const char msg_not_bulk[] = "Protocol error: expected '$' (a bulk string) in a request";
static const char msg_bulk_len[] = "Protocol error: invalid bulk length";
static const char msg_no_crlf[] = "Protocol error: bulk string not followed by CR LF";
static const char msg_stray[] = "Protocol error: bulk string outside an array";
static const char msg_too_many[] = "request of more than 50002 arguments";

enum header { HDR_MORE, HDR_BAD, HDR_OK };

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads the header at buf[0] (its type byte is the caller's business): "-1" and other negative
 * numbers, "0", or digits without a leading zero, at most PROTO_RESP_NUM_MAX, then CR LF. HDR_MORE
 * when every byte there is a header's beginning; HDR_BAD as soon as one cannot be, so a garbage
 * header is found within PROTO_RESP_HEADER_MAX bytes. */
static enum header
read_header(const char *buf, size_t len, int64_t *value, size_t *hlen)
{
    size_t i = 1;
    bool neg = false;
    int64_t v = 0;
    size_t digits = 0;

    if (i < len && buf[i] == '-') {
        neg = true;
        i++;
    }
    for (; i < len && is_digit(buf[i]); i++) {
        if (digits > 0 && v == 0)
            return HDR_BAD; /* a leading zero */
        v = v * 10 + (buf[i] - '0');
        digits++;
        if (v > PROTO_RESP_NUM_MAX)
            return HDR_BAD;
    }
    if (i == len)
        return HDR_MORE;
    if (digits == 0 || buf[i] != '\r' || (neg && v == 0))
        return HDR_BAD;
    if (i + 1 == len)
        return HDR_MORE;
    if (buf[i + 1] != '\n')
        return HDR_BAD;
    *value = neg ? -v : v;
    *hlen = i + 2;
    return HDR_OK;
}

/* Nothing to hand over yet; `used` bytes were dropped. */
static enum proto_resp_step
need_more(struct proto_frame *out, size_t used)
{
    out->kind = PROTO_FRAME_NEED_MORE;
    out->resp = PROTO_FRAME_NOT_RESP;
    out->used = used;
    return PROTO_RESP_FRAME;
}

static enum proto_resp_step
error_frame(struct proto_frame *out, size_t used, enum proto_err err, const char *why, bool fatal)
{
    out->resp = PROTO_FRAME_RESP_ERROR;
    out->used = used;
    out->err = err;
    out->why = why;
    out->fatal = fatal;
    return PROTO_RESP_FRAME;
}

/* Where a request's end can no longer be known: nothing more is framed. The caller answers and
 * closes, so the rest of its buffer is taken too. */
static enum proto_resp_step
fatal(struct proto_resp_state *st, struct proto_frame *out, size_t len, const char *why)
{
    st->phase = PROTO_RESP_DEAD;
    return error_frame(out, len, PROTO_ERR_BAD_REQUEST, why, true);
}

/* Starts dropping a bulk string's payload of `size` bytes and its CR LF. */
static void
start_drop(struct proto_resp_state *st, int64_t size)
{
    st->dropping = true;
    st->drop = (uint64_t)size;
    st->size = (uint64_t)size;
    st->crlf = 0;
}

/* Drops what buf[*pos, len) holds of the bulk string being dropped. False when the bytes after
 * its payload are not CR LF; otherwise *done says whether it ended. */
static bool
drop_some(struct proto_resp_state *st, const char *buf, size_t len, size_t *pos, bool *done)
{
    size_t avail = len - *pos;
    size_t take = st->drop < avail ? (size_t)st->drop : avail;

    *pos += take;
    st->drop -= take;
    while (st->drop == 0 && st->crlf < 2 && *pos < len) {
        if (buf[*pos] != (st->crlf == 0 ? '\r' : '\n'))
            return false;
        (*pos)++;
        st->crlf++;
    }
    *done = st->drop == 0 && st->crlf == 2;
    if (*done)
        st->dropping = false;
    return true;
}

/* The bulk string header at buf[pos]: HDR_OK with its size (-1 for a null string), HDR_MORE, or
 * HDR_BAD for anything a request cannot hold there (another type, a size below -1). */
static enum header
bulk_header(const char *buf, size_t len, size_t pos, int64_t *size, size_t *hlen)
{
    if (pos == len)
        return HDR_MORE;
    if (buf[pos] != '$')
        return HDR_BAD;
    enum header h = read_header(buf + pos, len - pos, size, hlen);
    if (h == HDR_OK && *size < -1)
        return HDR_BAD;
    return h;
}

/* The fatal message for a bad element at buf[pos]. */
static const char *
bulk_error(const char *buf, size_t pos)
{
    return buf[pos] == '$' ? msg_bulk_len : msg_not_bulk;
}

/* A request with too many arguments: drop its elements one by one, then refuse it. */
static enum proto_resp_step
drop_request(struct proto_resp_state *st, const char *buf, size_t len, size_t pos,
             struct proto_frame *out)
{
    bool done;
    int64_t size;
    size_t hlen;

    while (st->left > 0) {
        if (st->dropping) {
            if (!drop_some(st, buf, len, &pos, &done))
                return fatal(st, out, len, msg_no_crlf);
            if (!done)
                return need_more(out, pos);
            st->left--;
            continue;
        }
        enum header h = bulk_header(buf, len, pos, &size, &hlen);
        if (h == HDR_MORE)
            return need_more(out, pos);
        if (h == HDR_BAD)
            return fatal(st, out, len, bulk_error(buf, pos));
        pos += hlen;
        if (size >= 0)
            start_drop(st, size);
        else
            st->left--;
    }
    st->phase = PROTO_RESP_AT_START;
    return error_frame(out, pos, PROTO_ERR_TOO_LARGE, msg_too_many, false);
}

/* A request's first frame: as many of its first arguments as fit, all of them in buf, so the
 * frame points at them. pos is past the array header. */
static enum proto_resp_step
first_frame(struct proto_resp_state *st, const char *buf, size_t len, size_t pos, int64_t n,
            struct proto_frame *out)
{
    size_t want = n < PROTO_RESP_HEAD_ARGS ? (size_t)n : PROTO_RESP_HEAD_ARGS;
    size_t k = 0;
    int64_t size;
    size_t hlen;

    while (k < want) {
        enum header h = bulk_header(buf, len, pos, &size, &hlen);
        if (h == HDR_MORE)
            return need_more(out, 0);
        if (h == HDR_BAD)
            return fatal(st, out, len, bulk_error(buf, pos));
        size_t end = pos + hlen + (size < 0 ? 0 : (size_t)size + 2);
        if (size > PROTO_RESP_BULK_MAX || end > PROTO_RESP_HEAD_MAX)
            break; /* this one, and all after it, come one per frame */
        if (end > len)
            return need_more(out, 0);
        if (size >= 0 && (buf[end - 2] != '\r' || buf[end - 1] != '\n'))
            return fatal(st, out, len, msg_no_crlf);
        out->args[k].kind = size < 0 ? PROTO_ARG_NULL : PROTO_ARG_STRING;
        out->args[k].p = size < 0 ? NULL : buf + pos + hlen;
        out->args[k].len = size < 0 ? 0 : (size_t)size;
        k++;
        pos = end;
    }
    out->resp = PROTO_FRAME_RESP;
    out->used = pos;
    out->argc = (size_t)n;
    out->nargs = k;
    out->more = (size_t)n - k;
    if (out->more > 0) {
        st->phase = PROTO_RESP_IN_ARGS;
        st->left = out->more;
    }
    return PROTO_RESP_FRAME;
}

/* A `*` at a request's start: the array header, then its first frame. */
static enum proto_resp_step
start_array(struct proto_resp_state *st, const char *buf, size_t len, struct proto_frame *out)
{
    int64_t n;
    size_t hlen;

    enum header h = read_header(buf, len, &n, &hlen);
    if (h == HDR_MORE)
        return need_more(out, 0);
    if (h == HDR_BAD)
        return fatal(st, out, len, msg_array_len);
    if (n < 0) /* nothing follows a negative count: only its header is dropped */
        return error_frame(out, hlen, PROTO_ERR_BAD_REQUEST, msg_negative, false);
    if (n == 0) {
        out->used = hlen;
        return PROTO_RESP_EMPTY;
    }
    if (n > PROTO_RESP_ARGS_MAX) {
        st->phase = PROTO_RESP_IN_DROP;
        st->left = (uint64_t)n;
        return drop_request(st, buf, len, hlen, out);
    }
    return first_frame(st, buf, len, hlen, n, out);
}

/* Drops the payload of a bulk string that came outside an array, then refuses it. */
static enum proto_resp_step
drop_stray(struct proto_resp_state *st, const char *buf, size_t len, size_t pos,
           struct proto_frame *out)
{
    bool done;

    if (!drop_some(st, buf, len, &pos, &done))
        return fatal(st, out, len, msg_no_crlf);
    if (!done)
        return need_more(out, pos);
    st->phase = PROTO_RESP_AT_START;
    return error_frame(out, pos, PROTO_ERR_BAD_REQUEST, msg_stray, false);
}

/* A `$` at a request's start. A well-formed bulk string header makes it RESP sent outside an
 * array: dropped exactly, and refused. Anything else is a line that happens to begin with `$`
 * (no verb does), left to the line framer, so a person typing `$x` is answered as before. */
static enum proto_resp_step
start_stray(struct proto_resp_state *st, const char *buf, size_t len, struct proto_frame *out)
{
    int64_t size;
    size_t hlen;

    enum header h = read_header(buf, len, &size, &hlen);
    if (h == HDR_MORE)
        return need_more(out, 0);
    if (h == HDR_BAD)
        return PROTO_RESP_NOT;
    if (size < -1) /* a header with nothing after it: only it is dropped */
        return error_frame(out, hlen, PROTO_ERR_BAD_REQUEST, msg_bulk_len, false);
    if (size == -1)
        return error_frame(out, hlen, PROTO_ERR_BAD_REQUEST, msg_stray, false);
    st->phase = PROTO_RESP_IN_STRAY;
    start_drop(st, size);
    return drop_stray(st, buf, len, hlen, out);
}

/* One argument after a request's first frame. */
static enum proto_resp_step
next_arg(struct proto_resp_state *st, const char *buf, size_t len, struct proto_frame *out)
{
    struct proto_arg *a = &out->args[0];
    size_t pos = 0;
    int64_t size;
    size_t hlen;
    bool done;

    if (!st->dropping) {
        enum header h = bulk_header(buf, len, 0, &size, &hlen);
        if (h == HDR_MORE)
            return need_more(out, 0);
        if (h == HDR_BAD)
            return fatal(st, out, len, bulk_error(buf, 0));
        if (size > PROTO_RESP_BULK_MAX) {
            start_drop(st, size);
            pos = hlen;
        } else {
            size_t end = hlen + (size < 0 ? 0 : (size_t)size + 2);
            if (end > len)
                return need_more(out, 0);
            if (size >= 0 && (buf[end - 2] != '\r' || buf[end - 1] != '\n'))
                return fatal(st, out, len, msg_no_crlf);
            a->kind = size < 0 ? PROTO_ARG_NULL : PROTO_ARG_STRING;
            a->p = size < 0 ? NULL : buf + hlen;
            a->len = size < 0 ? 0 : (size_t)size;
            pos = end;
        }
    }
    if (st->dropping) {
        if (!drop_some(st, buf, len, &pos, &done))
            return fatal(st, out, len, msg_no_crlf);
        if (!done)
            return need_more(out, pos);
        a->kind = PROTO_ARG_TOO_LONG;
        a->p = NULL;
        a->len = (size_t)st->size;
    }
    st->left--;
    if (st->left == 0)
        st->phase = PROTO_RESP_AT_START;
    out->resp = PROTO_FRAME_RESP_ARG;
    out->used = pos;
    out->nargs = 1;
    out->more = (size_t)st->left;
    return PROTO_RESP_FRAME;
}

enum proto_resp_step
proto_resp_frame(struct proto_resp_state *st, const char *buf, size_t len, struct proto_frame *out)
{
    *out = (struct proto_frame){.kind = PROTO_FRAME_NEED_MORE, .resp = PROTO_FRAME_NOT_RESP};
    switch (st->phase) {
    case PROTO_RESP_AT_START:
        if (len == 0)
            return PROTO_RESP_NOT;
        if (buf[0] == '*')
            return start_array(st, buf, len, out);
        if (buf[0] == '$')
            return start_stray(st, buf, len, out);
        return PROTO_RESP_NOT;
    case PROTO_RESP_IN_ARGS:
        return next_arg(st, buf, len, out);
    case PROTO_RESP_IN_DROP:
        return drop_request(st, buf, len, 0, out);
    case PROTO_RESP_IN_STRAY:
        return drop_stray(st, buf, len, 0, out);
    case PROTO_RESP_DEAD:
        break;
    }
    return need_more(out, len);
}

size_t
proto_resp_fmt_head(char buf[PROTO_RESP_HDR_BUF], char type, int64_t n)
{
    char digits[20];
    size_t k = 0;
    size_t p = 0;
    /* The magnitude as unsigned, so INT64_MIN has no overflow. */
    uint64_t mag = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;

    buf[p++] = type;
    if (n < 0)
        buf[p++] = '-';
    do {
        digits[k++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag > 0);
    while (k > 0)
        buf[p++] = digits[--k];
    buf[p++] = '\r';
    buf[p++] = '\n';
    buf[p] = '\0';
    return p;
}
