/* fuzz_proto.c - libFuzzer harness for protocol/: every line of the input goes through every
 * parser, and the contracts of proto.h are checked; a violation aborts, so the fuzzer reports it.
 *
 * Checked for each line (the input split on LF; each line is copied to a buffer of exactly its
 * length, so ASan sees a read past `len`):
 *   - value parsers: a failure leaves the output untouched and names a reason; a success
 *     re-parses from its canonical form (formatted, or the output itself) to the same value;
 *   - proto_parse_record: a record formats with proto_fmt_record and re-parses to the same
 *     struct, and that text is a fixed point; it also survives proto_fmt_coupon and
 *     proto_reply_coupon;
 *   - proto_parse_request: a request re-parses from its canonical line to the same struct; an
 *     error has a code and a printable message; a line proto_looks_like_http never parses;
 *   - the reply parsers: reply_kind and reply_err agree, and ERR, STAT and coupon lines
 *     round-trip through their formats.
 * The formatters also get raw values from the input's first bytes (out-of-range times, negative
 * discounts, garbage structs) and must stay within their documented buffer sizes. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define SENTINEL      0xA5 /* fills outputs before a parse: a failure must leave it there */
#define SHOWN_MAX     200  /* bytes of the offending line printed on a violation */
#define REQUEST_BUF   (PROTO_MAX_LINE + 1)
#define REPLY_BUF     (PROTO_MAX_LINE + 1)
#define UINT_TEXT_BUF 24 /* a uint64_t in decimal and a NUL */
#define TIME_LEN      20 /* strlen("2026-12-31T23:59:59Z") */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The line under test, for the violation report. */
struct subject {
    const char *line;
    size_t len;
};

static void
violation(const struct subject *s, const char *what)
{
    fprintf(stderr, "fuzz_proto: contract violated: %s\n  line (%zu bytes): \"", what, s->len);
    for (size_t i = 0; i < s->len && i < SHOWN_MAX; i++) {
        unsigned char b = (unsigned char)s->line[i];
        if (b >= 0x20 && b < 0x7f && b != '"' && b != '\\')
            fputc(b, stderr);
        else
            fprintf(stderr, "\\x%02x", b);
    }
    fprintf(stderr, "%s\"\n", s->len > SHOWN_MAX ? "..." : "");
    abort();
}

static void
require(const struct subject *s, bool ok, const char *what)
{
    if (!ok)
        violation(s, what);
}

/* True when `text` is a NUL-terminated string of printable ASCII within `cap` bytes. */
static bool
printable_string(const char *text, size_t cap)
{
    size_t n = strnlen(text, cap);
    if (n == cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
            return false;
    return true;
}

/* A parser's `why`: set, printable, not empty. */
static void
require_reason(const struct subject *s, const char *why, const char *parser)
{
    if (why == NULL || why[0] == '\0' || !printable_string(why, PROTO_MAX_LINE))
        violation(s, parser);
}

static bool
all_sentinel(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != SENTINEL)
            return false;
    return true;
}

static bool
coupon_equal(const struct proto_coupon *a, const struct proto_coupon *b)
{
    return strcmp(a->code, b->code) == 0 && a->type == b->type && a->kind == b->kind &&
           a->discount == b->discount && a->expires == b->expires && a->uses == b->uses &&
           a->max_uses == b->max_uses;
}

/* ---- value rules ---- */

static void
check_user(const struct subject *s)
{
    char out[PROTO_USER_MAX + 1], again[PROTO_USER_MAX + 1];
    const char *why = NULL;
    memset(out, SENTINEL, sizeof out);
    if (!proto_parse_user(s->line, s->len, out, &why)) {
        require(s, all_sentinel(out, sizeof out), "proto_parse_user wrote its output on failure");
        require_reason(s, why, "proto_parse_user failed without a reason");
        return;
    }
    require(s, strlen(out) == s->len && memcmp(out, s->line, s->len) == 0,
            "proto_parse_user changed the user");
    require(s, proto_parse_user(out, strlen(out), again, NULL) && strcmp(out, again) == 0,
            "a parsed user does not re-parse to itself");
}

