/* test_store.c - unit tests of store/: real LMDB in a fresh temporary directory per test.
 * Every test's teardown runs store_check, so each scenario also proves the store consistent. */
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
#include <time.h>
#include <unistd.h>

#include "store.h"

#define T0          INT64_C(1798761599) /* 2026-12-31T23:59:59Z */
#define SMALL_MAP   (2ULL << 20)        /* small enough to fill in a test */
#define CHECK_MSG   512
#define ERRBUF      512
#define MAX_REJECTS 16
#define MAX_HISTORY 16

/* Sanitizers make LMDB's large per-transaction allocations very slow: a smaller performance run
 * keeps the sanitizer suite quick (its timings mean nothing anyway). */
#if defined(__SANITIZE_ADDRESS__)
#define PERF_SCALE 10
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PERF_SCALE 10
#endif
#endif
#ifndef PERF_SCALE
#define PERF_SCALE 1
#endif

struct fx {
    char dir[64];
    struct store *st;
    bool skip_check; /* the test corrupted the store on purpose */
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

static struct store *
open_store(const char *dir, uint64_t map_size)
{
    char err[ERRBUF] = "";
    struct store *st = NULL;
    enum store_err e = store_open(dir, map_size, &st, err, sizeof err);

    if (e != STORE_OK)
        fail_msg("store_open %s: %s", dir, err);
    assert_non_null(st);
    return st;
}

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);

    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_store.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->st = open_store(fx->dir, STORE_MAP_SIZE_DEFAULT);
    *state = fx;
    return 0;
}

static void
check_ok(struct store *st, int64_t now)
{
    char msg[CHECK_MSG] = "";
    enum store_err e = store_check(st, now, msg, sizeof msg);

    if (e != STORE_OK)
        fail_msg("store_check: %s (%s)", store_strerror(e), msg);
}

/* Checks the store, then cleans up whatever the outcome, then reports. */
static int
teardown(void **state)
{
    struct fx *fx = *state;
    char msg[CHECK_MSG] = "";
    enum store_err e = STORE_OK;

    if (fx->st != NULL && !fx->skip_check)
        e = store_check(fx->st, T0, msg, sizeof msg);
    store_close(fx->st);
    rm_dir(fx->dir);
    free(fx);
    if (e != STORE_OK)
        fail_msg("store_check after the test: %s (%s)", store_strerror(e), msg);
    return 0;
}

static void
reopen(struct fx *fx, uint64_t map_size)
{
    store_close(fx->st);
    fx->st = open_store(fx->dir, map_size);
}

/* --- helpers --- */

static struct store_coupon
coupon(const char *code, enum store_type type, int64_t expires)
{
    struct store_coupon c;

    memset(&c, 0, sizeof c);
    snprintf(c.code, sizeof c.code, "%s", code);
    c.type = (uint8_t)type;
    c.kind = STORE_KIND_FLAT;
    c.discount = 500;
    c.expires = expires;
    c.max_uses = 1;
    return c;
}

static void
upload_ok(struct store *st, const struct store_coupon *recs, size_t n)
{
    size_t n_rej = 99;

    assert_int_equal(store_upload(st, recs, n, false, NULL, 0, &n_rej), STORE_OK);
    assert_int_equal(n_rej, 0);
}

static void
upload_one_ok(struct store *st, const char *code, enum store_type type, int64_t expires)
{
    struct store_coupon c = coupon(code, type, expires);

    upload_ok(st, &c, 1);
}

static void
commit_ok(struct store *st)
{
    assert_int_equal(store_commit(st), STORE_OK);
    assert_false(store_pending(st));
}

/* Assigns and expects `code` (NULL: STORE_NO_COUPONS). */
static void
assign_expect(struct store *st, enum store_type type, const char *user, int64_t now,
              const char *code)
{
    struct store_coupon c;
    enum store_err e = store_assign(st, type, user, now, &c);

    if (code == NULL) {
        assert_int_equal(e, STORE_NO_COUPONS);
        return;
    }
    assert_int_equal(e, STORE_OK);
    assert_string_equal(c.code, code);
    assert_string_equal(c.user, user);
    assert_int_equal(c.assigned_at, now);
    assert_int_equal(c.type, type);
}

static struct store_counters
counters(struct store *st, int64_t now)
{
    struct store_counters c;

    assert_int_equal(store_counters(st, now, &c), STORE_OK);
    return c;
}

static uint64_t
available(struct store *st, enum store_type type, int64_t now)
{
    return counters(st, now).type[type].available;
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* --- open --- */

static void
test_open_missing_dir(void **state)
{
    char err[ERRBUF] = "";
    struct store *st = (struct store *)(void *)err; /* store_open must set it to NULL */

    (void)state;

    assert_int_equal(store_open("/nonexistent/coupond-test", 0, &st, err, sizeof err), STORE_IO);
    assert_null(st);
    assert_non_null(strstr(err, "/nonexistent/coupond-test"));
    assert_string_equal(store_strerror(STORE_FULL), "map full");
    assert_non_null(store_strerror((enum store_err)1000));
}

static void
test_commit_without_group(void **state)
{
    struct fx *fx = *state;
    struct store_coupon c;

    assert_false(store_pending(fx->st));
    assert_int_equal(store_commit(fx->st), STORE_OK);
    /* A failed operation alone leaves nothing pending. */
    assert_int_equal(store_redeem(fx->st, "NOPE", "alice", T0, &c), STORE_INVALID);
    assert_int_equal(store_assign(fx->st, STORE_TYPE_FREE, "alice", T0, &c), STORE_NO_COUPONS);
    assert_false(store_pending(fx->st));
    /* Bad arguments of assign. */
    upload_one_ok(fx->st, "A", STORE_TYPE_FREE, T0);
    assert_int_equal(store_assign(fx->st, STORE_TYPE_FREE, "", T0, &c), STORE_INVALID);
    assert_int_equal(store_assign(fx->st, (enum store_type)7, "bob", T0, &c), STORE_INVALID);
    commit_ok(fx->st);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0), 1);
}

/* --- allocation --- */

static void
test_allocation_order(void **state)
{
    struct fx *fx = *state;
    const struct store_coupon b1[] = {
        coupon("A", STORE_TYPE_STANDARD, T0 + 300),
        coupon("B", STORE_TYPE_STANDARD, T0 + 100),
        coupon("C", STORE_TYPE_STANDARD, T0 + 200),
    };
    const struct store_coupon b2[] = {
        coupon("D", STORE_TYPE_STANDARD, T0 + 100),
        coupon("E", STORE_TYPE_STANDARD, T0 + 50),
        coupon("F", STORE_TYPE_STANDARD, T0 + 300),
    };
    const char *const order[] = {"E", "B", "D", "C", "A", "F"};
    struct store_coupon c;

    upload_ok(fx->st, b1, 3);
    commit_ok(fx->st);
    upload_ok(fx->st, b2, 3);
    commit_ok(fx->st);
    for (size_t i = 0; i < 6; i++) {
        assign_expect(fx->st, STORE_TYPE_STANDARD, "alice", T0 + (int64_t)i, order[i]);
        if (i % 2 == 1)
            commit_ok(fx->st);
    }
    assign_expect(fx->st, STORE_TYPE_STANDARD, "alice", T0, NULL);
    /* Upload order is recorded: A is the first record ever stored. */
    assert_int_equal(store_get(fx->st, "A", &c), STORE_OK);
    assert_int_equal(store_get(fx->st, "F", &c), STORE_OK);
    assert_int_equal(c.seq, 6);
}

