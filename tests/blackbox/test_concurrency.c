/* test_concurrency.c - many clients at once: every REQUEST gets its own coupon, pipelined REDEEMs
 * from many connections count every use exactly once. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bb.h"
#include "proto.h"

#define NCLIENTS        1000  /* concurrent connections asking for a coupon */
#define NREDEEMERS      100   /* connections pipelining REDEEMs */
#define REDEEMS         20    /* max_uses of each coupon, and REDEEMs that succeed */
#define NOFILE_WANTED   4096  /* fds for NCLIENTS sockets here and in the server */
#define CONC_TIMEOUT_MS 30000 /* a connect may wait for a SYN retransmit on a full backlog */
#define CODE_PREFIX     "K-"

/* Parses the coupon of an OK reply and returns the number after CODE_PREFIX, or -1. */
static long
coupon_index(const char *status, struct proto_coupon *cp)
{
    if (!bb_has_prefix(status, "OK") || !proto_reply_coupon(status, strlen(status), cp))
        return -1;
    if (strncmp(cp->code, CODE_PREFIX, strlen(CODE_PREFIX)) != 0)
        return -1;
    char *end;
    long i = strtol(cp->code + strlen(CODE_PREFIX), &end, 10);
    return *end == '\0' ? i : -1;
}

static void
test_1000_concurrent_requests(void **state)
{
    static struct bb_client *clients[NCLIENTS];
    static bool seen[NCLIENTS];
    static char reply[BB_REPLY_MAX];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *admin = bb_connect(s);
    bb_auth(admin);
    bb_upload_gen(admin, CODE_PREFIX, "", NCLIENTS, NULL, 1);

    int64_t t0 = bb_now_ms();
    for (int i = 0; i < NCLIENTS; i++) {
        clients[i] = bb_connect_opt(s, 0);
        if (clients[i] == NULL)
            fail_msg("connect %d of %d failed", i + 1, NCLIENTS);
        bb_set_timeout(clients[i], CONC_TIMEOUT_MS);
    }
    for (int i = 0; i < NCLIENTS; i++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "REQUEST user%d\n", i);
        bb_send_str(clients[i], cmd);
    }
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < NCLIENTS; i++) {
        struct proto_coupon cp;
        const char *status = bb_get_reply(clients[i], reply);
        long k = coupon_index(status, &cp);
        if (k < 0 || k >= NCLIENTS)
            fail_msg("client %d: not a coupon of this test: \"%s\"", i, reply);
        if (seen[k])
            fail_msg("client %d: coupon %s was already given to another client", i, cp.code);
        seen[k] = true;
        if (cp.uses != 0 || cp.max_uses != 1)
            fail_msg("client %d: wrong uses in \"%s\"", i, reply);
    }
    print_message("%d connections open at once, all served in %lld ms\n", NCLIENTS,
                  (long long)(bb_now_ms() - t0));
    for (int i = 0; i < NCLIENTS; i++)
        bb_close(clients[i]);
    assert_int_equal(bb_stat(admin, "assigned.NONE"), NCLIENTS);
    assert_int_equal(bb_stat(admin, "available.NONE"), 0);
    bb_expect_prefix(admin, "REQUEST late", "ERR NO_COUPONS");
    bb_close(admin);
}

static void
test_100_clients_pipelining_redeems(void **state)
{
    static struct bb_client *clients[NREDEEMERS];
    static char codes[NREDEEMERS][PROTO_CODE_MAX + 1];
    static char reply[BB_REPLY_MAX];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *admin = bb_connect(s);
    bb_auth(admin);
    bb_upload_gen(admin, CODE_PREFIX, "", NREDEEMERS, NULL, REDEEMS);

    for (int i = 0; i < NREDEEMERS; i++) {
        char cmd[64];
        struct proto_coupon cp;
        clients[i] = bb_connect(s);
        bb_set_timeout(clients[i], CONC_TIMEOUT_MS);
        snprintf(cmd, sizeof cmd, "REQUEST r%d", i);
        const char *status = bb_cmd(clients[i], cmd, reply);
        if (coupon_index(status, &cp) < 0)
            fail_msg("client %d: \"%s\"", i, reply);
        strcpy(codes[i], cp.code);
    }
    /* Every client sends all its REDEEMs, one more than the coupon allows, before any reads. */
    for (int i = 0; i < NREDEEMERS; i++) {
        char buf[(REDEEMS + 1) * 96];
        size_t len = 0;
        for (int r = 0; r <= REDEEMS; r++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "REDEEM r%d %s\n", i, codes[i]);
        bb_send(clients[i], buf, len);
    }
    for (int i = 0; i < NREDEEMERS; i++) {
        for (int r = 1; r <= REDEEMS; r++) {
            struct proto_coupon cp;
            const char *status = bb_get_reply(clients[i], reply);
            if (coupon_index(status, &cp) < 0 || strcmp(cp.code, codes[i]) != 0 ||
                cp.uses != (uint32_t)r)
                fail_msg("client %d, REDEEM %d: expected %s with uses=%d, got \"%s\"", i, r,
                         codes[i], r, reply);
        }
        const char *status = bb_get_reply(clients[i], reply);
        if (!bb_has_prefix(status, "ERR EXHAUSTED"))
            fail_msg("client %d, REDEEM %d: expected ERR EXHAUSTED, got \"%s\"", i, REDEEMS + 1,
                     reply);
        bb_close(clients[i]);
    }
    assert_int_equal(bb_stat(admin, "redeemed.NONE"), NREDEEMERS * REDEEMS);
    assert_int_equal(bb_stat(admin, "assigned.NONE"), NREDEEMERS);
    bb_close(admin);
}

int
main(void)
{
    /* Before any server starts: the servers inherit the limit too. */
    if (!bb_raise_nofile(NOFILE_WANTED))
        fprintf(stderr, "warning: could not raise RLIMIT_NOFILE to %d\n", NOFILE_WANTED);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_1000_concurrent_requests, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_100_clients_pipelining_redeems, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
