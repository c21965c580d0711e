/* csvload.c - CSV coupons through libcsv, each record checked by protocol/'s validators. */
#include "csvload.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "proto.h"

#define HEADER_MIN_NAMES                                                                           \
    2 /* a valid record has at most one field equal to a column name                               \
       * (its code), so two or more make a header */
#define HASH_MIN_CAP  1024
#define TEXT_MIN_CAP  65536
#define ARRAY_MIN_CAP 1024
#define FNV_OFFSET    2166136261u
#define FNV_PRIME     16777619u
/* read_chunk(): a signal interrupted the read before any byte arrived. */
#define READ_INTERRUPTED (-2)

static const char bom[] = "\xEF\xBB\xBF";
#define BOM_LEN (sizeof bom - 1)

static const char *const col_names[CSVLOAD_NCOLS] = {
    "code", "type", "discount", "kind", "expires", "max_uses",
};

struct field {
    uint32_t off;
    uint32_t len;
};

struct csvload {
    int fd;
    bool own_fd;
    bool started; /* the BOM check is done */
    bool eof;
    char failure[CSVLOAD_FAILURE_MAX];
    struct csv_parser parser;
    uint64_t bytes;

    /* Where we are: physical lines, and the line the current row started on. */
    uint32_t cur_line;
    uint32_t row_line;
    bool at_line_start;
    bool in_row;        /* a row has begun and not ended */
    bool line_content;  /* this line has a byte other than blanks and line ends */
    bool line_callback; /* libcsv ended a field or a row during this line */
    bool skip_line;     /* after a quoting error: drop the rest of the line */
    bool cr_pending;    /* the last chunk ended in CR: its line ends unless LF follows */

    /* The row being collected. Every field's length is kept (an empty field and a field
     * with something differ), but its text only when `wanted`: the columns in use, and all
     * fields of the first row, which may be the header. */
    char row[CSVLOAD_ROW_MAX];
    size_t row_len;
    struct field fields[CSVLOAD_MAX_FIELDS];
    size_t nfields;   /* all fields seen, also beyond CSVLOAD_MAX_FIELDS */
    size_t last_used; /* 1 + the index of the last field that holds something; 0: none */
    bool row_too_long;
    bool wanted[CSVLOAD_MAX_FIELDS];

    /* Columns. */
    bool first_row_done;
    bool has_header;
    bool header_bad;
    bool stopped;       /* the record limit was reached */
    size_t max_records; /* the limit */
    size_t col[CSVLOAD_NCOLS];
    size_t ncols;

    /* Good records. */
    char *text;
    size_t text_len, text_cap;
    size_t *end;
    uint32_t *line;
    size_t n, cap;
    uint32_t *hash; /* record index + 1, 0 for an empty slot; open addressing */
    size_t hash_cap;

    /* Bad records. */
    struct csvload_error *errors;
    size_t nkept, errors_cap;
    size_t nbad;
};

/* libcsv grows its field buffer with this: refusing past CSVLOAD_FIELD_MAX bounds memory. */
static void *
bounded_realloc(void *p, size_t size)
{
    if (size > CSVLOAD_FIELD_MAX)
        return NULL;
    return realloc(p, size);
}

/* A parser in its first state, with CSVLOAD_FIELD_MAX enforced. */
static void
init_parser(struct csvload *ld)
{
    /* csv_init() fails only for a NULL parser. */
    csv_init(&ld->parser, CSV_STRICT | CSV_STRICT_FINI);
    csv_set_realloc_func(&ld->parser, bounded_realloc);
}

