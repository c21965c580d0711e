/* audit.c - audit records: what each write says, their encoding and hash, and the check of a
 * chain read back (see audit.h). */
#include "audit.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "rules.h"

_Static_assert(AUDIT_HASH_BYTES == crypto_generichash_BYTES, "BLAKE2b-256 is generichash's own");

#define STR8_MAX  UINT8_MAX
#define STR16_MAX UINT16_MAX
/* Bytes a builder keeps for the values it formats itself (numbers, times, hashes): the most any
 * verb formats is GENERATE's, seven values of at most AUDIT_HEX_BUF bytes. */
#define SCRATCH_MAX 1024
#define NUM_BUF     24 /* an int64 in decimal with its sign, or a discount, and NUL */
/* Years 0 to 9999 print as four digits: the seconds of 0000-01-01 and 9999-12-31T23:59:59Z. */
#define TIME_RFC_MIN INT64_C(-62167219200)
#define TIME_RFC_MAX INT64_C(253402300799)
#define SECS_PER_DAY INT64_C(86400)
/* civil_from_days counts days from 0000-03-01, in eras of 400 Gregorian years. */
#define DAYS_0000_03_01_TO_EPOCH INT64_C(719468)
#define DAYS_PER_ERA             INT64_C(146097)

static const char *const type_names[STORE_NTYPES] = {"NONE", "FREE", "STANDARD", "MEGADEAL"};
static const char *const kind_names[] = {"FLAT", "PERCENT"};

/* The verbs of writes, which a note may not take. */
static const char *const op_verbs[] = {"UPLOAD", "GENERATE",   "REQUEST",     "GRANT",
                                       "REDEEM", "HOLD",       "RELEASE",     "UNREDEEM",
                                       "PURGE",  "EXPIRE_IDS", "EXPIRE_HOLDS"};
/* The names a record's line shows itself, which no field may take. */
static const char *const line_names[] = {"seq", "time", "actor", "verb", "outcome", "prev", "hash"};

/* --- encoding --- */

struct wbuf {
    uint8_t *p;
    size_t cap, len;
    bool bad; /* did not fit */
};

static void
w_bytes(struct wbuf *w, const void *p, size_t n)
{
    if (w->bad || n > w->cap - w->len) {
        w->bad = true;
        return;
    }
    if (n > 0)
        memcpy(w->p + w->len, p, n);
    w->len += n;
}

static void
w_uint(struct wbuf *w, uint64_t v, size_t n)
{
    uint8_t b[sizeof v];

    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    w_bytes(w, b, n);
}

static void
w_str(struct wbuf *w, const struct audit_text *t, size_t prefix, uint64_t max)
{
    if (t->len > max) {
        w->bad = true;
        return;
    }
    w_uint(w, t->len, prefix);
    w_bytes(w, t->p, t->len);
}

static void
w_fields(struct wbuf *w, const struct audit_field *f, size_t n)
{
    if (n > AUDIT_FIELDS_MAX) {
        w->bad = true;
        return;
    }
    w_uint(w, n, 1);
    for (size_t i = 0; i < n; i++) {
        w_str(w, &f[i].name, 1, STR8_MAX);
        w_str(w, &f[i].value, 2, STR16_MAX);
    }
}

size_t
audit_encode(const struct audit_rec *r, uint8_t *buf, size_t cap)
{
    struct wbuf w = {buf, cap, 0, false};

    w_uint(&w, AUDIT_VERSION, 1);
    w_uint(&w, r->seq, 8);
    w_uint(&w, (uint64_t)r->time, 8);
    w_str(&w, &r->actor, 1, STR8_MAX);
    w_str(&w, &r->verb, 1, STR8_MAX);
    w_fields(&w, r->args, r->nargs);
    w_str(&w, &r->outcome, 1, STR8_MAX);
    w_fields(&w, r->outs, r->nouts);
    return w.bad ? 0 : w.len;
}

/* --- decoding --- */

struct rbuf {
    const uint8_t *p;
    size_t len, off;
    const char *why; /* set at the first failure */
};

