/* reply.c - reply lines in the line form of the protocol, and the same lines as RESP values
 * (see reply.h). */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "resp.h"

/* Item offsets and lengths are kept in 16 bits. */
_Static_assert(PROTO_REPLY_LINE_MAX < UINT16_MAX, "a line's offsets fit an item");

/* What an item of a line is, for its RESP value. */
enum item_kind {
    ITEM_WORD = 0, /* a bulk string */
    ITEM_INT,      /* digits: an integer */
    ITEM_TEXT,     /* free text: a bulk string */
    ITEM_FIELD,    /* key=value: the key, and the value as a bulk string */
    ITEM_FIELD_INT /* key=digits: the key, and the value as an integer */
};

/* A held data line in the scratch: this header, its items, then its text. */
struct held {
    uint16_t len;
    uint8_t nitems;
};

static const char int64_max_digits[] = "9223372036854775807";

void
proto_out_init(struct proto_out *o, proto_sink_fn *sink, void *arg)
{
    o->sink = sink;
    o->arg = arg;
    o->len = 0;
    o->cut = false;
    o->sent = 0;
    o->reply = (struct proto_out_reply){.form = PROTO_FORM_LINE};
    o->head = PROTO_REPLY_DATA;
    o->nitems = 0;
    o->scratch = NULL;
    o->scratch_cap = 0;
    o->staged = 0;
}

void
proto_out_set_form(struct proto_out *o, enum proto_form form)
{
    o->reply = (struct proto_out_reply){.form = form};
    o->len = 0;
    o->cut = false;
    o->nitems = 0;
    o->staged = 0;
}

bool
proto_out_is_resp(const struct proto_out *o)
{
    return o->reply.form != PROTO_FORM_LINE;
}

void
proto_out_set_scratch(struct proto_out *o, char *buf, size_t cap)
{
    o->scratch = buf;
    o->scratch_cap = buf != NULL ? cap : 0;
}

void
proto_out_stream(struct proto_out *o, uint64_t lines)
{
    /* Once a data line has ended, its array's count is written or its line held: too late. */
    if (!proto_out_is_resp(o) || o->reply.opened || o->reply.held > 0 || o->reply.lost > 0)
        return;
    o->reply.streamed = true;
    /* The array's count is lines + 1 and a RESP count is signed: no real list comes near. */
    o->reply.lines = lines < (uint64_t)INT64_MAX ? lines : (uint64_t)INT64_MAX - 1;
}

/* ---- the line, as text ---- */

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

/* Starts an item where the line ends now; NULL (the line cut) when it has too many, or no room
 * is left for any of it. */
static struct proto_out_item *
item_open(struct proto_out *o, enum item_kind kind)
{
    if (o->nitems == PROTO_OUT_ITEMS_MAX || o->len == PROTO_REPLY_LINE_MAX) {
        o->cut = true;
        return NULL;
    }
    struct proto_out_item *it = &o->items[o->nitems++];
    *it = (struct proto_out_item){.off = (uint16_t)o->len, .kind = (uint8_t)kind};
    return it;
}

static void
item_close(struct proto_out *o, struct proto_out_item *it, size_t klen)
{
    if (it == NULL)
        return;
    it->len = (uint16_t)(o->len - it->off);
    it->klen = (uint16_t)(klen < it->len ? klen : it->len);
}

void
proto_out_begin(struct proto_out *o, const char *head)
{
    o->len = 0;
    o->cut = false;
    o->nitems = 0;
    if (strcmp(head, "OK") == 0)
        o->head = PROTO_REPLY_OK;
    else if (strcmp(head, "ERR") == 0)
        o->head = PROTO_REPLY_ERR;
    else
        o->head = PROTO_REPLY_DATA;
    put(o, head, strlen(head));
}

static void
item(struct proto_out *o, enum item_kind kind, const char *s, size_t n)
{
    sep(o);
    struct proto_out_item *it = item_open(o, kind);
    put(o, s, n);
    item_close(o, it, 0);
}

void
proto_out_wordn(struct proto_out *o, const char *word, size_t len)
{
    item(o, ITEM_WORD, word, len);
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

    item(o, ITEM_INT, buf, u64_digits(buf, v));
}

