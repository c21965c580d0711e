/* frame.c - where a request ends (see frame.h): lines here, RESP in resp.c. */
#include "frame.h"

#include <string.h>

/* A line with no LF yet that already holds more than the limit allows, its CR included. */
static bool
overlong_unfinished(size_t len)
{
    return len > PROTO_MAX_LINE;
}

/* The next line frame: version 1's framer. */
static void
line_frame(struct proto_framer *f, const char *buf, size_t len, struct proto_frame *out)
{
    const char *lf = len > 0 ? memchr(buf, '\n', len) : NULL;

    *out = (struct proto_frame){.kind = PROTO_FRAME_NEED_MORE, .start = NULL};
    if (lf == NULL) {
        if (f->skipping) {
            out->used = len; /* the rest of an over-long line: dropped as it comes */
        } else if (overlong_unfinished(len)) {
            f->skipping = true;
            out->kind = PROTO_FRAME_LONG_BEGIN;
            out->start = buf;
            out->used = len;
        }
        return;
    }
    size_t raw = (size_t)(lf - buf); /* every byte before the LF */
    out->used = raw + 1;
    if (f->skipping || raw > PROTO_MAX_LINE) {
        out->kind = PROTO_FRAME_TOO_LONG;
        out->start = f->skipping ? NULL : buf;
        f->skipping = false;
        return;
    }
    out->kind = PROTO_FRAME_LINE;
    out->start = buf;
    out->len = raw > 0 && buf[raw - 1] == '\r' ? raw - 1 : raw;
}

void
proto_frame_next(struct proto_framer *f, const char *buf, size_t len, struct proto_frame *out)
{
    size_t off = 0;

    /* Empty RESP requests take bytes without a frame; what follows them is framed in the same
     * call, so that a caller never waits for input while a request sits in its buffer. */
    while (f->resp && !f->skipping) {
        enum proto_resp_step step = proto_resp_frame(&f->rs, buf + off, len - off, out);
        if (step == PROTO_RESP_NOT)
            break;
        if (step == PROTO_RESP_FRAME) {
            out->used += off;
            return;
        }
        off += out->used;
    }
    line_frame(f, buf + off, len - off, out);
    out->used += off;
}

bool
proto_frame_need_more(const struct proto_frame *f)
{
    return f->kind == PROTO_FRAME_NEED_MORE && f->resp == PROTO_FRAME_NOT_RESP;
}

bool
proto_framer_busy(const struct proto_framer *f)
{
    return f->skipping || (f->rs.phase != PROTO_RESP_AT_START && f->rs.phase != PROTO_RESP_DEAD);
}
