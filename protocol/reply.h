/* reply.h - writing replies: the one place that knows how a reply looks on the wire. A command
 * describes its reply as lines of words and key=value fields; the writer turns them into text
 * and hands each finished line to the caller's sink. Pure: no I/O, no allocation.
 *
 * A line begins with a head word (`OK`, `ERR`, `STAT`, `INFO`, `REJECT`, ...), then items
 * separated by one space. A line longer than PROTO_REPLY_LINE_MAX is a bug in the caller; the
 * writer cuts it there rather than write past its buffer.
 *
 * Version 2: the same calls write the Redis wire form (PROTOCOL.md "The Redis wire form") when
 * the reply's form is RESP2 or RESP3 (proto_out_set_form, before each reply), so no command
 * writes two formats. Each line becomes one RESP value:
 *   - a line of its head word alone is a simple string: `OK` is `+OK`;
 *   - a line whose items are all key=value fields is a map in RESP3 and a flat array
 *     [key, value, ...] in RESP2: `OK task=T status=queued position=2` is
 *     `%3 task "T" status "queued" position :2`, or `*6 ...` in RESP2;
 *   - an OK line with one other item is a simple string: `OK PONG` is `+PONG`;
 *   - a data line with one other item is that item: `CODE C` is "C", `INFO text` is "text";
 *   - any other line is a flat array of its items, a field giving two (key, value):
 *     `STAT uptime_s 12` is ["uptime_s", 12], `REJECT 3 bad code` is [3, "bad code"].
 *   A data line's head word is not sent: a command's reply says which lines it has, and its
 *   values are told apart by position and keys. Numbers written with proto_out_u64 and
 *   proto_out_field_u64 (a coupon's uses and max_uses too) are integers (a bulk string past
 *   INT64_MAX), every other item a bulk string.
 * A reply with no data lines is its status line's value. One with data lines is an array of
 * their values, then the status line's value (COUPONS: [{coupon}, {coupon}, {count: 2}]). An
 * ERR status line is the error `-CODE message`, always at the top: the data lines before it
 * (REJECT lines) are added to its message, each after "; ", so every Redis client raises the
 * error and shows them: `-BAD_BATCH 1 of 2 records rejected, nothing stored; REJECT 2 ...`.
 *
 * An array's count comes first in RESP, so data lines are held in the caller's scratch
 * (proto_out_set_scratch) until the status line. PROTO_OUT_SCRATCH bytes hold every reply whose
 * length is bounded (STATS, HELP, 100 REJECT lines); past it, data lines are dropped and the
 * reply is the error `-INTERNAL reply too large ...` quoting its status line, or, for an ERR,
 * the error saying how many lines it left out. A list of unbounded length (COUPONS, GENERATE,
 * EXPORT) says its count first instead (proto_out_stream) and is written as it goes, held
 * nowhere. RESP3's streamed arrays (`*?`) are not used: Redis never sends them, and common
 * clients (hiredis, redis-py) cannot read them; so a list is counted before it is written, also
 * in RESP3, and works the same in RESP2. */
#ifndef COUPOND_PROTO_REPLY_H
#define COUPOND_PROTO_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* The longest reply line: a coupon line with a user, a time and a few fields is under 600
 * bytes; an ERR message is bounded by PROTO_MAX_LINE / 2. */
#define PROTO_REPLY_LINE_MAX (PROTO_MAX_LINE + 512)

/* Items of one line the RESP form can tell apart: a coupon's seven fields plus all a version 2
 * line adds to them (task, status, user, assigned, hold, expires_at, redemption, replayed,
 * undone) are under 20. Past this a line is cut in RESP, as one past PROTO_REPLY_LINE_MAX is. */
#define PROTO_OUT_ITEMS_MAX 32
/* Bytes of RESP gathered before they go to the sink, so a coupon's map is one sink call rather
 * than thirty; a longer value goes to the sink directly. */
#define PROTO_OUT_STAGE 512
/* The scratch a RESP writer wants (proto_out_set_scratch): room to hold the data lines of
 * every bounded reply at once. The largest are STATS (about 100 lines of 40 bytes), HELP (a line
 * of under 200 bytes per verb) and 100 REJECT lines of under 200 bytes: about 20 KiB. */
#define PROTO_OUT_SCRATCH (64 * 1024)

typedef void proto_sink_fn(void *arg, const char *data, size_t len);