struct csvload *
csvload_open(const char *path, size_t max_records, char *err, size_t errlen)
{
    struct csvload *ld = calloc(1, sizeof *ld);

    if (ld == NULL) {
        snprintf(err, errlen, "cannot load %s: out of memory", path);
        return NULL;
    }
    init_parser(ld);
    if (strcmp(path, "-") == 0) {
        ld->fd = 0;
    } else {
        ld->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (ld->fd < 0) {
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
            csv_free(&ld->parser);
            free(ld);
            return NULL;
        }
        ld->own_fd = true;
    }
    ld->max_records = max_records;
    ld->cur_line = 1;
    ld->row_line = 1;
    ld->at_line_start = true;
    for (size_t k = 0; k < CSVLOAD_NCOLS; k++)
        ld->col[k] = k;
    ld->ncols = CSVLOAD_NCOLS;
    for (size_t i = 0; i < CSVLOAD_MAX_FIELDS; i++)
        ld->wanted[i] = true;
    return ld;
}

void
csvload_free(struct csvload *ld)
{
    if (ld == NULL)
        return;
    if (ld->own_fd)
        close(ld->fd);
    csv_free(&ld->parser);
    free(ld->text);
    free(ld->end);
    free(ld->line);
    free(ld->hash);
    free(ld->errors);
    free(ld);
}

/* ---- Bad records ---- */

static void bad_record(struct csvload *ld, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
bad_record(struct csvload *ld, uint32_t line, const char *fmt, ...)
{
    va_list ap;

    ld->nbad++;
    if (ld->nkept == CSVLOAD_ERRORS_KEPT)
        return;
    if (ld->nkept == ld->errors_cap) {
        size_t cap = ld->errors_cap > 0 ? ld->errors_cap * 2 : ARRAY_MIN_CAP / 8;
        if (cap > CSVLOAD_ERRORS_KEPT)
            cap = CSVLOAD_ERRORS_KEPT;
        struct csvload_error *e = realloc(ld->errors, cap * sizeof *e);
        if (e == NULL)
            return; /* still counted in nbad, so nothing is sent */
        ld->errors = e;
        ld->errors_cap = cap;
    }
    struct csvload_error *e = &ld->errors[ld->nkept++];
    e->line = line;
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof e->reason, fmt, ap);
    va_end(ap);
}

/* ---- Duplicate codes ---- */

static size_t
code_len(const struct csvload *ld, size_t i)
{
    size_t start = i > 0 ? ld->end[i - 1] : 0;
    const char *comma = memchr(ld->text + start, ',', ld->end[i] - start);

    return (size_t)(comma - (ld->text + start));
}

static uint32_t
hash_code(const char *s, size_t len)
{
    uint32_t h = FNV_OFFSET;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * FNV_PRIME;
    return h;
}

/* The slot holding `code`, or the empty slot where it would go. */
static size_t
hash_slot(const struct csvload *ld, const char *code, size_t len)
{
    size_t mask = ld->hash_cap - 1;
    size_t s = hash_code(code, len) & mask;

    while (ld->hash[s] != 0) {
        size_t i = ld->hash[s] - 1;
        size_t start = i > 0 ? ld->end[i - 1] : 0;
        if (code_len(ld, i) == len && memcmp(ld->text + start, code, len) == 0)
            return s;
        s = (s + 1) & mask;
    }
    return s;
}

static bool
hash_grow(struct csvload *ld)
{
    size_t cap = ld->hash_cap > 0 ? ld->hash_cap * 2 : HASH_MIN_CAP;
    uint32_t *old = ld->hash;
    size_t old_cap = ld->hash_cap;

    ld->hash = calloc(cap, sizeof *ld->hash);
    if (ld->hash == NULL) {
        ld->hash = old;
        return false;
    }
    ld->hash_cap = cap;
    for (size_t s = 0; s < old_cap; s++) {
        if (old[s] == 0)
            continue;
        size_t i = old[s] - 1;
        size_t start = i > 0 ? ld->end[i - 1] : 0;
        ld->hash[hash_slot(ld, ld->text + start, code_len(ld, i))] = old[s];
    }
    free(old);
    return true;
}

/* ---- Good records ---- */