static void
test_type_separation(void **state)
{
    struct fx *fx = *state;
    const struct store_coupon recs[] = {
        coupon("F0", STORE_TYPE_FREE, T0 - 10),    coupon("F1", STORE_TYPE_FREE, T0 + 10),
        coupon("S1", STORE_TYPE_STANDARD, T0 + 5), coupon("M1", STORE_TYPE_MEGADEAL, T0 + 1),
        coupon("N1", STORE_TYPE_NONE, T0 + 20),
    };

    upload_ok(fx->st, recs, 5);
    commit_ok(fx->st);
    assign_expect(fx->st, STORE_TYPE_FREE, "u", T0, "F1");
    assign_expect(fx->st, STORE_TYPE_NONE, "u", T0, "N1");
    assign_expect(fx->st, STORE_TYPE_NONE, "u", T0, NULL);
    /* FREE has only an expired coupon left; the seek lands on STANDARD's entries. */
    assign_expect(fx->st, STORE_TYPE_FREE, "u", T0, NULL);
    assign_expect(fx->st, STORE_TYPE_STANDARD, "u", T0, "S1");
    assign_expect(fx->st, STORE_TYPE_MEGADEAL, "u", T0, "M1");
    assign_expect(fx->st, STORE_TYPE_MEGADEAL, "u", T0, NULL);
    commit_ok(fx->st);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].assigned, 1);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_NONE].assigned, 1);
}

static void
test_expired_skipped(void **state)
{
    struct fx *fx = *state;
    enum { N_EXPIRED = 5000 };
    struct store_coupon *recs = calloc(N_EXPIRED + 1, sizeof *recs);
    struct store_coupon c;

    assert_non_null(recs);
    for (int i = 0; i <= N_EXPIRED; i++) {
        char code[32];

        snprintf(code, sizeof code, "OLD-%05d", i);
        recs[i] = coupon(code, STORE_TYPE_FREE, T0 - N_EXPIRED + i - 1);
    }
    recs[N_EXPIRED / 2] = coupon("VALID", STORE_TYPE_FREE, T0 + 1);
    upload_ok(fx->st, recs, N_EXPIRED + 1);
    /* Only expired coupons of STANDARD. */
    for (int i = 0; i < 100; i++) {
        snprintf(recs[i].code, sizeof recs[i].code, "STD-%03d", i);
        recs[i].type = STORE_TYPE_STANDARD;
    }
    upload_ok(fx->st, recs, 100);
    commit_ok(fx->st);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0), 1);
    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0, "VALID");
    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0, NULL);
    assign_expect(fx->st, STORE_TYPE_STANDARD, "alice", T0, NULL);
    commit_ok(fx->st);
    assert_int_equal(store_get(fx->st, "OLD-00000", &c), STORE_OK);
    assert_string_equal(c.user, "");
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0), 0);
    assert_int_equal(available(fx->st, STORE_TYPE_STANDARD, T0), 0);
    /* Seen from long ago, they are all still there. */
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 - 2 * N_EXPIRED), N_EXPIRED);
    assert_int_equal(available(fx->st, STORE_TYPE_STANDARD, T0 - 2 * N_EXPIRED), 100);
    free(recs);
}

static void
test_expiry_boundary(void **state)
{
    struct fx *fx = *state;
    const struct store_coupon recs[] = {coupon("X", STORE_TYPE_FREE, T0),
                                        coupon("Y", STORE_TYPE_FREE, T0)};
    struct store_coupon c;

    upload_ok(fx->st, recs, 2);
    commit_ok(fx->st);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0), 2);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 1), 0);
    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0, "X"); /* now == expires: valid */
    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0 + 1, NULL);
    commit_ok(fx->st);
    assert_int_equal(store_validate(fx->st, "X", "alice", T0, &c), STORE_OK);
    assert_int_equal(store_validate(fx->st, "X", "alice", T0 + 1, &c), STORE_EXPIRED);
    assert_int_equal(store_redeem(fx->st, "X", "alice", T0 + 1, &c), STORE_EXPIRED);
    assert_int_equal(c.uses, 0);
    assert_int_equal(store_redeem(fx->st, "X", "alice", T0, &c), STORE_OK);
    assert_int_equal(c.uses, 1);
    commit_ok(fx->st);
}

/* --- upload --- */

static void
test_upload_rejects(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[] = {
        coupon("A", STORE_TYPE_FREE, T0),     coupon("OLD", STORE_TYPE_FREE, T0),
        coupon("B", STORE_TYPE_FREE, T0),     coupon("A", STORE_TYPE_STANDARD, T0),
        coupon("C", STORE_TYPE_FREE, T0),     coupon("lower", STORE_TYPE_FREE, T0),
        coupon("B", STORE_TYPE_FREE, T0 + 1), coupon("D", STORE_TYPE_FREE, T0),
    };
    struct store_reject rej[MAX_REJECTS];
    size_t n_rej = 0;
    struct store_coupon c;

    recs[4].type = 9;
    upload_one_ok(fx->st, "OLD", STORE_TYPE_FREE, T0);
    commit_ok(fx->st);

    memset(rej, 0xee, sizeof rej);
    assert_int_equal(store_upload(fx->st, recs, 8, false, rej, 3, &n_rej), STORE_REJECTED);
    assert_int_equal(n_rej, 5); /* counted beyond rej_cap */
    assert_int_equal(rej[0].index, 1);
    assert_int_equal(rej[0].reason, STORE_REJECT_EXISTS);
    assert_int_equal(rej[1].index, 3);
    assert_int_equal(rej[1].reason, STORE_REJECT_DUPLICATE);
    assert_int_equal(rej[1].first, 0);
    assert_int_equal(rej[2].index, 4);
    assert_int_equal(rej[2].reason, STORE_REJECT_INVALID);
    assert_int_equal(rej[3].index, (size_t)0xeeeeeeeeeeeeeeeeULL); /* untouched */

    assert_int_equal(store_upload(fx->st, recs, 8, false, rej, MAX_REJECTS, &n_rej),
                     STORE_REJECTED);
    assert_int_equal(n_rej, 5);
    assert_int_equal(rej[3].index, 5);
    assert_int_equal(rej[3].reason, STORE_REJECT_INVALID);
    assert_int_equal(rej[4].index, 6);
    assert_int_equal(rej[4].reason, STORE_REJECT_DUPLICATE);
    assert_int_equal(rej[4].first, 2);

    /* Nothing stored, nothing pending, counters untouched. */
    assert_false(store_pending(fx->st));
    assert_int_equal(store_get(fx->st, "A", &c), STORE_INVALID);
    assert_int_equal(store_get(fx->st, "D", &c), STORE_INVALID);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].created, 1);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0), 1);

    /* check_only: verdict without storing. */
    assert_int_equal(store_upload(fx->st, recs, 8, true, rej, MAX_REJECTS, &n_rej), STORE_REJECTED);
    assert_int_equal(n_rej, 5);
    assert_int_equal(store_upload(fx->st, &recs[7], 1, true, rej, MAX_REJECTS, &n_rej), STORE_OK);
    assert_int_equal(n_rej, 0);
    assert_false(store_pending(fx->st));
    assert_int_equal(store_get(fx->st, "D", &c), STORE_INVALID);

    /* The good records go in afterwards, in order after OLD. */
    upload_ok(fx->st, &recs[7], 1);
    commit_ok(fx->st);
    assign_expect(fx->st, STORE_TYPE_FREE, "u", T0, "OLD");
    assign_expect(fx->st, STORE_TYPE_FREE, "u", T0, "D");
    commit_ok(fx->st);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].created, 2);
}

