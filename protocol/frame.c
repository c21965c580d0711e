/* frame.c - where a request ends (see frame.h). */
#include "frame.h"

#include <string.h>

/* A line with no LF yet that already holds more than the limit allows, its CR included. */
static bool
overlong_unfinished(size_t len)
{
    return len > PROTO_MAX_LINE;
}

void
proto_frame_next(struct proto_framer *f, const char *buf, size_t len, struct proto_frame *out)
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