static uint64_t
r_uint(struct rbuf *r, size_t n, const char *what)
{
    uint64_t v = 0;

    if (r->why != NULL)
        return 0;
    if (n > r->len - r->off) {
        r->why = what;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        v = v << 8 | r->p[r->off + i];
    r->off += n;
    return v;
}

static void
r_str(struct rbuf *r, struct audit_text *t, size_t prefix, const char *what)
{
    size_t n = (size_t)r_uint(r, prefix, what);

    t->p = "";
    t->len = 0;
    if (r->why != NULL)
        return;
    if (n > r->len - r->off) {
        r->off -= prefix; /* point at the length that says too much */
        r->why = what;
        return;
    }
    t->p = (const char *)r->p + r->off;
    t->len = n;
    r->off += n;
}

static size_t
r_fields(struct rbuf *r, struct audit_field *f, const char *what)
{
    size_t n = (size_t)r_uint(r, 1, what);

    if (r->why == NULL && n > AUDIT_FIELDS_MAX) {
        r->off -= 1;
        r->why = "more fields than a record has";
        return 0;
    }
    for (size_t i = 0; i < n && r->why == NULL; i++) {
        r_str(r, &f[i].name, 1, "a field's name runs past the end");
        r_str(r, &f[i].value, 2, "a field's value runs past the end");
    }
    return r->why == NULL ? n : 0;
}

bool
audit_decode(const uint8_t *buf, size_t len, struct audit_rec *r, size_t *bad_at, const char **why)
{
    struct rbuf rb = {buf, len, 0, NULL};

    memset(r, 0, sizeof *r);
    r->version = (unsigned)r_uint(&rb, 1, "the record is empty");
    if (rb.why == NULL && r->version != AUDIT_VERSION) {
        rb.off = 0;
        rb.why = "unknown record version";
    }
    r->seq = r_uint(&rb, 8, "the record ends in its sequence");
    r->time = (int64_t)r_uint(&rb, 8, "the record ends in its time");
    r_str(&rb, &r->actor, 1, "the actor runs past the end");
    r_str(&rb, &r->verb, 1, "the verb runs past the end");
    r->nargs = r_fields(&rb, r->args, "the record ends before its arguments");
    r_str(&rb, &r->outcome, 1, "the outcome runs past the end");
    r->nouts = r_fields(&rb, r->outs, "the record ends before its outcome");
    if (rb.why == NULL && rb.off != rb.len)
        rb.why = "bytes after the record's end";
    if (rb.why == NULL)
        return true;
    *bad_at = rb.off;
    *why = rb.why;
    return false;
}

/* --- hashing --- */

void
audit_hash(const uint8_t prev[AUDIT_HASH_BYTES], const uint8_t *rec, size_t len,
           uint8_t out[AUDIT_HASH_BYTES])
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_BYTES);
    crypto_generichash_update(&st, prev, AUDIT_HASH_BYTES);
    crypto_generichash_update(&st, rec, len);
    crypto_generichash_final(&st, out, AUDIT_HASH_BYTES);
}

void
audit_link(struct store_audit_head *head, const uint8_t *rec, size_t len)
{
    uint8_t h[AUDIT_HASH_BYTES];

    audit_hash(head->hash, rec, len, h);
    memcpy(head->hash, h, sizeof h);
    head->seq++;
}

/* --- what a write says --- */

/* A record being built: its fields, and the text formatted for them. */
struct builder {
    struct audit_rec r;
    char scratch[SCRATCH_MAX];
    size_t used;
    bool bad; /* out of fields or scratch */
};

static struct audit_text
text_of(const char *s)
{
    return (struct audit_text){s, strlen(s)};
}

static void
field(struct builder *b, bool out, const char *name, const char *value)
{
    size_t *n = out ? &b->r.nouts : &b->r.nargs;
    struct audit_field *f = out ? b->r.outs : b->r.args;

    if (*n >= AUDIT_FIELDS_MAX) {
        b->bad = true;
        return;
    }
    f[(*n)++] = (struct audit_field){text_of(name), text_of(value)};
}

