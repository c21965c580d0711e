/* test_store_pg_nodes.c - the PostgreSQL store's own behaviour, on a throwaway cluster
 * (tests/pg/cluster.sh): the schema version, CHECK against damage done in SQL, outages (the
 * cluster stopped and started under an open store), COMMIT outcomes learned after the
 * connection broke (a proxy on loopback cuts it at the right moment), two stores on one
 * database acting as two nodes (exactly-once allocation, uses within max_uses, exact counters,
 * where a node's claims start),
 * MEGADEAL grants within limits shared by three nodes, the task key's fingerprint and the
 * upgrade of a version 1 schema, and the REQUEST rate (printed, not asserted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pgtest.h"
#include "store.h"
#include "store_sync.h"

#define T0        INT64_C(1798761599) /* 2026-12-31T23:59:59Z */
#define ERRBUF    512
#define CHECK_MSG 512
#define URI_MAX   512
#define NODES     2

/* Sanitizers slow everything down: smaller workloads there (their timings mean nothing). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SCALE 10
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SCALE 10
#endif
#endif
#ifndef SCALE
#define SCALE 1
#endif

/* Set once by main: the cluster's URI (its socket) and its TCP port. */
static const char *pg_uri;
static int pg_port;

/* --- helpers --- */

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
open_node(struct ss *s, const char *uri, const char *node)
{
    struct store_config cfg;
    char err[ERRBUF] = "";

    memset(s, 0, sizeof *s);
    s->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(s->loop);
    cfg = (struct store_config){.loop = s->loop, .mode = STORE_OPEN_CREATE, .node_name = node};
    if (store_open(uri, &cfg, &s->st, err, sizeof err) != STORE_OK)
        fail_msg("store_open %s: %s", uri, err);
}

static void
check_ok(struct ss *s, int64_t now)
{
    char msg[CHECK_MSG] = "";
    enum store_err e = ss_check(s, now, msg, sizeof msg);

    if (e != STORE_OK)
        fail_msg("check: %s (%s)", store_strerror(e), msg);
}

static struct store_coupon
coupon(const char *code, enum store_type type, int64_t expires, uint32_t max_uses)
{
    struct store_coupon c;

    memset(&c, 0, sizeof c);
    snprintf(c.code, sizeof c.code, "%s", code);
    c.type = (uint8_t)type;
    c.kind = STORE_KIND_FLAT;
    c.discount = 500;
    c.expires = expires;
    c.max_uses = max_uses;
    return c;
}

/* Uploads n coupons PREFIX-i of type (expiries spread over 30 days) in one batch. */
static void
upload_n(struct ss *s, const char *prefix, size_t n, enum store_type type, uint32_t max_uses)
{
    struct store_coupon *recs = calloc(n, sizeof *recs);
    size_t n_rej = 99;

    assert_non_null(recs);
    for (size_t i = 0; i < n; i++) {
        char code[STORE_CODE_MAX + 1];

        snprintf(code, sizeof code, "%s-%07zu", prefix, i);
        recs[i] = coupon(code, type, T0 + 86400 * (int64_t)(i % 30), max_uses);
    }
    assert_int_equal(ss_upload(s, recs, n, false, NULL, 0, &n_rej), STORE_OK);
    assert_int_equal(n_rej, 0);
    free(recs);
}

static int
setup(void **state)
{
    (void)state;
    pgtest_wipe(pg_uri);
    return 0;
}

/* --- schema --- */

static void
test_schema_version(void **state)
{
    struct store_config cfg = {.mode = STORE_OPEN_CREATE};
    char err[ERRBUF] = "";
    struct store *st = NULL;
    struct ss s;

    (void)state;
    open_node(&s, pg_uri, "a");
    ss_close(&s);
    open_node(&s, pg_uri, "a"); /* the second open finds the schema */
    ss_close(&s);
    assert_true(pgtest_sql(pg_uri, "UPDATE coupond_schema SET version = version + 1"));
    cfg.loop = ev_loop_new(EVFLAG_AUTO);
    assert_int_equal(store_open(pg_uri, &cfg, &st, err, sizeof err), STORE_IO);
    assert_null(st);
    if (strstr(err, "schema version 3 is newer than this coupond knows (2)") == NULL)
        fail_msg("newer schema: \"%s\"", err);
    assert_null(strchr(err, '\n'));
    /* Nothing to reach: unavailable, promptly. */
    err[0] = '\0';
    assert_int_equal(store_open("postgresql://127.0.0.1:1/x", &cfg, &st, err, sizeof err),
                     STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "postgresql x@127.0.0.1:1"));
    /* A node name that is not a name. */
    cfg.node_name = "\xff";
    assert_int_equal(store_open(pg_uri, &cfg, &st, err, sizeof err), STORE_IO);
    ev_loop_destroy(cfg.loop);
}

/* The first open records the task key's fingerprint; an open with another is refused, naming
 * both, and one with the same (or none) passes. */
static void
test_task_key_fingerprint(void **state)
{
    struct store_config cfg = {.mode = STORE_OPEN_CREATE, .task_key_fp = "00112233aabbccdd"};
    char err[ERRBUF] = "", fp[64] = "";
    struct store *st = NULL;

    (void)state;
    cfg.loop = ev_loop_new(EVFLAG_AUTO);
    assert_int_equal(store_open(pg_uri, &cfg, &st, err, sizeof err), STORE_OK);
    store_close(st);
    assert_true(
        pgtest_value(pg_uri, "SELECT fp FROM coupond_keys WHERE name = 'task'", fp, sizeof fp));
    assert_string_equal(fp, "00112233aabbccdd");
    cfg.task_key_fp = "ffeeddccbbaa9988";
    st = NULL;
    assert_int_equal(store_open(pg_uri, &cfg, &st, err, sizeof err), STORE_KEY_MISMATCH);
    assert_null(st);
    if (strstr(err, "ffeeddccbbaa9988") == NULL || strstr(err, "00112233aabbccdd") == NULL ||
        strchr(err, '\n') != NULL)
        fail_msg("a differing task key: \"%s\"", err);
    cfg.task_key_fp = NULL;
    assert_int_equal(store_open(pg_uri, &cfg, &st, err, sizeof err), STORE_OK);
    store_close(st);
    cfg.task_key_fp = "00112233aabbccdd";
    assert_int_equal(store_open(pg_uri, &cfg, &st, err, sizeof err), STORE_OK);
    store_close(st);
    ev_loop_destroy(cfg.loop);
}