/* The forms of a reply. */
enum proto_form {
    PROTO_FORM_LINE = 0, /* text lines, version 1 */
    PROTO_FORM_RESP2,    /* RESP as Redis 2 spoke it: maps are flat arrays, null is $-1 */
    PROTO_FORM_RESP3     /* RESP3 (HELLO 3): maps are %, null is _ */
};

/* One item of the line being written, for the RESP form. Private to reply.c. */
struct proto_out_item {
    uint16_t off;  /* in line[] */
    uint16_t len;  /* the whole item, key=value for a field */
    uint16_t klen; /* a field's key */
    uint8_t kind;
};

/* Where a reply is in the RESP form. Between two data lines of a streamed reply
 * (proto_out_stream) this is all the writer keeps, so a reply written in portions (an EXPORT
 * that writes as its client reads) may save it after a portion, let the writer serve other
 * replies, and put it back before the next portion. */
struct proto_out_reply {
    enum proto_form form;
    bool streamed;   /* proto_out_stream was called: data lines are written as they end */
    bool opened;     /* the reply's array header is written */
    uint64_t lines;  /* streamed: data lines announced */
    uint64_t sent;   /* streamed: data lines written */
    size_t held;     /* data lines held in the scratch */
    size_t held_len; /* bytes of the scratch they take */
    size_t lost;     /* data lines dropped: past the scratch, or past the announced count */
};

struct proto_out {
    proto_sink_fn *sink;
    void *arg;
    size_t len;
    bool cut; /* the current line hit PROTO_REPLY_LINE_MAX (or, in RESP, PROTO_OUT_ITEMS_MAX) */
    uint64_t sent; /* bytes handed to the sink since init: a long reply measures its parts */
    char line[PROTO_REPLY_LINE_MAX + 1];
    /* Version 2: the RESP form. */
    struct proto_out_reply reply;
    enum proto_reply_kind head; /* the line being written: a data line, OK or ERR */
    size_t nitems;
    struct proto_out_item items[PROTO_OUT_ITEMS_MAX];
    char *scratch; /* the caller's, see proto_out_set_scratch */
    size_t scratch_cap;
    size_t staged;
    char stage[PROTO_OUT_STAGE];
};

/* Sets up a writer whose finished lines (LF included) go to sink(arg, ...), in the line form. */
void proto_out_init(struct proto_out *o, proto_sink_fn *sink, void *arg);

/* Starts a reply in `form`: call it before each reply, with the form of the request it answers
 * (a line is answered in the line form, a RESP request in the connection's RESP version).
 * Anything left of an unfinished reply is dropped. The form stays until the next call. In RESP
 * the sink gets pieces of the reply, not lines. */
void proto_out_set_form(struct proto_out *o, enum proto_form form);
/* True when the reply being written is RESP (either version). */
bool proto_out_is_resp(const struct proto_out *o);

/* Gives the writer `cap` bytes at `buf` to hold a RESP reply's data lines until its status line
 * (PROTO_OUT_SCRATCH is what every bounded reply needs); the caller owns them and keeps them
 * while the writer lives. Without it, a RESP reply with data lines must be streamed. */
void proto_out_set_scratch(struct proto_out *o, char *buf, size_t cap);

/* Says that the reply being written has exactly `lines` data lines before its status line, so
 * that RESP can write its array's count first and each line as it ends, holding none: for a
 * list of unbounded length, counted before it is written (EXPORT counts in its snapshot). The
 * reply is an array even with no data lines, so an empty list is still a list. Fewer lines
 * than announced are filled up with nulls; more are dropped (both are bugs of the caller). An
 * ERR before the first data line is a plain error; one after it ends the array, in the place
 * of the missing lines' nulls, as its last value. No effect in the line form, nor once a data
 * line of the reply has ended: call it before the first. */
void proto_out_stream(struct proto_out *o, uint64_t lines);

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

/* RESP values written as called, for a reply that is not lines: HELLO's map (`%7` in RESP3,
 * `*14` in RESP2, then its keys and values), INFO's bulk string. The caller writes whole values:
 * an aggregate's header, then that many values. Not mixed with lines in one reply. In the line
 * form they write nothing. */
void proto_out_resp_array(struct proto_out *o, size_t n);
void proto_out_resp_map(struct proto_out *o, size_t pairs); /* a flat array of 2 x pairs in RESP2 */
void proto_out_resp_bulk(struct proto_out *o, const char *data, size_t len);
void proto_out_resp_simple(struct proto_out *o, const char *text); /* CR and LF become spaces */
void proto_out_resp_int(struct proto_out *o, int64_t v);
void proto_out_resp_null(struct proto_out *o); /* `_` in RESP3, `$-1` in RESP2 */

#endif