static bool
reserve(struct csvload *ld, size_t text_add)
{
    if (ld->n == ld->cap) {
        size_t cap = ld->cap > 0 ? ld->cap * 2 : ARRAY_MIN_CAP;
        size_t *e = realloc(ld->end, cap * sizeof *e);
        if (e == NULL)
            return false;
        ld->end = e;
        uint32_t *l = realloc(ld->line, cap * sizeof *l);
        if (l == NULL)
            return false;
        ld->line = l;
        ld->cap = cap;
    }
    if (ld->text_len + text_add > ld->text_cap) {
        size_t cap = ld->text_cap > 0 ? ld->text_cap : TEXT_MIN_CAP;
        while (cap < ld->text_len + text_add)
            cap *= 2;
        char *t = realloc(ld->text, cap);
        if (t == NULL)
            return false;
        ld->text = t;
        ld->text_cap = cap;
    }
    /* Keep the hash table at most half full. */
    if (2 * (ld->n + 1) > ld->hash_cap && !hash_grow(ld))
        return false;
    return true;
}

static void
add_record(struct csvload *ld, const struct proto_coupon *c)
{
    char buf[PROTO_RECORD_BUF];
    size_t len = proto_fmt_record(buf, c);
    size_t clen = strlen(c->code);

    if (!reserve(ld, len + 1)) {
        bad_record(ld, ld->row_line, "out of memory");
        return;
    }
    size_t slot = hash_slot(ld, c->code, clen);
    if (ld->hash[slot] != 0) {
        bad_record(ld, ld->row_line, "code %s repeats the record on line %" PRIu32, c->code,
                   ld->line[ld->hash[slot] - 1]);
        return;
    }
    memcpy(ld->text + ld->text_len, buf, len);
    ld->text[ld->text_len + len] = '\n';
    ld->text_len += len + 1;
    ld->end[ld->n] = ld->text_len;
    ld->line[ld->n] = ld->row_line;
    ld->hash[slot] = (uint32_t)(ld->n + 1);
    ld->n++;
}

/* ---- Rows ---- */

static const char *
field_ptr(const struct csvload *ld, size_t i)
{
    return ld->row + ld->fields[i].off;
}

static bool
row_is_blank(const struct csvload *ld)
{
    return ld->last_used == 0 && !ld->row_too_long;
}

static int
column_named(const char *s, size_t len)
{
    for (int k = 0; k < CSVLOAD_NCOLS; k++)
        if (strlen(col_names[k]) == len && strncasecmp(s, col_names[k], len) == 0)
            return k;
    return -1;
}

static bool
looks_like_header(const struct csvload *ld)
{
    size_t names = 0;

    for (size_t i = 0; i < ld->nfields && i < CSVLOAD_MAX_FIELDS; i++)
        if (column_named(field_ptr(ld, i), ld->fields[i].len) >= 0)
            names++;
    return names >= HEADER_MIN_NAMES;
}

static void
read_header(struct csvload *ld)
{
    bool seen[CSVLOAD_NCOLS] = {false};

    ld->has_header = true;
    /* Empty fields after the last name are no columns: "code,...,max_uses,," has six. */
    ld->ncols = ld->last_used < CSVLOAD_MAX_FIELDS ? ld->last_used : CSVLOAD_MAX_FIELDS;
    for (size_t i = 0; i < ld->ncols; i++) {
        int k = column_named(field_ptr(ld, i), ld->fields[i].len);
        if (k < 0)
            continue;
        if (seen[k]) {
            bad_record(ld, ld->row_line, "header: column %s is named twice", col_names[k]);
            ld->header_bad = true;
        }
        seen[k] = true;
        ld->col[k] = i;
    }
    char missing[CSVLOAD_REASON_MAX] = "";
    size_t len = 0;
    for (int k = 0; k < CSVLOAD_NCOLS; k++)
        if (!seen[k])
            len += (size_t)snprintf(missing + len, sizeof missing - len, "%s%s",
                                    len > 0 ? ", " : "", col_names[k]);
    if (len > 0) {
        bad_record(ld, ld->row_line, "header: no column %s", missing);
        ld->header_bad = true;
    }
}