static void
test_upload_invalid_fields(void **state)
{
    struct fx *fx = *state;
    const struct store_coupon ok = coupon("OK", STORE_TYPE_FREE, T0);
    struct store_coupon bad[14];
    struct store_coupon good[4];
    struct store_reject rej[MAX_REJECTS];
    size_t n_rej, n = 0;

    for (size_t i = 0; i < 14; i++)
        bad[i] = ok;
    bad[n++].type = STORE_NTYPES;
    bad[n++].kind = STORE_KIND_PERCENT + 1;
    bad[n++].discount = 0;
    bad[n++].discount = -100;
    bad[n].kind = STORE_KIND_PERCENT;
    bad[n++].discount = 10001;
    bad[n++].max_uses = 0;
    bad[n++].max_uses = 1000001;
    bad[n++].uses = 1;
    bad[n++].code[0] = '\0';
    memset(bad[n].code, 'A', STORE_CODE_MAX + 1); /* 65 characters, not terminated */
    n++;
    snprintf(bad[n++].code, STORE_CODE_MAX + 1, "A B");
    snprintf(bad[n++].code, STORE_CODE_MAX + 1, "a");
    snprintf(bad[n++].code, STORE_CODE_MAX + 1, "A\xc3\x89");
    snprintf(bad[n++].code, STORE_CODE_MAX + 1, "A,B");
    for (size_t i = 0; i < n; i++) {
        n_rej = 0;
        assert_int_equal(store_upload(fx->st, &bad[i], 1, false, rej, MAX_REJECTS, &n_rej),
                         STORE_REJECTED);
        assert_int_equal(n_rej, 1);
        assert_int_equal(rej[0].index, 0);
        assert_int_equal(rej[0].reason, STORE_REJECT_INVALID);
    }
    /* The limits themselves are fine. */
    for (size_t i = 0; i < 4; i++)
        good[i] = ok;
    good[0].kind = STORE_KIND_PERCENT;
    good[0].discount = 10000;
    good[1].max_uses = 1000000;
    snprintf(good[1].code, sizeof good[1].code, "Z-_.09");
    memset(good[2].code, 'Q', STORE_CODE_MAX);
    good[2].code[STORE_CODE_MAX] = '\0';
    snprintf(good[3].code, sizeof good[3].code, "W");
    snprintf(good[3].user, sizeof good[3].user, "ignored");
    good[3].assigned_at = 5;
    good[3].seq = 77;
    upload_ok(fx->st, good, 4);
    commit_ok(fx->st);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].created, 4);
    assert_int_equal(store_get(fx->st, "W", &good[0]), STORE_OK);
    assert_string_equal(good[0].user, "");
    assert_int_equal(good[0].assigned_at, 0);
    assert_int_equal(good[0].seq, 4);
}

/* --- validate, redeem, history --- */

static void
test_validate_redeem_order(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[] = {coupon("R1", STORE_TYPE_STANDARD, T0),
                                  coupon("R2", STORE_TYPE_STANDARD, T0),
                                  coupon("U1", STORE_TYPE_STANDARD, T0)};
    struct store_coupon c;

    recs[0].max_uses = 2;
    upload_ok(fx->st, recs, 3);
    assign_expect(fx->st, STORE_TYPE_STANDARD, "alice", T0 - 100, "R1");
    assign_expect(fx->st, STORE_TYPE_STANDARD, "bob", T0 - 100, "R2");
    commit_ok(fx->st);

    assert_int_equal(store_validate(fx->st, "NOPE", "alice", T0, &c), STORE_INVALID);
    assert_int_equal(store_validate(fx->st, "U1", "alice", T0, &c), STORE_INVALID);
    memset(&c, 0, sizeof c);
    assert_int_equal(store_validate(fx->st, "R1", "bob", T0, &c), STORE_INVALID);
    assert_string_equal(c.code, ""); /* not given to a user it does not belong to */
    assert_int_equal(store_validate(fx->st, "R1", "alice", T0, &c), STORE_OK);
    assert_string_equal(c.code, "R1");
    assert_int_equal(c.uses, 0);

    assert_int_equal(store_redeem(fx->st, "R1", "alice", T0 - 10, &c), STORE_OK);
    assert_int_equal(c.uses, 1);
    assert_int_equal(store_redeem(fx->st, "R1", "alice", T0 - 9, &c), STORE_OK);
    assert_int_equal(c.uses, 2);
    assert_int_equal(store_redeem(fx->st, "R1", "alice", T0 - 8, &c), STORE_EXHAUSTED);
    assert_int_equal(c.uses, 2);
    /* Exhausted and expired: EXHAUSTED comes first. */
    assert_int_equal(store_validate(fx->st, "R1", "alice", T0 + 10, &c), STORE_EXHAUSTED);
    assert_int_equal(store_redeem(fx->st, "R1", "alice", T0 + 10, &c), STORE_EXHAUSTED);
    /* Wrong user before expiry. */
    assert_int_equal(store_redeem(fx->st, "R2", "alice", T0 + 1, &c), STORE_INVALID);
    assert_int_equal(store_redeem(fx->st, "R2", "bob", T0 + 1, &c), STORE_EXPIRED);
    assert_int_equal(store_redeem(fx->st, "U1", "bob", T0, &c), STORE_INVALID);
    assert_int_equal(store_redeem(fx->st, "r2", "bob", T0, &c), STORE_INVALID);
    assert_int_equal(store_redeem(fx->st, "NOPE", "bob", T0, NULL), STORE_INVALID);
    commit_ok(fx->st);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_STANDARD].redeemed, 2);
    assert_int_equal(store_get(fx->st, "R1", &c), STORE_OK);
    assert_int_equal(c.uses, 2);
}

struct history_buf {
    struct store_redemption r[MAX_HISTORY];
    size_t n;
    size_t stop_after; /* the callback says stop after this many */
};

