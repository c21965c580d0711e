/* test_nodes.c - a node and its store, as coupond(8) and PROTOCOL.md ("Several nodes on
 * PostgreSQL") describe them: --store takes a PostgreSQL URI and nothing else, a store that
 * cannot be reached at start is a start-up failure that names no password, STATS names the
 * node (--node-name) and the kind of store, `coupond --check --store URI` checks a PostgreSQL
 * store, and a PostgreSQL that goes away makes the commands that need it answer ERR UNAVAILABLE
 * while the node keeps its connections, serves what needs no store, and reconnects by itself
 * (a retry with the same id= is then safe). Then several nodes on one store: a node whose
 * task.key differs from the store's is refused, and three nodes serve 300 clients 3,000
 * coupons exactly once, 120 REDEEMs of a 50-use coupon exactly 50 times, MEGADEAL within the
 * limits counted over all three (read back from the store's own record of its grants), keep
 * every acknowledged write when one is killed with SIGKILL under load (the others keep
 * serving), and answer ERR UNAVAILABLE while PostgreSQL is stopped, then serve again. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bb.h"

#define OUT_MAX      BB_RUN_OUT_MAX
#define CODE_MAX     64    /* a code in a reply */
#define RECONNECT_MS 30000 /* the cluster's restart plus the node's reconnection backoff */
#define RETRY_MS     200   /* between two tries while the node reconnects */
#define DOWN_MS                                                                                    \
    3000                        /* an outage long enough that the node's writer and reader both    \
                                   back off for their longest wait (pg_conn.h: 2 s) */
#define SECRET      "sekrit-pw" /* a password that must appear in no message */
#define NODES       3           /* nodes of one store in the tests of several nodes */
#define FP_HEX      16          /* a task key fingerprint: 8 bytes in hex */
#define SERVE_MS    10000       /* "serve again within seconds" after PostgreSQL is back */
#define WAIT_IO_MS  20000       /* a held WAIT can take the whole --megadeal-wait */
#define MEGA_RATE   10          /* PROTOCOL.md's MEGADEAL limits, counted over every node */
#define MEGA_FLIGHT 5

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
 * it starts again: the node is back by itself, reads as soon as writes (its two connections to
 * the store back off each on its own schedule, up to 2 s apart: the first one back brings the
 * other), and a write retried with its id is done once. */
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
    bb_sleep_ms(DOWN_MS);
    bb_expect_prefix(a, "STATS", "ERR UNAVAILABLE");

    if (!bb_pg_cluster("start"))
        fail_msg("cannot start the test cluster again");
    int64_t until = bb_now_ms() + RECONNECT_MS;
    const char *st;
    while (bb_has_prefix(st = bb_cmd(c, "REQUEST bob FREE id=un-2", reply), "ERR UNAVAILABLE") &&
           bb_now_ms() < until)
        bb_sleep_ms(RETRY_MS);
    code_of(st, second);
    expect_coupon(st, second, false);
    assert_int_equal(bb_stat(a, "assigned.FREE"), 2); /* read right after the first write */
    expect_coupon(bb_cmd(c, "REQUEST bob FREE id=un-2", reply), second, true);
    expect_coupon(bb_cmd(c, "REQUEST alice FREE id=un-1", reply), first, true);
    assert_int_equal(bb_stat(a, "assigned.FREE"), 2);
    assert_int_equal(bb_stat(a, "available.FREE"), 1);
    bb_close(c);
    bb_close(a);
}

/* ---- several nodes on one store ---- */

/* A node whose task.key is not the store's refuses to start: exit 1, one line naming both
 * fingerprints. With the first node's keys copied, it starts. */
