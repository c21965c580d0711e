/* test_audit_store.c - the audit chain of store/, for every backend: `test_audit_store` tests
 * LMDB in a fresh temporary directory per test; `test_audit_store URI` the PostgreSQL store at
 * URI (tests/pg/cluster.sh's throwaway database, wiped before each test). Driven through
 * store_sync; every test ends by reading the whole chain back and verifying it with audit.h's
 * verifier, and by a CHECK. Tests marked LMDB_ONLY edit LMDB's files behind the store's back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "pgtest.h"
#include "store.h"
#include "store_sync.h"

#define T0        INT64_C(1798761599) /* 2026-12-31T23:59:59Z */
#define ERRBUF    512
#define CHECK_MSG 512
#define URI_MAX   512
#define CHAIN_MAX 64 /* records any test here makes, at most */
#define CHUNK     3  /* rows per EXPORT call: small, so the cursor is walked */

static const char *pg_uri; /* NULL: LMDB */

struct fx {
    char dir[64];
    char uri[URI_MAX];
    struct ss s;
    bool tampered; /* the test altered the chain on purpose: teardown does not verify it */
};

/* The chain as read back: rows and their decoded records. */
struct chain {
    struct store_audit_row rows[CHAIN_MAX];
    struct audit_rec recs[CHAIN_MAX];
    size_t n;
    struct store_audit_head head;
};

/* --- fixture --- */

static void
rm_dir(const char *dir)
{
    char path[PATH_MAX];
    struct dirent *e;
    DIR *d = opendir(dir);

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void
open_store(struct fx *fx)
{
    char err[ERRBUF] = "";

    if (ss_open(&fx->s, fx->uri, STORE_OPEN_CREATE, 0, err, sizeof err) != STORE_OK)
        fail_msg("store_open %s: %s", fx->uri, err);
}

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);

    assert_non_null(fx);
    if (pg_uri != NULL) {
        pgtest_wipe(pg_uri);
        snprintf(fx->uri, sizeof fx->uri, "%s", pg_uri);
    } else {
        snprintf(fx->dir, sizeof fx->dir, "/tmp/test_audit.XXXXXX");
        assert_non_null(mkdtemp(fx->dir));
        snprintf(fx->uri, sizeof fx->uri, "%s", fx->dir);
    }
    open_store(fx);
    *state = fx;
    return 0;
}

static void
reopen(struct fx *fx)
{
    ss_close(&fx->s);
    open_store(fx);
}

/* --- reading the chain --- */

static struct store_audit_head
head_of(struct ss *s)
{
    struct store_op op;

    ss_op(&op, STORE_OP_AUDIT_HEAD, T0);
    assert_int_equal(ss_read(s, &op), STORE_OK);
    return op.out.audit;
}

/* The records after `after`, read with EXPORT CHUNK rows a call, appended to c. */
static void
read_rows(struct ss *s, uint64_t after, struct chain *c)
{
    struct store_audit_row buf[CHUNK];
    struct store_op op;
    void *cursor = NULL;

    do {
        ss_op_export(&op, STORE_EXPORT_AUDIT, cursor, NULL, NULL, CHUNK, T0);
        op.in.after = after;
        op.in.audit = buf;
        assert_int_equal(ss_read(s, &op), STORE_OK);
        assert_true(op.out.count <= CHUNK);
        for (size_t i = 0; i < op.out.count; i++) {
            assert_true(c->n < CHAIN_MAX);
            c->rows[c->n++] = buf[i];
        }
        cursor = op.out.cursor;
    } while (op.out.more);
    assert_null(cursor);
}

/* The whole chain, its head, each record decoded, and verified: it must hold. */
static void
read_chain(struct ss *s, struct chain *c)
{
    struct audit_verify v;
    const char *why;
    size_t at;

    memset(c, 0, sizeof *c);
    c->head = head_of(s);
    read_rows(s, 0, c);
    audit_verify_init(&v, &c->head);
    for (size_t i = 0; i < c->n; i++) {
        if (!audit_verify_row(&v, &c->rows[i]))
            fail_msg("chain: %s", v.why);
        assert_true(audit_decode(c->rows[i].rec, c->rows[i].len, &c->recs[i], &at, &why));
    }
    if (!audit_verify_end(&v, &c->head))
        fail_msg("chain: %s", v.why);
    assert_int_equal(c->n, c->head.seq);
}