/* A store of schema version 1 (before grants and keys) is upgraded by the first open that may
 * create, keeping its coupons; an open that may not (--check) refuses it. */
static void
test_schema_upgrade(void **state)
{
    struct store_config cfg = {.mode = STORE_OPEN_EXISTING};
    char err[ERRBUF] = "", v[32] = "";
    struct store *st = NULL;
    struct store_coupon c;
    struct ss s;

    (void)state;
    open_node(&s, pg_uri, "a");
    upload_n(&s, "OLD", 3, STORE_TYPE_FREE, 1);
    ss_close(&s);
    assert_true(pgtest_sql(pg_uri, "DROP TABLE megadeal_grants; DROP TABLE coupond_keys; "
                                   "UPDATE coupond_schema SET version = 1"));
    cfg.loop = ev_loop_new(EVFLAG_AUTO);
    assert_int_equal(store_open(pg_uri, &cfg, &st, err, sizeof err), STORE_IO);
    if (strstr(err, "schema version 1 is older") == NULL)
        fail_msg("an old schema, read-only: \"%s\"", err);
    ev_loop_destroy(cfg.loop);
    open_node(&s, pg_uri, "a");
    assert_int_equal(ss_get(&s, "OLD-0000001", &c), STORE_OK);
    check_ok(&s, T0);
    ss_close(&s);
    assert_true(pgtest_value(pg_uri, "SELECT version FROM coupond_schema", v, sizeof v));
    assert_string_equal(v, "2");
    assert_true(pgtest_value(pg_uri, "SELECT count(*) FROM megadeal_grants", v, sizeof v));
    assert_string_equal(v, "0");
}

/* --- CHECK against damage done behind the store's back --- */

static void
test_check_detects_corruption(void **state)
{
    static const struct {
        const char *sql;
        const char *expect;
    } damage[] = {
        {"DELETE FROM avail WHERE code = 'FR'", "coupon FR has no avail index entry"},
        {"UPDATE counters SET created = created + 1 WHERE type = 1", "created.FREE"},
        {"INSERT INTO avail SELECT type, expires, 99, 'AS' FROM coupons WHERE code = 'AS'",
         "avail index entry 1/1798761599/99 points at assigned coupon AS"},
        {"UPDATE coupons SET uses = 9 WHERE code = 'AS'", "coupon AS has 9 uses of max 2"},
        {"DELETE FROM history WHERE seq = (SELECT min(seq) FROM history)",
         "coupon AS has 2 uses and 1 redemptions standing"},
        {"UPDATE counters SET redeemed = redeemed + 1 WHERE type = 1", "redeemed.FREE is 3"},
        {"UPDATE history SET owner = 'mallory'", "does not match coupon AS"},
        {"UPDATE coupons SET redeemed = false WHERE code = 'AS'", "does not match coupon AS"},
        {"INSERT INTO holds VALUES (1, 'AS', 'bob', 1, 1798761599)", "hold 1 (bob)"},
        {"UPDATE coupons SET seq = 2 WHERE code = 'AS'", "seq 2 is shared by 2 coupons"},
    };
    struct store_coupon recs[] = {coupon("AS", STORE_TYPE_FREE, T0, 2),
                                  coupon("FR", STORE_TYPE_FREE, T0, 1)};
    char msg[CHECK_MSG];
    struct ss s;

    (void)state;
    for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
        pgtest_wipe(pg_uri);
        open_node(&s, pg_uri, "a");
        assert_int_equal(ss_upload(&s, recs, 2, false, NULL, 0, NULL), STORE_OK);
        assert_int_equal(ss_assign(&s, STORE_TYPE_FREE, "alice", T0, NULL), STORE_OK);
        assert_int_equal(ss_redeem(&s, "AS", "alice", T0, NULL), STORE_OK);
        assert_int_equal(ss_redeem(&s, "AS", "alice", T0, NULL), STORE_OK);
        check_ok(&s, T0);
        assert_true(pgtest_sql(pg_uri, damage[i].sql));
        msg[0] = '\0';
        assert_int_equal(ss_check(&s, T0, msg, sizeof msg), STORE_CORRUPT);
        if (strstr(msg, damage[i].expect) == NULL)
            fail_msg("damage %zu: message \"%s\" lacks \"%s\"", i, msg, damage[i].expect);
        ss_close(&s);
    }
}

/* --- outages --- */

/* Runs the loop for `seconds`: reconnection attempts happen meanwhile. */
static void
idle(struct ss *s, double seconds)
{
    double until = now_s() + seconds;

    while (now_s() < until)
        ev_run(s->loop, EVRUN_NOWAIT), usleep(10000);
}

/* Commits an upload of one coupon until it passes, for at most `seconds`; the tries. */
static int
upload_until_ok(struct ss *s, const char *code, double seconds)
{
    struct store_coupon c = coupon(code, STORE_TYPE_FREE, T0 + 100, 1);
    double until = now_s() + seconds;
    int tries = 0;

    while (now_s() < until) {
        tries++;
        if (ss_upload(s, &c, 1, false, NULL, 0, NULL) == STORE_OK)
            return tries;
        idle(s, 0.05);
    }
    fail_msg("no upload of %s passed within %.0f s", code, seconds);
    return tries;
}

