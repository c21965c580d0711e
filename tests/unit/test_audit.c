/* test_audit.c - unit tests of the audit chain's pure parts: store/audit.c (the record encoding,
 * what each write says, the verifier), server/auditkey.c (the head's signature) and
 * server/auditline.c (a record as a reply line). The chain kept by each backend is
 * test_audit_store's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "auditkey.h"
#include "auditline.h"
#include "reply.h"
#include "store.h"

#define T0       INT64_C(1798761599) /* 2026-12-31T23:59:59Z */
#define LINE_CAP 8192

static struct audit_text
txt(const char *s)
{
    return (struct audit_text){s, strlen(s)};
}

/* A record of every shape: texts, fields, a byte outside printable ASCII. */
static struct audit_rec
sample(void)
{
    struct audit_rec r;

    memset(&r, 0, sizeof r);
    r.seq = 7;
    r.time = -5;
    r.actor = txt("shop");
    r.verb = txt("REDEEM");
    r.nargs = 2;
    r.args[0] = (struct audit_field){txt("user"), txt("al ice%\x01")};
    r.args[1] = (struct audit_field){txt("code"), txt("")};
    r.outcome = txt(AUDIT_OUTCOME_OK);
    r.nouts = 1;
    r.outs[0] = (struct audit_field){txt("uses"), txt("1")};
    return r;
}

static bool
same(const struct audit_text *a, const struct audit_text *b)
{
    return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* The encoding is the one audit.h documents, byte for byte, and decodes back. */
static void
test_encoding(void **state)
{
    static const uint8_t want[] = {
        1,    0,    0,    0,    0,    0,    0,    0,    7,                  /* version, seq */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb,                     /* time -5 */
        4,    's',  'h',  'o',  'p',  6,    'R',  'E',  'D', 'E', 'E', 'M', /* actor, verb */
        2,    4,    'u',  's',  'e',  'r',  0,    8,    'a', 'l', ' ', 'i',
        'c',  'e',  '%',  1,    4,    'c',  'o',  'd',  'e', 0,   0,         /* args */
        2,    'O',  'K',  1,    4,    'u',  's',  'e',  's', 0,   1,   '1'}; /* outcome, outs */
    struct audit_rec r = sample(), d;
    uint8_t buf[256];
    const char *why = NULL;
    size_t n = audit_encode(&r, buf, sizeof buf), at;

    (void)state;
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, n);
    assert_true(audit_decode(buf, n, &d, &at, &why));
    assert_int_equal(d.version, AUDIT_VERSION);
    assert_int_equal(d.seq, 7);
    assert_int_equal(d.time, -5);
    assert_true(same(&d.actor, &r.actor) && same(&d.verb, &r.verb) && same(&d.outcome, &r.outcome));
    assert_int_equal(d.nargs, 2);
    assert_int_equal(d.nouts, 1);
    assert_true(same(&d.args[0].value, &r.args[0].value) && same(&d.args[1].name, &r.args[1].name));
    assert_true(same(&d.outs[0].value, &r.outs[0].value));
    assert_int_equal(audit_encode(&r, buf, n - 1), 0); /* does not fit */
    r.nargs = AUDIT_FIELDS_MAX + 1;
    assert_int_equal(audit_encode(&r, buf, sizeof buf), 0);
}

/* A record that is not one is refused, naming where it went wrong. */
static void
test_decode_refuses(void **state)
{
    struct audit_rec r = sample(), d;
    uint8_t buf[256];
    size_t n = audit_encode(&r, buf, sizeof buf), at = 0;
    const char *why = NULL;

    (void)state;
    assert_false(audit_decode(buf, 0, &d, &at, &why));
    assert_false(audit_decode(buf, n - 1, &d, &at, &why)); /* cut */
    assert_non_null(why);
    buf[0] = 2;
    assert_false(audit_decode(buf, n, &d, &at, &why));
    assert_int_equal(at, 0);
    assert_string_equal(why, "unknown record version");
    buf[0] = 1;
    buf[17] = 200; /* the actor's length runs past the end */
    assert_false(audit_decode(buf, n, &d, &at, &why));
    assert_int_equal(at, 17);
    buf[17] = 4;
    buf[n] = 0; /* a byte too many */
    assert_false(audit_decode(buf, n + 1, &d, &at, &why));
    assert_string_equal(why, "bytes after the record's end");
    assert_true(audit_decode(buf, n, &d, &at, &why));
}