/* Checks the store and its chain, then cleans up. */
static int
teardown(void **state)
{
    struct fx *fx = *state;
    char msg[CHECK_MSG] = "";
    struct chain *c = malloc(sizeof *c);
    enum store_err e;

    assert_non_null(c);
    if (!fx->tampered)
        read_chain(&fx->s, c);
    free(c);
    e = ss_check(&fx->s, T0, msg, sizeof msg);
    if (ss_violation(&fx->s) != NULL)
        fail_msg("completion contract: %s", ss_violation(&fx->s));
    ss_close(&fx->s);
    if (pg_uri == NULL)
        rm_dir(fx->dir);
    free(fx);
    if (e != STORE_OK)
        fail_msg("check: %s (%s)", store_strerror(e), msg);
    return 0;
}

static bool
text_is(const struct audit_text *t, const char *s)
{
    return t->len == strlen(s) && memcmp(t->p, s, t->len) == 0;
}

/* The value of field `name` of record r's arguments (out false) or outcome; NULL when none. */
static const struct audit_text *
field_of(const struct audit_rec *r, bool out, const char *name)
{
    const struct audit_field *f = out ? r->outs : r->args;
    size_t n = out ? r->nouts : r->nargs;

    for (size_t i = 0; i < n; i++)
        if (text_is(&f[i].name, name))
            return &f[i].value;
    return NULL;
}

static void
expect_field(const struct audit_rec *r, bool out, const char *name, const char *value)
{
    const struct audit_text *t = field_of(r, out, name);

    if (t == NULL)
        fail_msg("record %" PRIu64 " has no field %s", r->seq, name);
    if (!text_is(t, value))
        fail_msg("record %" PRIu64 ": %s is \"%.*s\", not \"%s\"", r->seq, name, (int)t->len, t->p,
                 value);
}

static void
expect_verb(const struct audit_rec *r, const char *verb)
{
    if (!text_is(&r->verb, verb))
        fail_msg("record %" PRIu64 " is %.*s, not %s", r->seq, (int)r->verb.len, r->verb.p, verb);
    assert_true(text_is(&r->outcome, AUDIT_OUTCOME_OK));
}

/* --- helpers --- */

static struct store_coupon
coupon(const char *code, enum store_type type, int64_t expires, uint32_t max_uses)
{
    struct store_coupon c;

    memset(&c, 0, sizeof c);
    snprintf(c.code, sizeof c.code, "%s", code);
    c.type = (uint8_t)type;
    c.kind = STORE_KIND_FLAT;
    c.discount = 1250;
    c.expires = expires;
    c.max_uses = max_uses;
    return c;
}

static void
upload(struct ss *s, const struct store_coupon *recs, size_t n, int64_t now, const char *actor)
{
    struct store_op op;

    ss_op_upload(&op, recs, n, false, NULL, 0);
    op.now = now;
    snprintf(op.in.actor, sizeof op.in.actor, "%s", actor);
    assert_int_equal(ss_run(s, &op), STORE_OK);
}

static void
note_op(struct store_op *op, struct store_audit_note *n, const char *verb, const char *name,
        const char *value)
{
    memset(n, 0, sizeof *n);
    snprintf(n->verb, sizeof n->verb, "%s", verb);
    if (name != NULL) {
        snprintf(n->f[0].name, sizeof n->f[0].name, "%s", name);
        snprintf(n->f[0].value, sizeof n->f[0].value, "%s", value);
        n->n = 1;
    }
    ss_op(op, STORE_OP_AUDIT_NOTE, T0);
    op->in.note = n;
}

/* --- tests --- */