static void
test_outage_and_reconnect(void **state)
{
    struct store_coupon c = coupon("DOWN", STORE_TYPE_FREE, T0 + 100, 1);
    struct store_op op;
    double t;
    struct ss s;

    (void)state;
    open_node(&s, pg_uri, "a");
    upload_until_ok(&s, "BEFORE", 1);
    assert_true(pgtest_cluster("stop"));

    /* Down: every operation completes promptly with STORE_UNAVAILABLE. */
    for (int i = 0; i < 5; i++) {
        t = now_s();
        assert_int_equal(ss_upload(&s, &c, 1, false, NULL, 0, NULL), STORE_UNAVAILABLE);
        ss_op_get(&op, "BEFORE");
        assert_int_equal(ss_read(&s, &op), STORE_UNAVAILABLE);
        assert_true(op.out.msg[0] != '\0');
        assert_true(now_s() - t < 1.0);
        idle(&s, 0.2);
    }
    assert_null(ss_violation(&s));

    /* Back: the store reconnects by itself, within its backoff schedule. */
    assert_true(pgtest_cluster("start"));
    t = now_s();
    upload_until_ok(&s, "AFTER", 10);
    printf("outage: writes pass again %.2f s after the cluster is back\n", now_s() - t);
    assert_int_equal(ss_get(&s, "BEFORE", NULL), STORE_OK);
    assert_int_equal(ss_get(&s, "DOWN", NULL), STORE_INVALID);
    assert_int_equal(ss_get(&s, "AFTER", NULL), STORE_OK);
    check_ok(&s, T0);
    ss_close(&s);
}

/* --- a deadlock with another session: the batch is run again --- */

static void
test_deadlock_retry(void **state)
{
    const struct store_coupon recs[] = {coupon("DA", STORE_TYPE_FREE, T0, 5),
                                        coupon("DB", STORE_TYPE_FREE, T0 + 1, 5)};
    struct store_op ops[2];
    struct ss_batch sb;
    struct ss s;
    int pid;

    (void)state;
    open_node(&s, pg_uri, "a");
    assert_int_equal(ss_upload(&s, recs, 2, false, NULL, 0, NULL), STORE_OK);
    assert_int_equal(ss_assign(&s, STORE_TYPE_FREE, "alice", T0, NULL), STORE_OK);
    assert_int_equal(ss_assign(&s, STORE_TYPE_FREE, "alice", T0, NULL), STORE_OK);
    /* Another session locks DB, then wants DA, which the batch holds while it waits for DB. It
     * looks for deadlocks late: the batch's session finds the cycle and is the one aborted. */
    pid = pgtest_sql_start(pg_uri, "SET deadlock_timeout = '10s'; BEGIN; "
                                   "SELECT 1 FROM coupons WHERE code = 'DB' FOR UPDATE; "
                                   "SELECT pg_sleep(0.5); "
                                   "SELECT 1 FROM coupons WHERE code = 'DA' FOR UPDATE; COMMIT");
    usleep(200000);
    ss_batch_init(&s, &sb);
    ss_op_redeem(ss_batch_add(&sb, &ops[0]), "DA", "alice", T0);
    ss_op_redeem(ss_batch_add(&sb, &ops[1]), "DB", "alice", T0);
    if (ss_commit(&sb) != STORE_OK)
        fail_msg("batch: %s", sb.b.msg);
    assert_int_equal(ops[0].err, STORE_OK);
    assert_int_equal(ops[1].err, STORE_OK);
    assert_int_equal(ops[1].out.coupon.uses, 1);
    assert_true(pgtest_sql_wait(pid));
    check_ok(&s, T0);
    ss_close(&s);
}

/* --- the COMMIT outcome, learned after the connection broke --- */

/* How the proxy cuts the connection that carries a COMMIT. */
enum cut {
    CUT_NONE,
    CUT_AFTER_COMMIT,  /* the server committed; its reply to COMMIT is lost */
    CUT_BEFORE_COMMIT, /* COMMIT never reaches the server: it rolls back */
};

/* Which connections the proxy closes at once (proxy_drop). */
enum drop {
    DROP_NONE,
    DROP_LAST, /* the one whose client sent last */
    DROP_ALL
};

#define PROXY_PAIRS    8     /* connections through the proxy at once: the store has two */
#define PROXY_BUF      65536 /* bytes forwarded at a time */
#define PROXY_QUIET_MS 300   /* CUT_BEFORE_COMMIT: the server's results are all home by then */

/* A TCP proxy on loopback between the store and the cluster, in a thread of its own. */
struct proxy {
    int lfd, port;
    pthread_t thread;
    atomic_int cut;     /* enum cut: for the next COMMIT */
    atomic_bool refuse; /* new connections are closed at once (the server "unreachable") */
    atomic_bool stop;
    atomic_int cuts; /* cuts made */
    atomic_int drop; /* enum drop: asked of the proxy's thread, DROP_NONE once done */
    int last;        /* the pair whose client sent last (the proxy's thread's) */
    int cfd[PROXY_PAIRS], sfd[PROXY_PAIRS];
    bool held[PROXY_PAIRS]; /* CUT_BEFORE_COMMIT: the client's rest is dropped */
    double held_at[PROXY_PAIRS];
};

static void
pair_close(struct proxy *p, int i)
{
    close(p->cfd[i]);
    close(p->sfd[i]);
    p->cfd[i] = p->sfd[i] = -1;
    p->held[i] = false;
}

static void
proxy_accept(struct proxy *p)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pg_port)};
    int c = accept(p->lfd, NULL, NULL), s;

    if (c < 0)
        return;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (atomic_load(&p->refuse) || (s = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
        close(c);
        return;
    }
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(s);
        close(c);
        return;
    }
    for (int i = 0; i < PROXY_PAIRS; i++)
        if (p->cfd[i] < 0) {
            p->cfd[i] = c;
            p->sfd[i] = s;
            return;
        }
    close(s);
    close(c);
}