/* A value formatted into the scratch space; "" when it is full (and the build fails). */
__attribute__((format(printf, 2, 3))) static const char *
fmt(struct builder *b, const char *f, ...)
{
    char *p = b->scratch + b->used;
    size_t room = sizeof b->scratch - b->used;
    va_list ap;
    int n;

    va_start(ap, f);
    n = vsnprintf(p, room, f, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        b->bad = true;
        return "";
    }
    b->used += (size_t)n + 1;
    return p;
}

/* Room for a value of at most `cap` bytes with its NUL at the end of the scratch space, or NULL
 * when it is full (the build then fails); keep() takes the `n` bytes written there, and the NUL.
 * The values written on every write (numbers, times) go in this way, without printf. */
static char *
room(struct builder *b, size_t cap)
{
    if (sizeof b->scratch - b->used < cap) {
        b->bad = true;
        return NULL;
    }
    return b->scratch + b->used;
}

static const char *
keep(struct builder *b, char *p, size_t n)
{
    b->used += n + 1;
    return p;
}

/* Writes v in decimal and a NUL; returns the digits' count. */
static size_t
put_u64(char out[NUM_BUF], uint64_t v)
{
    char rev[NUM_BUF];
    size_t n = 0;

    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
    return n;
}

static void
field_u64(struct builder *b, bool out, const char *name, uint64_t v)
{
    char *p = room(b, NUM_BUF);

    field(b, out, name, p == NULL ? "" : keep(b, p, put_u64(p, v)));
}

static void
field_time(struct builder *b, bool out, const char *name, int64_t t)
{
    char *p = room(b, AUDIT_TIME_BUF);

    field(b, out, name, p == NULL ? "" : keep(b, p, audit_fmt_time(t, p)));
}

static void
field_hex(struct builder *b, bool out, const char *name, const uint8_t h[AUDIT_HASH_BYTES])
{
    char *p = room(b, AUDIT_HEX_BUF);

    if (p != NULL)
        audit_hex(h, p);
    field(b, out, name, p == NULL ? "" : keep(b, p, 2 * AUDIT_HASH_BYTES));
}

static const char *
type_name(unsigned t)
{
    return t < STORE_NTYPES ? type_names[t] : "?";
}

static const char *
kind_name(unsigned k)
{
    return k <= STORE_KIND_PERCENT ? kind_names[k] : "?";
}

/* A discount in hundredths as "12.50". */
static void
field_discount(struct builder *b, const char *name, int64_t cents)
{
    uint64_t a = cents < 0 ? 0 - (uint64_t)cents : (uint64_t)cents;

    field(b, false, name,
          fmt(b, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", a / 100, a % 100));
}

/* The request id, the last argument of a write that carries one. */
static void
field_rid(struct builder *b, const struct store_op *op)
{
    if (op->in.rid.id[0] != '\0')
        field(b, false, "id", op->in.rid.id);
}

/* A str8 of a code into a digest. */
static void
digest_code(crypto_generichash_state *st, const char *code)
{
    uint8_t n = (uint8_t)strnlen(code, STORE_CODE_MAX);

    crypto_generichash_update(st, &n, 1);
    crypto_generichash_update(st, (const uint8_t *)code, n);
}

static void
digest_record(crypto_generichash_state *st, const struct store_coupon *c)
{
    uint8_t buf[2 + 8 + 8 + 4];
    struct wbuf w = {buf, sizeof buf, 0, false};

    digest_code(st, c->code);
    w_uint(&w, c->type, 1);
    w_uint(&w, c->kind, 1);
    w_uint(&w, (uint64_t)c->discount, 8);
    w_uint(&w, (uint64_t)c->expires, 8);
    w_uint(&w, c->max_uses, 4);
    crypto_generichash_update(st, buf, w.len);
}

static void
build_upload(struct builder *b, const struct store_op *op)
{
    uint8_t h[AUDIT_HASH_BYTES];
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, sizeof h);
    for (size_t i = 0; i < op->in.n; i++)
        digest_record(&st, &op->in.recs[i]);
    crypto_generichash_final(&st, h, sizeof h);
    field_u64(b, false, "records", op->in.n);
    field_hex(b, false, "digest", h);
    field_rid(b, op);
    field_u64(b, true, "uploaded", op->in.n);
}

/* The i-th code a GENERATE stored: in.codes when it was given them, else its candidate. */
static const char *
generated_code(const struct store_op *op, size_t i)
{
    if (op->in.codes != NULL && op->in.codes[i][0] != '\0')
        return op->in.codes[i];
    return op->in.recs[op->in.chosen[i]].code;
}

static void
build_generate(struct builder *b, const struct store_op *op)
{
    const struct store_coupon *c = &op->in.recs[op->in.chosen[0]];
    uint8_t h[AUDIT_HASH_BYTES];
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, sizeof h);
    for (size_t i = 0; i < op->in.want; i++)
        digest_code(&st, generated_code(op, i));
    crypto_generichash_final(&st, h, sizeof h);
    field_u64(b, false, "count", op->in.want);
    field(b, false, "type", type_name(c->type));
    field_discount(b, "discount", c->discount);
    field(b, false, "kind", kind_name(c->kind));
    field_time(b, false, "expires", c->expires);
    field_u64(b, false, "max_uses", c->max_uses);
    field_rid(b, op);
    field_u64(b, true, "generated", op->in.want);
    field_hex(b, true, "digest", h);
}