/* The fields a row has: fields beyond the columns count only up to the last one that holds
 * something, however many empty ones follow it. */
static size_t
used_fields(const struct csvload *ld)
{
    if (ld->nfields <= ld->ncols)
        return ld->nfields;
    return ld->last_used > ld->ncols ? ld->last_used : ld->ncols;
}

static bool
check_shape(struct csvload *ld)
{
    if (ld->row_too_long) {
        bad_record(ld, ld->row_line, "values longer than %d bytes in all", CSVLOAD_ROW_MAX);
        return false;
    }
    size_t used = used_fields(ld);
    if (used == ld->ncols)
        return true;
    if (ld->has_header)
        bad_record(ld, ld->row_line, "expected %zu fields, as in the header", ld->ncols);
    else
        bad_record(ld, ld->row_line,
                   "expected 6 fields (code,type,discount,kind,expires,max_uses), got %zu", used);
    return false;
}

static void
check_record(struct csvload *ld)
{
    struct proto_coupon c;
    const char *why = NULL;
    const char *f[CSVLOAD_NCOLS];
    size_t len[CSVLOAD_NCOLS];

    for (int k = 0; k < CSVLOAD_NCOLS; k++) {
        f[k] = field_ptr(ld, ld->col[k]);
        len[k] = ld->fields[ld->col[k]].len;
    }
    memset(&c, 0, sizeof c);
    if (!proto_parse_code(f[CSVLOAD_COL_CODE], len[CSVLOAD_COL_CODE], c.code, &why) ||
        !proto_parse_type(f[CSVLOAD_COL_TYPE], len[CSVLOAD_COL_TYPE], &c.type, &why) ||
        !proto_parse_discount(f[CSVLOAD_COL_DISCOUNT], len[CSVLOAD_COL_DISCOUNT], &c.discount,
                              &why) ||
        !proto_parse_kind(f[CSVLOAD_COL_KIND], len[CSVLOAD_COL_KIND], &c.kind, &why) ||
        !proto_check_discount(c.discount, c.kind, &why) ||
        !proto_parse_time(f[CSVLOAD_COL_EXPIRES], len[CSVLOAD_COL_EXPIRES], &c.expires, &why) ||
        !proto_parse_max_uses(f[CSVLOAD_COL_MAX_USES], len[CSVLOAD_COL_MAX_USES], &c.max_uses,
                              &why)) {
        bad_record(ld, ld->row_line, "%s", why);
        return;
    }
    add_record(ld, &c);
}

/* After the first row: only the columns in use need their text kept. */
static void
want_columns(struct csvload *ld)
{
    for (size_t i = 0; i < CSVLOAD_MAX_FIELDS; i++)
        ld->wanted[i] = false;
    for (size_t k = 0; k < CSVLOAD_NCOLS; k++)
        ld->wanted[ld->col[k]] = true;
}

/* The first row: the header, or the first record. Either way it settles the columns.
 * Returns whether it was the header. */
static bool
first_row(struct csvload *ld)
{
    bool header = looks_like_header(ld);

    ld->first_row_done = true;
    if (header)
        read_header(ld);
    want_columns(ld);
    return header;
}

static void
process_row(struct csvload *ld)
{
    if (row_is_blank(ld) || ld->stopped || ld->header_bad)
        return;
    if (!ld->first_row_done && first_row(ld))
        return;
    if (ld->n == ld->max_records) {
        /* This row would be one record too many. */
        bad_record(ld, ld->row_line, "more than %zu records: split the file", ld->max_records);
        ld->stopped = true;
        return;
    }
    if (used_fields(ld) > CSVLOAD_MAX_FIELDS) {
        bad_record(ld, ld->row_line, "more than %d fields", CSVLOAD_MAX_FIELDS);
        return;
    }
    if (check_shape(ld))
        check_record(ld);
}