/* The chain: BLAKE2b-256 of the previous hash and the record, from 32 zeros. */
static void
test_link(void **state)
{
    struct store_audit_head h = {0};
    uint8_t rec[] = {1, 2, 3}, want[AUDIT_HASH_BYTES], zero[AUDIT_HASH_BYTES] = {0};
    crypto_generichash_state st;

    (void)state;
    crypto_generichash_init(&st, NULL, 0, sizeof want);
    crypto_generichash_update(&st, zero, sizeof zero);
    crypto_generichash_update(&st, rec, sizeof rec);
    crypto_generichash_final(&st, want, sizeof want);
    audit_link(&h, rec, sizeof rec);
    assert_int_equal(h.seq, 1);
    assert_memory_equal(h.hash, want, sizeof want);
    audit_hash(want, rec, sizeof rec, want);
    audit_link(&h, rec, sizeof rec);
    assert_int_equal(h.seq, 2);
    assert_memory_equal(h.hash, want, sizeof want);
}

/* What a write says: its verb, arguments, outcome; a MEGADEAL grant is GRANT. */
static void
test_of_op(void **state)
{
    struct store_op op;
    struct audit_rec d;
    uint8_t buf[STORE_AUDIT_REC_MAX];
    const char *why;
    size_t n, at;

    (void)state;
    memset(&op, 0, sizeof op);
    op.kind = STORE_OP_ASSIGN;
    op.now = T0;
    op.in.type = STORE_TYPE_MEGADEAL;
    op.in.task_seq = 42;
    snprintf(op.in.user, sizeof op.in.user, "bob");
    snprintf(op.in.actor, sizeof op.in.actor, "svc");
    snprintf(op.in.rid.id, sizeof op.in.rid.id, "o-9");
    snprintf(op.out.coupon.code, sizeof op.out.coupon.code, "M-1");
    op.out.coupon.expires = T0 + 1;
    n = audit_of_op(&op, 3, buf, sizeof buf);
    assert_true(n > 0 && audit_decode(buf, n, &d, &at, &why));
    assert_int_equal(d.seq, 3);
    assert_int_equal(d.time, T0);
    assert_true(same(&d.actor, &(struct audit_text){"svc", 3}));
    assert_true(same(&d.verb, &(struct audit_text){"GRANT", 5}));
    assert_int_equal(d.nargs, 4); /* user type task id */
    assert_true(same(&d.args[2].value, &(struct audit_text){"42", 2}));
    assert_true(same(&d.args[3].name, &(struct audit_text){"id", 2}));
    assert_int_equal(d.nouts, 2);
    assert_true(same(&d.outs[1].value, &(struct audit_text){"2027-01-01T00:00:00Z", 20}));
    op.kind = STORE_OP_VALIDATE; /* a read says nothing */
    assert_int_equal(audit_of_op(&op, 3, buf, sizeof buf), 0);
    assert_false(audit_wanted(&op));
    op.kind = STORE_OP_PURGE;
    op.out.count = 0;
    assert_false(audit_wanted(&op));
    op.out.count = 2;
    assert_true(audit_wanted(&op));
    op.kind = STORE_OP_UPLOAD;
    op.in.n = 1;
    op.in.check_only = true;
    assert_false(audit_wanted(&op));
}

/* Escaping keeps a value one word and tells "" from "-". */
static void
test_escape(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(audit_escape(&(struct audit_text){"", 0}, out, sizeof out), 1);
    assert_string_equal(out, "-");
    audit_escape(&(struct audit_text){"-", 1}, out, sizeof out);
    assert_string_equal(out, "%2D");
    audit_escape(&(struct audit_text){"a-b c%\n=", 8}, out, sizeof out);
    assert_string_equal(out, "a-b%20c%25%0A=");
    audit_escape(&(struct audit_text){"abcdef", 6}, out, 4); /* cut, never past cap */
    assert_string_equal(out, "abc");
    assert_int_equal(audit_fmt_time(0, out), 20);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    audit_fmt_time(INT64_MIN, out);
    assert_string_equal(out, "-9223372036854775808");
}

/* A record's times are hashed as text, so audit_fmt_time must write what gmtime_r and strftime
 * wrote before it had its own calendar, byte for byte: every stored chain depends on it. */