/* Appends key=value. */
static void
field(struct proto_out *o, enum item_kind kind, const char *key, const char *val, size_t vlen)
{
    size_t klen = strlen(key);

    sep(o);
    struct proto_out_item *it = item_open(o, kind);
    put(o, key, klen);
    put(o, "=", 1);
    put(o, val, vlen);
    item_close(o, it, klen);
}

void
proto_out_field(struct proto_out *o, const char *key, const char *val)
{
    field(o, ITEM_FIELD, key, val, strlen(val));
}

void
proto_out_field_u64(struct proto_out *o, const char *key, uint64_t v)
{
    char buf[20];

    field(o, ITEM_FIELD_INT, key, buf, u64_digits(buf, v));
}

void
proto_out_field_time(struct proto_out *o, const char *key, int64_t t)
{
    char buf[PROTO_TIME_BUF];

    field(o, ITEM_FIELD, key, buf, proto_fmt_time(buf, t));
}

void
proto_out_coupon(struct proto_out *o, const struct proto_coupon *c)
{
    char disc[PROTO_DISCOUNT_BUF];

    /* Field by field, so RESP sees seven fields; the text is proto_fmt_coupon's, byte for
     * byte (test_frame checks). */
    field(o, ITEM_FIELD, "code", c->code, strnlen(c->code, PROTO_CODE_MAX));
    proto_out_field(o, "type", proto_type_name(c->type));
    field(o, ITEM_FIELD, "discount", disc, proto_fmt_discount(disc, c->discount));
    proto_out_field(o, "kind", proto_kind_name(c->kind));
    proto_out_field_time(o, "expires", c->expires);
    proto_out_field_u64(o, "uses", c->uses);
    proto_out_field_u64(o, "max_uses", c->max_uses);
}

void
proto_out_text(struct proto_out *o, const char *text)
{
    item(o, ITEM_TEXT, text, strlen(text));
}

/* ---- RESP values ---- */

/* Hands bytes to the sink, counting them (a long reply measures its parts with `sent`). */
static void
hand(struct proto_out *o, const char *p, size_t n)
{
    o->sink(o->arg, p, n);
    o->sent += n;
}

static void
flush(struct proto_out *o)
{
    if (o->staged > 0)
        hand(o, o->stage, o->staged);
    o->staged = 0;
}

static void
emit(struct proto_out *o, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (n > PROTO_OUT_STAGE - o->staged)
        flush(o);
    if (n >= PROTO_OUT_STAGE) {
        hand(o, p, n);
        return;
    }
    memcpy(o->stage + o->staged, p, n);
    o->staged += n;
}

static void
emit_head(struct proto_out *o, char type, int64_t n)
{
    char buf[PROTO_RESP_HDR_BUF];

    emit(o, buf, proto_resp_fmt_head(buf, type, n));
}

static void
emit_bulk(struct proto_out *o, const char *p, size_t n)
{
    emit_head(o, '$', (int64_t)n);
    emit(o, p, n);
    emit(o, "\r\n", 2);
}

/* Text of a simple string or error: it may not hold CR or LF, which become spaces. */
static void
emit_plain(struct proto_out *o, const char *p, size_t n)
{
    size_t start = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\r' && p[i] != '\n')
            continue;
        emit(o, p + start, i - start);
        emit(o, " ", 1);
        start = i + 1;
    }
    emit(o, p + start, n - start);
}

static void
emit_simple(struct proto_out *o, char type, const char *p, size_t n)
{
    emit(o, &type, 1);
    emit_plain(o, p, n);
    emit(o, "\r\n", 2);
}

/* Digits as an integer, or as a bulk string when they pass INT64_MAX (or are none). */
static void
emit_digits(struct proto_out *o, const char *p, size_t n)
{
    size_t max = sizeof int64_max_digits - 1;

    if (n == 0 || n > max || (n == max && memcmp(p, int64_max_digits, max) > 0)) {
        emit_bulk(o, p, n);
        return;
    }
    emit(o, ":", 1);
    emit(o, p, n);
    emit(o, "\r\n", 2);
}

static void
emit_map(struct proto_out *o, size_t pairs)
{
    if (o->reply.form == PROTO_FORM_RESP3)
        emit_head(o, '%', (int64_t)pairs);
    else
        emit_head(o, '*', (int64_t)(2 * pairs));
}

