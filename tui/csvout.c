/* csvout.c - reply lines of EXPORT and GENERATE as CSV rows. */
#include "csvout.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define ROW_MAX    (2 * PROTO_USER_MAX + 3 * PROTO_TIME_BUF + PROTO_CODE_MAX + 64) /* a row */
#define SEQ_DIGITS 20 /* digits of the largest 64-bit sequence number */

static const char coupon_word[] = "COUPON ";
static const char redemption_word[] = "REDEMPTION ";
static const char code_word[] = "CODE ";
static const char coupons_header[] = "code,type,discount,kind,expires,max_uses\n";
static const char history_header[] = "seq,time,code,type,user,undone\n";

void
csvout_init(struct csvout *w, enum csvout_kind kind, FILE *out, const struct proto_coupon *gen)
{
    memset(w, 0, sizeof *w);
    w->kind = kind;
    w->out = out;
    if (gen != NULL)
        w->gen = *gen;
}

static bool
put(struct csvout *w, const char *text, size_t len)
{
    if (fwrite(text, 1, len, w->out) == len)
        return true;
    snprintf(w->error, sizeof w->error, "cannot write: %s", strerror(errno));
    return false;
}

bool
csvout_header(struct csvout *w)
{
    const char *h = w->kind == CSVOUT_HISTORY ? history_header : coupons_header;

    return put(w, h, strlen(h));
}

/* A line that is not what the reply should hold: named, cut to a readable length. */
static bool
malformed(struct csvout *w, const char *what, const char *line, size_t len)
{
    snprintf(w->error, sizeof w->error, "the server sent a %s line couponctl cannot read: %.*s",
             what, (int)(len > CSVOUT_ERROR_MAX / 2 ? CSVOUT_ERROR_MAX / 2 : len), line);
    return false;
}

static bool
starts(const char *line, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len > n && memcmp(line, word, n) == 0;
}

static bool
put_record(struct csvout *w, const struct proto_coupon *c)
{
    char rec[PROTO_RECORD_BUF];
    size_t n = proto_fmt_record(rec, c);

    rec[n++] = '\n';
    w->rows++;
    return put(w, rec, n);
}

static bool
coupon_line(struct csvout *w, const char *line, size_t len)
{
    struct proto_coupon c;
    const char *assigned;
    size_t alen;

    if (!starts(line, len, coupon_word) || !proto_reply_coupon(line, len, &c) ||
        !proto_reply_field(line, len, "assigned", &assigned, &alen))
        return malformed(w, "COUPON", line, len);
    /* The user may be named "-"; the assignment time tells an unassigned coupon apart. */
    if (!(alen == 1 && assigned[0] == '-'))
        w->assigned++;
    if (c.uses > 0)
        w->used++;
    return put_record(w, &c);
}

static bool
code_line(struct csvout *w, const char *line, size_t len)
{
    struct proto_coupon c = w->gen;
    size_t n = sizeof code_word - 1;

    if (!starts(line, len, code_word) || !proto_parse_code(line + n, len - n, c.code, NULL))
        return malformed(w, "CODE", line, len);
    return put_record(w, &c);
}

/* The fields of a REDEMPTION line, checked. */
struct redemption {
    uint64_t seq;
    int64_t time, undone; /* undone: -1 when it was not */
    char code[PROTO_CODE_MAX + 1];
    enum proto_type type;
    char user[PROTO_USER_MAX + 1];
};

static bool
parse_seq(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > SEQ_DIGITS)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static bool
parse_redemption(const char *line, size_t len, struct redemption *r)
{
    static const char *const keys[] = {"seq", "time", "code", "type", "user"};
    const char *v[5], *u;
    size_t n[5], ul;

    for (size_t k = 0; k < 5; k++)
        if (!proto_reply_field(line, len, keys[k], &v[k], &n[k]))
            return false;
    r->undone = -1;
    if (proto_reply_field(line, len, "undone", &u, &ul) &&
        !proto_parse_time(u, ul, &r->undone, NULL))
        return false;
    return parse_seq(v[0], n[0], &r->seq) && proto_parse_time(v[1], n[1], &r->time, NULL) &&
           proto_parse_code(v[2], n[2], r->code, NULL) &&
           proto_parse_type(v[3], n[3], &r->type, NULL) &&
           proto_parse_user(v[4], n[4], r->user, NULL);
}

/* A user name as a CSV field: as it is, or quoted with its quotes doubled when it holds a
 * comma or a quote (a name has no blanks and no line ends). */
static size_t
csv_user(char *out, const char *user)
{
    size_t n = 0;

    if (strpbrk(user, ",\"") == NULL) {
        n = strlen(user);
        memcpy(out, user, n);
        return n;
    }
    out[n++] = '"';
    for (const char *p = user; *p != '\0'; p++) {
        if (*p == '"')
            out[n++] = '"';
        out[n++] = *p;
    }
    out[n++] = '"';
    return n;
}

static bool
history_line(struct csvout *w, const char *line, size_t len)
{
    struct redemption r;
    char row[ROW_MAX], time[PROTO_TIME_BUF], undone[PROTO_TIME_BUF] = "";
    size_t n;

    if (!starts(line, len, redemption_word) || !parse_redemption(line, len, &r))
        return malformed(w, "REDEMPTION", line, len);
    proto_fmt_time(time, r.time);
    if (r.undone >= 0) {
        proto_fmt_time(undone, r.undone);
        w->undone++;
    }
    n = (size_t)snprintf(row, sizeof row, "%" PRIu64 ",%s,%s,%s,", r.seq, time, r.code,
                         r.type == PROTO_TYPE_NONE ? "" : proto_type_name(r.type));
    n += csv_user(row + n, r.user);
    n += (size_t)snprintf(row + n, sizeof row - n, ",%s\n", undone);
    w->rows++;
    return put(w, row, n);
}

bool
csvout_line(struct csvout *w, const char *line, size_t len)
{
    switch (w->kind) {
    case CSVOUT_COUPONS:
        return coupon_line(w, line, len);
    case CSVOUT_HISTORY:
        return history_line(w, line, len);
    case CSVOUT_CODES:
        return code_line(w, line, len);
    }
    return false;
}

bool
csvout_end(struct csvout *w, const char *line, size_t len)
{
    const char *key = w->kind == CSVOUT_CODES ? "generated" : "count", *v, *r;
    size_t vl, rl;
    uint64_t count;

    w->replayed = proto_reply_field(line, len, "replayed", &r, &rl) && rl == 1 && r[0] == '1';
    if (!proto_reply_field(line, len, key, &v, &vl) || !parse_seq(v, vl, &count))
        return malformed(w, "final", line, len);
    if (count != w->rows) {
        snprintf(w->error, sizeof w->error,
                 "the server announced %" PRIu64 " rows and sent %" PRIu64 ": %.*s", count, w->rows,
                 (int)len, line);
        return false;
    }
    return true;
}
