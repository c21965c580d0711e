/* frame.h - cutting a byte stream into requests: the one place that knows where a request
 * ends. Pure: it looks at the caller's buffer and says what the next request is and how many
 * bytes it took; the caller (the server's transport, the fuzzers) owns the buffer.
 *
 * A request is a line ended by LF. One CR right before the LF is not part of the line (telnet
 * sends CRLF); any other CR stays in it, and the parsers refuse it as a control byte. The
 * PROTO_MAX_LINE limit counts every byte before the LF, that CR included. A line over the
 * limit is reported once, when its LF arrives, and skipped whole; its start is shown to the
 * caller while it is still in the buffer, so a first line can be judged by how it begins. */
#ifndef COUPOND_PROTO_FRAME_H
#define COUPOND_PROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"

/* Bytes the caller's buffer must be able to hold: a longest line, its CR and LF. A buffer
 * holding PROTO_FRAME_MIN_BUF bytes with no LF is over the limit for sure. */
#define PROTO_FRAME_MIN_BUF (PROTO_MAX_LINE + 2)

enum proto_frame_kind {
    PROTO_FRAME_NEED_MORE = 0, /* no complete request in the buffer: read more */
    PROTO_FRAME_LINE,          /* a request line: start, len (CR LF removed) */
    PROTO_FRAME_LONG_BEGIN,    /* a line over the limit began at start (at least
                                  PROTO_MAX_LINE bytes of it are there); it is skipped */
    PROTO_FRAME_TOO_LONG       /* a line over the limit ended: answer ERR TOO_LONG; start is
                                  its beginning when it is still in the buffer, else NULL */
};

/* State kept between calls for one stream. Zero it to start. */
struct proto_framer {
    bool skipping; /* inside a line over the limit: drop up to its LF */
};

struct proto_frame {
    enum proto_frame_kind kind;
    const char *start;
    size_t len;
    size_t used; /* bytes of the buffer this frame took: drop them before the next call */
};

/* Finds the next frame in buf[0, len). Never reads outside it. */
void proto_frame_next(struct proto_framer *f, const char *buf, size_t len, struct proto_frame *out);

#endif