static void
check_code(const struct subject *s)
{
    char out[PROTO_CODE_MAX + 1], again[PROTO_CODE_MAX + 1];
    const char *why = NULL;
    memset(out, SENTINEL, sizeof out);
    if (!proto_parse_code(s->line, s->len, out, &why)) {
        require(s, all_sentinel(out, sizeof out), "proto_parse_code wrote its output on failure");
        require_reason(s, why, "proto_parse_code failed without a reason");
        return;
    }
    require(s, strlen(out) == s->len, "proto_parse_code changed the length");
    for (size_t i = 0; i < s->len; i++)
        require(s, out[i] < 'a' || out[i] > 'z', "proto_parse_code left a lower-case letter");
    require(s, proto_parse_code(out, strlen(out), again, NULL) && strcmp(out, again) == 0,
            "a parsed code does not re-parse to itself");
}

static void
check_task(const struct subject *s)
{
    char out[PROTO_TASK_MAX + 1], again[PROTO_TASK_MAX + 1];
    const char *why = NULL;
    memset(out, SENTINEL, sizeof out);
    if (!proto_parse_task(s->line, s->len, out, &why)) {
        require(s, all_sentinel(out, sizeof out), "proto_parse_task wrote its output on failure");
        require_reason(s, why, "proto_parse_task failed without a reason");
        return;
    }
    require(s, strlen(out) == s->len && memcmp(out, s->line, s->len) == 0,
            "proto_parse_task changed the id");
    require(s, proto_parse_task(out, strlen(out), again, NULL) && strcmp(out, again) == 0,
            "a parsed task id does not re-parse to itself");
}

static void
check_type(const struct subject *s)
{
    enum proto_type t, again;
    const char *why = NULL;
    memset(&t, SENTINEL, sizeof t);
    if (!proto_parse_type(s->line, s->len, &t, &why)) {
        require(s, all_sentinel(&t, sizeof t), "proto_parse_type wrote its output on failure");
        require_reason(s, why, "proto_parse_type failed without a reason");
        return;
    }
    require(s, (unsigned)t < PROTO_NTYPES, "proto_parse_type returned no type");
    const char *name = proto_type_name(t);
    require(s, proto_parse_type(name, strlen(name), &again, NULL) && again == t,
            "a type's name does not parse to the type");
}

static void
check_kind(const struct subject *s)
{
    enum proto_kind k, again;
    const char *why = NULL;
    memset(&k, SENTINEL, sizeof k);
    if (!proto_parse_kind(s->line, s->len, &k, &why)) {
        require(s, all_sentinel(&k, sizeof k), "proto_parse_kind wrote its output on failure");
        require_reason(s, why, "proto_parse_kind failed without a reason");
        return;
    }
    require(s, (unsigned)k < PROTO_NKINDS, "proto_parse_kind returned no kind");
    const char *name = proto_kind_name(k);
    require(s, proto_parse_kind(name, strlen(name), &again, NULL) && again == k,
            "a kind's name does not parse to the kind");
}

static void
check_discount(const struct subject *s)
{
    int64_t cents, again;
    char text[PROTO_DISCOUNT_BUF];
    const char *why = NULL;
    memset(&cents, SENTINEL, sizeof cents);
    if (!proto_parse_discount(s->line, s->len, &cents, &why)) {
        require(s, all_sentinel(&cents, sizeof cents),
                "proto_parse_discount wrote its output on failure");
        require_reason(s, why, "proto_parse_discount failed without a reason");
        return;
    }
    require(s, cents > 0, "proto_parse_discount accepted a discount not > 0");
    size_t n = proto_fmt_discount(text, cents);
    require(s, n > 0 && n < sizeof text - 1 && n == strlen(text),
            "proto_fmt_discount overflowed or cut its buffer");
    require(s, proto_parse_discount(text, n, &again, NULL) && again == cents,
            "a discount does not format and re-parse to the same value");
    for (int k = 0; k < PROTO_NKINDS; k++) {
        why = NULL;
        if (!proto_check_discount(cents, (enum proto_kind)k, &why))
            require_reason(s, why, "proto_check_discount failed without a reason");
    }
}