/* A new store has an empty chain. */
static void
test_empty(void **state)
{
    struct fx *fx = *state;
    struct store_audit_head h = head_of(&fx->s);
    uint8_t zero[STORE_AUDIT_HASH_BYTES] = {0};

    assert_int_equal(h.seq, 0);
    assert_memory_equal(h.hash, zero, sizeof zero);
}

/* Every kind of write appends one record, with its verb, arguments and outcome. */
static void
test_every_write(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[3] = {coupon("A-1", STORE_TYPE_FREE, T0 + 100, 2),
                                   coupon("A-2", STORE_TYPE_FREE, T0 - 10, 1),
                                   coupon("A-3", STORE_TYPE_STANDARD, T0 + 200, 1)};
    struct store_coupon gen[4];
    size_t chosen[2];
    char codes[2][STORE_CODE_MAX + 1];
    struct store_audit_note n;
    struct store_op op;
    struct chain *c = malloc(sizeof *c);
    uint64_t hold;

    assert_non_null(c);
    upload(&fx->s, recs, 3, T0 - 100, "");
    ss_op_assign(&op, STORE_TYPE_FREE, "alice", T0 - 50);
    snprintf(op.in.actor, sizeof op.in.actor, "shop");
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    assert_string_equal(op.out.coupon.code, "A-2"); /* expires first */
    ss_op_assign(&op, STORE_TYPE_FREE, "alice", T0 - 50);
    ss_op_rid(&op, "", "order-7", 1);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    ss_op_redeem(&op, "A-1", "alice", T0 - 40);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    ss_op_hold(&op, "A-1", "alice", T0 - 20, T0 - 30);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    hold = op.out.hold.seq;
    ss_op_release(&op, hold, T0 - 29);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    ss_op_unredeem(&op, "alice", 1, T0 - 28);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    for (int i = 0; i < 4; i++)
        gen[i] = coupon(i == 0   ? "A-1"
                        : i == 1 ? "G-1"
                        : i == 2 ? "G-2"
                                 : "G-3",
                        STORE_TYPE_NONE, T0 + 300, 5);
    ss_op_generate(&op, gen, 4, 2, chosen, codes, T0 - 27);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    ss_op_hold(&op, "A-1", "alice", T0 - 5, T0 - 26);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    ss_op_expire_holds(&op, T0, 10);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    assert_int_equal(op.out.count, 1);
    ss_op_purge(&op, T0, 10); /* A-2 expired; it was assigned and never redeemed */
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    assert_int_equal(op.out.count, 1);
    ss_op_expire_ids(&op, T0 + 1, 10);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    assert_int_equal(op.out.count, 1);
    note_op(&op, &n, "KEY_ADD", "name", "shop");
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);

    read_chain(&fx->s, c);
    assert_int_equal(c->n, 13);
    expect_verb(&c->recs[0], "UPLOAD");
    expect_field(&c->recs[0], false, "records", "3");
    expect_field(&c->recs[0], true, "uploaded", "3");
    assert_int_equal(c->recs[0].time, T0 - 100);
    assert_true(text_is(&c->recs[0].actor, ""));
    expect_verb(&c->recs[1], "REQUEST");
    assert_true(text_is(&c->recs[1].actor, "shop"));
    expect_field(&c->recs[1], false, "user", "alice");
    expect_field(&c->recs[1], false, "type", "FREE");
    expect_field(&c->recs[1], true, "code", "A-2");
    expect_field(&c->recs[2], false, "id", "order-7");
    expect_field(&c->recs[2], true, "code", "A-1");
    expect_verb(&c->recs[3], "REDEEM");
    expect_field(&c->recs[3], true, "redemption", "1");
    expect_field(&c->recs[3], true, "uses", "1");
    expect_verb(&c->recs[4], "HOLD");
    expect_verb(&c->recs[5], "RELEASE");
    expect_field(&c->recs[5], true, "code", "A-1");
    expect_verb(&c->recs[6], "UNREDEEM");
    expect_field(&c->recs[6], true, "uses", "0");
    expect_verb(&c->recs[7], "GENERATE");
    expect_field(&c->recs[7], false, "count", "2");
    expect_field(&c->recs[7], false, "discount", "12.50");
    expect_field(&c->recs[7], false, "kind", "FLAT");
    expect_field(&c->recs[7], true, "generated", "2");
    expect_verb(&c->recs[8], "HOLD");
    expect_verb(&c->recs[9], "EXPIRE_HOLDS");
    expect_field(&c->recs[9], true, "expired", "1");
    expect_verb(&c->recs[10], "PURGE");
    expect_field(&c->recs[10], true, "purged", "1");
    expect_field(&c->recs[10], true, "more", "0");
    expect_field(&c->recs[10], false, "cutoff", "2026-12-31T23:59:59Z");
    expect_verb(&c->recs[11], "EXPIRE_IDS");
    expect_field(&c->recs[11], true, "expired", "1");
    expect_verb(&c->recs[12], "KEY_ADD");
    expect_field(&c->recs[12], false, "name", "shop");
    assert_int_equal(c->recs[12].nouts, 0);
    free(c);
}

