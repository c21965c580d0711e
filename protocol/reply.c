/* reply.c - reply lines in the line form of the protocol (see reply.h). */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
proto_out_init(struct proto_out *o, proto_sink_fn *sink, void *arg)
{
    o->sink = sink;
    o->arg = arg;
    o->len = 0;
    o->cut = false;
    o->sent = 0;
}

static void
put(struct proto_out *o, const char *s, size_t n)
{
    size_t room = PROTO_REPLY_LINE_MAX - o->len;

    if (n > room) {
        n = room;
        o->cut = true;
    }
    memcpy(o->line + o->len, s, n);
    o->len += n;
}

static void
sep(struct proto_out *o)
{
    put(o, " ", 1);
}

void
proto_out_begin(struct proto_out *o, const char *head)
{
    o->len = 0;
    o->cut = false;
    put(o, head, strlen(head));
}

void
proto_out_wordn(struct proto_out *o, const char *word, size_t len)
{
    sep(o);
    put(o, word, len);
}

void
proto_out_word(struct proto_out *o, const char *word)
{
    proto_out_wordn(o, word, strlen(word));
}

/* Decimal digits of v into buf (no NUL); returns their count. */
static size_t
u64_digits(char buf[20], uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

void
proto_out_u64(struct proto_out *o, uint64_t v)
{
    char buf[20];

    proto_out_wordn(o, buf, u64_digits(buf, v));
}

static void
key_eq(struct proto_out *o, const char *key)
{
    sep(o);
    put(o, key, strlen(key));
    put(o, "=", 1);
}

void
proto_out_field(struct proto_out *o, const char *key, const char *val)
{
    key_eq(o, key);
    put(o, val, strlen(val));
}

void
proto_out_field_u64(struct proto_out *o, const char *key, uint64_t v)
{
    char buf[20];

    key_eq(o, key);
    put(o, buf, u64_digits(buf, v));
}

void
proto_out_field_time(struct proto_out *o, const char *key, int64_t t)
{
    char buf[PROTO_TIME_BUF];

    key_eq(o, key);
    put(o, buf, proto_fmt_time(buf, t));
}

void
proto_out_coupon(struct proto_out *o, const struct proto_coupon *c)
{
    char buf[PROTO_COUPON_BUF];

    sep(o);
    put(o, buf, proto_fmt_coupon(buf, c));
}

void
proto_out_text(struct proto_out *o, const char *text)
{
    sep(o);
    put(o, text, strlen(text));
}

void
proto_out_end(struct proto_out *o)
{
    o->line[o->len] = '\n';
    o->sink(o->arg, o->line, o->len + 1);
    o->sent += o->len + 1;
    o->len = 0;
}

void
proto_out_ok(struct proto_out *o)
{
    proto_out_begin(o, "OK");
    proto_out_end(o);
}

void
proto_out_error(struct proto_out *o, enum proto_err code, const char *fmt, ...)
{
    char msg[PROTO_MAX_LINE / 2];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    proto_out_begin(o, "ERR");
    proto_out_word(o, proto_err_name(code));
    proto_out_text(o, msg);
    proto_out_end(o);
}