static void
build_assign(struct builder *b, const struct store_op *op)
{
    field(b, false, "user", op->in.user);
    field(b, false, "type", type_name(op->in.type));
    if (op->in.task_seq != 0)
        field_u64(b, false, "task", op->in.task_seq);
    else if (op->in.min_expires > op->now)
        field_time(b, false, "min_expires", op->in.min_expires);
    field_rid(b, op);
    field(b, true, "code", op->out.coupon.code);
    field_time(b, true, "expires", op->out.coupon.expires);
}

static void
build_redeem(struct builder *b, const struct store_op *op)
{
    field(b, false, "user", op->in.user);
    field(b, false, "code", op->in.code);
    if (op->in.hold_seq != 0)
        field_u64(b, false, "hold", op->in.hold_seq);
    field_rid(b, op);
    field_u64(b, true, "redemption", op->out.redemption);
    field_u64(b, true, "uses", op->out.coupon.uses);
}

static void
build_hold(struct builder *b, const struct store_op *op)
{
    field(b, false, "user", op->in.user);
    field(b, false, "code", op->in.code);
    field_time(b, false, "until", op->in.until);
    field_rid(b, op);
    field_u64(b, true, "hold", op->out.hold.seq);
    field_time(b, true, "expires", op->out.hold.expires);
}

static void
build_release(struct builder *b, const struct store_op *op)
{
    field_u64(b, false, "hold", op->in.hold_seq);
    field_rid(b, op);
    field(b, true, "code", op->out.coupon.code);
    field(b, true, "user", op->out.coupon.user);
}

static void
build_unredeem(struct builder *b, const struct store_op *op)
{
    field(b, false, "user", op->in.user);
    field_u64(b, false, "redemption", op->in.after);
    field_rid(b, op);
    field(b, true, "code", op->out.coupon.code);
    field_u64(b, true, "uses", op->out.coupon.uses);
}

/* PURGE and the expiries: one chunk, up to in.max of what ended before now. */
static void
build_chunk(struct builder *b, const struct store_op *op)
{
    field_time(b, false, "cutoff", op->now);
    field_u64(b, false, "max", op->in.max);
    field_u64(b, true, op->kind == STORE_OP_PURGE ? "purged" : "expired", op->out.count);
    field(b, true, "more", op->out.more ? "1" : "0");
}

static void
build_note(struct builder *b, const struct store_op *op)
{
    const struct store_audit_note *n = op->in.note;

    b->r.verb = text_of(n->verb);
    for (size_t i = 0; i < n->n; i++)
        field(b, false, n->f[i].name, n->f[i].value);
}