/* The offset of needle in buf[0..n), or -1. */
static ssize_t
find(const char *buf, ssize_t n, const char *needle, size_t len)
{
    for (ssize_t i = 0; i + (ssize_t)len <= n; i++)
        if (memcmp(buf + i, needle, len) == 0)
            return i;
    return -1;
}

static void
send_all(int fd, const char *buf, ssize_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);

        if (w <= 0)
            return;
        buf += w;
        n -= w;
    }
}

/* Client to server: CUT_BEFORE_COMMIT forwards what comes before the COMMIT's Parse message
 * ('P', length, "" name, "COMMIT") and holds the rest back. */
static void
from_client(struct proxy *p, int i)
{
    char buf[PROXY_BUF];
    ssize_t n = recv(p->cfd[i], buf, sizeof buf, 0), at;

    if (n <= 0) {
        pair_close(p, i);
        return;
    }
    if (p->held[i])
        return;
    p->last = i;
    if (atomic_load(&p->cut) == CUT_BEFORE_COMMIT &&
        (at = find(buf, n, "COMMIT", sizeof "COMMIT")) >= 6) {
        send_all(p->sfd[i], buf, at - 6);
        p->held[i] = true;
        p->held_at[i] = now_s();
        atomic_store(&p->cut, CUT_NONE);
        return;
    }
    send_all(p->sfd[i], buf, n);
}

/* Server to client: CUT_AFTER_COMMIT forwards what comes before COMMIT's CommandComplete ('C',
 * length, "COMMIT"), then cuts both sides. */
static void
from_server(struct proxy *p, int i)
{
    char buf[PROXY_BUF];
    ssize_t n = recv(p->sfd[i], buf, sizeof buf, 0), at;

    if (n <= 0) {
        pair_close(p, i);
        return;
    }
    if (atomic_load(&p->cut) == CUT_AFTER_COMMIT &&
        (at = find(buf, n, "COMMIT", sizeof "COMMIT")) >= 5) {
        send_all(p->cfd[i], buf, at - 5);
        atomic_store(&p->cut, CUT_NONE);
        atomic_fetch_add(&p->cuts, 1);
        pair_close(p, i);
        return;
    }
    send_all(p->cfd[i], buf, n);
}

/* Does what proxy_drop asked. */
static void
drop_pairs(struct proxy *p)
{
    enum drop d = (enum drop)atomic_load(&p->drop);

    if (d == DROP_NONE)
        return;
    for (int i = 0; i < PROXY_PAIRS; i++)
        if (p->cfd[i] >= 0 && (d == DROP_ALL || i == p->last))
            pair_close(p, i);
    atomic_store(&p->drop, DROP_NONE);
}

static void *
proxy_run(void *arg)
{
    struct proxy *p = arg;

    while (!atomic_load(&p->stop)) {
        struct pollfd fds[1 + 2 * PROXY_PAIRS];
        int n = 1;

        fds[0] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        for (int i = 0; i < PROXY_PAIRS; i++) {
            fds[n++] = (struct pollfd){.fd = p->cfd[i], .events = POLLIN};
            fds[n++] = (struct pollfd){.fd = p->sfd[i], .events = POLLIN};
        }
        if (poll(fds, (nfds_t)n, 20) < 0)
            continue;
        if (fds[0].revents & POLLIN)
            proxy_accept(p);
        for (int i = 0; i < PROXY_PAIRS; i++) {
            if (p->cfd[i] >= 0 && (fds[1 + 2 * i].revents & (POLLIN | POLLHUP)))
                from_client(p, i);
            if (p->sfd[i] >= 0 && (fds[2 + 2 * i].revents & (POLLIN | POLLHUP)))
                from_server(p, i);
            if (p->held[i] && now_s() - p->held_at[i] > PROXY_QUIET_MS / 1e3) {
                atomic_fetch_add(&p->cuts, 1);
                pair_close(p, i);
            }
        }
        drop_pairs(p);
    }
    for (int i = 0; i < PROXY_PAIRS; i++)
        if (p->cfd[i] >= 0)
            pair_close(p, i);
    close(p->lfd);
    return NULL;
}

static void
proxy_start(struct proxy *p)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;

    memset(p, 0, sizeof *p);
    for (int i = 0; i < PROXY_PAIRS; i++)
        p->cfd[i] = p->sfd[i] = -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->lfd >= 0);
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(p->lfd, PROXY_PAIRS), 0);
    assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&sa, &len), 0);
    p->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&p->thread, NULL, proxy_run, p), 0);
}

static void
proxy_stop(struct proxy *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
}

/* Closes connections through the proxy (as the server's end would) and waits until it has. */
static void
proxy_drop(struct proxy *p, enum drop d)
{
    atomic_store(&p->drop, d);
    while (atomic_load(&p->drop) != DROP_NONE)
        usleep(1000);
}

/* A batch of an assignment and a redemption, committed through the proxy with `cut`. */
static enum store_err
cut_batch(struct ss *s, struct proxy *p, enum cut cut, struct store_op ops[2], struct ss_batch *sb,
          const char *user)
{
    int cuts = atomic_load(&p->cuts);

    ss_batch_init(s, sb);
    ss_op_assign(ss_batch_add(sb, &ops[0]), STORE_TYPE_FREE, user, T0);
    ss_op_redeem(ss_batch_add(sb, &ops[1]), "REDEEMED", "alice", T0);
    atomic_store(&p->cut, cut);
    ss_commit(sb);
    assert_int_equal(atomic_load(&p->cuts), cuts + 1);
    return sb->err;
}