static void
test_task_key_differs(void **state)
{
    static char out[OUT_MAX], err[OUT_MAX], reply[BB_REPLY_MAX];
    char dir[BB_PATH_MAX], fp[64] = "", word[128];
    struct bb_server *s = bb_server_of(state);
    bb_pg_only("one node alone holds an LMDB store, and task.key beside it");
    if (!bb_pg_value(s, "SELECT fp FROM coupond_keys WHERE name = 'task'", fp, sizeof fp) ||
        strlen(fp) != FP_HEX)
        fail_msg("the store recorded no task key fingerprint: \"%s\"", fp);
    assert_true(bb_tmpdir_make(dir));
    const char *const args[] = {"-d", dir, "-p", "0", "--store", s->store, NULL};
    int st = bb_run(args, out, OUT_MAX, err, OUT_MAX);
    print_message("another task.key: status %d, stderr \"%s\"\n", st, err);
    const char *mine = strstr(err, "this node's fingerprint is ");
    if (st != 1 || strchr(err, '\n') != strrchr(err, '\n') || strstr(err, fp) == NULL ||
        mine == NULL || strncmp(mine + 27, fp, FP_HEX) == 0)
        fail_msg("expected status 1 and one line naming %s and another fingerprint, got %d: %s", fp,
                 st, err);
    bb_tmpdir_remove(dir);
    struct bb_server *peer = bb_server_start_peer(s, NULL, true);
    assert_non_null(peer);
    struct bb_client *c = bb_connect_admin(peer);
    assert_string_equal(bb_cmd(c, "STATS", reply), "OK");
    assert_true(bb_stat_text(reply, "store", word, sizeof word));
    assert_string_equal(word, "postgresql");
    bb_close(c);
    assert_int_equal(bb_server_stop(peer), 0);
    bb_server_free(peer);
}

/* Three nodes of one store, each with the first one's keys and a name of its own. */
static int
nodes_setup(void **state)
{
    static const char *const names[NODES][3] = {{"--node-name", "node-0", NULL},
                                                {"--node-name", "node-1", NULL},
                                                {"--node-name", "node-2", NULL}};
    struct bb_server **n = calloc(NODES, sizeof *n);
    *state = n;
    if (n == NULL || !bb_on_pg())
        return 0;
    n[0] = bb_server_start(names[0]);
    for (int i = 1; i < NODES && n[0] != NULL; i++)
        n[i] = bb_server_start_peer(n[0], names[i], true);
    for (int i = 0; i < NODES; i++)
        if (n[i] == NULL)
            return -1;
    return 0;
}

/* Stops every node still running: each must exit 0 (no crash, no sanitizer report). */
static int
nodes_teardown(void **state)
{
    struct bb_server **n = *state;
    int bad = 0;
    for (int i = 0; n != NULL && i < NODES; i++) {
        if (n[i] != NULL) {
            while (n[i]->clients != NULL)
                bb_close(n[i]->clients);
            if (n[i]->pid > 0 && bb_server_stop(n[i]) != 0)
                bad = -1;
        }
        bb_server_free(n[i]);
    }
    free(n);
    return bad;
}

static int
str_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Fails when any of the n codes (CODE_MAX + 1 bytes each) repeats. */
static void
expect_distinct(char (*codes)[CODE_MAX + 1], size_t n)
{
    qsort(codes, n, sizeof codes[0], str_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(codes[i - 1], codes[i]) == 0)
            fail_msg("coupon %s was given twice", codes[i]);
}

/* STATS `name` is `want` on every running node. */
static void
expect_stat_everywhere(struct bb_server **n, const char *name, uint64_t want)
{
    for (int i = 0; i < NODES; i++) {
        if (n[i]->pid <= 0)
            continue;
        struct bb_client *a = bb_connect_admin(n[i]);
        uint64_t got = bb_stat(a, name);
        if (got != want)
            fail_msg("node-%d: STATS %s is %llu, not %llu", i, name, (unsigned long long)got,
                     (unsigned long long)want);
        bb_close(a);
    }
}

#define TAKE_CLIENTS 300 /* spread over the nodes */
#define TAKE_EACH    10  /* REQUESTs each client pipelines */