static void
emit_null(struct proto_out *o)
{
    if (o->reply.form == PROTO_FORM_RESP3)
        emit(o, "_\r\n", 3);
    else
        emit(o, "$-1\r\n", 5);
}

static bool
is_field(const struct proto_out_item *it)
{
    return it->kind == ITEM_FIELD || it->kind == ITEM_FIELD_INT;
}

/* An item's value (a field's key is written by the caller). */
static void
emit_item(struct proto_out *o, const char *text, const struct proto_out_item *it)
{
    const char *p = text + it->off;
    size_t n = it->len;

    if (is_field(it)) { /* the part after "key=", which a cut line may lack */
        size_t skip = (size_t)it->klen + 1 < n ? (size_t)it->klen + 1 : n;
        p += skip;
        n -= skip;
    }
    if (it->kind == ITEM_INT || it->kind == ITEM_FIELD_INT)
        emit_digits(o, p, n);
    else
        emit_bulk(o, p, n);
}

static size_t
head_len(const char *text, size_t len)
{
    const char *sp = memchr(text, ' ', len);
    return sp != NULL ? (size_t)(sp - text) : len;
}

/* One line as one RESP value, by the rules of reply.h. */
static void
emit_line(struct proto_out *o, const char *text, size_t len, const struct proto_out_item *items,
          size_t n, enum proto_reply_kind kind)
{
    size_t fields = 0;

    for (size_t i = 0; i < n; i++)
        fields += is_field(&items[i]);
    if (n == 0) {
        emit_simple(o, '+', text, head_len(text, len));
        return;
    }
    if (fields == n) {
        emit_map(o, n);
    } else if (n == 1 && kind == PROTO_REPLY_OK) {
        emit_simple(o, '+', text + items[0].off, items[0].len);
        return;
    } else if (n == 1) {
        emit_item(o, text, &items[0]);
        return;
    } else {
        emit_head(o, '*', (int64_t)(n + fields));
    }
    for (size_t i = 0; i < n; i++) {
        if (is_field(&items[i]))
            emit_bulk(o, text + items[i].off, items[i].klen);
        emit_item(o, text, &items[i]);
    }
}

/* ---- RESP replies: data lines held or streamed, then the status line ---- */

/* The held line at *pos of the scratch; moves *pos past it. */
static void
held_line(const struct proto_out *o, size_t *pos, const char **text, size_t *len,
          struct proto_out_item *items, size_t *n)
{
    struct held h;

    memcpy(&h, o->scratch + *pos, sizeof h);
    *pos += sizeof h;
    memcpy(items, o->scratch + *pos, h.nitems * sizeof *items);
    *pos += h.nitems * sizeof *items;
    *text = o->scratch + *pos;
    *len = h.len;
    *n = h.nitems;
    *pos += h.len;
}

/* Keeps the line just ended in the scratch until the status line, or counts it lost. */
static void
hold(struct proto_out *o)
{
    struct held h = {(uint16_t)o->len, (uint8_t)o->nitems};
    size_t items = o->nitems * sizeof o->items[0];
    size_t need = sizeof h + items + o->len;

    if (o->reply.lost > 0 || need > o->scratch_cap - o->reply.held_len) {
        o->reply.lost++;
        return;
    }
    char *p = o->scratch + o->reply.held_len;
    memcpy(p, &h, sizeof h);
    memcpy(p + sizeof h, o->items, items);
    memcpy(p + sizeof h + items, o->line, o->len);
    o->reply.held_len += need;
    o->reply.held++;
}

static void
open_array(struct proto_out *o)
{
    if (!o->reply.opened)
        emit_head(o, '*', (int64_t)(o->reply.lines + 1));
    o->reply.opened = true;
}

static void
data_line(struct proto_out *o)
{
    if (!o->reply.streamed) {
        hold(o);
        return;
    }
    if (o->reply.sent == o->reply.lines) {
        o->reply.lost++;
        return;
    }
    open_array(o);
    emit_line(o, o->line, o->len, o->items, o->nitems, PROTO_REPLY_DATA);
    o->reply.sent++;
    flush(o);
}

/* A streamed reply ends: nulls for the lines announced and not written. */
static void
pad_stream(struct proto_out *o)
{
    open_array(o);
    for (; o->reply.sent < o->reply.lines; o->reply.sent++)
        emit_null(o);
}