static void
test_commit_outcome(void **state)
{
    char uri[URI_MAX], msg[STORE_ERR_MAX];
    struct store_coupon recs[] = {
        coupon("REDEEMED", STORE_TYPE_FREE, T0 + 1, 100), coupon("F1", STORE_TYPE_FREE, T0 + 2, 1),
        coupon("F2", STORE_TYPE_FREE, T0 + 3, 1), coupon("F3", STORE_TYPE_FREE, T0 + 4, 1)};
    struct store_counters cs;
    struct store_op ops[2];
    struct store_coupon c;
    struct ss_batch sb;
    struct proxy p;
    struct ss s;
    double t;

    (void)state;
    proxy_start(&p);
    snprintf(uri, sizeof uri, "postgresql://postgres@127.0.0.1:%d/postgres", p.port);
    open_node(&s, uri, "a");
    assert_int_equal(ss_upload(&s, recs, 4, false, NULL, 0, NULL), STORE_OK);
    assert_int_equal(ss_assign(&s, STORE_TYPE_FREE, "alice", T0, &c), STORE_OK);
    assert_string_equal(c.code, "REDEEMED");

    /* The reply to COMMIT is lost, every other result came: committed, learned, STORE_OK. */
    assert_int_equal(cut_batch(&s, &p, CUT_AFTER_COMMIT, ops, &sb, "bob"), STORE_OK);
    assert_string_equal(ops[0].out.coupon.code, "F1");
    assert_int_equal(ops[1].err, STORE_OK);
    assert_int_equal(ops[1].out.coupon.uses, 1);

    /* COMMIT never reaches the server: rolled back, learned, nothing stored. */
    assert_int_equal(cut_batch(&s, &p, CUT_BEFORE_COMMIT, ops, &sb, "carol"), STORE_UNAVAILABLE);
    assert_non_null(strstr(sb.b.msg, "rolled back"));
    assert_int_equal(ss_get(&s, "F2", &c), STORE_OK);
    assert_string_equal(c.user, "");

    /* The outcome cannot be learned (no new connection gets through): unavailable, in time. */
    atomic_store(&p.refuse, true);
    t = now_s();
    assert_int_equal(cut_batch(&s, &p, CUT_AFTER_COMMIT, ops, &sb, "dave"), STORE_UNAVAILABLE);
    snprintf(msg, sizeof msg, "%s", sb.b.msg);
    assert_non_null(strstr(msg, "could not be learned"));
    assert_true(now_s() - t < 5.0);
    printf("unknown outcome: \"%s\" after %.2f s\n", msg, now_s() - t);
    atomic_store(&p.refuse, false);

    /* It did commit: F2 is dave's, and the store is whole. */
    upload_until_ok(&s, "LATER", 10);
    assert_int_equal(ss_get(&s, "F2", &c), STORE_OK);
    assert_string_equal(c.user, "dave");
    assert_int_equal(ss_get(&s, "F3", &c), STORE_OK);
    assert_string_equal(c.user, "");
    assert_int_equal(ss_get(&s, "REDEEMED", &c), STORE_OK);
    assert_int_equal(c.uses, 2);
    assert_int_equal(ss_counters(&s, T0, &cs), STORE_OK);
    assert_int_equal(cs.type[STORE_TYPE_FREE].assigned, 3);
    assert_int_equal(cs.type[STORE_TYPE_FREE].redeemed, 2);
    check_ok(&s, T0);
    assert_null(ss_violation(&s));
    ss_close(&s);
    proxy_stop(&p);
}

/* --- the writer's and the reader's connections come back together --- */

#define APART_S 1.0 /* between the two connections' losses: half the longest backoff apart */
#define AWAY_S  3.0 /* then down long enough that both wait out the longest backoff (2 s) */
#define BACK_S  5.0 /* for the first operation to pass once the server is reachable again */

/* The writer's and the reader's connections go down a second apart, so that each retries on
 * its own schedule, a second off the other's; `reader_first`: the reader's goes first, so the
 * writer's is back first, else the other way round. When the server is reachable again,
 * whichever connection gets through first brings the other along: a read right after the first
 * write that passes passes too, and a write right after the first read. */
static void
back_together(struct ss *s, struct proxy *p, bool reader_first, const char *code)
{
    struct store_coupon c = coupon(code, STORE_TYPE_FREE, T0 + 100, 1);
    enum store_err w = STORE_UNAVAILABLE, r = STORE_UNAVAILABLE;
    char last[STORE_CODE_MAX + 1];
    double until;

    snprintf(last, sizeof last, "%s-LAST", code);
    upload_until_ok(s, last, BACK_S); /* the writer sent last */
    if (reader_first)
        assert_int_equal(ss_get(s, "BEFORE", NULL), STORE_OK); /* now the reader has */
    atomic_store(&p->refuse, true);
    proxy_drop(p, DROP_LAST);
    idle(s, APART_S);
    proxy_drop(p, DROP_ALL);
    idle(s, AWAY_S);
    assert_int_equal(ss_upload(s, &c, 1, false, NULL, 0, NULL), STORE_UNAVAILABLE);
    assert_int_equal(ss_get(s, "BEFORE", NULL), STORE_UNAVAILABLE);

    atomic_store(&p->refuse, false);
    until = now_s() + BACK_S;
    while (w != STORE_OK && r != STORE_OK && now_s() < until) {
        idle(s, 0.02);
        w = ss_upload(s, &c, 1, false, NULL, 0, NULL);
        r = ss_get(s, "BEFORE", NULL);
    }
    printf("back, the %s's connection lost first: write %d, then read %d\n",
           reader_first ? "reader" : "writer", (int)w, (int)r);
    if (w == STORE_OK)
        assert_int_equal(r, STORE_OK);
    else
        assert_int_equal(ss_upload(s, &c, 1, false, NULL, 0, NULL), STORE_OK);
    assert_int_equal(ss_get(s, code, NULL), STORE_OK);
}

