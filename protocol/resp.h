/* resp.h - the Redis wire form of the protocol (RESP, PROTOCOL.md "The Redis wire form"):
 * where a RESP request ends and what its arguments are (the framer, frame.h, calls in here), and
 * the RESP values the reply writer (reply.h) is made of. Pure: no I/O, no allocation.
 *
 * A RESP request is an array of bulk strings: `*<n>\r\n` then n times `$<len>\r\n<bytes>\r\n`.
 * Its first arguments (the verb and what a command reads) are handed over in one frame, the
 * rest (UPLOAD's records) one per frame as they arrive, so that no request, however long,
 * needs more than one argument's room in the caller's buffer. See frame.h for the frames. */
#ifndef COUPOND_PROTO_RESP_H
#define COUPOND_PROTO_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* Bytes of one argument: a line's limit, so a word, a key or an UPLOAD record may be as long in
 * RESP as in a line. A longer one is dropped unread and told of (PROTO_ARG_TOO_LONG). */
#define PROTO_RESP_BULK_MAX PROTO_MAX_LINE
/* Arguments handed over in a request's first frame: as many words as a line keeps, so every
 * argument a command's rules read is there at once. Further ones follow one per frame. */
#define PROTO_RESP_HEAD_ARGS PROTO_MAX_WORDS
/* Bytes of a request's first frame, from `*` through its last CR LF: a line's worth of words
 * plus their RESP headers (an array header and 9 bytes around each of up to 8 words is under
 * 100), so every request that fits a line fits one frame. Arguments past this go one by one. */
#define PROTO_RESP_HEAD_MAX (PROTO_MAX_LINE + 512)
/* Bytes of the longest header the framer reads: a type byte, a sign, the 9 digits of
 * PROTO_RESP_NUM_MAX and CR LF, rounded up. The framer decides where a first frame ends by
 * reading the next argument's header, so its caller's buffer holds this much more. */
#define PROTO_RESP_HEADER_MAX 16
/* Arguments in one request: UPLOAD with the largest batch, its verb and a request id word. A
 * longer request is dropped whole (every element read and skipped) and answered TOO_LARGE. */
#define PROTO_RESP_ARGS_MAX (PROTO_UPLOAD_MAX + 2)
/* Largest length or count a header may give: Redis's own proto-max-bulk-len (512 MiB). A
 * larger number is no client's request; the connection is closed rather than wait it out. */
#define PROTO_RESP_NUM_MAX (512 * 1024 * 1024)
/* Bytes the longest value header needs: a type byte, a sign, 20 digits, CR LF, NUL. */
#define PROTO_RESP_HDR_BUF 25

/* Where the framer is in RESP input. */
enum proto_resp_phase {
    PROTO_RESP_AT_START = 0, /* between requests: a `*` (or a stray `$`) begins RESP */
    PROTO_RESP_IN_ARGS,      /* handing over the arguments after a request's first frame */
    PROTO_RESP_IN_DROP,      /* dropping a request with too many arguments, element by element */
    PROTO_RESP_IN_STRAY,     /* dropping a bulk string that came outside an array */
    PROTO_RESP_DEAD          /* a fatal error was reported: nothing more is framed */
};

/* The framer's RESP state, part of struct proto_framer; zeroed to start. */
struct proto_resp_state {
    enum proto_resp_phase phase;
    bool dropping; /* inside a bulk string that is dropped unread (too long, or not wanted) */
    uint8_t crlf;  /* bytes of the CR LF after its payload seen so far */
    uint64_t drop; /* bytes of its payload still to come */
    uint64_t size; /* its declared size, for the frame that tells of it */
    uint64_t left; /* elements of the current request still to hand over or drop */
};

struct proto_frame;

/* What proto_resp_frame did. */
enum proto_resp_step {
    PROTO_RESP_NOT = 0, /* the input at a request's start is no RESP: frame it as a line */
    PROTO_RESP_FRAME,   /* *out is the answer: a RESP frame, or NEED_MORE (used bytes dropped) */
    PROTO_RESP_EMPTY    /* an empty request (`*0`) took out->used bytes: frame what follows */
};

/* The RESP half of proto_frame_next (frame.c), on buf[0, len) with the state *st. Never reads
 * outside buf. See frame.h for what the frames mean. */
enum proto_resp_step proto_resp_frame(struct proto_resp_state *st, const char *buf, size_t len,
                                      struct proto_frame *out);

/* Writes a RESP header, a type byte and n in decimal and CR LF ("*3\r\n", "$-1\r\n",
 * ":42\r\n"), NUL-terminated; returns its length (without the NUL). */
size_t proto_resp_fmt_head(char buf[PROTO_RESP_HDR_BUF], char type, int64_t n);

#endif