/* A write that fails, is replayed, or changes nothing appends nothing. */
static void
test_nothing_appended(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[2] = {coupon("B-1", STORE_TYPE_FREE, T0 + 100, 1),
                                   coupon("B-1", STORE_TYPE_FREE, T0 + 100, 1)};
    struct store_reject rej[2];
    struct store_op op;

    upload(&fx->s, recs, 1, T0, "");
    ss_op_upload(&op, recs, 2, false, rej, 2); /* B-1 exists, and repeats */
    assert_int_equal(ss_run(&fx->s, &op), STORE_REJECTED);
    ss_op_upload(&op, recs + 1, 1, true, rej, 2); /* check only */
    assert_int_equal(ss_run(&fx->s, &op), STORE_REJECTED);
    ss_op_redeem(&op, "B-1", "bob", T0); /* not bob's */
    assert_int_equal(ss_run(&fx->s, &op), STORE_INVALID);
    ss_op_assign(&op, STORE_TYPE_STANDARD, "bob", T0); /* none of that type */
    assert_int_equal(ss_run(&fx->s, &op), STORE_NO_COUPONS);
    ss_op_assign(&op, STORE_TYPE_FREE, "bob", T0);
    ss_op_rid(&op, "", "r-1", 1);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    ss_op_assign(&op, STORE_TYPE_FREE, "bob", T0); /* replayed */
    ss_op_rid(&op, "", "r-1", 1);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    assert_true(op.out.replayed);
    ss_op_assign(&op, STORE_TYPE_FREE, "carol", T0); /* another request with the id */
    ss_op_rid(&op, "", "r-1", 2);
    assert_int_equal(ss_run(&fx->s, &op), STORE_ID_CONFLICT);
    ss_op_purge(&op, T0, 10); /* nothing expired */
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    ss_op_expire_holds(&op, T0, 10);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    ss_op_release(&op, 99, T0);
    assert_int_equal(ss_run(&fx->s, &op), STORE_UNKNOWN_HOLD);
    ss_op_unredeem(&op, "bob", 5, T0);
    assert_int_equal(ss_run(&fx->s, &op), STORE_UNKNOWN_REDEMPTION);
    assert_int_equal(head_of(&fx->s).seq, 2);
}

/* A batch's records follow the batch's order, the failed members leave no gap, and
 * AUDIT_HEAD in the batch sees the records before it. */