/* The reply is over: the next one starts clean, in the same form. */
static void
end_reply(struct proto_out *o)
{
    flush(o);
    o->reply = (struct proto_out_reply){.form = o->reply.form};
}

/* Data lines did not fit the scratch: the reply cannot be written, and says so, with its status
 * line, which may tell of a change that was made. */
static void
too_large(struct proto_out *o)
{
    char msg[128];

    int n = snprintf(msg, sizeof msg,
                     "INTERNAL reply too large for RESP (%zu data lines, %zu bytes held at most); "
                     "its status: ",
                     o->reply.held + o->reply.lost, o->scratch_cap);
    emit(o, "-", 1);
    emit(o, msg, n > 0 && (size_t)n < sizeof msg ? (size_t)n : 0);
    emit_plain(o, o->line, o->len);
    emit(o, "\r\n", 2);
}

static void
ok_line(struct proto_out *o)
{
    if (o->reply.streamed) {
        pad_stream(o);
    } else if (o->reply.lost > 0) {
        too_large(o);
        return;
    } else if (o->reply.held > 0) {
        struct proto_out_item items[PROTO_OUT_ITEMS_MAX];
        size_t pos = 0, len, n;
        const char *text;

        emit_head(o, '*', (int64_t)o->reply.held + 1);
        for (size_t i = 0; i < o->reply.held; i++) {
            held_line(o, &pos, &text, &len, items, &n);
            emit_line(o, text, len, items, n, PROTO_REPLY_DATA);
        }
    }
    emit_line(o, o->line, o->len, o->items, o->nitems, PROTO_REPLY_OK);
}

/* `ERR CODE message` is `-CODE message`, the held lines added to the message. */
static void
err_line(struct proto_out *o)
{
    struct proto_out_item items[PROTO_OUT_ITEMS_MAX];
    size_t skip = o->len > 4 ? 4 : o->len; /* "ERR " */
    size_t pos = 0, len, n;
    const char *text;

    if (o->reply.streamed && o->reply.opened)
        pad_stream(o);
    emit(o, "-", 1);
    emit_plain(o, o->line + skip, o->len - skip);
    for (size_t i = 0; i < o->reply.held; i++) {
        held_line(o, &pos, &text, &len, items, &n);
        emit(o, "; ", 2);
        emit_plain(o, text, len);
    }
    if (o->reply.lost > 0) {
        char more[64];
        int m = snprintf(more, sizeof more, "; %zu more lines left out", o->reply.lost);
        emit(o, more, m > 0 && (size_t)m < sizeof more ? (size_t)m : 0);
    }
    emit(o, "\r\n", 2);
}

void
proto_out_end(struct proto_out *o)
{
    if (o->reply.form == PROTO_FORM_LINE) {
        o->line[o->len] = '\n';
        hand(o, o->line, o->len + 1);
    } else if (o->head == PROTO_REPLY_DATA) {
        data_line(o);
    } else {
        if (o->head == PROTO_REPLY_OK)
            ok_line(o);
        else
            err_line(o);
        end_reply(o);
    }
    o->len = 0;
    o->nitems = 0;
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

/* ---- RESP values written as called ---- */

void
proto_out_resp_array(struct proto_out *o, size_t n)
{
    if (!proto_out_is_resp(o))
        return;
    emit_head(o, '*', (int64_t)n);
    flush(o);
}

void
proto_out_resp_map(struct proto_out *o, size_t pairs)
{
    if (!proto_out_is_resp(o))
        return;
    emit_map(o, pairs);
    flush(o);
}

void
proto_out_resp_bulk(struct proto_out *o, const char *data, size_t len)
{
    if (!proto_out_is_resp(o))
        return;
    emit_bulk(o, data, len);
    flush(o);
}

void
proto_out_resp_simple(struct proto_out *o, const char *text)
{
    if (!proto_out_is_resp(o))
        return;
    emit_simple(o, '+', text, strlen(text));
    flush(o);
}

void
proto_out_resp_int(struct proto_out *o, int64_t v)
{
    if (!proto_out_is_resp(o))
        return;
    emit_head(o, ':', v);
    flush(o);
}

void
proto_out_resp_null(struct proto_out *o)
{
    if (!proto_out_is_resp(o))
        return;
    emit_null(o);
    flush(o);
}