static void
expect_libc_time(int64_t t)
{
    char got[AUDIT_TIME_BUF], want[AUDIT_TIME_BUF];
    time_t tt = (time_t)t;
    struct tm tm;

    assert_non_null(gmtime_r(&tt, &tm));
    size_t n = strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
    size_t len = audit_fmt_time(t, got);
    if (len != n || strcmp(got, want) != 0)
        fail_msg("time %lld: \"%s\", the C library says \"%s\"", (long long)t, got, want);
}

static void
test_time_is_libc(void **state)
{
    /* A step that is no multiple of a minute, an hour or a day, so the sweep meets every field
     * at many values; then the edges of days, leap days, centuries and the range. */
    static const int64_t step = INT64_C(86400) * 97 + 3607;
    static const int64_t edges[] = {
        0,          59,          60,          3599,         3600,
        86399,      86400,       68169599,    68169600,     951782399,  /* 1972-02-29, 2000-02-29 */
        951782400,  951868799,   951868800,   4107542399,   4107542400, /* 2100-02-28 / 03-01 */
        4107628799, 13574563200, 13574649599, 253402300798, 253402300799};
    char out[AUDIT_TIME_BUF];

    (void)state;
    for (int64_t t = 0; t <= INT64_C(253402300799); t += step)
        expect_libc_time(t);
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        for (int64_t d = -2; d <= 2; d++)
            if (edges[i] + d >= 0 && edges[i] + d <= INT64_C(253402300799))
                expect_libc_time(edges[i] + d);
    expect_libc_time(-1); /* before 1970: still the C library's calendar */
    expect_libc_time(INT64_C(-62167219200));
    audit_fmt_time(INT64_C(253402300800), out); /* past 9999: the number */
    assert_string_equal(out, "253402300800");
}

/* A chain of three rows, as a store would give them. */
static void
make_rows(struct store_audit_row rows[3], struct store_audit_head *head)
{
    struct store_audit_head h = {0};
    struct audit_rec r = sample();

    for (int i = 0; i < 3; i++) {
        r.seq = (uint64_t)i + 1;
        memcpy(rows[i].prev, h.hash, sizeof h.hash);
        rows[i].seq = r.seq;
        rows[i].len = audit_encode(&r, rows[i].rec, sizeof rows[i].rec);
        audit_link(&h, rows[i].rec, rows[i].len);
        memcpy(rows[i].hash, h.hash, sizeof h.hash);
    }
    *head = h;
}

/* Feeds rows to a fresh verifier; returns the record named, 0 when all verify. */
static uint64_t
verify(const struct store_audit_row *rows, size_t n, const struct store_audit_head *before,
       const struct store_audit_head *after)
{
    struct audit_verify v;

    audit_verify_init(&v, before);
    for (size_t i = 0; i < n; i++)
        if (!audit_verify_row(&v, &rows[i]))
            return v.bad;
    return audit_verify_end(&v, after) ? 0 : v.bad;
}

/* The verifier names the first record that does not match, whatever does not. */
static void
test_verifier(void **state)
{
    struct store_audit_row *rows = calloc(3, sizeof *rows), *bad = calloc(3, sizeof *bad);
    struct store_audit_head head, h;

    (void)state;
    assert_non_null(rows);
    assert_non_null(bad);
    make_rows(rows, &head);
    assert_int_equal(verify(rows, 3, &head, &head), 0);
    memcpy(bad, rows, 3 * sizeof *rows);
    bad[1].rec[20] ^= 1; /* a byte of record 2 */
    assert_int_equal(verify(bad, 3, &head, &head), 2);
    memcpy(bad, rows, 3 * sizeof *rows);
    bad[2].hash[0] ^= 1; /* record 3's stored hash */
    assert_int_equal(verify(bad, 3, &head, &head), 3);
    memcpy(bad, rows, 3 * sizeof *rows);
    bad[1].len = 3; /* record 2 does not decode */
    assert_int_equal(verify(bad, 3, &head, &head), 2);
    assert_int_equal(verify(rows + 1, 2, &head, &head), 1); /* record 1 missing */
    bad[0] = rows[0];
    bad[1] = rows[2];
    assert_int_equal(verify(bad, 2, &head, &head), 2);  /* record 2 missing */
    assert_int_equal(verify(rows, 2, &head, &head), 3); /* the head's record missing */
    h = head;
    h.hash[0] ^= 1;
    assert_int_equal(verify(rows, 3, &h, &h), 3); /* the head's hash */
    h.seq = 2;
    memcpy(h.hash, rows[1].hash, sizeof h.hash);
    assert_int_equal(verify(rows, 3, &h, &h), 3);    /* record 3 beyond an unmoved head */
    assert_int_equal(verify(rows, 3, &h, &head), 0); /* the head moved meanwhile */
    memcpy(bad, rows, 3 * sizeof *rows);
    bad[2].prev[5] ^= 1; /* the store's previous hash */
    assert_int_equal(verify(bad, 3, &head, &head), 3);
    memcpy(bad, rows, 3 * sizeof *rows);
    bad[1].rec[8] = 9; /* record 2 says it is record 9 */
    assert_int_equal(verify(bad, 3, &head, &head), 2);
    free(rows);
    free(bad);
}