static void
test_batch_order(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[3] = {coupon("C-1", STORE_TYPE_FREE, T0 + 100, 1),
                                   coupon("C-2", STORE_TYPE_FREE, T0 + 200, 1),
                                   coupon("C-3", STORE_TYPE_FREE, T0 + 300, 1)};
    struct store_op ops[6];
    struct ss_batch sb;
    struct chain *c = malloc(sizeof *c);

    assert_non_null(c);
    upload(&fx->s, recs, 3, T0, "");
    ss_batch_init(&fx->s, &sb);
    ss_op_assign(&ops[0], STORE_TYPE_FREE, "u1", T0);
    ss_op_redeem(&ops[1], "C-3", "u1", T0); /* fails: not u1's yet */
    ss_op(&ops[2], STORE_OP_AUDIT_HEAD, T0);
    ss_op_assign(&ops[3], STORE_TYPE_FREE, "u2", T0);
    ss_op_assign(&ops[4], STORE_TYPE_FREE, "u3", T0);
    ss_op(&ops[5], STORE_OP_AUDIT_HEAD, T0);
    for (int i = 0; i < 6; i++)
        ss_batch_add(&sb, &ops[i]);
    assert_int_equal(ss_commit(&sb), STORE_OK);
    assert_int_equal(ops[1].err, STORE_INVALID);
    assert_int_equal(ops[2].err, STORE_OK);
    assert_int_equal(ops[2].out.audit.seq, 2);
    assert_int_equal(ops[5].out.audit.seq, 4);
    read_chain(&fx->s, c);
    assert_int_equal(c->n, 4);
    assert_memory_equal(ops[2].out.audit.hash, c->rows[1].hash, STORE_AUDIT_HASH_BYTES);
    assert_memory_equal(ops[5].out.audit.hash, c->rows[3].hash, STORE_AUDIT_HASH_BYTES);
    expect_field(&c->recs[1], false, "user", "u1");
    expect_field(&c->recs[1], true, "code", "C-1");
    expect_field(&c->recs[2], false, "user", "u2");
    expect_field(&c->recs[3], false, "user", "u3");
    expect_field(&c->recs[3], true, "code", "C-3");
    free(c);
}

/* A purge appends one record per chunk, with its count and cutoff. */
static void
test_purge_chunks(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[5];
    struct store_op op;
    struct chain *c = malloc(sizeof *c);
    char code[16];

    assert_non_null(c);
    for (int i = 0; i < 5; i++) {
        snprintf(code, sizeof code, "P-%d", i);
        recs[i] = coupon(code, STORE_TYPE_NONE, T0 - 100 + i, 1);
    }
    upload(&fx->s, recs, 5, T0 - 200, "");
    for (int i = 0; i < 3; i++) {
        ss_op_purge(&op, T0, 2);
        assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    }
    read_chain(&fx->s, c);
    assert_int_equal(c->n, 4);
    expect_field(&c->recs[1], true, "purged", "2");
    expect_field(&c->recs[1], true, "more", "1");
    expect_field(&c->recs[1], false, "max", "2");
    expect_field(&c->recs[2], true, "purged", "2");
    expect_field(&c->recs[3], true, "purged", "1");
    expect_field(&c->recs[3], true, "more", "0");
    free(c);
}

/* A note that is not one is refused, and appends nothing. */
static void
test_note_refused(void **state)
{
    struct fx *fx = *state;
    static const struct {
        const char *verb, *name, *value;
    } bad[] = {
        {"", NULL, NULL},           {"key_add", NULL, NULL},
        {"REDEEM", NULL, NULL},     {"KEY_ADD", "Name", "x"},
        {"KEY_ADD", "seq", "1"},    {"KEY_ADD", "name", ""},
        {"KEY_ADD", "name", "a b"}, {"KEY_ADD", "hash", "x"},
        {"KEY ADD", NULL, NULL},    {"KEY_ADD", "name", "caf\xc3\xa9"},
    };
    struct store_audit_note n;
    struct store_op op;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        note_op(&op, &n, bad[i].verb, bad[i].name, bad[i].value);
        assert_int_equal(ss_run(&fx->s, &op), STORE_INVALID);
    }
    note_op(&op, &n, "KEY_ADD", "name", "x");
    n.n = STORE_AUDIT_NOTE_MAX + 1;
    assert_int_equal(ss_run(&fx->s, &op), STORE_INVALID);
    ss_op(&op, STORE_OP_AUDIT_NOTE, T0); /* no note */
    assert_int_equal(ss_run(&fx->s, &op), STORE_INVALID);
    assert_int_equal(head_of(&fx->s).seq, 0);
    /* The largest note fits a record. */
    memset(&n, 0, sizeof n);
    memset(n.verb, 'V', STORE_AUDIT_NAME_MAX);
    n.n = STORE_AUDIT_NOTE_MAX;
    for (size_t i = 0; i < n.n; i++) {
        memset(n.f[i].name, 'a', STORE_AUDIT_NAME_MAX);
        n.f[i].name[0] = (char)('a' + i);
        memset(n.f[i].value, '~', STORE_AUDIT_VALUE_MAX);
    }
    ss_op(&op, STORE_OP_AUDIT_NOTE, T0);
    op.in.note = &n;
    memset(op.in.actor, 'k', STORE_SCOPE_MAX);
    assert_int_equal(ss_run(&fx->s, &op), STORE_OK);
    assert_int_equal(head_of(&fx->s).seq, 1);
}

