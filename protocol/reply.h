/* reply.h - writing replies: the one place that knows how a reply looks on the wire. A command
 * describes its reply as lines of words and key=value fields; the writer turns them into text
 * and hands each finished line to the caller's sink. Pure: no I/O, no allocation.
 *
 * A line begins with a head word (`OK`, `ERR`, `STAT`, `INFO`, `REJECT`, ...), then items
 * separated by one space. A line longer than PROTO_REPLY_LINE_MAX is a bug in the caller; the
 * writer cuts it there rather than write past its buffer. */
#ifndef COUPOND_PROTO_REPLY_H
#define COUPOND_PROTO_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* The longest reply line: a coupon line with a user, a time and a few fields is under 600
 * bytes; an ERR message is bounded by PROTO_MAX_LINE / 2. */
#define PROTO_REPLY_LINE_MAX (PROTO_MAX_LINE + 512)

typedef void proto_sink_fn(void *arg, const char *data, size_t len);

struct proto_out {
    proto_sink_fn *sink;
    void *arg;
    size_t len;
    bool cut;      /* the current line hit PROTO_REPLY_LINE_MAX */
    uint64_t sent; /* bytes handed to the sink since init: a long reply measures its parts */
    char line[PROTO_REPLY_LINE_MAX + 1];
};

/* Sets up a writer whose finished lines (LF included) go to sink(arg, ...). */
void proto_out_init(struct proto_out *o, proto_sink_fn *sink, void *arg);

/* Starts a line with its head word. */
void proto_out_begin(struct proto_out *o, const char *head);
/* Appends a bare word (printable, no spaces). */
void proto_out_word(struct proto_out *o, const char *word);
void proto_out_wordn(struct proto_out *o, const char *word, size_t len);
void proto_out_u64(struct proto_out *o, uint64_t v);
/* Appends key=value. */
void proto_out_field(struct proto_out *o, const char *key, const char *val);
void proto_out_field_u64(struct proto_out *o, const char *key, uint64_t v);
void proto_out_field_time(struct proto_out *o, const char *key, int64_t t);
/* Appends the seven coupon fields, code= through max_uses=. */
void proto_out_coupon(struct proto_out *o, const struct proto_coupon *c);
/* Appends free text for people (an ERR message, a HELP line): printable ASCII and spaces. */
void proto_out_text(struct proto_out *o, const char *text);
/* Ends the line and hands it to the sink. */
void proto_out_end(struct proto_out *o);

/* Whole lines: "OK", and "ERR CODE message" with a printf-formatted message. */
void proto_out_ok(struct proto_out *o);
void proto_out_error(struct proto_out *o, enum proto_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