/* The head's signature: its message as auditkey.h says, Ed25519, deterministic. */
static void
test_signature(void **state)
{
    unsigned char seed[KEYS_BYTES], pk[AUDITKEY_PK_BYTES], pk2[crypto_sign_PUBLICKEYBYTES],
        sk[crypto_sign_SECRETKEYBYTES], sig[AUDITKEY_SIG_BYTES], sig2[AUDITKEY_SIG_BYTES],
        msg[AUDITKEY_MSG_BYTES];
    struct store_audit_head h = {.seq = 0x0102030405060708};
    struct auditkey *k;

    (void)state;
    memset(seed, 7, sizeof seed);
    memset(h.hash, 0xab, sizeof h.hash);
    assert_non_null(k = auditkey_from_seed(seed));
    auditkey_public(k, pk);
    crypto_sign_seed_keypair(pk2, sk, seed);
    assert_memory_equal(pk, pk2, sizeof pk);
    auditkey_message(&h, msg);
    assert_int_equal(sizeof msg, 62);
    assert_memory_equal(msg, "coupond audit head v1\0\x01\x02\x03\x04\x05\x06\x07\x08", 30);
    assert_int_equal(msg[30], 0xab);
    auditkey_sign(k, &h, sig);
    auditkey_sign(k, &h, sig2);
    assert_memory_equal(sig, sig2, sizeof sig);
    assert_int_equal(crypto_sign_verify_detached(sig, msg, sizeof msg, pk2), 0);
    assert_true(auditkey_verify(pk, &h, sig));
    h.seq++;
    assert_false(auditkey_verify(pk, &h, sig));
    auditkey_free(k);
}

/* The reply line: every field, escaped; a record that does not decode says where. */
struct sink {
    char buf[LINE_CAP];
    size_t len;
};

static void
to_sink(void *arg, const char *data, size_t len)
{
    struct sink *s = arg;

    assert_true(s->len + len < sizeof s->buf);
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    s->buf[s->len] = '\0';
}

static void
test_line(void **state)
{
    struct store_audit_row *rows = calloc(3, sizeof *rows);
    struct proto_out *o = malloc(sizeof *o);
    struct sink *s = calloc(1, sizeof *s);
    struct store_audit_head head;

    (void)state;
    assert_non_null(rows);
    assert_non_null(o);
    assert_non_null(s);
    make_rows(rows, &head);
    proto_out_init(o, to_sink, s);
    auditline_write(o, &rows[1]);
    assert_non_null(strstr(s->buf, "AUDIT seq=2 time=1969-12-31T23:59:55Z actor=shop verb=REDEEM "
                                   "user=al%20ice%25%01 code=- outcome=OK uses=1 prev="));
    assert_non_null(strstr(s->buf, " hash="));
    s->len = 0;
    rows[1].len = 5;
    auditline_write(o, &rows[1]);
    assert_non_null(strstr(s->buf, "AUDIT seq=2 undecoded=1 prev="));
    free(rows);
    free(o);
    free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoding),     cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_link),         cmocka_unit_test(test_of_op),
        cmocka_unit_test(test_escape),       cmocka_unit_test(test_verifier),
        cmocka_unit_test(test_signature),    cmocka_unit_test(test_line),
        cmocka_unit_test(test_time_is_libc),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
