/* frame.h - cutting a byte stream into requests: the one place that knows where a request
 * ends. Pure: it looks at the caller's buffer and says what the next request is and how many
 * bytes it took; the caller (the server's transport, the fuzzers) owns the buffer.
 *
 * A request is a line ended by LF. One CR right before the LF is not part of the line (telnet
 * sends CRLF); any other CR stays in it, and the parsers refuse it as a control byte. The
 * PROTO_MAX_LINE limit counts every byte before the LF, that CR included. A line over the
 * limit is reported once, when its LF arrives, and skipped whole; its start is shown to the
 * caller while it is still in the buffer, so a first line can be judged by how it begins.
 *
 * Version 2: a framer whose `resp` is set also reads the Redis wire form (resp.h). A request
 * that starts with `*` is a RESP array of bulk strings; one that starts with a well-formed bulk
 * string header (`$<len>` CR LF) is a bulk string outside an array, dropped and refused; every
 * other request is a line, as before. A RESP request comes as
 *   - PROTO_FRAME_RESP: its first arguments, args[0, nargs) of argc, as many of the first
 *     PROTO_RESP_HEAD_ARGS as fit PROTO_RESP_HEAD_MAX bytes and are no longer than
 *     PROTO_RESP_BULK_MAX each (the first that does not fit ends the frame); `more` says how many
 *     follow, then
 *   - `more` times PROTO_FRAME_RESP_ARG: one further argument in args[0] (a string, a null
 *     string, or one too long, dropped unread); `more` says how many are still to come.
 * The caller hands UPLOAD's records to the upload and drops the others (proto_parse_args says
 * what a request is). An empty array `*0` is an empty request: no frame, like a blank line
 * that needs no answer. A bad request is a PROTO_FRAME_RESP_ERROR, answered with its `err` and
 * `why` (proto_out_error): `fatal` false when it was dropped exactly and the stream is in step
 * (a negative count `*-2`, a bulk string outside an array, more than PROTO_RESP_ARGS_MAX
 * arguments), true when its end cannot be known and the connection must be closed after the
 * answer (a header that is no number, a missing CR LF, an element that is not a bulk string,
 * such as a nested array, a number over PROTO_RESP_NUM_MAX); nothing is framed after that. */
#ifndef COUPOND_PROTO_FRAME_H
#define COUPOND_PROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"
#include "resp.h"

/* Bytes the caller's buffer must be able to hold: a longest line, its CR and LF, and a RESP
 * request's longest first frame and the header after it (which says where that frame ends).
 * A buffer holding PROTO_FRAME_MIN_BUF bytes always gives a frame or drops bytes. */
#define PROTO_FRAME_MIN_BUF (PROTO_RESP_HEAD_MAX + PROTO_RESP_HEADER_MAX)
_Static_assert(PROTO_FRAME_MIN_BUF >= PROTO_MAX_LINE + 2, "a longest line fits");

enum proto_frame_kind {
    PROTO_FRAME_NEED_MORE = 0, /* no complete request in the buffer: read more */
    PROTO_FRAME_LINE,          /* a request line: start, len (CR LF removed) */
    PROTO_FRAME_LONG_BEGIN,    /* a line over the limit began at start (at least
                                  PROTO_MAX_LINE bytes of it are there); it is skipped */
    PROTO_FRAME_TOO_LONG       /* a line over the limit ended: answer ERR TOO_LONG; start is
                                  its beginning when it is still in the buffer, else NULL */
};

/* RESP frames. Not values of proto_frame_kind, so that a switch over the line kinds stays
 * complete for a caller that never sets `resp` and never sees these; a RESP frame's `kind` is
 * PROTO_FRAME_NEED_MORE, and proto_frame_need_more() tells the two apart. */
enum proto_frame_resp {
    PROTO_FRAME_NOT_RESP = 0, /* a line frame, or none: see kind */
    PROTO_FRAME_RESP,         /* a RESP request's first frame: argc, args[0, nargs), more */
    PROTO_FRAME_RESP_ARG,     /* one further argument in args[0]; more still to come */
    PROTO_FRAME_RESP_ERROR    /* a bad RESP request: err, why, fatal */
};

/* State kept between calls for one stream. Zero it to start; set `resp` before the first call
 * to read RESP requests too (version 2), or leave it false for lines only. */
struct proto_framer {
    bool skipping; /* inside a line over the limit: drop up to its LF */
    bool resp;     /* a request that starts with `*` is RESP */
    struct proto_resp_state rs;
};

struct proto_frame {
    enum proto_frame_kind kind;
    const char *start;
    size_t len;
    size_t used; /* bytes of the buffer this frame took: drop them before the next call */
    /* RESP frames (version 2). The args' bytes are in the caller's buffer, valid until the
     * frame's `used` bytes are dropped. */
    enum proto_frame_resp resp;
    size_t argc;  /* PROTO_FRAME_RESP: arguments of the request, all of them */
    size_t nargs; /* arguments in args[] */
    size_t more;  /* arguments still to come, one per PROTO_FRAME_RESP_ARG */
    struct proto_arg args[PROTO_RESP_HEAD_ARGS];
    enum proto_err err; /* PROTO_FRAME_RESP_ERROR: the answer's code and message */
    const char *why;    /* static text */
    bool fatal;         /* answer, then close: the stream is out of step */
};

/* Finds the next frame in buf[0, len). Never reads outside it. */
void proto_frame_next(struct proto_framer *f, const char *buf, size_t len, struct proto_frame *out);

/* True when the call found nothing to hand over: read more (after dropping `used` bytes). */
bool proto_frame_need_more(const struct proto_frame *f);

/* True when the framer is inside a request: a line over the limit being skipped, or a RESP
 * request with arguments or dropped bytes still to come. Input that ends here ends mid-request,
 * even when the caller's buffer is empty. */
bool proto_framer_busy(const struct proto_framer *f);

#endif