static void
check_time(const struct subject *s)
{
    int64_t t, again;
    char text[PROTO_TIME_BUF];
    const char *why = NULL;
    memset(&t, SENTINEL, sizeof t);
    if (!proto_parse_time(s->line, s->len, &t, &why)) {
        require(s, all_sentinel(&t, sizeof t), "proto_parse_time wrote its output on failure");
        require_reason(s, why, "proto_parse_time failed without a reason");
        return;
    }
    require(s, t >= PROTO_TIME_MIN && t <= PROTO_TIME_MAX, "proto_parse_time out of range");
    size_t n = proto_fmt_time(text, t);
    require(s, n == TIME_LEN && strlen(text) == TIME_LEN, "proto_fmt_time has the wrong length");
    require(s, proto_parse_time(text, n, &again, NULL) && again == t,
            "a time does not format and re-parse to the same value");
}

static void
check_max_uses(const struct subject *s)
{
    uint32_t v, again;
    char text[UINT_TEXT_BUF];
    const char *why = NULL;
    memset(&v, SENTINEL, sizeof v);
    if (!proto_parse_max_uses(s->line, s->len, &v, &why)) {
        require(s, all_sentinel(&v, sizeof v), "proto_parse_max_uses wrote its output on failure");
        require_reason(s, why, "proto_parse_max_uses failed without a reason");
        return;
    }
    require(s, v >= 1 && v <= PROTO_USES_MAX, "proto_parse_max_uses out of range");
    int n = snprintf(text, sizeof text, "%" PRIu32, v);
    require(s, proto_parse_max_uses(text, (size_t)n, &again, NULL) && again == v,
            "max_uses does not format and re-parse to the same value");
}

/* ---- records ---- */

/* A coupon line as a reply carries it, parsed back with the client's parser. */
static void
check_coupon_reply(const struct subject *s, const struct proto_coupon *c)
{
    char buf[PROTO_COUPON_BUF], line[PROTO_COUPON_BUF + 8];
    size_t n = proto_fmt_coupon(buf, c);
    require(s, n == strlen(buf) && n < sizeof buf - 1, "proto_fmt_coupon cut its output");
    int m = snprintf(line, sizeof line, "OK %s", buf);
    struct proto_coupon back;
    require(s, proto_reply_kind(line, (size_t)m) == PROTO_REPLY_OK,
            "an OK coupon line is not an OK reply");
    require(s, proto_reply_coupon(line, (size_t)m, &back) && coupon_equal(c, &back),
            "a coupon does not format and re-parse to the same struct");
}

static void
check_record(const struct subject *s)
{
    struct proto_coupon c, again, third;
    char text[PROTO_RECORD_BUF], text2[PROTO_RECORD_BUF];
    const char *why = NULL;
    if (!proto_parse_record(s->line, s->len, &c, &why)) {
        require_reason(s, why, "proto_parse_record failed without a reason");
        return;
    }
    require(s, c.uses == 0, "a parsed record has uses");
    require(s, proto_check_discount(c.discount, c.kind, NULL), "a record's discount is invalid");
    require(s, c.max_uses >= 1 && c.max_uses <= PROTO_USES_MAX, "a record's max_uses is invalid");
    size_t n = proto_fmt_record(text, &c);
    require(s, n == strlen(text) && n < sizeof text - 1, "proto_fmt_record cut its output");
    why = NULL;
    if (!proto_parse_record(text, n, &again, &why)) {
        fprintf(stderr, "fuzz_proto: formatted \"%s\" fails: %s\n", text, why ? why : "?");
        violation(s, "a parsed record formats to a line that does not parse");
    }
    require(s, coupon_equal(&c, &again), "a record does not format and re-parse to itself");
    size_t n2 = proto_fmt_record(text2, &again);
    require(s, n2 == n && memcmp(text, text2, n) == 0, "proto_fmt_record is not canonical");
    require(s, proto_parse_record(text2, n2, &third, NULL) && coupon_equal(&c, &third),
            "a record's canonical line does not re-parse to itself");
    check_coupon_reply(s, &c);
}

/* ---- requests ---- */

/* Writes the canonical line of a parsed request: protocol/'s own (proto_fmt_request), id
 * included. */
static int
canonical_request(const struct proto_request *r, char *buf, size_t size)
{
    char line[PROTO_REQUEST_BUF];
    size_t n = proto_fmt_request(line, r, true);
    return snprintf(buf, size, "%.*s", (int)n, line);
}