static void
test_connections_back_together(void **state)
{
    char uri[URI_MAX];
    struct proxy p;
    struct ss s;

    (void)state;
    proxy_start(&p);
    snprintf(uri, sizeof uri, "postgresql://postgres@127.0.0.1:%d/postgres", p.port);
    open_node(&s, uri, "a");
    upload_until_ok(&s, "BEFORE", 1);
    back_together(&s, &p, true, "BACK-1");
    back_together(&s, &p, false, "BACK-2");
    check_ok(&s, T0);
    ss_close(&s);
    proxy_stop(&p);
}

/* --- two nodes on one database --- */

#define NODE_ROUNDS   (200 / SCALE) /* batches per node */
#define NODE_BATCH    50            /* assignments per batch */
#define NODE_SHARED   20            /* coupons both nodes redeem at once */
#define NODE_MAX_USES 7

/* One node's work, in a thread of its own (one store, one loop, as a process would). */
struct node {
    const char *name;
    char codes[NODE_ROUNDS * NODE_BATCH][STORE_CODE_MAX + 1];
    size_t assigned;
    uint64_t redeemed[NODE_SHARED];
    enum store_err failed;
    double seconds;
};

static void *
node_run(void *arg)
{
    struct node *nd = arg;
    struct store_op *ops = calloc(NODE_BATCH + NODE_SHARED, sizeof *ops);
    struct ss_batch sb;
    struct ss s;
    double t;

    open_node(&s, pg_uri, nd->name);
    t = now_s();
    for (int r = 0; r < NODE_ROUNDS && ops != NULL; r++) {
        ss_batch_init(&s, &sb);
        for (int i = 0; i < NODE_BATCH; i++)
            ss_op_assign(ss_batch_add(&sb, &ops[i]), STORE_TYPE_STANDARD, nd->name, T0);
        for (int i = 0; i < NODE_SHARED; i++) {
            char code[STORE_CODE_MAX + 1];

            snprintf(code, sizeof code, "SHARED-%07d", (i + r) % NODE_SHARED);
            ss_op_redeem(ss_batch_add(&sb, &ops[NODE_BATCH + i]), code, "shared", T0);
        }
        if (ss_commit(&sb) != STORE_OK) {
            nd->failed = sb.err;
            break;
        }
        for (int i = 0; i < NODE_BATCH; i++)
            if (ops[i].err == STORE_OK)
                snprintf(nd->codes[nd->assigned++], STORE_CODE_MAX + 1, "%s",
                         ops[i].out.coupon.code);
        for (int i = 0; i < NODE_SHARED; i++)
            if (ops[NODE_BATCH + i].err == STORE_OK)
                nd->redeemed[(i + r) % NODE_SHARED]++;
    }
    nd->seconds = now_s() - t;
    free(ops);
    ss_close(&s);
    return NULL;
}

static int
code_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void
test_two_nodes(void **state)
{
    enum { COUPONS = NODE_ROUNDS * NODE_BATCH * 3 / 2 }; /* fewer than both nodes ask for */
    static struct node nodes[NODES] = {{.name = "node-a"}, {.name = "node-b"}};
    static char all[NODES * NODE_ROUNDS * NODE_BATCH][STORE_CODE_MAX + 1];
    struct store_counters cs;
    pthread_t th[NODES];
    size_t total = 0;
    struct ss s;

    (void)state;
    open_node(&s, pg_uri, "loader");
    upload_n(&s, "POOL", COUPONS, STORE_TYPE_STANDARD, 1);
    upload_n(&s, "SHARED", NODE_SHARED, STORE_TYPE_FREE, NODE_MAX_USES);
    for (int i = 0; i < NODE_SHARED; i++)
        assert_int_equal(ss_assign(&s, STORE_TYPE_FREE, "shared", T0, NULL), STORE_OK);
    for (int i = 0; i < NODES; i++) {
        memset(nodes[i].codes, 0, sizeof nodes[i].codes);
        nodes[i].assigned = 0;
        memset(nodes[i].redeemed, 0, sizeof nodes[i].redeemed);
        assert_int_equal(pthread_create(&th[i], NULL, node_run, &nodes[i]), 0);
    }
    for (int i = 0; i < NODES; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NODES; i++) {
        assert_int_equal(nodes[i].failed, STORE_OK);
        memcpy(all[total], nodes[i].codes, nodes[i].assigned * sizeof all[0]);
        total += nodes[i].assigned;
        printf("two nodes: %s assigned %zu\n", nodes[i].name, nodes[i].assigned);
    }
    /* Every coupon handed out once, all of them handed out. */
    assert_int_equal(total, COUPONS);
    qsort(all, total, sizeof all[0], code_cmp);
    for (size_t i = 1; i < total; i++)
        if (strcmp(all[i - 1], all[i]) == 0)
            fail_msg("%s was assigned twice", all[i]);
    /* Uses never above max_uses, and counted exactly. */
    assert_int_equal(ss_counters(&s, T0, &cs), STORE_OK);
    assert_int_equal(cs.type[STORE_TYPE_STANDARD].assigned, COUPONS);
    assert_int_equal(cs.type[STORE_TYPE_STANDARD].available, 0);
    assert_int_equal(cs.type[STORE_TYPE_FREE].redeemed, NODE_SHARED * NODE_MAX_USES);
    for (int i = 0; i < NODE_SHARED; i++) {
        char code[STORE_CODE_MAX + 1];
        struct store_coupon c;

        snprintf(code, sizeof code, "SHARED-%07d", i);
        assert_int_equal(ss_get(&s, code, &c), STORE_OK);
        assert_int_equal(c.uses, NODE_MAX_USES);
        assert_int_equal(nodes[0].redeemed[i] + nodes[1].redeemed[i], NODE_MAX_USES);
    }
    check_ok(&s, T0);
    ss_close(&s);
}

