/* test_hold.c - unit tests of server/sigid.c and server/hold.c: hold ids round-trip, every kind
 * of damaged, foreign or cross-kind id is refused alike and leaves the output untouched, and
 * task ids keep their form on top of sigid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "hold.h"
#include "keys.h"
#include "proto.h"
#include "sigid.h"
#include "task.h"

#define B64     sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define GARBAGE 2000 /* random ids of the right length and alphabet */

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const unsigned char key_a[KEYS_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const unsigned char key_b[KEYS_BYTES] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

struct keys {
    struct hold_key *a, *b;
    struct task_key *task_a;
};

static int
setup(void **state)
{
    static struct keys k;
    if (sodium_init() < 0)
        return -1;
    k.a = hold_key_from_bytes(key_a);
    k.b = hold_key_from_bytes(key_b);
    k.task_a = task_key_from_bytes(key_a);
    *state = &k;
    return k.a && k.b && k.task_a ? 0 : -1;
}

static int
teardown(void **state)
{
    struct keys *k = *state;
    hold_key_free(k->a);
    hold_key_free(k->b);
    task_key_free(k->task_a);
    return 0;
}

static const struct hold_ref sample = {.seq = 987654321ULL, .expires = 1795000900LL};

static void
assert_refused(const struct hold_key *k, const char *id, size_t len)
{
    struct hold_ref out;
    memset(&out, 0xA5, sizeof out);
    struct hold_ref before = out;
    if (hold_decode(k, id, len, &out))
        fail_msg("accepted a bad hold id: %.*s", (int)len, id);
    assert_memory_equal(&out, &before, sizeof out);
}

static void
test_round_trip(void **state)
{
    struct keys *k = *state;
    char id[HOLD_ID_BUF], again[HOLD_ID_BUF];
    struct hold_ref out;

    hold_encode(k->a, &sample, id);
    assert_int_equal(strlen(id), HOLD_ID_CHARS);
    assert_int_equal(sigid_chars(HOLD_BODY_BYTES), HOLD_ID_CHARS);
    assert_int_equal(strspn(id, alphabet), HOLD_ID_CHARS);
    assert_true(strlen(id) <= PROTO_HOLD_MAX);
    /* A hold id passes the protocol's hold-id rule, so it reaches hold_decode. */
    char parsed[PROTO_HOLD_MAX + 1];
    assert_true(proto_parse_task(id, strlen(id), parsed, NULL));
    assert_true(hold_decode(k->a, id, strlen(id), &out));
    assert_int_equal(out.seq, sample.seq);
    assert_int_equal(out.expires, sample.expires);
    /* Deterministic: the same hold always has the same id (a replay shows it again). */
    hold_encode(k->a, &sample, again);
    assert_string_equal(id, again);
}

static void
test_extremes(void **state)
{
    struct keys *k = *state;
    const struct hold_ref refs[] = {{0, 0}, {1, 1}, {UINT64_MAX, INT64_MAX}, {42, -1}};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        char id[HOLD_ID_BUF];
        struct hold_ref out;
        hold_encode(k->a, &refs[i], id);
        assert_true(hold_decode(k->a, id, strlen(id), &out));
        assert_int_equal(out.seq, refs[i].seq);
        assert_int_equal(out.expires, refs[i].expires);
    }
}

static void
test_layout(void **state)
{
    struct keys *k = *state;
    char id[HOLD_ID_BUF];
    unsigned char raw[64];
    size_t n = 0;

    hold_encode(k->a, &sample, id);
    assert_int_equal(sodium_base642bin(raw, sizeof raw, id, strlen(id), NULL, &n, NULL, B64), 0);
    assert_int_equal(n, SIGID_HEAD_BYTES + HOLD_BODY_BYTES + SIGID_MAC_BYTES);
    assert_int_equal(raw[0], HOLD_VERSION);
    assert_int_equal(sigid_get_be64(raw + 2), sample.seq);
    assert_int_equal((int64_t)sigid_get_be64(raw + 10), sample.expires);
}

static void
test_every_bit_flip_refused(void **state)
{
    struct keys *k = *state;
    char id[HOLD_ID_BUF];
    unsigned char raw[64];
    size_t n = 0;

    hold_encode(k->a, &sample, id);
    assert_int_equal(sodium_base642bin(raw, sizeof raw, id, strlen(id), NULL, &n, NULL, B64), 0);
    for (size_t byte = 0; byte < n; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            char bad[HOLD_ID_BUF];
            raw[byte] ^= (unsigned char)(1u << bit);
            sodium_bin2base64(bad, sizeof bad, raw, n, B64);
            assert_refused(k->a, bad, strlen(bad));
            raw[byte] ^= (unsigned char)(1u << bit);
        }
    }
}