/* 300 clients on three nodes take 3,000 coupons, each once; then none is left anywhere. */
static void
test_nodes_take_all(void **state)
{
    static char reply[BB_REPLY_MAX], cmds[TAKE_EACH * 64];
    static char codes[TAKE_CLIENTS * TAKE_EACH][CODE_MAX + 1];
    static struct bb_client *cs[TAKE_CLIENTS];
    struct bb_server **n = *state;
    bb_pg_only("several nodes share a PostgreSQL store only");
    assert_true(bb_raise_nofile(4 * TAKE_CLIENTS));
    struct bb_client *a = bb_connect_admin(n[0]);
    bb_upload_gen(a, "TK-", "STANDARD", TAKE_CLIENTS * TAKE_EACH, NULL, 1);
    for (int i = 0; i < TAKE_CLIENTS; i++) {
        size_t len = 0;
        cs[i] = bb_connect(n[i % NODES]);
        for (int k = 0; k < TAKE_EACH; k++)
            len += (size_t)snprintf(cmds + len, sizeof cmds - len, "REQUEST u%d STANDARD\n", i);
        bb_send(cs[i], cmds, len);
    }
    for (int i = 0; i < TAKE_CLIENTS; i++) {
        for (int k = 0; k < TAKE_EACH; k++)
            code_of(bb_get_reply(cs[i], reply), codes[i * TAKE_EACH + k]);
        bb_close(cs[i]);
    }
    expect_distinct(codes, TAKE_CLIENTS * TAKE_EACH);
    for (int i = 0; i < NODES; i++) {
        struct bb_client *c = bb_connect(n[i]);
        bb_expect_prefix(c, "REQUEST late STANDARD", "ERR NO_COUPONS");
        bb_close(c);
    }
    expect_stat_everywhere(n, "assigned.STANDARD", TAKE_CLIENTS * TAKE_EACH);
    expect_stat_everywhere(n, "available.STANDARD", 0);
    expect_stat_everywhere(n, "created.STANDARD", TAKE_CLIENTS * TAKE_EACH);
    print_message("three nodes: %d clients took %d coupons, each once\n", TAKE_CLIENTS,
                  TAKE_CLIENTS * TAKE_EACH);
    bb_close(a);
}

#define REDEEM_CLIENTS 120
#define REDEEM_USES    50

/* 120 REDEEMs of a 50-use coupon at once through three nodes: exactly 50 pass. */
static void
test_nodes_redeem_uses(void **state)
{
    static char reply[BB_REPLY_MAX];
    static struct bb_client *cs[REDEEM_CLIENTS];
    char code[CODE_MAX + 1], cmd[128];
    struct bb_server **n = *state;
    int ok = 0, exhausted = 0;
    bb_pg_only("several nodes share a PostgreSQL store only");
    struct bb_client *a = bb_connect_admin(n[0]);
    bb_upload_gen(a, "R50-", "FREE", 1, NULL, REDEEM_USES);
    code_of(bb_cmd(a, "REQUEST alice FREE", reply), code);
    bb_fmt(cmd, sizeof cmd, "REDEEM alice %s\n", code);
    for (int i = 0; i < REDEEM_CLIENTS; i++)
        cs[i] = bb_connect(n[i % NODES]);
    for (int i = 0; i < REDEEM_CLIENTS; i++)
        bb_send_str(cs[i], cmd);
    for (int i = 0; i < REDEEM_CLIENTS; i++) {
        const char *r = bb_get_reply(cs[i], reply);
        if (bb_has_prefix(r, "OK"))
            ok++;
        else if (bb_has_prefix(r, "ERR EXHAUSTED"))
            exhausted++;
        else
            fail_msg("REDEEM through node-%d: \"%s\"", i % NODES, r);
        bb_close(cs[i]);
    }
    print_message("three nodes: %d REDEEMs of a %d-use coupon: %d OK, %d EXHAUSTED\n",
                  REDEEM_CLIENTS, REDEEM_USES, ok, exhausted);
    assert_int_equal(ok, REDEEM_USES);
    expect_stat_everywhere(n, "redeemed.FREE", REDEEM_USES);
    bb_close(a);
}

#define MEGA_CLIENTS 45 /* 15 a node; at 10 a second the grants need more than 4 s */

/* The task id of a REQUEST MEGADEAL reply into id. */
static void
task_of(const char *line, char *id, size_t cap)
{
    const char *p = strstr(line, "task=");
    size_t len = p != NULL ? strcspn(p + 5, " ") : 0;
    if (!bb_has_prefix(line, "OK") || len == 0 || len >= cap)
        fail_msg("not a queued task: \"%s\"", line);
    memcpy(id, p + 5, len);
    id[len] = '\0';
}

/* The grants the store recorded (megadeal_grants: the database's clock, in the order the grant
 * lock let them through): the most in any window of one second ending at a grant, the most
 * open (made and not yet answered and closed) when one was made, and the timeline. */