/* --- where a node's claims start (pg_ops.h's floor) --- */

#define FLOOR_CLEAR_WAIT_US 1100000 /* past PG_FLOOR_CLEAR_S (1 s) */

static void
upload_one(struct ss *s, const char *code, int64_t expires)
{
    struct store_coupon c = coupon(code, STORE_TYPE_STANDARD, expires, 1);
    size_t n_rej = 99;

    assert_int_equal(ss_upload(s, &c, 1, false, NULL, 0, &n_rej), STORE_OK);
    assert_int_equal(n_rej, 0);
}

static const char *
assign_code(struct ss *s, const char *user, struct store_coupon *got)
{
    assert_int_equal(ss_assign(s, STORE_TYPE_STANDARD, user, T0, got), STORE_OK);
    return got->code;
}

/* A node's claims start past the last entry it took; a coupon another node uploads below that
 * floor is still handed out, after those above it (none is lost to the floor: the claim looks
 * below when above comes up short), and first again once the floor is cleared. */
static void
test_claim_floor(void **state)
{
    struct store_coupon got;
    char seen[3][STORE_CODE_MAX + 1];
    struct ss a, b;

    (void)state;
    open_node(&a, pg_uri, "node-a");
    open_node(&b, pg_uri, "node-b");
    upload_one(&a, "LATE-0", T0 + 10 * 86400);
    upload_one(&a, "LATE-1", T0 + 11 * 86400);
    upload_one(&a, "LATE-2", T0 + 12 * 86400);
    assert_string_equal(assign_code(&a, "u0", &got), "LATE-0");
    upload_one(&b, "EARLY", T0 + 86400); /* below node a's floor */
    for (int i = 0; i < 3; i++) {
        char user[8];

        snprintf(user, sizeof user, "u%d", i + 1);
        snprintf(seen[i], sizeof seen[i], "%s", assign_code(&a, user, &got));
    }
    /* In whatever order (the floor may have been cleared meanwhile on a slow machine), all
     * three, then none. */
    qsort(seen, 3, sizeof seen[0], code_cmp);
    assert_string_equal(seen[0], "EARLY");
    assert_string_equal(seen[1], "LATE-1");
    assert_string_equal(seen[2], "LATE-2");
    assert_int_equal(ss_assign(&a, STORE_TYPE_STANDARD, "u4", T0, NULL), STORE_NO_COUPONS);

    upload_one(&a, "MID-0", T0 + 5 * 86400);
    upload_one(&a, "MID-1", T0 + 6 * 86400);
    assert_string_equal(assign_code(&a, "u5", &got), "MID-0");
    upload_one(&b, "EARLY-2", T0 + 2 * 86400);
    usleep(FLOOR_CLEAR_WAIT_US);
    ev_now_update(a.loop); /* the server commits from the loop's callbacks, on a fresh clock */
    assert_string_equal(assign_code(&a, "u6", &got), "EARLY-2");
    check_ok(&a, T0);
    ss_close(&a);
    ss_close(&b);
}

/* --- MEGADEAL grants within limits shared by nodes --- */

#define GRANT_NODES     3
#define GRANT_RATE      10 /* grants in any window of GRANT_WINDOW_MS */
#define GRANT_CONC      2  /* open slots: fewer than the nodes, so that they contend */
#define GRANT_WINDOW_MS 1000
#define GRANT_RUN_S     2.5   /* each node grants for this long */
#define GRANT_HOLD_US   30000 /* a node answers 30 ms after its grant, then closes the slot */
#define GRANT_WAIT_US   5000  /* a node waits this long after STORE_LIMITED */

struct granter {
    char name[16];
    unsigned granted, limited;
    enum store_err failed;
};

static void *
granter_run(void *arg)
{
    struct granter *g = arg;
    struct store_op op, done;
    double end;
    struct ss s;

    open_node(&s, pg_uri, g->name);
    for (end = now_s() + GRANT_RUN_S; now_s() < end;) {
        ss_op_assign(&op, STORE_TYPE_MEGADEAL, g->name, T0);
        op.in.limit = (struct store_limit){GRANT_RATE, GRANT_CONC, GRANT_WINDOW_MS};
        op.in.task_seq = g->granted + g->limited + 1;
        enum store_err e = ss_run(&s, &op);
        if (e == STORE_LIMITED) {
            g->limited++;
            usleep(GRANT_WAIT_US);
            continue;
        }
        if (e != STORE_OK || op.out.grant == 0) {
            g->failed = e != STORE_OK ? e : STORE_IO;
            break;
        }
        g->granted++;
        usleep(GRANT_HOLD_US);
        ss_op(&done, STORE_OP_GRANT_DONE, T0);
        done.in.grant = op.out.grant;
        if ((e = ss_run(&s, &done)) != STORE_OK) {
            g->failed = e;
            break;
        }
    }
    ss_close(&s);
    return NULL;
}

/* The grants in any window ending at a grant, and the open slots when a grant was made, at
 * most: the store's own record of its grants (pg_sql.h's megadeal_grants), in the order the
 * lock let them through (id). */
static void
grant_peaks(long *rate, long *open)
{
    char v[32];

    assert_true(
        pgtest_value(pg_uri,
                     "SELECT max((SELECT count(*) FROM megadeal_grants h WHERE h.id <= g.id "
                     "AND h.at_ms > g.at_ms - 1000)) FROM megadeal_grants g",
                     v, sizeof v));
    *rate = strtol(v, NULL, 10);
    assert_true(
        pgtest_value(pg_uri,
                     "SELECT max((SELECT count(*) FROM megadeal_grants h WHERE h.id <= "
                     "g.id AND coalesce(h.done_ms, 9e18) > g.at_ms)) FROM megadeal_grants g",
                     v, sizeof v));
    *open = strtol(v, NULL, 10);
}

