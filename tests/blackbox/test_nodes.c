/* test_nodes.c - a node and its store, as coupond(8) and PROTOCOL.md ("Several nodes on
 * PostgreSQL") describe them: --store takes a PostgreSQL URI and nothing else, a store that
 * cannot be reached at start is a start-up failure that names no password, STATS names the
 * node (--node-name) and the kind of store, `coupond --check --store URI` checks a PostgreSQL
 * store, and a PostgreSQL that goes away makes the commands that need it answer ERR UNAVAILABLE
 * while the node keeps its connections, serves what needs no store, and reconnects by itself
 * (a retry with the same id= is then safe). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bb.h"

#define OUT_MAX      BB_RUN_OUT_MAX
#define CODE_MAX     64          /* a code in a reply */
#define RECONNECT_MS 30000       /* the cluster's restart plus the node's reconnection backoff */
#define RETRY_MS     200         /* between two tries while the node reconnects */
#define SECRET       "sekrit-pw" /* a password that must appear in no message */

/* ---- helpers ---- */

static int
tmpdir_setup(void **state)
{
    char *dir = malloc(BB_PATH_MAX);
    if (dir == NULL || !bb_tmpdir_make(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int
tmpdir_teardown(void **state)
{
    bb_tmpdir_remove(*state);
    free(*state);
    return 0;
}

/* The code of an "OK code=C ..." line into code. */
static void
code_of(const char *line, char code[CODE_MAX + 1])
{
    const char *p = strstr(line, "code=");
    size_t n = p != NULL ? strcspn(p + 5, " ") : 0;
    if (!bb_has_prefix(line, "OK") || p == NULL || n == 0 || n > CODE_MAX)
        fail_msg("not an OK line with a coupon: \"%s\"", line);
    memcpy(code, p + 5, n);
    code[n] = '\0';
}

/* Expects an OK line with coupon `code`, replayed or not. */
static void
expect_coupon(const char *line, const char *code, bool replayed)
{
    char got[CODE_MAX + 1];
    code_of(line, got);
    if (strcmp(got, code) != 0 || (strstr(line, " replayed=1") != NULL) != replayed)
        fail_msg("expected coupon %s%s, got \"%s\"", code, replayed ? " replayed=1" : "", line);
}

/* ---- flags ---- */

/* --store takes a PostgreSQL URI only; --node-name one word. */
static void
test_bad_store_flags(void **state)
{
    const char *dir = *state;
    static char out[OUT_MAX], err[OUT_MAX];
    static const char *const cases[][2] = {
        {"--store", "/var/lib/coupond"},
        {"--store", "mysql://db/coupons"},
        {"--store", ""},
        {"--node-name", "two words"},
        {"--node-name", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const args[] = {"-d", dir, cases[i][0], cases[i][1], NULL};
        int st = bb_run(args, out, OUT_MAX, err, OUT_MAX);
        if (st != 2 || strchr(err, '\n') != strrchr(err, '\n'))
            fail_msg("coupond %s '%s': status %d (expected 2 and one line), stderr \"%s\"",
                     cases[i][0], cases[i][1], st, err);
    }
}

/* A PostgreSQL that cannot be reached at start: exit 1, one line, no password in it. */
static void
test_store_unreachable_at_start(void **state)
{
    const char *dir = *state;
    static char out[OUT_MAX], err[OUT_MAX];
    const char *const args[] = {
        "-d", dir,       "-p",
        "0",  "--store", "postgresql://coupond:" SECRET "@127.0.0.1:1/coupons?connect_timeout=2",
        NULL};
    int st = bb_run(args, out, OUT_MAX, err, OUT_MAX);
    print_message("unreachable store: status %d, stderr \"%s\"\n", st, err);
    if (st != 1 || strchr(err, '\n') != strrchr(err, '\n') || strstr(err, "coupons") == NULL)
        fail_msg("expected status 1 and one line naming the database, got %d: \"%s\"", st, err);
    if (strstr(err, SECRET) != NULL || strstr(out, SECRET) != NULL)
        fail_msg("the password is in the message: \"%s%s\"", out, err);
}

/* STATS: node (--node-name) and store. */
static void
test_stats_node_and_store(void **state)
{
    static char reply[BB_REPLY_MAX];
    char word[128] = "";
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    assert_string_equal(bb_cmd(c, "STATS", reply), "OK");
    if (!bb_stat_text(reply, "node", word, sizeof word) || strcmp(word, "alpha-1") != 0)
        fail_msg("STAT node is \"%s\", not alpha-1:\n%s", word, reply);
    if (!bb_stat_text(reply, "store", word, sizeof word) ||
        strcmp(word, bb_on_pg() ? "postgresql" : "lmdb") != 0)
        fail_msg("STAT store is \"%s\":\n%s", word, reply);
    bb_close(c);
}

/* ---- PostgreSQL ---- */

/* `coupond --check --store URI` checks the schema a server used; a place without a store is
 * "no store". */
static void
test_check_store(void **state)
{
    static char reply[BB_REPLY_MAX], out[OUT_MAX], err[OUT_MAX];
    char code[CODE_MAX + 1], cmd[128], absent[BB_STORE_URI_MAX + 64];
    struct bb_server *s = bb_server_of(state);
    bb_pg_only("--check --store reads a PostgreSQL store");
    struct bb_client *c = bb_connect_admin(s);
    bb_upload_gen(c, "CK-", "STANDARD", 20, NULL, 2);
    code_of(bb_cmd(c, "REQUEST alice STANDARD", reply), code);
    bb_fmt(cmd, sizeof cmd, "REDEEM alice %s", code);
    bb_expect_prefix(c, cmd, "OK");
    bb_close(c);
    assert_int_equal(bb_server_stop(s), 0);

    const char *const check[] = {"--check", "-d", s->dir, "--store", s->store, NULL};
    int st = bb_run(check, out, OUT_MAX, err, OUT_MAX);
    if (st != 0 || strstr(out, "store is consistent") == NULL)
        fail_msg("coupond --check --store: status %d, stdout \"%s\", stderr \"%s\"", st, out, err);
    bb_fmt(absent, sizeof absent, "%s&options=-csearch_path%%3Dbb_absent",
           getenv("COUPOND_TEST_PG_URI"));
    const char *const none[] = {"--check", "-d", s->dir, "--store", absent, NULL};
    st = bb_run(none, out, OUT_MAX, err, OUT_MAX);
    if (st == 0 || strstr(err, "no store in") == NULL)
        fail_msg("coupond --check on a schema without a store: status %d, stderr \"%s\"", st, err);
}

/* PostgreSQL stops: what needs it is ERR UNAVAILABLE, the rest is served, the connections stay;
 * it starts again: the node is back by itself, and a write retried with its id is done once. */
static void
test_store_out_of_reach(void **state)
{
    static char reply[BB_REPLY_MAX];
    char first[CODE_MAX + 1], second[CODE_MAX + 1], cmd[128];
    struct bb_server *s = bb_server_of(state);
    bb_pg_only("only a store over the network can be out of reach");
    struct bb_client *a = bb_connect_admin(s), *c = bb_connect(s);
    bb_upload_gen(a, "UN-", "FREE", 3, NULL, 1);
    code_of(bb_cmd(c, "REQUEST alice FREE id=un-1", reply), first);

    if (!bb_pg_cluster("stop"))
        fail_msg("cannot stop the test cluster");
    bb_expect_prefix(c, "REQUEST bob FREE id=un-2", "ERR UNAVAILABLE");
    bb_fmt(cmd, sizeof cmd, "VALIDATE alice %s", first);
    bb_expect_prefix(c, cmd, "ERR UNAVAILABLE");
    bb_expect_prefix(a, "STATS", "ERR UNAVAILABLE");
    bb_expect(c, "PING", "OK PONG");
    bb_expect_prefix(c, "HELP", "OK");
    bb_expect(a, "PING", "OK PONG");

    if (!bb_pg_cluster("start"))
        fail_msg("cannot start the test cluster again");
    int64_t until = bb_now_ms() + RECONNECT_MS;
    const char *st;
    while (bb_has_prefix(st = bb_cmd(c, "REQUEST bob FREE id=un-2", reply), "ERR UNAVAILABLE") &&
           bb_now_ms() < until)
        bb_sleep_ms(RETRY_MS);
    code_of(st, second);
    expect_coupon(st, second, false);
    expect_coupon(bb_cmd(c, "REQUEST bob FREE id=un-2", reply), second, true);
    expect_coupon(bb_cmd(c, "REQUEST alice FREE id=un-1", reply), first, true);
    assert_int_equal(bb_stat(a, "assigned.FREE"), 2);
    assert_int_equal(bb_stat(a, "available.FREE"), 1);
    bb_close(c);
    bb_close(a);
}

int
main(void)
{
    static const char *const alpha[] = {"--node-name", "alpha-1", NULL};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_store_flags, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_store_unreachable_at_start, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_stats_node_and_store, bb_setup, bb_teardown,
                                                 (void *)alpha),
        cmocka_unit_test_setup_teardown(test_check_store, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_store_out_of_reach, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