static bool
coupon_fields_equal(const struct proto_coupon *a, const struct proto_coupon *b)
{
    return a->type == b->type && a->kind == b->kind && a->discount == b->discount &&
           a->expires == b->expires && a->max_uses == b->max_uses;
}

static bool
request_equal(const struct proto_request *a, const struct proto_request *b)
{
    if (a->cmd != b->cmd || strcmp(a->user, b->user) != 0 || strcmp(a->code, b->code) != 0 ||
        a->type != b->type || strcmp(a->task, b->task) != 0 || a->count != b->count ||
        a->key_len != b->key_len || strcmp(a->hold, b->hold) != 0 || strcmp(a->rid, b->rid) != 0 ||
        a->seq != b->seq || a->seconds != b->seconds || a->export_what != b->export_what ||
        strcmp(a->prefix, b->prefix) != 0 || a->length != b->length ||
        !coupon_fields_equal(&a->gen, &b->gen))
        return false;
    return a->key_len == 0 || memcmp(a->key, b->key, a->key_len) == 0;
}

static void
check_request(const struct subject *s)
{
    struct proto_request req, again;
    struct proto_error err;
    char line[REQUEST_BUF];
    bool blank = proto_line_is_blank(s->line, s->len);
    memset(&err, SENTINEL, sizeof err);
    if (!proto_parse_request(s->line, s->len, &req, &err)) {
        require(s, err.code > PROTO_OK && err.code < PROTO_NERRS,
                "proto_parse_request failed without an error code");
        require(s, printable_string(err.msg, sizeof err.msg) && err.msg[0] != '\0',
                "proto_parse_request's message is not printable text");
        require(s, s->len <= PROTO_MAX_LINE || err.code == PROTO_ERR_TOO_LONG,
                "an over-long line is not TOO_LONG");
        return;
    }
    require(s, !blank, "a blank line parsed as a request");
    require(s, !proto_looks_like_http(s->line, s->len), "an HTTP request line parsed as a request");
    require(s, s->len <= PROTO_MAX_LINE, "an over-long line parsed as a request");
    require(s, (unsigned)req.cmd < PROTO_NCMDS, "proto_parse_request returned no verb");
    require(s, (unsigned)req.type < PROTO_NTYPES, "proto_parse_request returned no type");
    if (req.cmd == PROTO_CMD_AUTH)
        require(s, req.key >= s->line && req.key + req.key_len <= s->line + s->len,
                "the AUTH key does not point into the line");
    if (req.cmd == PROTO_CMD_UPLOAD)
        require(s, req.count > 0, "UPLOAD parsed with a zero count");
    int n = canonical_request(&req, line, sizeof line);
    require(s, n > 0 && (size_t)n < sizeof line, "the canonical request does not fit a line");
    if (!proto_parse_request(line, (size_t)n, &again, &err)) {
        fprintf(stderr, "fuzz_proto: canonical \"%s\" fails: %s %s\n", line,
                proto_err_name(err.code), err.msg);
        violation(s, "a request's canonical line does not parse");
    }
    require(s, request_equal(&req, &again), "a request does not re-parse to itself");
}

/* ---- replies ---- */

static void
check_reply_err(const struct subject *s)
{
    enum proto_reply_kind k = proto_reply_kind(s->line, s->len);
    enum proto_err e = proto_reply_err(s->line, s->len);
    require(s, (unsigned)e < PROTO_NERRS, "proto_reply_err out of range");
    if (k == PROTO_REPLY_OK) {
        require(s, e == PROTO_OK, "an OK line names an error");
        return;
    }
    require(s, e != PROTO_OK, "a non-OK line reads as OK");
    if (k == PROTO_REPLY_DATA) {
        require(s, e == PROTO_ERR_INTERNAL, "a data line names an error");
        return;
    }
    char line[REPLY_BUF];
    int n = snprintf(line, sizeof line, "ERR %s some message", proto_err_name(e));
    require(s,
            proto_reply_kind(line, (size_t)n) == PROTO_REPLY_ERR &&
                proto_reply_err(line, (size_t)n) == e,
            "an error code does not format and re-parse to itself");
}