static void
test_truncated_extended_garbage(void **state)
{
    struct keys *k = *state;
    char id[HOLD_ID_BUF], longer[HOLD_ID_BUF + 8];

    hold_encode(k->a, &sample, id);
    for (size_t len = 0; len < HOLD_ID_CHARS; len++)
        assert_refused(k->a, id, len);
    snprintf(longer, sizeof longer, "%sAA", id);
    assert_refused(k->a, longer, strlen(longer));
    char dotted[HOLD_ID_BUF];
    memcpy(dotted, id, sizeof dotted);
    dotted[5] = '.';
    assert_refused(k->a, dotted, strlen(dotted));
    for (int i = 0; i < GARBAGE; i++) {
        char g[HOLD_ID_BUF];
        for (int c = 0; c < HOLD_ID_CHARS; c++)
            g[c] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
        g[HOLD_ID_CHARS] = '\0';
        assert_refused(k->a, g, HOLD_ID_CHARS);
    }
}

static void
test_other_key_refused(void **state)
{
    struct keys *k = *state;
    char id[HOLD_ID_BUF];

    hold_encode(k->b, &sample, id);
    assert_refused(k->a, id, strlen(id));
}

/* A valid MAC over a wrong version is still refused. */
static void
test_wrong_version_refused(void **state)
{
    (void)state;
    struct sigid_key *root = sigid_key_from_bytes(key_a);
    struct sigid_key *hk = sigid_key_derive(root, HOLD_KEY_PURPOSE);
    struct hold_key *k = hold_key_from_bytes(key_a);
    unsigned char body[HOLD_BODY_BYTES] = {0};
    char id[HOLD_ID_BUF];

    assert_non_null(hk);
    sigid_encode(hk, HOLD_VERSION + 1, body, sizeof body, id, sizeof id);
    assert_refused(k, id, strlen(id));
    sigid_encode(hk, HOLD_VERSION, body, sizeof body, id, sizeof id);
    struct hold_ref out;
    assert_true(hold_decode(k, id, strlen(id), &out)); /* the same, right version: accepted */
    hold_key_free(k);
    sigid_key_free(hk);
    sigid_key_free(root);
}

/* Hold ids and task ids share task.key but never each other's ids. */
static void
test_task_and_hold_ids_apart(void **state)
{
    struct keys *k = *state;
    struct sigid_key *root = sigid_key_from_bytes(key_a);
    unsigned char body[HOLD_BODY_BYTES] = {1, 2, 3};
    char id[HOLD_ID_BUF];

    /* A hold-shaped id signed with the task key itself (not the derived one) is refused. */
    sigid_encode(root, HOLD_VERSION, body, sizeof body, id, sizeof id);
    assert_refused(k->a, id, strlen(id));
    /* A task id is refused as a hold id, and a hold id as a task id. */
    struct task_payload p, q;
    char tid[TASK_ID_BUF];
    task_payload_make(k->task_a, 7, 1000, 2000, "carol", &p);
    task_encode(k->task_a, &p, tid);
    assert_refused(k->a, tid, strlen(tid));
    hold_encode(k->a, &sample, id);
    assert_false(task_decode(k->task_a, id, strlen(id), &q));
    sigid_key_free(root);
}

static void
test_key_file_shared_with_tasks(void **state)
{
    (void)state;
    char dir[] = "/tmp/coupond-test-hold-XXXXXX", err[256], path[512];
    assert_non_null(mkdtemp(dir));
    struct hold_key *h1 = hold_key_load(dir, err, sizeof err);
    assert_non_null(h1);
    snprintf(path, sizeof path, "%s/%s", dir, TASK_KEY_FILE);
    FILE *f = fopen(path, "rb");
    assert_non_null(f); /* made task.key: no file of its own */
    unsigned char bytes[KEYS_BYTES];
    assert_int_equal(fread(bytes, 1, sizeof bytes, f), sizeof bytes);
    fclose(f);
    struct hold_key *h2 = hold_key_load(dir, err, sizeof err);
    struct hold_key *h3 = hold_key_from_bytes(bytes);
    char id[HOLD_ID_BUF];
    struct hold_ref out;
    hold_encode(h1, &sample, id);
    assert_true(hold_decode(h2, id, strlen(id), &out)); /* the same key after a restart */
    assert_true(hold_decode(h3, id, strlen(id), &out));
    hold_key_free(h1);
    hold_key_free(h2);
    hold_key_free(h3);
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_every_bit_flip_refused),
        cmocka_unit_test(test_truncated_extended_garbage),
        cmocka_unit_test(test_other_key_refused),
        cmocka_unit_test(test_wrong_version_refused),
        cmocka_unit_test(test_task_and_hold_ids_apart),
        cmocka_unit_test(test_key_file_shared_with_tasks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
