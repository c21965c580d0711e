/* test_audit.c - the audit chain (PROTOCOL.md version 2, "Audit chain") against the real server:
 * every change appends one record, and nothing else does; EXPORT AUDIT shows every field, so
 * this test encodes each record again from its line as coupond-protocol(7) documents the
 * encoding and recomputes the chain with BLAKE2b-256 itself; AUDIT's head is signed by the
 * Ed25519 key whose seed is DATADIR/audit.key; coupond --verify-audit passes on a sound chain,
 * and names the record when one byte of it is altered (tests/tools/audit_tamper); the chain
 * goes on across kill -9. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "bb.h"
#include "proto.h"

#define HASH_BYTES 32
#define HASH_HEX   64
#define SIG_BYTES  64
#define REC_MAX    4096 /* an encoded record (coupond's are at most 2 KiB) */
#define LINES_MAX  64   /* records a test here makes, at most */
#define OUT_MAX    8192 /* captured output of a one-shot run */
#define TAMPER_ENV "AUDIT_TAMPER_BIN"
#define SIG_DOMAIN "coupond audit head v1"
#define FIELDS_MAX 40 /* words of a line */

/* The chain as EXPORT AUDIT showed it, checked. */
struct chain {
    size_t n;
    char verbs[LINES_MAX][40];
    uint8_t last[HASH_BYTES];
};

/* ---- an EXPORT AUDIT line, encoded again ---- */

struct rec {
    uint8_t b[REC_MAX];
    size_t len;
};

static void
put(struct rec *r, const void *p, size_t n)
{
    assert_true(r->len + n <= sizeof r->b);
    memcpy(r->b + r->len, p, n);
    r->len += n;
}

static void
put_be(struct rec *r, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)(v >> (8 * (n - 1 - i)));
        put(r, &b, 1);
    }
}