static bool
collect(const struct store_redemption *r, void *arg)
{
    struct history_buf *h = arg;

    if (h->n < MAX_HISTORY)
        h->r[h->n++] = *r;
    return h->n < h->stop_after;
}

static struct history_buf
history(struct store *st, uint64_t after, size_t max, size_t stop_after)
{
    struct history_buf h = {.stop_after = stop_after};

    assert_int_equal(store_history(st, after, max, collect, &h), STORE_OK);
    return h;
}

static void
assert_redemption(const struct store_redemption *r, uint64_t seq, int64_t t, const char *code,
                  enum store_type type, const char *user)
{
    assert_int_equal(r->seq, seq);
    assert_int_equal(r->time, t);
    assert_string_equal(r->code, code);
    assert_int_equal(r->type, type);
    assert_string_equal(r->user, user);
}

static void
test_history(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[] = {coupon("H1", STORE_TYPE_FREE, T0),
                                  coupon("H2", STORE_TYPE_NONE, T0)};
    struct history_buf h;

    recs[0].max_uses = 3;
    upload_ok(fx->st, recs, 2);
    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0 - 50, "H1");
    assign_expect(fx->st, STORE_TYPE_NONE, "bob", T0 - 50, "H2");
    commit_ok(fx->st);
    h = history(fx->st, 0, 100, SIZE_MAX);
    assert_int_equal(h.n, 0);

    /* Several redemptions in one group, one more in the next. */
    assert_int_equal(store_redeem(fx->st, "H1", "alice", T0 - 30, NULL), STORE_OK);
    assert_int_equal(store_redeem(fx->st, "H2", "bob", T0 - 20, NULL), STORE_OK);
    h = history(fx->st, 0, 100, SIZE_MAX); /* inside the group */
    assert_int_equal(h.n, 2);
    commit_ok(fx->st);
    assert_int_equal(store_redeem(fx->st, "H1", "alice", T0 - 10, NULL), STORE_OK);
    commit_ok(fx->st);

    h = history(fx->st, 0, 100, SIZE_MAX);
    assert_int_equal(h.n, 3);
    assert_redemption(&h.r[0], 1, T0 - 30, "H1", STORE_TYPE_FREE, "alice");
    assert_redemption(&h.r[1], 2, T0 - 20, "H2", STORE_TYPE_NONE, "bob");
    assert_redemption(&h.r[2], 3, T0 - 10, "H1", STORE_TYPE_FREE, "alice");
    h = history(fx->st, 1, 1, SIZE_MAX);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.r[0].seq, 2);
    h = history(fx->st, 0, 100, 1); /* the callback stops the walk */
    assert_int_equal(h.n, 1);
    h = history(fx->st, 3, 100, SIZE_MAX);
    assert_int_equal(h.n, 0);
    h = history(fx->st, UINT64_MAX, 100, SIZE_MAX);
    assert_int_equal(h.n, 0);

    reopen(fx, STORE_MAP_SIZE_DEFAULT);
    h = history(fx->st, 2, 100, SIZE_MAX);
    assert_int_equal(h.n, 1);
    assert_redemption(&h.r[0], 3, T0 - 10, "H1", STORE_TYPE_FREE, "alice");
    assert_int_equal(store_redeem(fx->st, "H2", "bob", T0, NULL), STORE_EXHAUSTED);
    assert_int_equal(store_redeem(fx->st, "H1", "alice", T0, NULL), STORE_OK);
    commit_ok(fx->st);
    h = history(fx->st, 3, 100, SIZE_MAX);
    assert_int_equal(h.n, 1);
    assert_redemption(&h.r[0], 4, T0, "H1", STORE_TYPE_FREE, "alice");
}

/* --- counters --- */

static void
assert_type_counters(const struct store_type_counters *t, uint64_t created, uint64_t assigned,
                     uint64_t redeemed, uint64_t purged, uint64_t avail)
{
    assert_int_equal(t->created, created);
    assert_int_equal(t->assigned, assigned);
    assert_int_equal(t->redeemed, redeemed);
    assert_int_equal(t->purged, purged);
    assert_int_equal(t->available, avail);
}

static void
test_counters_each_op(void **state)
{
    struct fx *fx = *state;
    const struct store_coupon recs[] = {
        coupon("C1", STORE_TYPE_FREE, T0 + 100), coupon("C2", STORE_TYPE_FREE, T0 + 100),
        coupon("C3", STORE_TYPE_FREE, T0 + 100), coupon("S1", STORE_TYPE_STANDARD, T0 + 50)};
    struct store_counters c;
    uint64_t purged = 0;
    bool more = true;

    c = counters(fx->st, T0);
    for (int t = 0; t < STORE_NTYPES; t++)
        assert_type_counters(&c.type[t], 0, 0, 0, 0, 0);
    upload_ok(fx->st, recs, 4);
    c = counters(fx->st, T0); /* inside the group */
    assert_type_counters(&c.type[STORE_TYPE_FREE], 3, 0, 0, 0, 3);
    assert_type_counters(&c.type[STORE_TYPE_STANDARD], 1, 0, 0, 0, 1);
    commit_ok(fx->st);
    c = counters(fx->st, T0);
    assert_type_counters(&c.type[STORE_TYPE_FREE], 3, 0, 0, 0, 3);

    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0, "C1");
    commit_ok(fx->st);
    c = counters(fx->st, T0);
    assert_type_counters(&c.type[STORE_TYPE_FREE], 3, 1, 0, 0, 2);

    assert_int_equal(store_redeem(fx->st, "C1", "alice", T0, NULL), STORE_OK);
    commit_ok(fx->st);
    c = counters(fx->st, T0);
    assert_type_counters(&c.type[STORE_TYPE_FREE], 3, 1, 1, 0, 2);

    assert_int_equal(store_purge(fx->st, T0 + 101, 100, &purged, &more), STORE_OK);
    assert_int_equal(purged, 3);
    assert_false(more);
    commit_ok(fx->st);
    c = counters(fx->st, T0);
    assert_type_counters(&c.type[STORE_TYPE_FREE], 3, 1, 1, 2, 0);
    assert_type_counters(&c.type[STORE_TYPE_STANDARD], 1, 0, 0, 1, 0);
    assert_type_counters(&c.type[STORE_TYPE_NONE], 0, 0, 0, 0, 0);
    check_ok(fx->st, T0 + 101);
}