static void
grant_peaks(const struct bb_server *s, long *rate, long *open, long *span)
{
    char v[512];
    assert_true(bb_pg_value(s,
                            "SELECT max((SELECT count(*) FROM megadeal_grants h WHERE h.id <= g.id "
                            "AND h.at_ms > g.at_ms - 1000)) FROM megadeal_grants g",
                            v, sizeof v));
    *rate = strtol(v, NULL, 10);
    assert_true(bb_pg_value(s,
                            "SELECT max((SELECT count(*) FROM megadeal_grants h WHERE h.id <= g.id "
                            "AND coalesce(h.done_ms, 9e18) > g.at_ms)) FROM megadeal_grants g",
                            v, sizeof v));
    *open = strtol(v, NULL, 10);
    assert_true(bb_pg_value(s, "SELECT max(at_ms) - min(at_ms) FROM megadeal_grants", v, sizeof v));
    *span = strtol(v, NULL, 10);
    assert_true(
        bb_pg_value(s,
                    "SELECT string_agg(n::text, ' ' ORDER BY sec) FROM (SELECT (at_ms - "
                    "(SELECT min(at_ms) FROM megadeal_grants)) / 1000 AS sec, count(*) AS n "
                    "FROM megadeal_grants GROUP BY 1) AS t",
                    v, sizeof v));
    print_message("grants per second from the first: %s\n", v);
    assert_true(bb_pg_value(s,
                            "SELECT string_agg(n::text, ' ' ORDER BY sec) FROM (SELECT (g.at_ms - "
                            "(SELECT min(at_ms) FROM megadeal_grants)) / 1000 AS sec, max((SELECT "
                            "count(*) FROM megadeal_grants h WHERE h.id <= g.id AND "
                            "coalesce(h.done_ms, 9e18) > g.at_ms)) AS n FROM megadeal_grants g "
                            "GROUP BY 1) AS t",
                            v, sizeof v));
    print_message("most in flight in each second: %s\n", v);
    assert_true(bb_pg_value(s,
                            "SELECT string_agg(node || '=' || n, ' ' ORDER BY node) FROM (SELECT "
                            "node, count(*) AS n FROM megadeal_grants GROUP BY node) AS t",
                            v, sizeof v));
    print_message("grants by node: %s\n", v);
}

/* MEGADEAL through three nodes at once: every task granted, and never more than 10 grants in
 * a second or 5 in flight over all of them. */
static void
test_nodes_megadeal_limits(void **state)
{
    static char reply[BB_REPLY_MAX], codes[MEGA_CLIENTS][CODE_MAX + 1];
    static struct bb_client *cs[MEGA_CLIENTS];
    char id[256], cmd[320], v[64];
    struct bb_server **n = *state;
    long rate, open, span;
    bb_pg_only("several nodes share a PostgreSQL store only");
    struct bb_client *a = bb_connect_admin(n[0]);
    bb_upload_gen(a, "MD-", "MEGADEAL", 2 * MEGA_CLIENTS, NULL, 1);
    int64_t t0 = bb_now_ms();
    for (int i = 0; i < MEGA_CLIENTS; i++) {
        cs[i] = bb_connect(n[i % NODES]);
        bb_set_timeout(cs[i], WAIT_IO_MS);
        bb_fmt(cmd, sizeof cmd, "REQUEST m%d MEGADEAL", i);
        task_of(bb_cmd(cs[i], cmd, reply), id, sizeof id);
        bb_fmt(cmd, sizeof cmd, "WAIT %s\n", id);
        bb_send_str(cs[i], cmd);
    }
    for (int i = 0; i < MEGA_CLIENTS; i++) {
        const char *r = bb_get_reply(cs[i], reply);
        if (strstr(r, "status=granted") == NULL)
            fail_msg("task of m%d through node-%d: \"%s\"", i, i % NODES, r);
        code_of(r, codes[i]);
        bb_close(cs[i]);
    }
    int64_t took = bb_now_ms() - t0;
    expect_distinct(codes, MEGA_CLIENTS);
    grant_peaks(n[0], &rate, &open, &span);
    assert_true(bb_pg_value(n[0], "SELECT count(DISTINCT node) FROM megadeal_grants", v, sizeof v));
    print_message("three nodes: %d MEGADEAL grants in %lld ms (store: %ld ms from first to last); "
                  "at most %ld in any second, %ld in flight; %s nodes granted\n",
                  MEGA_CLIENTS, (long long)took, span, rate, open, v);
    assert_true(rate <= MEGA_RATE);
    assert_true(open <= MEGA_FLIGHT);
    assert_string_equal(v, "3");
    /* 45 grants, 10 in any second: grant k + 10 comes a second after grant k at the soonest,
     * so the 41st (and the last) 4 s after the first. */
    assert_true(span >= 1000 * ((MEGA_CLIENTS - 1) / MEGA_RATE));
    assert_true(took >= 1000 * ((MEGA_CLIENTS - 1) / MEGA_RATE));
    expect_stat_everywhere(n, "assigned.MEGADEAL", MEGA_CLIENTS);
    bb_close(a);
}