/* A value as the line shows it, back to its bytes: "-" is empty, %XX a byte. */
static size_t
unescape(const char *s, size_t n, char *out)
{
    size_t o = 0;

    if (n == 1 && s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

/* A str8 or str16 of an escaped value. */
static void
put_text(struct rec *r, const char *s, size_t n, size_t prefix)
{
    char buf[REC_MAX];
    size_t len = unescape(s, n, buf);

    put_be(r, len, prefix);
    put(r, buf, len);
}

/* The words of a line: key, and value after '=' (NULL for a bare word). */
struct word {
    const char *key, *val;
    size_t klen, vlen;
};

static size_t
split(const char *line, struct word *w)
{
    size_t n = 0;

    for (const char *p = line; *p != '\0' && n < FIELDS_MAX;) {
        const char *end = strchr(p, ' '), *eq;
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        eq = memchr(p, '=', len);
        w[n].key = p;
        w[n].klen = eq != NULL ? (size_t)(eq - p) : len;
        w[n].val = eq != NULL ? eq + 1 : NULL;
        w[n].vlen = eq != NULL ? len - w[n].klen - 1 : 0;
        n++;
        p += len + (end != NULL);
    }
    return n;
}

static bool
key_is(const struct word *w, const char *key)
{
    return w->val != NULL && w->klen == strlen(key) && memcmp(w->key, key, w->klen) == 0;
}

/* The fields of w[from, to) as a record's field list. */
static void
put_fields(struct rec *r, const struct word *w, size_t from, size_t to)
{
    put_be(r, to - from, 1);
    for (size_t i = from; i < to; i++) {
        assert_non_null(w[i].val);
        put_text(r, w[i].key, w[i].klen, 1);
        put_text(r, w[i].val, w[i].vlen, 2);
    }
}

static void
hex_of(const struct word *w, uint8_t out[HASH_BYTES])
{
    size_t n = 0;

    assert_int_equal(w->vlen, HASH_HEX);
    assert_int_equal(sodium_hex2bin(out, HASH_BYTES, w->val, w->vlen, NULL, &n, NULL), 0);
    assert_int_equal(n, HASH_BYTES);
}

/* Checks one line against the chain so far: its encoding hashes to its hash, chained from the
 * previous line's. */
static void
check_line(struct chain *c, const char *line)
{
    struct word w[FIELDS_MAX];
    size_t n = split(line, w), outcome = 0;
    uint8_t prev[HASH_BYTES], hash[HASH_BYTES], got[HASH_BYTES];
    struct rec r = {.len = 0};
    char t[32];
    int64_t when;

    assert_true(n >= 9 && w[0].val == NULL && w[0].klen == 5 && memcmp(w[0].key, "AUDIT", 5) == 0);
    assert_true(key_is(&w[1], "seq") && key_is(&w[2], "time") && key_is(&w[3], "actor") &&
                key_is(&w[4], "verb") && key_is(&w[n - 2], "prev") && key_is(&w[n - 1], "hash"));
    assert_int_equal(strtoull(w[1].val, NULL, 10), c->n + 1);
    for (size_t i = 5; i < n - 2 && outcome == 0; i++)
        if (key_is(&w[i], "outcome"))
            outcome = i;
    assert_true(outcome > 0);
    assert_true(w[2].vlen < sizeof t);
    memcpy(t, w[2].val, w[2].vlen);
    t[w[2].vlen] = '\0';
    assert_true(proto_parse_time(t, strlen(t), &when, NULL));
    put_be(&r, 1, 1);
    put_be(&r, c->n + 1, 8);
    put_be(&r, (uint64_t)when, 8);
    put_text(&r, w[3].val, w[3].vlen, 1);
    put_text(&r, w[4].val, w[4].vlen, 1);
    put_fields(&r, w, 5, outcome);
    put_text(&r, w[outcome].val, w[outcome].vlen, 1);
    put_fields(&r, w, outcome + 1, n - 2);
    hex_of(&w[n - 2], prev);
    hex_of(&w[n - 1], hash);
    assert_memory_equal(prev, c->last, HASH_BYTES);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, HASH_BYTES);
    crypto_generichash_update(&st, prev, HASH_BYTES);
    crypto_generichash_update(&st, r.b, r.len);
    crypto_generichash_final(&st, got, HASH_BYTES);
    if (memcmp(got, hash, HASH_BYTES) != 0)
        fail_msg("record %zu does not hash as documented: %s", c->n + 1, line);
    memcpy(c->last, hash, HASH_BYTES);
    snprintf(c->verbs[c->n], sizeof c->verbs[c->n], "%.*s", (int)w[4].vlen, w[4].val);
    c->n++;
}

/* EXPORT AUDIT after=0, every line checked; the reply's count is the lines'. */
static void
read_chain(struct bb_client *cl, struct chain *c)
{
    char line[BB_LINE_MAX], want[32];

    memset(c, 0, sizeof *c);
    bb_send_str(cl, "EXPORT AUDIT\n");
    for (;;) {
        assert_int_equal(bb_read_line(cl, line, sizeof line), BB_READ_LINE);
        if (proto_reply_kind(line, strlen(line)) != PROTO_REPLY_DATA)
            break;
        assert_true(strncmp(line, "AUDIT ", 6) == 0);
        assert_true(c->n < LINES_MAX);
        check_line(c, line);
    }
    snprintf(want, sizeof want, "OK count=%zu", c->n);
    assert_string_equal(line, want);
}

/* ---- AUDIT: the signed head ---- */

struct head {
    uint64_t seq;
    uint8_t hash[HASH_BYTES];
    uint8_t sig[SIG_BYTES];
    char reply[512];
};

static void
audit_head(struct bb_client *cl, struct head *h)
{
    char reply[BB_REPLY_MAX];
    const char *status = bb_cmd(cl, "AUDIT", reply), *v;
    size_t len, n = 0;

    snprintf(h->reply, sizeof h->reply, "%s", status);
    assert_true(strncmp(status, "OK seq=", 7) == 0);
    assert_true(proto_reply_field(status, strlen(status), "seq", &v, &len));
    h->seq = strtoull(v, NULL, 10);
    assert_true(proto_reply_field(status, strlen(status), "hash", &v, &len));
    assert_int_equal(sodium_hex2bin(h->hash, HASH_BYTES, v, len, NULL, &n, NULL), 0);
    assert_true(n == HASH_BYTES && len == HASH_HEX);
    assert_true(proto_reply_field(status, strlen(status), "sig", &v, &len));
    assert_int_equal(sodium_hex2bin(h->sig, SIG_BYTES, v, len, NULL, &n, NULL), 0);
    assert_int_equal(n, SIG_BYTES);
}

/* The head's signature verifies under the public key of the seed in DIR/audit.key. */
static void
check_signature(const struct bb_server *s, const struct head *h)
{
    unsigned char seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES],
        sk[crypto_sign_SECRETKEYBYTES], msg[sizeof SIG_DOMAIN + 8 + HASH_BYTES];
    char path[BB_PATH_MAX];
    struct stat sb;
    FILE *f;

    bb_fmt(path, sizeof path, "%s/audit.key", s->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_non_null(f = fopen(path, "rb"));
    assert_int_equal(fread(seed, 1, sizeof seed, f), sizeof seed);
    fclose(f);
    crypto_sign_seed_keypair(pk, sk, seed);
    memcpy(msg, SIG_DOMAIN, sizeof SIG_DOMAIN);
    for (int i = 0; i < 8; i++)
        msg[sizeof SIG_DOMAIN + (size_t)i] = (unsigned char)(h->seq >> (56 - 8 * i));
    memcpy(msg + sizeof SIG_DOMAIN + 8, h->hash, HASH_BYTES);
    assert_int_equal(crypto_sign_verify_detached(h->sig, msg, sizeof msg, pk), 0);
    msg[sizeof msg - 1] ^= 1; /* another head: the signature is not its */
    assert_int_not_equal(crypto_sign_verify_detached(h->sig, msg, sizeof msg, pk), 0);
}

/* ---- tests ---- */

/* Every kind of change appends its record, failures and replays none; the chain recomputes
 * from EXPORT AUDIT's lines; AUDIT's head is its last record, signed. */
static void
test_records_and_head(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *anon = bb_connect(s), *c = bb_connect_admin(s);
    static const char *const recs[] = {"A-1,FREE,10,FLAT," BB_FAR_EXPIRY ",3",
                                       "A-2,,12.5,PERCENT," BB_FAR_EXPIRY ",1",
                                       "OLD-1,,1,FLAT,2020-01-01,1"};
    static const char *const verbs[] = {"UPLOAD",   "REQUEST",  "REDEEM", "HOLD",   "RELEASE",
                                        "UNREDEEM", "GENERATE", "PURGE",  "REQUEST"};
    char reply[BB_REPLY_MAX], cmd[256], hold[160];
    const char *st, *v;
    size_t len;
    struct chain *ch = malloc(sizeof *ch);
    struct head h;

    assert_non_null(ch);
    bb_expect_prefix(anon, "AUDIT", "ERR DENIED");
    bb_expect_prefix(anon, "EXPORT AUDIT", "ERR DENIED");
    audit_head(c, &h); /* the empty chain */
    assert_int_equal(h.seq, 0);
    check_signature(s, &h);
    bb_send_str(c, "UPLOAD 3\n");
    for (size_t i = 0; i < 3; i++) {
        bb_send_str(c, recs[i]);
        bb_send_str(c, "\n");
    }
    bb_expect_reply_prefix(c, "OK uploaded=3 expired=1");
    bb_expect_prefix(anon, "REQUEST alice FREE id=r-1", "OK code=A-1");
    bb_expect_prefix(anon, "REQUEST alice FREE id=r-1", "OK code=A-1"); /* replayed */
    bb_expect_prefix(anon, "REQUEST alice STANDARD", "ERR NO_COUPONS"); /* nothing */
    bb_expect_prefix(anon, "REDEEM bob A-1", "ERR INVALID");            /* nothing */
    bb_expect_prefix(anon, "REDEEM alice A-1", "OK code=A-1");
    st = bb_cmd(anon, "HOLD alice A-1 60", reply);
    assert_true(proto_reply_field(st, strlen(st), "hold", &v, &len) && len < sizeof hold);
    bb_fmt(hold, sizeof hold, "%.*s", (int)len, v);
    bb_fmt(cmd, sizeof cmd, "RELEASE %s", hold);
    bb_expect(anon, cmd, "OK released=1");
    bb_expect(anon, cmd, "ERR UNKNOWN_HOLD no live hold with that id"); /* nothing */
    bb_expect_prefix(anon, "UNREDEEM alice 1", "OK code=A-1");
    bb_expect_prefix(anon, "UNREDEEM alice 1", "ERR UNKNOWN_REDEMPTION"); /* nothing */
    st = bb_cmd(c, "GENERATE 2 FREE 5 FLAT " BB_FAR_EXPIRY " 1 prefix=G", reply);
    assert_string_equal(st, "OK generated=2");
    bb_expect(c, "PURGE", "OK purged=1");
    bb_expect(c, "PURGE", "OK purged=0"); /* nothing */
    bb_expect_prefix(c, "REQUEST bob", "OK code=A-2");

    read_chain(c, ch);
    assert_int_equal(ch->n, sizeof verbs / sizeof verbs[0]);
    for (size_t i = 0; i < ch->n; i++)
        assert_string_equal(ch->verbs[i], verbs[i]);
    audit_head(c, &h);
    assert_int_equal(h.seq, ch->n);
    assert_memory_equal(h.hash, ch->last, HASH_BYTES);
    check_signature(s, &h);

    /* after=SEQ: the records after it; a form EXPORT AUDIT does not take */
    st = bb_cmd(c, "EXPORT AUDIT after=7", reply);
    assert_string_equal(st, "OK count=2");
    assert_non_null(strstr(reply, "AUDIT seq=8 "));
    assert_non_null(strstr(reply, "verb=PURGE cutoff="));
    assert_non_null(strstr(reply, " outcome=OK purged=1 more=0 prev="));
    bb_expect(c, "EXPORT AUDIT after=9", "OK count=0");
    bb_expect_prefix(c, "EXPORT AUDIT FREE", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "EXPORT AUDIT after=x", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "AUDIT now", "ERR BAD_REQUEST");
    st = bb_cmd(c, "EXPORT AUDIT after=1", reply);
    assert_string_equal(st, "OK count=8");
    assert_non_null(strstr(reply, "AUDIT seq=2 time="));
    assert_non_null(strstr(reply, " actor=- verb=REQUEST user=alice type=FREE id=r-1 outcome=OK "
                                  "code=A-1 expires="));
    bb_close(anon);
    bb_close(c);
    free(ch);
}

/* Runs coupond with args; returns its status, output in out and err. */
static int
run(const char *const *args, char *out, char *err)
{
    return bb_run(args, out, OUT_MAX, err, OUT_MAX);
}

/* Runs the tamper tool on record seq of dir. */
static void
tamper(const char *dir, const char *seq)
{
    const char *bin = getenv(TAMPER_ENV);
    char cmd[BB_PATH_MAX * 2];
    int rc;

    if (bin == NULL)
        fail_msg("%s is not set", TAMPER_ENV);
    bb_fmt(cmd, sizeof cmd, "'%s' '%s' %s >/dev/null", bin, dir, seq);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
}

/* coupond --verify-audit: passes on the stopped server's chain, prints AUDIT's own signature of
 * the head, checks a saved AUDIT reply; one byte altered in record 3 fails it, naming record
 * 3; nothing is created where there is no store. */
static void
test_verify_audit(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect_admin(s);
    char *out = malloc(OUT_MAX), *err = malloc(OUT_MAX), sig[2 * SIG_BYTES + 8], empty[BB_PATH_MAX];
    const char *v;
    size_t len;
    struct head h;

    assert_non_null(out);
    assert_non_null(err);
    bb_upload_gen(c, "V-", "", 5, NULL, 1);
    for (int i = 0; i < 4; i++)
        bb_expect_prefix(c, "REQUEST carol", "OK code=");
    audit_head(c, &h);
    assert_int_equal(h.seq, 5);
    bb_close(c);
    assert_int_equal(bb_server_stop(s), 0);

    /* On PostgreSQL, this node's chain in the server's schema (--store). */
    const char *const lmdb_verify[] = {"--verify-audit", "-d", s->dir, NULL};
    const char *const pg_verify[] = {"--verify-audit", "-d", s->dir, "--store", s->store, NULL};
    const char *const *verify = bb_on_pg() ? pg_verify : lmdb_verify;
    assert_int_equal(run(verify, out, err), 0);
    assert_non_null(strstr(out, "audit chain verified: 5 records, head seq=5 "));
    assert_true(proto_reply_field(h.reply, strlen(h.reply), "sig", &v, &len));
    bb_fmt(sig, sizeof sig, "sig=%.*s ", (int)len, v);
    assert_non_null(strstr(out, sig));
    const char *const lmdb_saved[] = {"--verify-audit", "-d",    s->dir,
                                      "--audit-head",   h.reply, NULL};
    const char *const pg_saved[] = {"--verify-audit", "-d",      s->dir,   "--audit-head",
                                    h.reply,          "--store", s->store, NULL};
    const char *const *saved = bb_on_pg() ? pg_saved : lmdb_saved;
    assert_int_equal(run(saved, out, err), 0);
    if (bb_on_pg()) { /* tests/tools/audit_tamper alters an LMDB store only */
        assert_true(bb_server_restart(s));
        free(out);
        free(err);
        return;
    }

    tamper(s->dir, "3");
    assert_int_equal(run(verify, out, err), 1);
    if (strstr(err, "record 3 does not match its hash") == NULL)
        fail_msg("--verify-audit does not name record 3: %s", err);
    assert_non_null(strstr(err, "AUDIT seq=3 "));
    assert_int_equal(run(saved, out, err), 1);
    assert_non_null(strstr(err, "record 3"));
    tamper(s->dir, "3"); /* flipped back: sound again */
    assert_int_equal(run(verify, out, err), 0);

    const char *const lonely[] = {"-d", s->dir, "--audit-head", h.reply, NULL};
    assert_int_equal(run(lonely, out, err), 2);
    assert_true(bb_tmpdir_make(empty));
    const char *const nothing[] = {"--verify-audit", "-d", empty, NULL};
    assert_int_equal(run(nothing, out, err), 1);
    assert_non_null(strstr(err, "audit.key"));
    assert_int_equal(access(empty, F_OK), 0);
    bb_fmt(sig, sizeof sig, "%s/data.mdb", empty);
    assert_int_not_equal(access(sig, F_OK), 0); /* nothing made */
    bb_tmpdir_remove(empty);
    assert_true(bb_server_restart(s));
    free(out);
    free(err);
}

/* kill -9: the acknowledged changes have their records, the chain goes on after the restart
 * and still recomputes; the same head is signed alike across the restart. */
static void
test_survives_kill(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect_admin(s);
    struct chain *ch = malloc(sizeof *ch);
    struct head before, after;

    assert_non_null(ch);
    bb_upload_gen(c, "K-", "FREE", 10, NULL, 2);
    for (int i = 0; i < 6; i++)
        bb_expect_prefix(c, "REQUEST dave FREE", "OK code=");
    bb_expect_prefix(c, "REDEEM dave K-000000", "OK code=K-000000");
    audit_head(c, &before);
    assert_int_equal(before.seq, 8);
    bb_close(c);
    bb_server_kill(s);
    assert_true(bb_server_restart(s));
    c = bb_connect_admin(s);
    audit_head(c, &after);
    assert_string_equal(after.reply, before.reply);
    bb_expect_prefix(c, "REQUEST erin FREE", "OK code=");
    read_chain(c, ch);
    assert_int_equal(ch->n, 9);
    bb_close(c);
    free(ch);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_and_head, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_verify_audit, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_survives_kill, bb_setup, bb_teardown),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
