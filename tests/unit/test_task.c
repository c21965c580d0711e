/* test_task.c - unit tests of server/task.c, MEGADEAL task ids: round trips, and every kind of
 * damaged or foreign id refused alike (bit flips, truncation, extension, other keys, garbage,
 * a valid MAC over a wrong version or key id). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "keys.h"
#include "proto.h"
#include "task.h"

#define B64     sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define GARBAGE 2000 /* random ids of the right length and alphabet */

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static const unsigned char key_a_bytes[KEYS_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const unsigned char key_b_bytes[KEYS_BYTES] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

struct keys {
    struct task_key *a, *b;
};

static int
setup(void **state)
{
    static struct keys k;
    if (sodium_init() < 0)
        return -1;
    k.a = task_key_from_bytes(key_a_bytes);
    k.b = task_key_from_bytes(key_b_bytes);
    *state = &k;
    return k.a && k.b ? 0 : -1;
}

static int
teardown(void **state)
{
    struct keys *k = *state;
    task_key_free(k->a);
    task_key_free(k->b);
    return 0;
}

static struct task_payload
sample(const struct task_key *k)
{
    struct task_payload p;
    task_payload_make(k, 123456789ULL, 1795000000123LL, 1795000010123LL, "carol", &p);
    return p;
}

/* Decoding `id` must fail and leave the output as it was. */
static void
assert_refused(const struct task_key *k, const char *id, size_t len)
{
    struct task_payload out;
    memset(&out, 0xA5, sizeof out);
    struct task_payload before = out;
    if (task_decode(k, id, len, &out))
        fail_msg("accepted a bad id: %.*s", (int)len, id);
    assert_memory_equal(&out, &before, sizeof out);
}

/* The raw 74 bytes behind a valid id. */
static void
raw_of(const char *id, unsigned char raw[TASK_RAW_BYTES])
{
    size_t n = 0;
    assert_int_equal(sodium_base642bin(raw, TASK_RAW_BYTES, id, strlen(id), NULL, &n, NULL, B64),
                     0);
    assert_int_equal(n, TASK_RAW_BYTES);
}

static void
id_of_raw(const unsigned char raw[TASK_RAW_BYTES], char id[TASK_ID_BUF])
{
    sodium_bin2base64(id, TASK_ID_BUF, raw, TASK_RAW_BYTES, B64);
}

/* ---- tests ---- */

static void
test_round_trip(void **state)
{
    struct keys *k = *state;
    struct task_payload p = sample(k->a), q;
    char id[TASK_ID_BUF];
    task_encode(k->a, &p, id);
    assert_int_equal(strlen(id), TASK_ID_CHARS);
    assert_true(strlen(id) <= PROTO_TASK_MAX);
    assert_int_equal(strspn(id, alphabet), TASK_ID_CHARS);
    /* The protocol's value rule accepts it. */
    char parsed[PROTO_TASK_MAX + 1];
    assert_true(proto_parse_task(id, strlen(id), parsed, NULL));
    assert_true(task_decode(k->a, id, strlen(id), &q));
    assert_true(task_payload_equal(&p, &q));
    assert_int_equal(q.seq, 123456789ULL);
    assert_int_equal(q.issued_ms, 1795000000123LL);
    assert_int_equal(q.deadline_ms, 1795000010123LL);
    /* Deterministic: the same payload makes the same id. */
    char again[TASK_ID_BUF];
    task_encode(k->a, &p, again);
    assert_string_equal(id, again);
}

static void
test_layout(void **state)
{
    struct keys *k = *state;
    struct task_payload p = sample(k->a);
    char id[TASK_ID_BUF];
    unsigned char raw[TASK_RAW_BYTES];
    task_encode(k->a, &p, id);
    raw_of(id, raw);
    assert_int_equal(raw[0], TASK_VERSION);
    /* Big-endian sequence right after version and key id. */
    static const unsigned char seq_be[8] = {0, 0, 0, 0, 0x07, 0x5B, 0xCD, 0x15};
    assert_memory_equal(raw + 2, seq_be, 8);
    /* The MAC is crypto_auth over the 42-byte payload. */
    unsigned char mac[crypto_auth_BYTES];
    crypto_auth(mac, raw, TASK_PAYLOAD_BYTES, key_a_bytes);
    assert_memory_equal(mac, raw + TASK_PAYLOAD_BYTES, sizeof mac);
    /* The user is in the payload only as its keyed tag. */
    unsigned char tag[TASK_TAG_BYTES];
    task_user_tag(k->a, "carol", tag);
    assert_memory_equal(raw + 26, tag, TASK_TAG_BYTES);
    assert_null(memmem(raw, sizeof raw, "carol", 5));
}

static void
test_user_tag_binds_user(void **state)
{
    struct keys *k = *state;
    unsigned char t1[TASK_TAG_BYTES], t2[TASK_TAG_BYTES], t3[TASK_TAG_BYTES];
    task_user_tag(k->a, "carol", t1);
    task_user_tag(k->a, "carol", t2);
    assert_memory_equal(t1, t2, TASK_TAG_BYTES);
    task_user_tag(k->a, "Carol", t2);
    assert_memory_not_equal(t1, t2, TASK_TAG_BYTES);
    task_user_tag(k->b, "carol", t3); /* keyed: another key, another tag */
    assert_memory_not_equal(t1, t3, TASK_TAG_BYTES);
    struct task_payload p, q;
    task_payload_make(k->a, 1, 2, 3, "carol", &p);
    task_payload_make(k->a, 1, 2, 3, "dave", &q);
    assert_false(task_payload_equal(&p, &q));
    task_payload_make(k->a, 1, 2, 4, "carol", &q);
    assert_false(task_payload_equal(&p, &q));
    task_payload_make(k->a, 1, 2, 3, "carol", &q);
    assert_true(task_payload_equal(&p, &q));
}

/* Every single-bit flip of the 74 decoded bytes, re-encoded, is refused. */
static void
test_every_bit_flip(void **state)
{
    struct keys *k = *state;
    struct task_payload p = sample(k->a);
    char id[TASK_ID_BUF], bad[TASK_ID_BUF];
    unsigned char raw[TASK_RAW_BYTES];
    task_encode(k->a, &p, id);
    raw_of(id, raw);
    for (size_t bit = 0; bit < TASK_RAW_BYTES * 8; bit++) {
        raw[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        id_of_raw(raw, bad);
        assert_string_not_equal(bad, id);
        assert_refused(k->a, bad, strlen(bad));
        raw[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    id_of_raw(raw, bad);
    assert_string_equal(bad, id); /* restored: the flips were the only change */
}

/* Every character replaced by every other one of the alphabet, the unused trailing bits of the
 * last character included (libsodium must refuse a non-canonical encoding). */
static void
test_every_character_change(void **state)
{
    struct keys *k = *state;
    struct task_payload p = sample(k->a);
    char id[TASK_ID_BUF], bad[TASK_ID_BUF];
    task_encode(k->a, &p, id);
    for (size_t i = 0; i < TASK_ID_CHARS; i++) {
        for (const char *a = alphabet; *a; a++) {
            if (*a == id[i])
                continue;
            memcpy(bad, id, sizeof bad);
            bad[i] = *a;
            assert_refused(k->a, bad, TASK_ID_CHARS);
        }
    }
}

static void
test_truncated(void **state)
{
    struct keys *k = *state;
    struct task_payload p = sample(k->a);
    char id[TASK_ID_BUF];
    task_encode(k->a, &p, id);
    for (size_t len = 0; len < TASK_ID_CHARS; len++)
        assert_refused(k->a, id, len);
    /* Also dropping characters from the front. */
    for (size_t cut = 1; cut < TASK_ID_CHARS; cut++)
        assert_refused(k->a, id + cut, TASK_ID_CHARS - cut);
}

static void
test_extended(void **state)
{
    struct keys *k = *state;
    struct task_payload p = sample(k->a);
    char id[TASK_ID_BUF];
    char longer[PROTO_TASK_MAX * 2 + 1];
    task_encode(k->a, &p, id);
    memset(longer, 'A', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    memcpy(longer, id, TASK_ID_CHARS);
    /* One to 157 characters more: past 128, and so past what the protocol lets through. */
    for (size_t len = TASK_ID_CHARS + 1; len < sizeof longer; len++)
        assert_refused(k->a, longer, len);
    /* The id twice in a row. */
    memcpy(longer + TASK_ID_CHARS, id, TASK_ID_CHARS);
    assert_refused(k->a, longer, 2 * TASK_ID_CHARS);
}

static void
test_other_key(void **state)
{
    struct keys *k = *state;
    struct task_payload p = sample(k->b);
    char id[TASK_ID_BUF];
    task_encode(k->b, &p, id);
    struct task_payload q;
    assert_true(task_decode(k->b, id, strlen(id), &q));
    assert_refused(k->a, id, strlen(id));
}

static void
test_garbage(void **state)
{
    struct keys *k = *state;
    char id[TASK_ID_BUF];
    for (int i = 0; i < GARBAGE; i++) {
        for (size_t j = 0; j < TASK_ID_CHARS; j++)
            id[j] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
        id[TASK_ID_CHARS] = '\0';
        assert_refused(k->a, id, TASK_ID_CHARS);
    }
    /* Characters outside the URL-safe alphabet, in an otherwise valid id. */
    struct task_payload p = sample(k->a);
    task_encode(k->a, &p, id);
    static const char outside[] = "+/=. \t!~\"";
    for (const char *c = outside; *c; c++) {
        char bad[TASK_ID_BUF];
        memcpy(bad, id, sizeof bad);
        bad[TASK_ID_CHARS / 2] = *c;
        assert_refused(k->a, bad, TASK_ID_CHARS);
    }
    assert_refused(k->a, "", 0);
    assert_refused(k->a, "AQAAAAAAAAEAAAGSx4", 18);
    /* 74 zero bytes, well formed but unsigned. */
    unsigned char raw[TASK_RAW_BYTES] = {0};
    id_of_raw(raw, id);
    assert_refused(k->a, id, TASK_ID_CHARS);
}

/* A correct MAC does not save an id with another version or key id. */
static void
test_version_and_key_id(void **state)
{
    struct keys *k = *state;
    struct task_payload p = sample(k->a);
    char id[TASK_ID_BUF];
    unsigned char raw[TASK_RAW_BYTES];
    task_encode(k->a, &p, id);
    raw_of(id, raw);
    for (int field = 0; field < 2; field++) {
        unsigned char copy[TASK_RAW_BYTES];
        memcpy(copy, raw, sizeof copy);
        copy[field] ^= 0x01;
        crypto_auth(copy + TASK_PAYLOAD_BYTES, copy, TASK_PAYLOAD_BYTES, key_a_bytes);
        char bad[TASK_ID_BUF];
        id_of_raw(copy, bad);
        assert_refused(k->a, bad, TASK_ID_CHARS);
    }
}

static void
test_key_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/coupond-task-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[256], path[512];
    struct task_key *k1 = task_key_load(dir, err, sizeof err);
    if (!k1)
        fail_msg("task_key_load: %s", err);
    snprintf(path, sizeof path, "%s/%s", dir, TASK_KEY_FILE);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, KEYS_BYTES);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* Loaded again (a restart): ids made before still verify. */
    struct task_payload p, q;
    task_payload_make(k1, 5, 6, 7, "erin", &p);
    char id[TASK_ID_BUF];
    task_encode(k1, &p, id);
    struct task_key *k2 = task_key_load(dir, err, sizeof err);
    assert_non_null(k2);
    assert_true(task_decode(k2, id, strlen(id), &q));
    assert_true(task_payload_equal(&p, &q));
    task_key_free(k1);
    task_key_free(k2);
    /* A readable key file is refused. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_null(task_key_load(dir, err, sizeof err));
    assert_non_null(strstr(err, "chmod 600"));
    /* A new key (the file removed): the old ids fail. */
    assert_int_equal(unlink(path), 0);
    struct task_key *k3 = task_key_load(dir, err, sizeof err);
    assert_non_null(k3);
    assert_refused(k3, id, strlen(id));
    task_key_free(k3);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_user_tag_binds_user),
        cmocka_unit_test(test_every_bit_flip),
        cmocka_unit_test(test_every_character_change),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_extended),
        cmocka_unit_test(test_other_key),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_version_and_key_id),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