#define KILL_CLIENTS 10 /* a node */
#define KILL_ROUNDS  20 /* of one REQUEST per client */
#define KILL_AT      8  /* the round node-1 is killed in, its replies unread */

/* An acknowledged assignment: user (= its request id) and code. */
struct acked {
    char user[32];
    char code[CODE_MAX + 1];
};

/* Every acknowledged assignment is in the store, seen through node i. */
static void
expect_acked(struct bb_server *node, const struct acked *ak, size_t n)
{
    static char reply[BB_REPLY_MAX];
    char cmd[160];
    struct bb_client *c = bb_connect(node);
    for (size_t k = 0; k < n; k++) {
        bb_fmt(cmd, sizeof cmd, "VALIDATE %s %s", ak[k].user, ak[k].code);
        if (!bb_has_prefix(bb_cmd(c, cmd, reply), "OK"))
            fail_msg("acknowledged %s for %s is lost: \"%s\"", ak[k].code, ak[k].user, reply);
    }
    bb_close(c);
}

/* One round: every live client sends one REQUEST with an id; node `kill` (or -1) is killed
 * before its replies are read; the replies of the others must all be coupons. */
static size_t
kill_round(struct bb_server **n, struct bb_client **cs, int round, int kill, struct acked *ak)
{
    static char reply[BB_REPLY_MAX];
    char cmd[160];
    size_t got = 0;
    for (int i = 0; i < NODES * KILL_CLIENTS; i++) {
        if (cs[i] == NULL)
            continue;
        bb_fmt(cmd, sizeof cmd, "REQUEST k%d-%d FREE id=k%d-%d\n", i, round, i, round);
        bb_send_str(cs[i], cmd);
    }
    if (kill >= 0)
        bb_server_kill(n[kill]);
    for (int i = 0; i < NODES * KILL_CLIENTS; i++) {
        if (cs[i] == NULL)
            continue;
        if (i % NODES == kill) { /* its replies never come: nothing was acknowledged */
            bb_close(cs[i]);
            cs[i] = NULL;
            continue;
        }
        code_of(bb_get_reply(cs[i], reply), ak[got].code);
        snprintf(ak[got].user, sizeof ak[got].user, "k%d-%d", i, round);
        got++;
    }
    return got;
}

/* A node killed with SIGKILL under load loses no acknowledged write, and the others keep
 * serving throughout; started again, it counts as they do. */
static void
test_nodes_kill_one(void **state)
{
    static struct acked ak[NODES * KILL_CLIENTS * KILL_ROUNDS];
    static struct bb_client *cs[NODES * KILL_CLIENTS];
    struct bb_server **n = *state;
    size_t acked = 0;
    bb_pg_only("several nodes share a PostgreSQL store only");
    struct bb_client *a = bb_connect_admin(n[0]);
    bb_upload_gen(a, "KL-", "FREE", NODES * KILL_CLIENTS * KILL_ROUNDS, NULL, 1);
    bb_close(a);
    for (int i = 0; i < NODES * KILL_CLIENTS; i++)
        cs[i] = bb_connect(n[i % NODES]);
    for (int r = 0; r < KILL_ROUNDS; r++)
        acked += kill_round(n, cs, r, r == KILL_AT ? 1 : -1, ak + acked);
    for (int i = 0; i < NODES * KILL_CLIENTS; i++)
        if (cs[i] != NULL)
            bb_close(cs[i]);
    a = bb_connect_admin(n[0]);
    uint64_t assigned = bb_stat(a, "assigned.FREE");
    bb_close(a);
    print_message("node-1 killed under load: %zu REQUESTs acknowledged, %llu assigned\n", acked,
                  (unsigned long long)assigned);
    /* Node-1's last round may have committed without an answer: at most its clients' worth. */
    assert_true(assigned >= acked && assigned <= acked + KILL_CLIENTS);
    expect_acked(n[2], ak, acked);
    assert_true(bb_server_restart_any_port(n[1]));
    expect_stat_everywhere(n, "assigned.FREE", assigned);
    expect_acked(n[1], ak, acked);
}