static const struct {
    const char *verb; /* NULL: a note's own */
    void (*build)(struct builder *b, const struct store_op *op);
} kinds[STORE_NOPS] = {
    [STORE_OP_UPLOAD] = {"UPLOAD", build_upload},
    [STORE_OP_GENERATE] = {"GENERATE", build_generate},
    [STORE_OP_ASSIGN] = {"REQUEST", build_assign},
    [STORE_OP_REDEEM] = {"REDEEM", build_redeem},
    [STORE_OP_HOLD] = {"HOLD", build_hold},
    [STORE_OP_RELEASE] = {"RELEASE", build_release},
    [STORE_OP_UNREDEEM] = {"UNREDEEM", build_unredeem},
    [STORE_OP_PURGE] = {"PURGE", build_chunk},
    [STORE_OP_EXPIRE_HOLDS] = {"EXPIRE_HOLDS", build_chunk},
    [STORE_OP_EXPIRE_IDS] = {"EXPIRE_IDS", build_chunk},
    [STORE_OP_AUDIT_NOTE] = {NULL, build_note},
};

bool
audit_wanted(const struct store_op *op)
{
    switch (op->kind) {
    case STORE_OP_UPLOAD:
        return !op->in.check_only && op->in.n > 0;
    case STORE_OP_GENERATE:
        return op->in.want > 0; /* a GENERATE of none stores nothing */
    case STORE_OP_PURGE:
    case STORE_OP_EXPIRE_HOLDS:
    case STORE_OP_EXPIRE_IDS:
        return op->out.count > 0;
    case STORE_OP_GRANT_DONE: /* a slot of the limits shared by nodes, no coupon (store.h) */
        return false;
    default:
        return store_op_writes(op->kind);
    }
}

size_t
audit_of_op(const struct store_op *op, uint64_t seq, uint8_t *buf, size_t cap)
{
    static struct builder zero;
    struct builder b = zero;

    if ((unsigned)op->kind >= STORE_NOPS || kinds[op->kind].build == NULL)
        return 0;
    if (op->kind == STORE_OP_AUDIT_NOTE && op->in.note == NULL)
        return 0;
    if ((op->kind == STORE_OP_GENERATE && (op->in.want == 0 || op->in.chosen == NULL)))
        return 0;
    b.r.seq = seq;
    b.r.time = op->now;
    b.r.actor = (struct audit_text){op->in.actor, strnlen(op->in.actor, STORE_SCOPE_MAX)};
    b.r.verb = text_of(kinds[op->kind].verb != NULL ? kinds[op->kind].verb : "");
    if (op->kind == STORE_OP_ASSIGN && op->in.task_seq != 0)
        b.r.verb = text_of("GRANT");
    b.r.outcome = text_of(AUDIT_OUTCOME_OK);
    kinds[op->kind].build(&b, op);
    return b.bad ? 0 : audit_encode(&b.r, buf, cap);
}

/* --- notes --- */

static bool
in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* 1 to max bytes, each one of `set` or a letter or digit of the case asked. */
static bool
word_ok(const char *s, size_t max, bool upper, const char *set)
{
    size_t n = strnlen(s, max + 1);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool letter = upper ? (c >= 'A' && c <= 'Z') : (c >= 'a' && c <= 'z');
        if (!letter && !(c >= '0' && c <= '9') && strchr(set, c) == NULL)
            return false;
    }
    return true;
}

static bool
value_ok(const char *s)
{
    size_t n = strnlen(s, STORE_AUDIT_VALUE_MAX + 1);

    if (n == 0 || n > STORE_AUDIT_VALUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] > '~')
            return false;
    return true;
}