static void
test_available_over_time(void **state)
{
    struct fx *fx = *state;
    const struct store_coupon recs[] = {
        coupon("A", STORE_TYPE_FREE, T0 + 10), coupon("B", STORE_TYPE_FREE, T0 + 20),
        coupon("C", STORE_TYPE_FREE, T0 + 30), coupon("M", STORE_TYPE_MEGADEAL, T0 + 15)};

    upload_ok(fx->st, recs, 4);
    commit_ok(fx->st);
    /* Time passes, no writes. */
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0), 3);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 10), 3);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 11), 2);
    assert_int_equal(available(fx->st, STORE_TYPE_MEGADEAL, T0 + 11), 1);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 25), 1);
    assert_int_equal(available(fx->st, STORE_TYPE_MEGADEAL, T0 + 25), 0);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 31), 0);
    /* The clock goes back, then forward again. */
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 15), 2);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0), 3);
    assert_int_equal(available(fx->st, STORE_TYPE_MEGADEAL, T0), 1);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 31), 0);
    check_ok(fx->st, T0 + 31);

    /* Writes below the watermark (T0 + 31): an upload of already expired and fresh coupons. */
    upload_one_ok(fx->st, "D", STORE_TYPE_FREE, T0 + 5);
    upload_one_ok(fx->st, "E", STORE_TYPE_FREE, T0 + 100);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 31), 1);
    commit_ok(fx->st);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 31), 1);
    /* An assignment with the clock back takes D, which is below the watermark. */
    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0, "D");
    commit_ok(fx->st);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 31), 1);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0), 4);
    check_ok(fx->st, T0 + 31);
    check_ok(fx->st, T0 + 12);
    /* A purge deletes entries below the watermark. */
    assert_int_equal(store_purge(fx->st, T0 + 25, 10, NULL, NULL), STORE_OK);
    commit_ok(fx->st);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 31), 1);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0), 2);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0 + 200), 0);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].purged, 3); /* A B D */
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_MEGADEAL].purged, 1);
}

/* --- durability and groups --- */

static void
test_reopen(void **state)
{
    struct fx *fx = *state;
    const struct store_coupon recs[] = {
        coupon("K1", STORE_TYPE_MEGADEAL, T0 + 5), coupon("K2", STORE_TYPE_MEGADEAL, T0 + 5),
        coupon("K3", STORE_TYPE_FREE, T0 - 5), coupon("K4", STORE_TYPE_FREE, T0 + 9)};
    struct store_counters before, after;
    struct store_coupon c;

    upload_ok(fx->st, recs, 4);
    assign_expect(fx->st, STORE_TYPE_MEGADEAL, "carol", T0, "K1");
    assert_int_equal(store_redeem(fx->st, "K1", "carol", T0, NULL), STORE_OK);
    assert_int_equal(store_purge(fx->st, T0, 10, NULL, NULL), STORE_OK);
    commit_ok(fx->st);
    before = counters(fx->st, T0);

    reopen(fx, STORE_MAP_SIZE_DEFAULT);
    after = counters(fx->st, T0);
    assert_memory_equal(&before, &after, sizeof before);
    assert_int_equal(after.type[STORE_TYPE_FREE].purged, 1);
    assert_int_equal(store_get(fx->st, "K1", &c), STORE_OK);
    assert_string_equal(c.user, "carol");
    assert_int_equal(c.uses, 1);
    assert_int_equal(c.assigned_at, T0);
    assert_int_equal(c.kind, STORE_KIND_FLAT);
    assert_int_equal(c.discount, 500);
    assert_int_equal(store_get(fx->st, "K3", &c), STORE_INVALID);
    check_ok(fx->st, T0);

    /* Sequences go on: a new coupon with K2's expiry comes after K2. */
    upload_one_ok(fx->st, "K5", STORE_TYPE_MEGADEAL, T0 + 5);
    commit_ok(fx->st);
    assign_expect(fx->st, STORE_TYPE_MEGADEAL, "dave", T0, "K2");
    assign_expect(fx->st, STORE_TYPE_MEGADEAL, "dave", T0, "K5");
    commit_ok(fx->st);

    /* A group never committed is lost at close, counters included. */
    upload_one_ok(fx->st, "LOST", STORE_TYPE_FREE, T0 + 9);
    assert_true(store_pending(fx->st));
    before = counters(fx->st, T0);
    assert_int_equal(before.type[STORE_TYPE_FREE].created, 3);
    reopen(fx, STORE_MAP_SIZE_DEFAULT);
    assert_int_equal(store_get(fx->st, "LOST", &c), STORE_INVALID);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].created, 2);
}

/* With room in the map, assignments and redemptions run directly in the group (no nested
 * transaction); their failed checks must neither write nor spoil the group, and a nested
 * operation later in the same group must still be undone alone. */
static void
test_group_direct_ops(void **state)
{
    struct fx *fx = *state;
    const struct store_coupon good[] = {coupon("A", STORE_TYPE_FREE, T0),
                                        coupon("B", STORE_TYPE_FREE, T0 + 1)};
    const struct store_coupon bad[] = {coupon("A", STORE_TYPE_FREE, T0)};
    struct store_coupon c;
    size_t n_rej;

    upload_ok(fx->st, good, 2);
    commit_ok(fx->st);
    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0, "A");
    assert_int_equal(store_redeem(fx->st, "A", "bob", T0, NULL), STORE_INVALID);
    assert_int_equal(store_redeem(fx->st, "NOPE", "alice", T0, NULL), STORE_INVALID);
    assert_int_equal(store_assign(fx->st, STORE_TYPE_STANDARD, "carol", T0, &c), STORE_NO_COUPONS);
    assert_int_equal(store_redeem(fx->st, "A", "alice", T0 + 1, NULL), STORE_EXPIRED);
    assert_int_equal(store_redeem(fx->st, "A", "alice", T0, NULL), STORE_OK);
    assert_int_equal(store_upload(fx->st, bad, 1, false, NULL, 0, &n_rej), STORE_REJECTED);
    assign_expect(fx->st, STORE_TYPE_FREE, "dave", T0, "B");
    commit_ok(fx->st);

    assert_int_equal(store_get(fx->st, "A", &c), STORE_OK);
    assert_string_equal(c.user, "alice");
    assert_int_equal(c.uses, 1);
    assert_int_equal(store_get(fx->st, "B", &c), STORE_OK);
    assert_string_equal(c.user, "dave");
    assert_type_counters(&counters(fx->st, T0).type[STORE_TYPE_FREE], 2, 2, 1, 0, 0);
    reopen(fx, STORE_MAP_SIZE_DEFAULT);
    assert_type_counters(&counters(fx->st, T0).type[STORE_TYPE_FREE], 2, 2, 1, 0, 0);
    check_ok(fx->st, T0);
}