static void
reset_row(struct csvload *ld)
{
    ld->row_len = 0;
    ld->nfields = 0;
    ld->last_used = 0;
    ld->row_too_long = false;
}

static bool
is_blank(unsigned char ch)
{
    return ch == ' ' || ch == '\t';
}

/* libcsv: a field ended. Blanks around it go, quoted or not. */
static void
on_field(void *s, size_t len, void *data)
{
    struct csvload *ld = data;
    const unsigned char *p = s;

    ld->line_callback = true;
    ld->in_row = true;
    while (len > 0 && is_blank(p[0])) {
        p++;
        len--;
    }
    while (len > 0 && is_blank(p[len - 1]))
        len--;
    size_t i = ld->nfields++;
    if (len > 0)
        ld->last_used = i + 1;
    if (i >= CSVLOAD_MAX_FIELDS)
        return;
    ld->fields[i].off = (uint32_t)ld->row_len;
    ld->fields[i].len = (uint32_t)len;
    if (!ld->wanted[i])
        return; /* an ignored column: its length is all that counts */
    if (len > sizeof ld->row - ld->row_len) {
        ld->row_too_long = true;
        ld->fields[i].len = 0;
        return;
    }
    memcpy(ld->row + ld->row_len, p, len);
    ld->row_len += len;
}

/* libcsv: a row ended. */
static void
on_row(int ch, void *data)
{
    struct csvload *ld = data;

    (void)ch;
    ld->line_callback = true;
    process_row(ld);
    reset_row(ld);
    ld->in_row = false;
    ld->row_line = ld->cur_line; /* a next row in this line (CR line ends) starts here */
}

/* ---- Feeding libcsv line by line, to know the line numbers ---- */

static bool
has_content(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_blank((unsigned char)p[i]) && p[i] != '\r' && p[i] != '\n')
            return true;
    return false;
}

/* libcsv stopped: a quoting error, or a field too big for CSVLOAD_FIELD_MAX. The row is
 * dropped with its reason and parsing starts afresh on the next line. */
static void
parse_error(struct csvload *ld)
{
    int e = csv_error(&ld->parser);
    const char *why = e == CSV_EPARSE ? "malformed quotes" : "a field longer than 1 MiB";

    if (ld->row_line == ld->cur_line)
        bad_record(ld, ld->row_line, "%s", why);
    else
        bad_record(ld, ld->row_line, "%s (found on line %" PRIu32 ")", why, ld->cur_line);
    /* A fresh parser: csv_fini() does not reset one stopped inside a quoted field, which
     * would then take every later line for more of that field. */
    csv_free(&ld->parser);
    init_parser(ld);
    reset_row(ld);
    ld->in_row = false;
    ld->skip_line = true;
}

static void
feed(struct csvload *ld, const char *p, size_t n)
{
    if (ld->at_line_start && !ld->in_row)
        ld->row_line = ld->cur_line;
    ld->at_line_start = false;
    if (ld->skip_line)
        return;
    if (has_content(p, n))
        ld->line_content = true;
    if (csv_parse(&ld->parser, p, n, on_field, on_row, ld) < n)
        parse_error(ld);
}

static void
line_done(struct csvload *ld)
{
    /* A line with content that ended neither a field nor a row is inside a quoted field. */
    if (!ld->line_callback && ld->line_content && !ld->skip_line)
        ld->in_row = true;
    if (ld->cur_line < UINT32_MAX)
        ld->cur_line++;
    ld->at_line_start = true;
    ld->line_content = false;
    ld->line_callback = false;
    ld->skip_line = false;
}

/* The end of the line starting at p: just past its LF, CRLF or lone CR; NULL when the line
 * goes on past end. A CR at the very end is settled by the next chunk (cr_pending). */