#define OUTAGE_EACH 5 /* REQUESTs acknowledged through each node before PostgreSQL stops */

/* Sends `cmd` through c until it is not ERR UNAVAILABLE or SERVE_MS have passed; the reply. */
static const char *
until_served(struct bb_client *c, const char *cmd, char *reply)
{
    int64_t until = bb_now_ms() + SERVE_MS;
    const char *r;
    while (bb_has_prefix(r = bb_cmd(c, cmd, reply), "ERR UNAVAILABLE") && bb_now_ms() < until)
        bb_sleep_ms(RETRY_MS);
    return r;
}

/* PostgreSQL stopped at once (pg_ctl stop -m immediate) under three nodes: each answers
 * ERR UNAVAILABLE meanwhile; started again, each serves again within seconds, and nothing
 * acknowledged is lost. */
static void
test_nodes_store_restart(void **state)
{
    static char reply[BB_REPLY_MAX];
    static struct acked ak[NODES * (OUTAGE_EACH + 1)];
    struct bb_client *cs[NODES];
    struct bb_server **n = *state;
    char cmd[160];
    size_t acked = 0;
    bb_pg_only("only a store over the network can be stopped under the nodes");
    struct bb_client *a = bb_connect_admin(n[0]);
    bb_upload_gen(a, "OU-", "FREE", 100, NULL, 1);
    bb_close(a);
    for (int i = 0; i < NODES; i++) {
        cs[i] = bb_connect(n[i]);
        for (int k = 0; k < OUTAGE_EACH; k++, acked++) {
            snprintf(ak[acked].user, sizeof ak[acked].user, "o%d-%d", i, k);
            bb_fmt(cmd, sizeof cmd, "REQUEST %s FREE id=%s", ak[acked].user, ak[acked].user);
            code_of(bb_cmd(cs[i], cmd, reply), ak[acked].code);
        }
    }
    if (!bb_pg_cluster("stop"))
        fail_msg("cannot stop the test cluster");
    for (int i = 0; i < NODES; i++) {
        bb_expect_prefix(cs[i], "REQUEST late FREE id=late", "ERR UNAVAILABLE");
        bb_expect(cs[i], "PING", "OK PONG");
    }
    if (!bb_pg_cluster("start"))
        fail_msg("cannot start the test cluster again");
    int64_t t0 = bb_now_ms();
    for (int i = 0; i < NODES; i++, acked++) {
        /* A write (the writer's connection), then a read (the reader's, which reconnects on
         * its own schedule). */
        snprintf(ak[acked].user, sizeof ak[acked].user, "back%d", i);
        bb_fmt(cmd, sizeof cmd, "REQUEST %s FREE id=%s", ak[acked].user, ak[acked].user);
        code_of(until_served(cs[i], cmd, reply), ak[acked].code);
        int64_t wrote = bb_now_ms() - t0;
        bb_fmt(cmd, sizeof cmd, "VALIDATE %s %s", ak[acked].user, ak[acked].code);
        if (!bb_has_prefix(until_served(cs[i], cmd, reply), "OK"))
            fail_msg("node-%d: \"%s\" after PostgreSQL is back: \"%s\"", i, cmd, reply);
        print_message("node-%d writes again %lld ms and reads again %lld ms after PostgreSQL "
                      "is back\n",
                      i, (long long)wrote, (long long)(bb_now_ms() - t0));
    }
    assert_true(bb_now_ms() - t0 < SERVE_MS);
    for (int i = 0; i < NODES; i++) /* the id refused during the outage is done once */
        bb_expect_prefix(cs[i], "REQUEST late FREE id=late", "OK");
    for (int i = 0; i < NODES; i++)
        bb_close(cs[i]);
    expect_acked(n[0], ak, acked);
    expect_stat_everywhere(n, "assigned.FREE", acked + 1);
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
        cmocka_unit_test_setup_teardown(test_task_key_differs, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_take_all, nodes_setup, nodes_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_redeem_uses, nodes_setup, nodes_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_megadeal_limits, nodes_setup, nodes_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_kill_one, nodes_setup, nodes_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_store_restart, nodes_setup, nodes_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