static void
test_group_partial_failure(void **state)
{
    struct fx *fx = *state;
    const struct store_coupon good[] = {coupon("A", STORE_TYPE_FREE, T0),
                                        coupon("B", STORE_TYPE_FREE, T0)};
    const struct store_coupon bad[] = {coupon("C", STORE_TYPE_FREE, T0),
                                       coupon("A", STORE_TYPE_FREE, T0)};
    struct store_coupon c;
    size_t n_rej;
    struct history_buf h;

    upload_ok(fx->st, good, 2);
    assert_int_equal(store_upload(fx->st, bad, 2, false, NULL, 0, &n_rej), STORE_REJECTED);
    assert_int_equal(n_rej, 1);
    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0, "A");
    assert_int_equal(store_redeem(fx->st, "A", "bob", T0, NULL), STORE_INVALID);
    assert_int_equal(store_redeem(fx->st, "A", "alice", T0, NULL), STORE_OK);
    assert_int_equal(store_upload(fx->st, &bad[0], 1, true, NULL, 0, &n_rej), STORE_OK);
    assert_true(store_pending(fx->st));
    commit_ok(fx->st);

    assert_int_equal(store_get(fx->st, "A", &c), STORE_OK);
    assert_string_equal(c.user, "alice");
    assert_int_equal(c.uses, 1);
    assert_int_equal(store_get(fx->st, "B", &c), STORE_OK);
    assert_int_equal(store_get(fx->st, "C", &c), STORE_INVALID);
    assert_type_counters(&counters(fx->st, T0).type[STORE_TYPE_FREE], 2, 1, 1, 0, 1);
    h = history(fx->st, 0, 10, SIZE_MAX);
    assert_int_equal(h.n, 1);
    reopen(fx, STORE_MAP_SIZE_DEFAULT);
    assert_type_counters(&counters(fx->st, T0).type[STORE_TYPE_FREE], 2, 1, 1, 0, 1);
}

static void
test_group_reads(void **state)
{
    struct fx *fx = *state;
    struct store_coupon c;

    /* A snapshot taken before a commit must not hide it afterwards. */
    assert_int_equal(store_get(fx->st, "A", &c), STORE_INVALID);
    upload_one_ok(fx->st, "A", STORE_TYPE_FREE, T0);
    assert_true(store_pending(fx->st));
    assert_int_equal(store_get(fx->st, "A", &c), STORE_OK); /* through the group */
    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0, "A");
    assert_int_equal(store_validate(fx->st, "A", "alice", T0, &c), STORE_OK);
    assert_string_equal(c.user, "alice");
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].assigned, 1);
    check_ok(fx->st, T0); /* consistent inside the group too */
    commit_ok(fx->st);
    assert_int_equal(store_validate(fx->st, "A", "alice", T0, &c), STORE_OK);

    /* Snapshot kept, then refreshed by the next commit; release drops it. */
    assert_int_equal(store_get(fx->st, "B", &c), STORE_INVALID);
    upload_one_ok(fx->st, "B", STORE_TYPE_FREE, T0);
    commit_ok(fx->st);
    assert_int_equal(store_get(fx->st, "B", &c), STORE_OK);
    store_release(fx->st);
    store_release(fx->st);
    assert_int_equal(store_get(fx->st, "B", &c), STORE_OK);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0), 1);
    store_release(fx->st);
    assign_expect(fx->st, STORE_TYPE_FREE, "bob", T0, "B");
    store_release(fx->st); /* with a group open: the group stays */
    assert_true(store_pending(fx->st));
    commit_ok(fx->st);
    assert_int_equal(store_get(fx->st, "B", &c), STORE_OK);
    assert_string_equal(c.user, "bob");
}

/* --- purge --- */

static void
test_purge(void **state)
{
    struct fx *fx = *state;
    struct store_coupon first[] = {coupon("P2", STORE_TYPE_FREE, T0 - 50),
                                   coupon("P3", STORE_TYPE_FREE, T0 - 40)};
    const struct store_coupon second[] = {
        coupon("P1", STORE_TYPE_FREE, T0 - 100), coupon("P4", STORE_TYPE_FREE, T0 + 100),
        coupon("P5", STORE_TYPE_STANDARD, T0 - 10), coupon("P6", STORE_TYPE_FREE, T0)};
    struct store_coupon c;
    uint64_t purged = 5;
    bool more = false;

    first[1].max_uses = 2;
    upload_ok(fx->st, first, 2);
    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0 - 200, "P2");
    assign_expect(fx->st, STORE_TYPE_FREE, "bob", T0 - 200, "P3");
    assert_int_equal(store_redeem(fx->st, "P3", "bob", T0 - 100, NULL), STORE_OK);
    upload_ok(fx->st, second, 4);
    commit_ok(fx->st);

    assert_int_equal(store_purge(fx->st, T0, 0, &purged, &more), STORE_OK);
    assert_int_equal(purged, 5);
    assert_true(more);
    assert_false(store_pending(fx->st));
    assert_int_equal(store_purge(fx->st, T0, 1, &purged, &more), STORE_OK);
    assert_int_equal(purged, 6); /* added to */
    assert_true(more);
    assert_int_equal(store_get(fx->st, "P1", &c), STORE_INVALID); /* oldest expiry first */
    assert_int_equal(store_get(fx->st, "P2", &c), STORE_OK);
    commit_ok(fx->st);
    purged = 0;
    assert_int_equal(store_purge(fx->st, T0, 10, &purged, &more), STORE_OK);
    assert_int_equal(purged, 2);
    assert_false(more);
    commit_ok(fx->st);

    assert_int_equal(store_get(fx->st, "P2", &c), STORE_INVALID); /* assigned, unredeemed */
    assert_int_equal(store_get(fx->st, "P5", &c), STORE_INVALID);
    assert_int_equal(store_get(fx->st, "P3", &c), STORE_OK); /* redeemed */
    assert_int_equal(store_get(fx->st, "P4", &c), STORE_OK); /* not expired */
    assert_int_equal(store_get(fx->st, "P6", &c), STORE_OK); /* expires == now */
    assert_type_counters(&counters(fx->st, T0).type[STORE_TYPE_FREE], 5, 2, 1, 2, 2);
    assert_type_counters(&counters(fx->st, T0).type[STORE_TYPE_STANDARD], 1, 0, 0, 1, 0);
    assert_int_equal(history(fx->st, 0, 10, SIZE_MAX).n, 1);
    /* A redeemed coupon stays even when expired and not used up. */
    assert_int_equal(store_redeem(fx->st, "P3", "bob", T0, NULL), STORE_EXPIRED);
    purged = 0;
    assert_int_equal(store_purge(fx->st, T0 + 1000, 10, &purged, &more), STORE_OK);
    assert_int_equal(purged, 2);
    commit_ok(fx->st);
    assert_int_equal(store_get(fx->st, "P3", &c), STORE_OK);
    purged = 0;
    assert_int_equal(store_purge(fx->st, T0 + 1000, 10, &purged, &more), STORE_OK);
    assert_int_equal(purged, 0);
    assert_false(more);
    assert_false(store_pending(fx->st));
    check_ok(fx->st, T0 + 1000);
}

static void
test_purge_many(void **state)
{
    struct fx *fx = *state;
    enum { N = 3000, CHUNK = 700 };
    struct store_coupon *recs = calloc(N, sizeof *recs);
    uint64_t purged = 0;
    bool more = true;
    int rounds = 0;

    assert_non_null(recs);
    for (int i = 0; i < N; i++) {
        char code[32];

        snprintf(code, sizeof code, "PM%05d", i);
        recs[i] = coupon(code, (enum store_type)(i % STORE_NTYPES), T0 - (i % 97));
    }
    upload_ok(fx->st, recs, N);
    for (int i = 0; i < 100; i++)
        assert_int_equal(
            store_assign(fx->st, (enum store_type)(i % STORE_NTYPES), "u", T0 - 100, NULL),
            STORE_OK);
    commit_ok(fx->st);
    while (more) {
        assert_int_equal(store_purge(fx->st, T0 + 1, CHUNK, &purged, &more), STORE_OK);
        commit_ok(fx->st);
        rounds++;
    }
    assert_int_equal(purged, N);
    assert_int_equal(rounds, (N + CHUNK - 1) / CHUNK);
    free(recs);
}