static void
check_reply_fields(const struct subject *s)
{
    static const char *const keys[] = {"code",    "type",     "discount", "kind",
                                       "expires", "uses",     "max_uses", "task",
                                       "status",  "position", "uploaded", "purged"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *val;
        size_t val_len;
        size_t kl = strlen(keys[i]);
        if (!proto_reply_field(s->line, s->len, keys[i], &val, &val_len))
            continue;
        require(s,
                val >= s->line && (size_t)(val - s->line) >= kl + 1 &&
                    (size_t)(val - s->line) + val_len <= s->len,
                "proto_reply_field points outside the line");
        require(s, val[-1] == '=' && memcmp(val - 1 - kl, keys[i], kl) == 0,
                "proto_reply_field's value does not follow its key");
    }
}

static void
check_reply_coupon(const struct subject *s)
{
    struct proto_coupon c;
    if (!proto_reply_coupon(s->line, s->len, &c))
        return;
    require(s, c.uses <= c.max_uses, "proto_reply_coupon accepted uses > max_uses");
    check_coupon_reply(s, &c);
}

static void
check_reply_stat(const struct subject *s)
{
    const char *name, *name2;
    size_t name_len, name_len2;
    uint64_t v, v2;
    if (!proto_reply_stat(s->line, s->len, &name, &name_len, &v))
        return;
    require(s, name >= s->line && name + name_len <= s->line + s->len && name_len > 0,
            "proto_reply_stat's name points outside the line");
    /* The name is any run of non-blank bytes, NUL included: copied, not printed with %s. */
    char value[UINT_TEXT_BUF];
    int vn = snprintf(value, sizeof value, "%" PRIu64, v);
    size_t head = strlen("STAT ");
    size_t n = head + name_len + 1 + (size_t)vn;
    char *line = malloc(n);
    if (!line)
        abort();
    memcpy(line, "STAT ", head);
    memcpy(line + head, name, name_len);
    line[head + name_len] = ' ';
    memcpy(line + head + name_len + 1, value, (size_t)vn);
    bool same = proto_reply_stat(line, n, &name2, &name_len2, &v2) && v2 == v &&
                name_len2 == name_len && memcmp(name, name2, name_len) == 0;
    free(line);
    require(s, same, "a STAT line does not format and re-parse to itself");
}

static void
check_line(const char *line, size_t len)
{
    const struct subject s = {line, len};
    check_user(&s);
    check_code(&s);
    check_task(&s);
    check_type(&s);
    check_kind(&s);
    check_discount(&s);
    check_time(&s);
    check_max_uses(&s);
    check_record(&s);
    check_request(&s);
    check_reply_err(&s);
    check_reply_fields(&s);
    check_reply_coupon(&s);
    check_reply_stat(&s);
}

/* ---- formatters on raw values ---- */

static void
check_formatters(const uint8_t *data, size_t size)
{
    const struct subject s = {(const char *)data, size};
    int64_t v;
    if (size >= sizeof v) {
        memcpy(&v, data, sizeof v);
        char t[PROTO_TIME_BUF], d[PROTO_DISCOUNT_BUF];
        require(&s, proto_fmt_time(t, v) == TIME_LEN && strlen(t) == TIME_LEN,
                "proto_fmt_time of a raw value has the wrong length");
        size_t n = proto_fmt_discount(d, v);
        require(&s, n > 0 && n == strlen(d) && n < sizeof d, "proto_fmt_discount overflowed");
    }
    struct proto_coupon c;
    if (size >= sizeof c) {
        memcpy(&c, data, sizeof c); /* a code without NUL, bad enums: the formatters must cope */
        char coupon[PROTO_COUPON_BUF], record[PROTO_RECORD_BUF];
        require(&s, proto_fmt_coupon(coupon, &c) == strlen(coupon),
                "proto_fmt_coupon of a raw struct returned the wrong length");
        require(&s, proto_fmt_record(record, &c) == strlen(record),
                "proto_fmt_record of a raw struct returned the wrong length");
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_formatters(data, size);
    const char *p = (const char *)data, *end = p + size;
    while (p <= end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        size_t len = lf ? (size_t)(lf - p) : (size_t)(end - p);
        /* An exact-size copy: a parser reading one byte past `len` is an ASan report. */
        char *line = malloc(len);
        if (!line && len > 0)
            abort();
        if (len > 0)
            memcpy(line, p, len);
        check_line(line, len);
        free(line);
        if (!lf)
            break;
        p = lf + 1;
    }
    return 0;
}