static const char *
line_end(const char *p, const char *end)
{
    for (; p < end; p++) {
        if (*p == '\n')
            return p + 1;
        if (*p == '\r')
            return p + 1 < end && p[1] == '\n' ? p + 2 : p + 1;
    }
    return NULL;
}

static void
process_chunk(struct csvload *ld, const char *buf, size_t n)
{
    const char *p = buf, *end = buf + n;

    if (ld->cr_pending && n > 0) {
        /* The last chunk ended in CR: an LF now belongs to that line end. */
        ld->cr_pending = false;
        if (*p == '\n')
            feed(ld, p++, 1);
        line_done(ld);
    }
    while (p < end) {
        const char *e = line_end(p, end);
        if (e == NULL) {
            feed(ld, p, (size_t)(end - p));
            return;
        }
        feed(ld, p, (size_t)(e - p));
        if (e == end && e[-1] == '\r')
            ld->cr_pending = true;
        else
            line_done(ld);
        p = e;
    }
}

static void
finish(struct csvload *ld)
{
    ld->eof = true;
    if (ld->skip_line)
        return;
    if (csv_fini(&ld->parser, on_field, on_row, ld) != 0)
        bad_record(ld, ld->row_line, "a quoted field is never closed");
}

/* Reads up to one chunk; the first read makes sure the BOM, if any, is whole. Returns the
 * bytes read, READ_INTERRUPTED when a signal came before any byte, or -1 on an error. */
static ssize_t
read_chunk(struct csvload *ld, char *buf, size_t cap)
{
    size_t got = 0;

    for (;;) {
        ssize_t r = read(ld->fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR && got == 0)
            return READ_INTERRUPTED;
        if (r < 0 && errno == EINTR)
            continue; /* the rest of a BOM: a pipe delivers it at once */
        if (r < 0)
            return -1;
        got += (size_t)r;
        if (r == 0 || ld->started || got >= BOM_LEN || memcmp(buf, bom, got) != 0)
            return (ssize_t)got;
    }
}

enum csvload_status
csvload_step(struct csvload *ld, size_t budget)
{
    char buf[CSVLOAD_READ_CHUNK];
    size_t done = 0;

    if (ld->failure[0] != '\0')
        return CSVLOAD_FAILED;
    while (!ld->eof) {
        ssize_t n = read_chunk(ld, buf, sizeof buf);
        if (n == READ_INTERRUPTED)
            return CSVLOAD_MORE; /* the caller may want to stop */
        if (n < 0) {
            snprintf(ld->failure, sizeof ld->failure, "read error: %s", strerror(errno));
            return CSVLOAD_FAILED;
        }
        if (n == 0) {
            finish(ld);
            break;
        }
        size_t skip = 0;
        if (!ld->started && (size_t)n >= BOM_LEN && memcmp(buf, bom, BOM_LEN) == 0)
            skip = BOM_LEN;
        ld->started = true;
        ld->bytes += (uint64_t)n;
        process_chunk(ld, buf + skip, (size_t)n - skip);
        done += (size_t)n;
        if (done >= budget)
            return CSVLOAD_MORE;
    }
    return CSVLOAD_DONE;
}

uint64_t
csvload_bytes(const struct csvload *ld)
{
    return ld->bytes;
}

uint32_t
csvload_lines(const struct csvload *ld)
{
    return ld->cur_line - 1;
}

const char *
csvload_failure(const struct csvload *ld)
{
    return ld->failure;
}

size_t
csvload_bad(const struct csvload *ld)
{
    return ld->nbad;
}

size_t
csvload_errors_kept(const struct csvload *ld)
{
    return ld->nkept;
}

const struct csvload_error *
csvload_error(const struct csvload *ld, size_t i)
{
    return &ld->errors[i];
}

bool
csvload_has_header(const struct csvload *ld)
{
    return ld->has_header;
}

void
csvload_records(const struct csvload *ld, struct csvload_records *out)
{
    out->text = ld->text;
    out->end = ld->end;
    out->line = ld->line;
    out->n = ld->n;
}