/* --- map full --- */

/* A batch of `n` coupons named PREFIX-i, all FREE. */
static struct store_coupon *
batch(const char *prefix, size_t n, int64_t expires)
{
    struct store_coupon *recs = calloc(n, sizeof *recs);

    assert_non_null(recs);
    for (size_t i = 0; i < n; i++) {
        char code[STORE_CODE_MAX + 1];

        snprintf(code, sizeof code, "%s-%06zu-PADDING-TO-MAKE-RECORDS-LARGER", prefix, i);
        recs[i] = coupon(code, STORE_TYPE_FREE, expires + (int64_t)(i % 1000));
    }
    return recs;
}

static void
test_map_full(void **state)
{
    struct fx *fx = *state;
    enum { BATCH = 500, MAX_BATCHES = 1000 };
    struct store_coupon *recs = NULL;
    struct store_coupon c;
    enum store_err e = STORE_OK;
    size_t stored = 0, n_rej;
    char prefix[16];

    reopen(fx, SMALL_MAP);
    for (int b = 0; b < MAX_BATCHES && e == STORE_OK; b++) {
        free(recs);
        snprintf(prefix, sizeof prefix, "B%04d", b);
        recs = batch(prefix, BATCH, T0);
        e = store_upload(fx->st, recs, BATCH, false, NULL, 0, &n_rej);
        if (e == STORE_OK)
            e = store_commit(fx->st);
        if (e == STORE_OK)
            stored += BATCH;
    }
    assert_int_equal(e, STORE_FULL);
    assert_true(stored > 0);
    assert_non_null(strstr(store_last_error(fx->st), "MDB_MAP_FULL"));
    assert_false(store_pending(fx->st));
    /* Nothing of the failing batch, everything before it. */
    assert_int_equal(store_get(fx->st, recs[0].code, &c), STORE_INVALID);
    assert_int_equal(store_get(fx->st, recs[BATCH - 1].code, &c), STORE_INVALID);
    assert_int_equal(store_get(fx->st, "B0000-000000-PADDING-TO-MAKE-RECORDS-LARGER", &c),
                     STORE_OK);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].created, stored);
    assert_int_equal(available(fx->st, STORE_TYPE_FREE, T0), stored);
    check_ok(fx->st, T0);

    reopen(fx, SMALL_MAP);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].created, stored);
    check_ok(fx->st, T0);
    /* With room again, the batch goes in. */
    reopen(fx, 4 * SMALL_MAP);
    upload_ok(fx->st, recs, BATCH);
    commit_ok(fx->st);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].created, stored + BATCH);
    free(recs);
}

static void
test_map_full_in_group(void **state)
{
    struct fx *fx = *state;
    enum { SMALL = 10, HUGE = 30000 };
    struct store_coupon *small = batch("S", SMALL, T0);
    struct store_coupon *huge = batch("H", HUGE, T0);
    struct store_coupon c;
    size_t n_rej;

    reopen(fx, SMALL_MAP);
    upload_ok(fx->st, small, SMALL);
    assert_int_equal(store_upload(fx->st, huge, HUGE, false, NULL, 0, &n_rej), STORE_FULL);
    /* The group survives the failed operation and goes on. */
    assert_true(store_pending(fx->st));
    assert_int_equal(store_get(fx->st, small[SMALL - 1].code, &c), STORE_OK);
    assert_int_equal(store_get(fx->st, huge[0].code, &c), STORE_INVALID);
    assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0, small[0].code);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].created, SMALL);
    check_ok(fx->st, T0);
    commit_ok(fx->st);
    assert_int_equal(store_get(fx->st, small[0].code, &c), STORE_OK);
    assert_string_equal(c.user, "alice");
    assert_int_equal(store_get(fx->st, huge[HUGE - 1].code, &c), STORE_INVALID);

    reopen(fx, SMALL_MAP);
    assert_type_counters(&counters(fx->st, T0).type[STORE_TYPE_FREE], SMALL, 1, 0, 0, SMALL - 1);
    check_ok(fx->st, T0);
    free(small);
    free(huge);
}

/* A group that fills the map: its last operation fails alone, then the commit itself finds no
 * room (for the counters and LMDB's free list), and the whole group is gone, counters included. */
static void
test_group_commit_full(void **state)
{
    struct fx *fx = *state;
    enum { MAX_OPS = 100000 };
    struct store_counters before, after;
    struct store_coupon c;
    enum store_err e = STORE_OK;
    int ops = 0;

    reopen(fx, SMALL_MAP);
    upload_one_ok(fx->st, "BASE", STORE_TYPE_FREE, T0);
    commit_ok(fx->st);
    before = counters(fx->st, T0);
    while (e == STORE_OK && ops < MAX_OPS) {
        char code[STORE_CODE_MAX + 1];

        snprintf(code, sizeof code, "G%06d-PADDING-TO-MAKE-RECORDS-LARGER", ops++);
        c = coupon(code, STORE_TYPE_FREE, T0);
        e = store_upload(fx->st, &c, 1, false, NULL, 0, NULL);
    }
    assert_int_equal(e, STORE_FULL);
    assert_true(store_pending(fx->st));
    assert_int_equal(store_get(fx->st, "G000000-PADDING-TO-MAKE-RECORDS-LARGER", &c), STORE_OK);
    assert_int_equal(store_commit(fx->st), STORE_FULL);
    assert_non_null(strstr(store_last_error(fx->st), "commit"));
    assert_false(store_pending(fx->st));
    assert_int_equal(store_get(fx->st, "G000000-PADDING-TO-MAKE-RECORDS-LARGER", &c),
                     STORE_INVALID);
    after = counters(fx->st, T0);
    assert_memory_equal(&before, &after, sizeof before);
    check_ok(fx->st, T0);
    /* The room is back. */
    upload_one_ok(fx->st, "NEXT", STORE_TYPE_FREE, T0);
    commit_ok(fx->st);
    reopen(fx, SMALL_MAP);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_FREE].created, 2);
}

/* --- store_check against corruption made behind the store's back --- */

typedef void (*corrupt_fn)(MDB_txn *txn, MDB_dbi dbi);

/* Opens the closed store's environment directly, runs fn on database `db`, commits. */
static void
raw_edit(const char *dir, const char *db, corrupt_fn fn)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    fn(txn, dbi);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void
del_first(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_cursor *cur;
    MDB_val k, v;

    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
    assert_int_equal(mdb_cursor_del(cur, 0), 0);
    mdb_cursor_close(cur);
}