enum store_err
audit_note_check(struct store_op *op)
{
    const struct store_audit_note *n = op->in.note;

    if (n == NULL || n->n > STORE_AUDIT_NOTE_MAX)
        return store_op_fail(op, STORE_INVALID, "audit note: no note, or too many fields");
    if (!word_ok(n->verb, STORE_AUDIT_NAME_MAX, true, "_.-") ||
        in_list(n->verb, op_verbs, sizeof op_verbs / sizeof op_verbs[0]))
        return store_op_fail(op, STORE_INVALID, "audit note: not a note's verb");
    for (size_t i = 0; i < n->n; i++) {
        if (!word_ok(n->f[i].name, STORE_AUDIT_NAME_MAX, false, "_.") ||
            in_list(n->f[i].name, line_names, sizeof line_names / sizeof line_names[0]))
            return store_op_fail(op, STORE_INVALID, "audit note: field %zu has no usable name",
                                 i + 1);
        if (!value_ok(n->f[i].value))
            return store_op_fail(op, STORE_INVALID,
                                 "audit note: field %zu is not 1 to %d printable bytes", i + 1,
                                 STORE_AUDIT_VALUE_MAX);
    }
    return STORE_OK;
}

/* --- verifying --- */

__attribute__((format(printf, 3, 4))) static bool
reject(struct audit_verify *v, uint64_t seq, const char *f, ...)
{
    va_list ap;

    v->bad = seq;
    va_start(ap, f);
    vsnprintf(v->why, sizeof v->why, f, ap);
    va_end(ap);
    return false;
}

void
audit_verify_init(struct audit_verify *v, const struct store_audit_head *before)
{
    memset(v, 0, sizeof *v);
    v->before = *before;
    v->head_seen = before->seq == 0;
}

/* The record's own checks: it decodes and says its own number. */
static bool
row_decodes(struct audit_verify *v, const struct store_audit_row *row)
{
    struct audit_rec r;
    const char *why = NULL;
    size_t at = 0;

    if (row->len > STORE_AUDIT_REC_MAX)
        return reject(v, row->seq, "record %" PRIu64 " is longer than a record can be", row->seq);
    if (!audit_decode(row->rec, row->len, &r, &at, &why))
        return reject(v, row->seq, "record %" PRIu64 " does not decode: %s (byte %zu of %zu)",
                      row->seq, why, at, row->len);
    if (r.seq != row->seq)
        return reject(v, row->seq, "record %" PRIu64 " says it is record %" PRIu64, row->seq,
                      r.seq);
    return true;
}

bool
audit_verify_row(struct audit_verify *v, const struct store_audit_row *row)
{
    char want[AUDIT_HEX_BUF], got[AUDIT_HEX_BUF];
    uint8_t h[AUDIT_HASH_BYTES];

    if (v->bad != 0)
        return false;
    if (row->seq != v->seq + 1)
        return reject(v, v->seq + 1,
                      "record %" PRIu64 " is missing (the next stored is %" PRIu64 ")", v->seq + 1,
                      row->seq);
    if (!row_decodes(v, row))
        return false;
    if (v->seq > 0 && sodium_memcmp(row->prev, v->stored, AUDIT_HASH_BYTES) != 0)
        return reject(v, row->seq,
                      "record %" PRIu64 ": the store's previous hash is not record %" PRIu64 "'s",
                      row->seq, v->seq);
    audit_hash(v->hash, row->rec, row->len, h);
    if (sodium_memcmp(h, row->hash, AUDIT_HASH_BYTES) != 0) {
        audit_hex(row->hash, want);
        audit_hex(h, got);
        return reject(v, row->seq,
                      "record %" PRIu64 " does not match its hash: stored %s, computed %s from "
                      "the record and the hash before it",
                      row->seq, want, got);
    }
    v->seq = row->seq;
    memcpy(v->hash, h, sizeof h);
    memcpy(v->stored, row->hash, sizeof h);
    if (v->seq == v->before.seq)
        v->head_seen = true;
    return true;
}