/* EXPORT after=SEQ gives the records after SEQ, each with the stored hash before it. */
static void
test_export_after(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[1];
    struct chain *all = malloc(sizeof *all), *tail = calloc(1, sizeof *tail);
    char code[16];

    assert_non_null(all);
    assert_non_null(tail);
    for (int i = 0; i < 7; i++) {
        snprintf(code, sizeof code, "E-%d", i);
        recs[0] = coupon(code, STORE_TYPE_NONE, T0 + 100, 1);
        upload(&fx->s, recs, 1, T0 + i, "");
    }
    read_chain(&fx->s, all);
    read_rows(&fx->s, 4, tail);
    assert_int_equal(tail->n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(tail->rows[i].seq, 5 + i);
        assert_memory_equal(tail->rows[i].prev, all->rows[3 + i].hash, STORE_AUDIT_HASH_BYTES);
        assert_memory_equal(tail->rows[i].hash, all->rows[4 + i].hash, STORE_AUDIT_HASH_BYTES);
    }
    tail->n = 0;
    read_rows(&fx->s, 7, tail);
    assert_int_equal(tail->n, 0);
    read_rows(&fx->s, UINT64_MAX, tail);
    assert_int_equal(tail->n, 0);
    free(all);
    free(tail);
}

/* The chain goes on after a reopen from where it was, and hashes as audit.h says. */
static void
test_reopen_and_hashes(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[1] = {coupon("R-1", STORE_TYPE_NONE, T0 + 100, 1)};
    struct store_audit_head before, after;
    struct chain *c = malloc(sizeof *c);
    uint8_t h[STORE_AUDIT_HASH_BYTES] = {0};

    assert_non_null(c);
    upload(&fx->s, recs, 1, T0, "");
    before = head_of(&fx->s);
    reopen(fx);
    after = head_of(&fx->s);
    assert_int_equal(after.seq, before.seq);
    assert_memory_equal(after.hash, before.hash, sizeof h);
    assert_int_equal(ss_assign(&fx->s, STORE_TYPE_NONE, "dave", T0, NULL), STORE_OK);
    read_chain(&fx->s, c);
    assert_int_equal(c->n, 2);
    for (size_t i = 0; i < c->n; i++) {
        audit_hash(h, c->rows[i].rec, c->rows[i].len, h);
        assert_memory_equal(h, c->rows[i].hash, sizeof h);
    }
    free(c);
}

/* --- LMDB behind the store's back --- */

typedef void raw_fn(MDB_txn *txn, MDB_dbi audit, MDB_dbi meta);