/* meta "state": version, two u64 seqs, then per type created, ...: bump created.FREE. */
static void
bump_created_free(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_val k = {5, "state"}, v;
    uint8_t buf[512];

    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    assert_true(v.mv_size <= sizeof buf);
    memcpy(buf, v.mv_data, v.mv_size);
    buf[1 + 8 + 8 + 6 * 8 * STORE_TYPE_FREE + 7]++;
    v.mv_data = buf;
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
}

/* A second avail entry, the first one's with seq 99, naming the assigned coupon "AS". */
static void
avail_for_assigned(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_cursor *cur;
    MDB_val k, v = {2, "AS"};
    uint8_t key[64];

    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
    assert_true(k.mv_size == 17);
    memcpy(key, k.mv_data, k.mv_size);
    key[16] = 99;
    k.mv_data = key;
    v = (MDB_val){2, "AS"};
    mdb_cursor_close(cur);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
}

/* Coupon "AS": uses (offset 20) set above max_uses. */
static void
overuse(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_val k = {2, "AS"}, v;
    uint8_t buf[512];

    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    memcpy(buf, v.mv_data, v.mv_size);
    buf[23] = 9;
    v.mv_data = buf;
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
}

static void
garble_first(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_cursor *cur;
    MDB_val k, v = {3, "xyz"};

    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
    v = (MDB_val){3, "xyz"};
    assert_int_equal(mdb_cursor_put(cur, &k, &v, MDB_CURRENT), 0);
    mdb_cursor_close(cur);
}

static const struct {
    const char *db;
    corrupt_fn fn;
    const char *expect; /* in store_check's message */
} corruptions[] = {
    {"avail", del_first, "has no avail index entry"},
    {"meta", bump_created_free, "created.FREE"},
    {"avail", avail_for_assigned,
     "avail index entry FREE/2026-12-31T23:59:59Z/99 points at "
     "assigned coupon AS"},
    {"coupons", overuse, "coupon AS has 9 uses of max 2"},
    {"history", del_first, "history record 2 found where 1 belongs"},
    {"expiry", del_first, "has no expiry index entry"},
    {"coupons", garble_first, "does not decode"},
};

static void
test_check_detects_corruption(void **state)
{
    struct fx *fx = *state;
    struct store_coupon recs[] = {coupon("AS", STORE_TYPE_FREE, T0),
                                  coupon("FR", STORE_TYPE_FREE, T0)};
    char msg[CHECK_MSG];

    recs[0].max_uses = 2;
    fx->skip_check = true;
    for (size_t i = 0; i < sizeof corruptions / sizeof corruptions[0]; i++) {
        store_close(fx->st);
        rm_dir(fx->dir);
        assert_non_null(mkdtemp(strcpy(fx->dir, "/tmp/test_store.XXXXXX")));
        fx->st = open_store(fx->dir, STORE_MAP_SIZE_DEFAULT);
        upload_ok(fx->st, recs, 2);
        assign_expect(fx->st, STORE_TYPE_FREE, "alice", T0, "AS");
        assert_int_equal(store_redeem(fx->st, "AS", "alice", T0, NULL), STORE_OK);
        assert_int_equal(store_redeem(fx->st, "AS", "alice", T0, NULL), STORE_OK);
        commit_ok(fx->st);
        check_ok(fx->st, T0);
        store_close(fx->st);
        fx->st = NULL;
        raw_edit(fx->dir, corruptions[i].db, corruptions[i].fn);
        fx->st = open_store(fx->dir, STORE_MAP_SIZE_DEFAULT);
        msg[0] = '\0';
        assert_int_equal(store_check(fx->st, T0, msg, sizeof msg), STORE_CORRUPT);
        if (strstr(msg, corruptions[i].expect) == NULL)
            fail_msg("corruption %zu: message \"%s\" lacks \"%s\"", i, msg, corruptions[i].expect);
        assert_string_equal(store_last_error(fx->st), msg);
    }
}

static void
test_open_rejects_bad_meta(void **state)
{
    struct fx *fx = *state;
    char err[ERRBUF] = "";
    struct store *st = NULL;

    store_close(fx->st);
    fx->st = NULL;
    raw_edit(fx->dir, "meta", garble_first);
    assert_int_equal(store_open(fx->dir, 0, &st, err, sizeof err), STORE_CORRUPT);
    assert_null(st);
    assert_non_null(strstr(err, fx->dir));
}

/* --- performance sanity (printed, not asserted) --- */

static void
test_performance(void **state)
{
    struct fx *fx = *state;
    enum { BATCH = 50000, ASSIGNS = 100000 / PERF_SCALE, GROUP = 100 };
    struct store_coupon *recs = calloc(BATCH, sizeof *recs);
    double t, upload_ms, assign_ms, stats_ms;

    assert_non_null(recs);
    for (int b = 0; b < 2; b++) {
        for (int i = 0; i < BATCH; i++) {
            char code[STORE_CODE_MAX + 1];

            snprintf(code, sizeof code, "PERF%d-%08d", b, i * 7919 % BATCH);
            recs[i] = coupon(code, STORE_TYPE_STANDARD, T0 + 86400 * (i % 30));
        }
        t = now_ms();
        upload_ok(fx->st, recs, BATCH);
        commit_ok(fx->st);
        upload_ms = now_ms() - t;
        if (b == 0)
            printf("perf: upload of %d records + commit: %.1f ms\n", BATCH, upload_ms);
    }
    t = now_ms();
    for (int i = 0; i < ASSIGNS; i++) {
        assert_int_equal(store_assign(fx->st, STORE_TYPE_STANDARD, "user", T0, NULL), STORE_OK);
        if ((i + 1) % GROUP == 0)
            commit_ok(fx->st);
    }
    assign_ms = now_ms() - t;
    printf("perf: %d assigns in groups of %d: %.1f ms (%.0f/s, %.1f us each)\n", ASSIGNS, GROUP,
           assign_ms, ASSIGNS / (assign_ms / 1e3), assign_ms * 1e3 / ASSIGNS);
    t = now_ms();
    assert_int_equal(available(fx->st, STORE_TYPE_STANDARD, T0), 2 * BATCH - ASSIGNS);
    assert_int_equal(available(fx->st, STORE_TYPE_STANDARD, T0 + 86400 * 30), 0);
    stats_ms = now_ms() - t;
    printf("perf: store_counters now and 30 days on (%d entries expire): %.3f ms\n",
           2 * BATCH - ASSIGNS, stats_ms);
    assert_int_equal(counters(fx->st, T0).type[STORE_TYPE_STANDARD].assigned, ASSIGNS);
    free(recs);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_missing_dir),
        cmocka_unit_test_setup_teardown(test_commit_without_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_separation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_invalid_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate_redeem_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_each_op, setup, teardown),
        cmocka_unit_test_setup_teardown(test_available_over_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_direct_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_partial_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full_in_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_detects_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_rejects_bad_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_performance, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