bool
audit_verify_end(struct audit_verify *v, const struct store_audit_head *after)
{
    char want[AUDIT_HEX_BUF], got[AUDIT_HEX_BUF];
    const struct store_audit_head *b = &v->before;

    if (v->bad != 0)
        return false;
    if (v->seq < b->seq)
        return reject(v, v->seq + 1,
                      "record %" PRIu64 " is missing: the head is record %" PRIu64
                      ", the chain ends at %" PRIu64,
                      v->seq + 1, b->seq, v->seq);
    if (after->seq == b->seq && v->seq > b->seq)
        return reject(v, b->seq + 1, "record %" PRIu64 " lies beyond the head (record %" PRIu64 ")",
                      b->seq + 1, b->seq);
    if (!v->head_seen)
        return reject(v, b->seq, "record %" PRIu64 " (the head) was not reached", b->seq);
    /* The head's hash is checked against the chain's at its record: recomputed up to there. */
    if (v->seq == b->seq && sodium_memcmp(v->hash, b->hash, AUDIT_HASH_BYTES) != 0) {
        audit_hex(b->hash, want);
        audit_hex(v->hash, got);
        return reject(v, b->seq, "the head (record %" PRIu64 ") says hash %s, the chain %s", b->seq,
                      want, got);
    }
    return true;
}

/* --- showing --- */

void
audit_hex(const uint8_t h[AUDIT_HASH_BYTES], char out[AUDIT_HEX_BUF])
{
    sodium_bin2hex(out, AUDIT_HEX_BUF, h, AUDIT_HASH_BYTES);
}

bool
audit_unhex(const char *s, size_t len, uint8_t h[AUDIT_HASH_BYTES])
{
    uint8_t tmp[AUDIT_HASH_BYTES];
    size_t n = 0;

    if (len != 2 * AUDIT_HASH_BYTES ||
        sodium_hex2bin(tmp, sizeof tmp, s, len, NULL, &n, NULL) != 0 || n != sizeof tmp)
        return false;
    memcpy(h, tmp, sizeof tmp);
    return true;
}

/* Writes `width` decimal digits of v (0 <= v < 10^width). */
static char *
put_digits(char *p, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

/* t (0 to TIME_RFC_MAX) as strftime's "%Y-%m-%dT%H:%M:%SZ" of gmtime_r(t), byte for byte (every
 * year of the range has four digits), without either: gmtime_r takes glibc's time zone lock at
 * every call, and REQUEST's record formats a time on the writer thread. The date is Howard
 * Hinnant's civil_from_days. */
static size_t
fmt_utc(int64_t t, char out[AUDIT_TIME_BUF])
{
    int64_t z = t / SECS_PER_DAY + DAYS_0000_03_01_TO_EPOCH, secs = t % SECS_PER_DAY;
    int64_t era = z / DAYS_PER_ERA, doe = z - era * DAYS_PER_ERA;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    char *p = out;

    p = put_digits(p, yoe + era * 400 + (m <= 2), 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, secs / 3600, 2);
    *p++ = ':';
    p = put_digits(p, secs / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, secs % 60, 2);
    *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - out);
}

size_t
audit_fmt_time(int64_t t, char out[AUDIT_TIME_BUF])
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t >= 0 && t <= TIME_RFC_MAX)
        return fmt_utc(t, out);
    /* Before 1970 (no coupon or operation is dated so): the C library's calendar. */
    if (t >= TIME_RFC_MIN && t < 0 && gmtime_r(&tt, &tm) != NULL) {
        size_t n = strftime(out, AUDIT_TIME_BUF, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (n > 0)
            return n;
    }
    return (size_t)snprintf(out, AUDIT_TIME_BUF, "%" PRId64, t);
}

size_t
audit_escape(const struct audit_text *t, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    if (cap == 0)
        return 0;
    if (t->len == 0)
        return (size_t)snprintf(out, cap, "-");
    for (size_t i = 0; i < t->len; i++) {
        unsigned char c = (unsigned char)t->p[i];
        bool plain = c > ' ' && c <= '~' && c != '%' && !(c == '-' && t->len == 1);
        if (plain && o + 1 < cap) {
            out[o++] = (char)c;
        } else if (!plain && o + 3 < cap) {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0xf];
        } else {
            break;
        }
    }
    out[o] = '\0';
    return o;
}