/* Opens the closed store's environment directly and runs fn on its audit and meta databases. */
static void
raw_edit(const char *dir, raw_fn *fn)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi audit, meta;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "audit", 0, &audit), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    fn(txn, audit, meta);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* Flips one bit of record 2's bytes (after its stored hash). */
static void
flip_record_2(MDB_txn *txn, MDB_dbi audit, MDB_dbi meta)
{
    uint8_t kb[8] = {0, 0, 0, 0, 0, 0, 0, 2}, buf[STORE_AUDIT_HASH_BYTES + STORE_AUDIT_REC_MAX];
    MDB_val k = {sizeof kb, kb}, v;

    (void)meta;
    assert_int_equal(mdb_get(txn, audit, &k, &v), 0);
    assert_true(v.mv_size <= sizeof buf && v.mv_size > STORE_AUDIT_HASH_BYTES + 20);
    memcpy(buf, v.mv_data, v.mv_size);
    buf[STORE_AUDIT_HASH_BYTES + 20] ^= 0x01;
    v.mv_data = buf;
    assert_int_equal(mdb_put(txn, audit, &k, &v, 0), 0);
}

/* A record altered behind the store's back is named by the verifier; CHECK (which counts and
 * links, but does not hash) still passes. */
static void
test_tampered_record_named(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[1];
    struct audit_verify v;
    struct chain *c = malloc(sizeof *c);
    bool ok = true;
    char code[16];

    assert_non_null(c);
    for (int i = 0; i < 4; i++) {
        snprintf(code, sizeof code, "T-%d", i);
        recs[0] = coupon(code, STORE_TYPE_NONE, T0 + 100, 1);
        upload(&fx->s, recs, 1, T0 + i, "");
    }
    ss_close(&fx->s);
    raw_edit(fx->dir, flip_record_2);
    open_store(fx);
    fx->tampered = true;
    memset(c, 0, sizeof *c);
    c->head = head_of(&fx->s);
    read_rows(&fx->s, 0, c);
    assert_int_equal(c->n, 4);
    audit_verify_init(&v, &c->head);
    for (size_t i = 0; i < c->n && ok; i++)
        ok = audit_verify_row(&v, &c->rows[i]);
    assert_false(ok);
    assert_int_equal(v.bad, 2);
    assert_non_null(strstr(v.why, "record 2"));
    assert_false(audit_verify_end(&v, &c->head));
    free(c);
}

/* Makes the store one of the release before the chain: no audit database, meta state of
 * version 2 (the version 3 one without its head). */
static void
to_version_2(MDB_txn *txn, MDB_dbi audit, MDB_dbi meta)
{
    uint8_t buf[1024];
    MDB_val k = {5, "state"}, v;

    assert_int_equal(mdb_drop(txn, audit, 1), 0);
    assert_int_equal(mdb_get(txn, meta, &k, &v), 0);
    assert_true(v.mv_size <= sizeof buf && v.mv_size > 8 + STORE_AUDIT_HASH_BYTES);
    memcpy(buf, v.mv_data, v.mv_size);
    assert_int_equal(buf[0], 3);
    buf[0] = 2;
    v.mv_data = buf;
    v.mv_size -= 8 + STORE_AUDIT_HASH_BYTES;
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
}

/* A store of the release before the chain opens read-only with an empty chain, and writable
 * with a chain that starts there. */
static void
test_store_before_chain(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[1] = {coupon("V-1", STORE_TYPE_NONE, T0 + 100, 1)};
    char err[ERRBUF] = "", msg[CHECK_MSG] = "";
    struct chain *c = malloc(sizeof *c);
    struct store_op op;

    assert_non_null(c);
    upload(&fx->s, recs, 1, T0, "");
    ss_close(&fx->s);
    raw_edit(fx->dir, to_version_2);
    assert_int_equal(ss_open(&fx->s, fx->uri, STORE_OPEN_EXISTING, 0, err, sizeof err), STORE_OK);
    read_chain(&fx->s, c);
    assert_int_equal(c->n, 0);
    assert_int_equal(ss_check(&fx->s, T0, msg, sizeof msg), STORE_OK);
    ss_op_assign(&op, STORE_TYPE_NONE, "erin", T0);
    assert_int_equal(ss_run(&fx->s, &op), STORE_IO); /* read-only */
    reopen(fx);
    assert_int_equal(head_of(&fx->s).seq, 0);
    assert_int_equal(ss_assign(&fx->s, STORE_TYPE_NONE, "erin", T0, NULL), STORE_OK);
    read_chain(&fx->s, c);
    assert_int_equal(c->n, 1);
    expect_verb(&c->recs[0], "REQUEST");
    free(c);
}