static void
test_shared_grants(void **state)
{
    static struct granter gs[GRANT_NODES];
    pthread_t th[GRANT_NODES];
    unsigned granted = 0, limited = 0;
    struct store_counters cs;
    long rate, open;
    char v[32];
    struct ss s;

    (void)state;
    open_node(&s, pg_uri, "loader");
    upload_n(&s, "MEGA", 200, STORE_TYPE_MEGADEAL, 1);
    for (int i = 0; i < GRANT_NODES; i++) {
        memset(&gs[i], 0, sizeof gs[i]);
        snprintf(gs[i].name, sizeof gs[i].name, "granter-%d", i);
        assert_int_equal(pthread_create(&th[i], NULL, granter_run, &gs[i]), 0);
    }
    for (int i = 0; i < GRANT_NODES; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < GRANT_NODES; i++) {
        assert_int_equal(gs[i].failed, STORE_OK);
        granted += gs[i].granted;
        limited += gs[i].limited;
    }
    grant_peaks(&rate, &open);
    printf("shared grants: %u granted, %u refused (LIMITED); at most %ld in a window, %ld open\n",
           granted, limited, rate, open);
    assert_true(rate <= GRANT_RATE);
    assert_true(open <= GRANT_CONC);
    assert_true(limited > 0);           /* the nodes did contend */
    assert_true(granted >= GRANT_RATE); /* and the limits still let grants through */
    assert_true(pgtest_value(pg_uri, "SELECT count(*) FROM megadeal_grants WHERE done_ms IS NULL",
                             v, sizeof v));
    assert_string_equal(v, "0");
    assert_int_equal(ss_counters(&s, T0, &cs), STORE_OK);
    assert_int_equal(cs.type[STORE_TYPE_MEGADEAL].assigned, granted);
    check_ok(&s, T0);
    ss_close(&s);
}

/* --- the REQUEST rate --- */

#define RATE_K        100 /* assignments per batch: a busy node's group */
#define RATE_REQUESTS (40000 / SCALE)

struct rate {
    const char *name;
    int batches;
    double seconds;
    enum store_err failed;
};

static void *
rate_run(void *arg)
{
    struct rate *rt = arg;
    struct store_op ops[RATE_K];
    struct ss_batch sb;
    struct ss s;
    double t;

    open_node(&s, pg_uri, rt->name);
    t = now_s();
    for (int b = 0; b < rt->batches; b++) {
        ss_batch_init(&s, &sb);
        for (int i = 0; i < RATE_K; i++)
            ss_op_assign(ss_batch_add(&sb, &ops[i]), STORE_TYPE_STANDARD, "user", T0);
        if (ss_commit(&sb) != STORE_OK || ops[RATE_K - 1].err != STORE_OK) {
            rt->failed = sb.err != STORE_OK ? sb.err : ops[RATE_K - 1].err;
            break;
        }
    }
    rt->seconds = now_s() - t;
    ss_close(&s);
    return NULL;
}

static void
test_request_rate(void **state)
{
    struct rate one = {.name = "solo", .batches = RATE_REQUESTS / RATE_K};
    struct rate two[NODES] = {{.name = "node-a", .batches = RATE_REQUESTS / RATE_K / NODES},
                              {.name = "node-b", .batches = RATE_REQUESTS / RATE_K / NODES}};
    pthread_t th[NODES];
    double slowest = 0;
    struct ss s;

    (void)state;
    open_node(&s, pg_uri, "loader");
    upload_n(&s, "RATE", 2 * RATE_REQUESTS, STORE_TYPE_STANDARD, 1);
    check_ok(&s, T0);
    rate_run(&one);
    assert_int_equal(one.failed, STORE_OK);
    printf("rate: one writer, batches of %d: %d REQUEST in %.2f s = %.0f/s\n", RATE_K,
           one.batches * RATE_K, one.seconds, one.batches * RATE_K / one.seconds);
    for (int i = 0; i < NODES; i++)
        assert_int_equal(pthread_create(&th[i], NULL, rate_run, &two[i]), 0);
    for (int i = 0; i < NODES; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(two[i].failed, STORE_OK);
        slowest = two[i].seconds > slowest ? two[i].seconds : slowest;
    }
    printf("rate: two nodes at once, batches of %d: %d REQUEST in %.2f s = %.0f/s\n", RATE_K,
           NODES * two[0].batches * RATE_K, slowest, NODES * two[0].batches * RATE_K / slowest);
    check_ok(&s, T0);
    ss_close(&s);
}

int
main(void)
{
    const char *port = getenv("COUPOND_TEST_PG_PORT");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_schema_version, setup),
        cmocka_unit_test_setup(test_task_key_fingerprint, setup),
        cmocka_unit_test_setup(test_schema_upgrade, setup),
        cmocka_unit_test_setup(test_check_detects_corruption, setup),
        cmocka_unit_test_setup(test_outage_and_reconnect, setup),
        cmocka_unit_test_setup(test_deadlock_retry, setup),
        cmocka_unit_test_setup(test_commit_outcome, setup),
        cmocka_unit_test_setup(test_connections_back_together, setup),
        cmocka_unit_test_setup(test_two_nodes, setup),
        cmocka_unit_test_setup(test_claim_floor, setup),
        cmocka_unit_test_setup(test_shared_grants, setup),
        cmocka_unit_test_setup(test_request_rate, setup),
    };

    pg_uri = getenv("COUPOND_TEST_PG_URI");
    if (!pgtest_is_pg(pg_uri) || port == NULL) {
        fprintf(stderr, "test_store_pg_nodes: run it under tests/pg/cluster.sh run\n");
        return 2;
    }
    pg_port = atoi(port);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