/* --- PostgreSQL: one chain per node --- */

static void
open_node(struct ss *s, const char *node)
{
    struct store_config cfg;
    char err[ERRBUF] = "";

    memset(s, 0, sizeof *s);
    s->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(s->loop);
    cfg = (struct store_config){.loop = s->loop, .mode = STORE_OPEN_CREATE, .node_name = node};
    if (store_open(pg_uri, &cfg, &s->st, err, sizeof err) != STORE_OK)
        fail_msg("store_open %s: %s", pg_uri, err);
}

/* Two nodes on one database: each keeps a chain of its own changes, both verify. */
static void
test_nodes_own_chains(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[4] = {
        coupon("N-1", STORE_TYPE_FREE, T0 + 100, 1), coupon("N-2", STORE_TYPE_FREE, T0 + 100, 1),
        coupon("N-3", STORE_TYPE_FREE, T0 + 100, 1), coupon("N-4", STORE_TYPE_FREE, T0 + 100, 1)};
    struct chain *c = malloc(sizeof *c);
    struct ss a, b;

    assert_non_null(c);
    open_node(&a, "node-a");
    open_node(&b, "node-b");
    upload(&a, recs, 2, T0, "");
    upload(&b, recs + 2, 2, T0, "");
    assert_int_equal(ss_assign(&a, STORE_TYPE_FREE, "ann", T0, NULL), STORE_OK);
    assert_int_equal(ss_assign(&b, STORE_TYPE_FREE, "bea", T0, NULL), STORE_OK);
    assert_int_equal(ss_assign(&b, STORE_TYPE_FREE, "bea", T0, NULL), STORE_OK);
    read_chain(&a, c);
    assert_int_equal(c->n, 2);
    expect_field(&c->recs[1], false, "user", "ann");
    read_chain(&b, c);
    assert_int_equal(c->n, 3);
    expect_field(&c->recs[2], false, "user", "bea");
    read_chain(&fx->s, c); /* this host's own node: none of them */
    assert_int_equal(c->n, 0);
    ss_close(&a);
    ss_close(&b);
    free(c);
}

enum only { BOTH = 0, LMDB, PG };

static const struct {
    void (*fn)(void **state);
    const char *name;
    enum only only;
} tests[] = {
    {test_empty, "test_empty", BOTH},
    {test_every_write, "test_every_write", BOTH},
    {test_nothing_appended, "test_nothing_appended", BOTH},
    {test_batch_order, "test_batch_order", BOTH},
    {test_purge_chunks, "test_purge_chunks", BOTH},
    {test_note_refused, "test_note_refused", BOTH},
    {test_export_after, "test_export_after", BOTH},
    {test_reopen_and_hashes, "test_reopen_and_hashes", BOTH},
    {test_tampered_record_named, "test_tampered_record_named", LMDB},
    {test_store_before_chain, "test_store_before_chain", LMDB},
    {test_nodes_own_chains, "test_nodes_own_chains", PG},
};
#define NTESTS (sizeof tests / sizeof tests[0])

int
main(int argc, char **argv)
{
    struct CMUnitTest run[NTESTS];
    size_t n = 0;

    if (argc > 2 || (argc == 2 && !pgtest_is_pg(argv[1]))) {
        fprintf(stderr, "usage: test_audit_store [postgresql://...]\n");
        return 2;
    }
    pg_uri = argc == 2 ? argv[1] : NULL;
    for (size_t i = 0; i < NTESTS; i++)
        if (tests[i].only == BOTH || tests[i].only == (pg_uri == NULL ? LMDB : PG))
            run[n++] = (struct CMUnitTest){.name = tests[i].name,
                                           .test_func = tests[i].fn,
                                           .setup_func = setup,
                                           .teardown_func = teardown};
    return _cmocka_run_group_tests(pg_uri != NULL ? "audit_postgresql" : "audit_lmdb", run, n, NULL,
                                   NULL);
}
