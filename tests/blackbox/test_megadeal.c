/* test_megadeal.c - the MEGADEAL queue against the real server, from PROTOCOL.md's MEGADEAL
 * section: the rate seen by clients, BUSY and NO_COUPONS admission, the same task for the same
 * user, timeouts, ids that fail (forged, altered, truncated, another server's), restarts,
 * clients that leave while they wait, WAIT pipelined with other commands, STATS, the flags. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "bb.h"
#include "proto.h"

#define RATE             10 /* PROTOCOL.md: grants in any window of one second */
#define THIRTY           30 /* tasks of the rate test: three windows' worth */
#define ID_BUF           (PROTO_TASK_MAX + 1)
#define WAIT_IO_MS       20000 /* a held WAIT can take the whole --megadeal-wait, and more under ASan */
#define LOG_SLACK_US     50000 /* a logged grant time is its iteration's start, before its commit */
#define LOG_WAIT_TRIES   100   /* the log writer thread is asynchronous: wait up to 100 x 50 ms */
#define LOG_WAIT_STEP_MS 50
#define HELD_MS          300 /* a held reply must not arrive this soon */
#define OUT_MAX          8192
#define QUEUE_MAX        100 /* PROTOCOL.md: the 101st queued REQUEST is refused */
#define BAD_TASK_LINE    "ERR BAD_TASK not a valid task id"

static const char *const rate_one[] = {"--megadeal-rate", "1", NULL};
/* One grant a second and a 100 s wait: the queue holds rate x wait = 100 tasks. */
static const char *const rate_one_queue_100[] = {"--megadeal-rate", "1", "--megadeal-wait", "100",
                                                 NULL};
static const char *const rate_one_wait_two[] = {"--megadeal-rate", "1", "--megadeal-wait", "2",
                                                NULL};

/* ---- helpers ---- */

static struct bb_client *
admin_client(void **state)
{
    struct bb_client *c = bb_connect_admin(bb_server_of(state));
    bb_set_timeout(c, WAIT_IO_MS);
    return c;
}

static int64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Copies the task= field of a status line into id; fails when there is none. */
static void
task_field(const char *line, char id[ID_BUF])
{
    const char *v;
    size_t n;
    if (!proto_reply_field(line, strlen(line), "task", &v, &n) || n == 0 || n >= ID_BUF)
        fail_msg("no task id in \"%s\"", line);
    memcpy(id, v, n);
    id[n] = '\0';
}

/* Reads a REQUEST MEGADEAL reply: "OK task=ID status=queued position=P". */
static void
read_queued(struct bb_client *c, char id[ID_BUF], unsigned *pos)
{
    static char reply[BB_REPLY_MAX];
    const char *st = bb_get_reply(c, reply);
    if (!bb_has_prefix(st, "OK") || !strstr(st, " status=queued position="))
        fail_msg("expected a queued task, got \"%s\"", st);
    task_field(st, id);
    if (pos)
        *pos = (unsigned)strtoul(strstr(st, "position=") + 9, NULL, 10);
}

/* Sends REQUEST user MEGADEAL and reads the queued task's id. */
static void
request_task(struct bb_client *c, const char *user, char id[ID_BUF], unsigned *pos)
{
    char cmd[256];
    bb_fmt(cmd, sizeof cmd, "REQUEST %s MEGADEAL\n", user);
    bb_send_str(c, cmd);
    read_queued(c, id, pos);
}

/* Sends the REQUESTs of users prefix0 .. prefix(n-1) in one packet, so the server reads them
 * together, and reads their ids. */
static void
request_batch(struct bb_client *c, const char *prefix, unsigned n, char (*ids)[ID_BUF])
{
    char *buf = malloc((size_t)n * 64 + 1);
    assert_non_null(buf);
    size_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += (size_t)sprintf(buf + len, "REQUEST %s%u MEGADEAL\n", prefix, i);
    bb_send(c, buf, len);
    free(buf);
    for (unsigned i = 0; i < n; i++) {
        unsigned pos = 0;
        read_queued(c, ids[i], &pos);
        assert_int_equal(pos, i + 1);
    }
}

/* Expects "OK task=ID status=granted code=..." for id; copies the code when asked. */
static void
assert_granted(const char *line, const char *id, char *code)
{
    char want[ID_BUF + 64];
    bb_fmt(want, sizeof want, "OK task=%s status=granted code=", id);
    if (strncmp(line, want, strlen(want)) != 0)
        fail_msg("expected \"%s...\", got \"%s\"", want, line);
    struct proto_coupon pc;
    assert_true(proto_reply_coupon(line, strlen(line), &pc));
    assert_int_equal(pc.type, PROTO_TYPE_MEGADEAL);
    assert_int_equal(pc.uses, 0);
    if (code)
        strcpy(code, pc.code);
}

static const char *
task_cmd(const char *verb, const char *id)
{
    static char cmd[ID_BUF + 16];
    bb_fmt(cmd, sizeof cmd, "%s %s", verb, id);
    return cmd;
}

static void
assert_stat(struct bb_client *c, const char *name, uint64_t want)
{
    uint64_t got = bb_stat(c, name);
    if (got != want)
        fail_msg("STAT %s is %llu, expected %llu", name, (unsigned long long)got,
                 (unsigned long long)want);
}

/* ---- the rate ---- */

/* Reads the WAIT replies of n clients as they come, recording when each arrived. */
static void
collect_grants(struct bb_client **c, char (*ids)[ID_BUF], int n, int64_t *at)
{
    static char reply[BB_REPLY_MAX];
    bool got[THIRTY] = {false};
    for (int left = n; left > 0;) {
        struct pollfd pf[THIRTY];
        for (int i = 0; i < n; i++)
            pf[i] = (struct pollfd){.fd = got[i] ? -1 : c[i]->fd, .events = POLLIN};
        assert_true(poll(pf, (nfds_t)n, WAIT_IO_MS) > 0);
        int64_t t = now_us();
        for (int i = 0; i < n; i++) {
            if (got[i] || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            assert_granted(bb_get_reply(c[i], reply), ids[i], NULL);
            at[i] = t;
            got[i] = true;
            left--;
        }
    }
}

static void
sort_times(int64_t *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            int64_t x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
}

/* Reads the times of the server's MEGADEAL_GRANT log lines, in microseconds, waiting for the
 * log writer until `want` of them are there. Returns how many were read (at most `want`). */
static int
grant_log_times(struct bb_server *s, int64_t *at, int want)
{
    char path[BB_PATH_MAX + 16];
    bb_fmt(path, sizeof path, "%s/ops.log", s->dir);
    for (int tries = 0; tries < LOG_WAIT_TRIES && bb_file_count(path, "op=MEGADEAL_GRANT") < want;
         tries++)
        bb_sleep_ms(LOG_WAIT_STEP_MS);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[BB_LINE_MAX];
    int n = 0;
    while (n < want && fgets(line, sizeof line, f)) {
        struct tm tm = {0};
        long usec;
        if (!strstr(line, "op=MEGADEAL_GRANT ") ||
            sscanf(line, "time=%d-%d-%dT%d:%d:%d.%ldZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &usec) != 7)
            continue;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        at[n++] = (int64_t)timegm(&tm) * 1000000 + usec;
    }
    fclose(f);
    return n;
}

/* 30 clients WAIT at once: the grants need at least two seconds, and no window of one second
 * holds more than 10 grants. The window is checked on the server's own grant times, from its
 * operation log: reply arrival times can bunch up on a loaded machine (a late reply followed by
 * punctual ones), so they only bound the total. Ten grants made just before fill the window, so
 * every one of the 30 WAITs is held until its grant. */
static void
test_rate_thirty_waits(void **state)
{
    struct bb_server *s = bb_server_of(state);
    static char reply[BB_REPLY_MAX];
    static char warm[RATE][ID_BUF], ids[THIRTY][ID_BUF];
    struct bb_client *c[THIRTY];
    int64_t at[THIRTY];
    struct bb_client *admin = admin_client(state);
    bb_upload_gen(admin, "RATE-", "MEGADEAL", RATE + THIRTY, NULL, 1);
    for (int i = 0; i < THIRTY; i++) {
        c[i] = bb_connect(s);
        bb_set_timeout(c[i], WAIT_IO_MS);
    }
    request_batch(admin, "warm", RATE, warm);
    assert_granted(bb_cmd(admin, task_cmd("WAIT", warm[RATE - 1]), reply), warm[RATE - 1], NULL);
    int64_t t0 = now_us();
    for (int i = 0; i < THIRTY; i++) {
        char user[16], cmd[ID_BUF + 8];
        bb_fmt(user, sizeof user, "rate%d", i);
        request_task(c[i], user, ids[i], NULL);
        bb_fmt(cmd, sizeof cmd, "WAIT %s\n", ids[i]);
        bb_send_str(c[i], cmd);
    }
    if (now_us() - t0 > 500000)
        fail_msg("30 REQUESTs took over 0.5 s: the window may have opened meanwhile");
    collect_grants(c, ids, THIRTY, at);
    sort_times(at, THIRTY);
    if (at[THIRTY - 1] - t0 < 2000000)
        fail_msg("30 grants took %lld us, less than 2 s", (long long)(at[THIRTY - 1] - t0));
    int64_t logged[RATE + THIRTY];
    int n = grant_log_times(s, logged, RATE + THIRTY);
    assert_int_equal(n, RATE + THIRTY);
    sort_times(logged, n);
    /* The log stamps a grant with its loop iteration's start, at most one iteration before the
     * commit the limiter counts: LOG_SLACK_US allows for that. */
    for (int i = 0; i + RATE < n; i++) {
        if (logged[i + RATE] - logged[i] < 1000000 - LOG_SLACK_US)
            fail_msg("grants %d to %d within %lld us: over 10 in one second", i, i + RATE,
                     (long long)(logged[i + RATE] - logged[i]));
    }
    assert_stat(admin, "megadeal.granted", RATE + THIRTY);
    assert_stat(admin, "megadeal.queued", 0);
    assert_stat(admin, "megadeal.in_flight", 0);
    assert_stat(admin, "assigned.MEGADEAL", RATE + THIRTY);
    for (int i = 0; i < THIRTY; i++)
        bb_close(c[i]);
    bb_close(admin);
}

/* ---- admission ---- */

/* With one grant a second, 100 REQUESTs in one packet fill the queue; the 101st is BUSY, and a
 * user already queued still gets the task back. */
static void
test_busy_at_101(void **state)
{
    static char reply[BB_REPLY_MAX];
    static char ids[QUEUE_MAX][ID_BUF];
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "Q-", "MEGADEAL", QUEUE_MAX + 50, NULL, 1);
    char buf[(QUEUE_MAX + 2) * 48];
    size_t len = 0;
    for (unsigned i = 0; i < QUEUE_MAX + 1; i++)
        len += (size_t)sprintf(buf + len, "REQUEST q%u MEGADEAL\n", i);
    len += (size_t)sprintf(buf + len, "REQUEST q7 MEGADEAL\n");
    bb_send(c, buf, len);
    for (unsigned i = 0; i < QUEUE_MAX; i++) {
        unsigned pos;
        read_queued(c, ids[i], &pos);
        assert_int_equal(pos, i + 1);
    }
    const char *st = bb_get_reply(c, reply);
    if (!bb_has_prefix(st, "ERR BUSY"))
        fail_msg("the 101st REQUEST got \"%s\"", st);
    char again[ID_BUF];
    read_queued(c, again, NULL);
    assert_string_equal(again, ids[7]);
    assert_stat(c, "megadeal.rejected", 1);
    /* At one grant a second, at most the first has left the queue. The three counters come
     * from one STATS reply: read one by one, a task granted between two reads is missed. */
    uint64_t queued = 0, granted = 0, in_flight = 0;
    const char *stats = bb_cmd(c, "STATS", reply);
    assert_true(bb_has_prefix(stats, "OK"));
    assert_true(bb_stat_find(reply, "megadeal.queued", &queued));
    assert_true(bb_stat_find(reply, "megadeal.granted", &granted));
    assert_true(bb_stat_find(reply, "megadeal.in_flight", &in_flight));
    assert_true(queued >= QUEUE_MAX - 1);
    assert_int_equal(queued + granted + in_flight, QUEUE_MAX);
    bb_close(c);
}

/* The queue takes no more tasks than there are coupons left. */
static void
test_no_coupons_and_stats(void **state)
{
    static char reply[BB_REPLY_MAX];
    static char ids[2][ID_BUF];
    char code_a[PROTO_CODE_MAX + 1], code_b[PROTO_CODE_MAX + 1];
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "N-", "MEGADEAL", 2, NULL, 1);
    bb_send_str(c, "REQUEST n0 MEGADEAL\nREQUEST n1 MEGADEAL\nREQUEST n2 MEGADEAL\n");
    read_queued(c, ids[0], NULL);
    read_queued(c, ids[1], NULL);
    bb_expect_reply_prefix(c, "ERR NO_COUPONS");
    assert_granted(bb_cmd(c, task_cmd("WAIT", ids[0]), reply), ids[0], code_a);
    assert_granted(bb_cmd(c, task_cmd("WAIT", ids[1]), reply), ids[1], code_b);
    /* FIFO: the first task got the first coupon (expiring first, uploaded first). */
    assert_string_equal(code_a, "N-000000");
    assert_string_equal(code_b, "N-000001");
    /* The coupons are the users'. */
    char cmd[128];
    bb_fmt(cmd, sizeof cmd, "VALIDATE n0 %s", code_a);
    bb_expect_prefix(c, cmd, "OK code=N-000000");
    bb_fmt(cmd, sizeof cmd, "VALIDATE n0 %s", code_b);
    bb_expect_prefix(c, cmd, "ERR INVALID");
    bb_expect_prefix(c, "REQUEST n3 MEGADEAL", "ERR NO_COUPONS");
    assert_stat(c, "megadeal.queued", 0);
    assert_stat(c, "megadeal.in_flight", 0);
    assert_stat(c, "megadeal.granted", 2);
    assert_stat(c, "megadeal.rejected", 2);
    assert_stat(c, "megadeal.timed_out", 0);
    assert_stat(c, "assigned.MEGADEAL", 2);
    assert_stat(c, "available.MEGADEAL", 0);
    bb_close(c);
}

/* A user with a queued task gets that task again; once it is granted, a new one. */
static void
test_same_user_same_task(void **state)
{
    static char reply[BB_REPLY_MAX];
    char a[ID_BUF], b[ID_BUF], b2[ID_BUF], b3[ID_BUF];
    unsigned pa, pb, pb2;
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "S-", "MEGADEAL", 5, NULL, 1);
    bb_send_str(c, "REQUEST sa MEGADEAL\nREQUEST sb MEGADEAL\nREQUEST sb MEGADEAL\n");
    read_queued(c, a, &pa);
    read_queued(c, b, &pb);
    read_queued(c, b2, &pb2);
    assert_int_equal(pa, 1);
    assert_int_equal(pb, 2);
    assert_string_equal(b2, b);
    assert_int_equal(pb2, 2);
    assert_string_not_equal(a, b);
    assert_granted(bb_cmd(c, task_cmd("WAIT", b), reply), b, NULL);
    request_task(c, "sb", b3, NULL);
    assert_string_not_equal(b3, b);
    assert_stat(c, "megadeal.rejected", 0);
    bb_close(c);
}

/* ---- ids ---- */

static void
expect_bad_task(struct bb_client *c, const char *verb, const char *id)
{
    bb_expect(c, task_cmd(verb, id), BAD_TASK_LINE);
}

/* Forged, altered, truncated, extended, malformed and foreign ids: all the same one reply. */
static void
test_bad_ids(void **state)
{
    static char reply[BB_REPLY_MAX];
    char id[ID_BUF], bad[ID_BUF * 2];
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "B-", "MEGADEAL", 1, NULL, 1);
    request_task(c, "bob", id, NULL);
    assert_granted(bb_cmd(c, task_cmd("WAIT", id), reply), id, NULL);
    size_t n = strlen(id);
    /* Forged: well-formed characters, no valid signature. */
    static const char az[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    srand(7);
    for (int k = 0; k < 5; k++) {
        for (size_t i = 0; i < n; i++)
            bad[i] = az[rand() % (int)(sizeof az - 1)];
        bad[n] = '\0';
        expect_bad_task(c, k % 2 ? "WAIT" : "STATUS", bad);
    }
    /* Altered: one character changed, at the start, the middle, the end. */
    const size_t where[] = {0, 1, n / 2, n - 2, n - 1};
    for (size_t k = 0; k < sizeof where / sizeof where[0]; k++) {
        strcpy(bad, id);
        bad[where[k]] = bad[where[k]] == 'A' ? 'B' : 'A';
        expect_bad_task(c, "STATUS", bad);
        expect_bad_task(c, "WAIT", bad);
    }
    /* Truncated and extended. */
    strcpy(bad, id);
    bad[n - 1] = '\0';
    expect_bad_task(c, "STATUS", bad);
    bad[n / 2] = '\0';
    expect_bad_task(c, "STATUS", bad);
    bb_fmt(bad, sizeof bad, "%sA", id);
    expect_bad_task(c, "STATUS", bad);
    /* Malformed: characters a task may not have, over 128 characters. */
    expect_bad_task(c, "STATUS", "a!b");
    expect_bad_task(c, "WAIT", "abc.def");
    memset(bad, 'A', PROTO_TASK_MAX + 1);
    bad[PROTO_TASK_MAX + 1] = '\0';
    expect_bad_task(c, "WAIT", bad);
    /* Another server's id: a valid signature under another key. */
    struct bb_server *other = bb_server_start(NULL);
    assert_non_null(other);
    struct bb_client *o = bb_connect(other);
    bb_auth(o);
    bb_upload_gen(o, "O-", "MEGADEAL", 1, NULL, 1);
    char foreign[ID_BUF];
    request_task(o, "bob", foreign, NULL);
    assert_string_not_equal(foreign, id);
    bb_expect_prefix(o, task_cmd("STATUS", foreign), "OK");
    expect_bad_task(c, "STATUS", foreign);
    expect_bad_task(c, "WAIT", foreign);
    bb_close(o);
    assert_int_equal(bb_server_stop(other), 0);
    bb_server_free(other);
    /* The real id still works, and the connection was never disturbed. */
    assert_granted(bb_cmd(c, task_cmd("STATUS", id), reply), id, NULL);
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

/* ---- deadlines ---- */

/* One grant a second and a two-second wait: the queue holds rate x wait = 2 tasks, so a third
 * REQUEST is BUSY at once. The server is then stopped (SIGSTOP) past the second task's deadline,
 * which comes before its grant slot: it times out, and is never granted later; the first task,
 * granted (or in flight) at once, is not affected. */
static void
test_timeout(void **state)
{
    static char reply[BB_REPLY_MAX];
    static char ids[2][ID_BUF];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "T-", "MEGADEAL", 10, NULL, 1);
    int64_t t0 = now_us();
    bb_send_str(c, "REQUEST t0 MEGADEAL\nREQUEST t1 MEGADEAL\nREQUEST t2 MEGADEAL\n");
    read_queued(c, ids[0], NULL);
    read_queued(c, ids[1], NULL);
    bb_expect_reply_prefix(c, "ERR BUSY");
    bb_server_signal(s, SIGSTOP);
    bb_sleep_ms(2500);
    bb_server_signal(s, SIGCONT);
    struct bb_client *w = bb_connect(s);
    bb_set_timeout(w, WAIT_IO_MS);
    assert_granted(bb_cmd(w, task_cmd("WAIT", ids[0]), reply), ids[0], NULL);
    const char *st = bb_cmd(w, task_cmd("WAIT", ids[1]), reply);
    if (!bb_has_prefix(st, "ERR TIMEOUT"))
        fail_msg("task 1: expected ERR TIMEOUT, got \"%s\"", st);
    if (now_us() - t0 < 2000000)
        fail_msg("timed out after %lld us, before the 2 s deadline", (long long)(now_us() - t0));
    /* Still readable, still timed out, and never granted later. */
    bb_sleep_ms(1200);
    bb_expect_prefix(c, task_cmd("STATUS", ids[1]), "ERR TIMEOUT");
    bb_expect_prefix(c, task_cmd("WAIT", ids[1]), "ERR TIMEOUT");
    assert_stat(c, "megadeal.granted", 1);
    assert_stat(c, "megadeal.timed_out", 1);
    assert_stat(c, "megadeal.rejected", 1);
    assert_stat(c, "assigned.MEGADEAL", 1);
    assert_stat(c, "megadeal.queued", 0);
    bb_close(w);
    bb_close(c);
}

/* ---- restarts ---- */

/* A restart forgets the tasks: their ids, still validly signed, are UNKNOWN_TASK; a granted
 * coupon stays assigned; a reused sequence number does not revive an old id. */
static void
test_restart_unknown_task(void **state)
{
    struct bb_server *s = bb_server_of(state);
    static char reply[BB_REPLY_MAX];
    static char ids[3][ID_BUF];
    char code[PROTO_CODE_MAX + 1], cmd[128];
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "X-", "MEGADEAL", 5, NULL, 1);
    request_batch(c, "r", 3, ids);
    assert_granted(bb_cmd(c, task_cmd("WAIT", ids[0]), reply), ids[0], code);
    bb_close(c);
    assert_int_equal(bb_server_stop(s), 0);
    assert_true(bb_server_restart(s));
    c = admin_client(state);
    for (int i = 0; i < 3; i++) {
        bb_expect_prefix(c, task_cmd("STATUS", ids[i]), "ERR UNKNOWN_TASK");
        bb_expect_prefix(c, task_cmd("WAIT", ids[i]), "ERR UNKNOWN_TASK");
    }
    bb_fmt(cmd, sizeof cmd, "VALIDATE r0 %s", code);
    bb_expect_prefix(c, cmd, "OK code=X-000000");
    assert_stat(c, "megadeal.queued", 0);
    assert_stat(c, "megadeal.granted", 0);
    /* The same user again: a new task, whose sequence restarts, and a new id. */
    char again[ID_BUF];
    unsigned pos;
    request_task(c, "r0", again, &pos);
    assert_int_equal(pos, 1);
    assert_string_not_equal(again, ids[0]);
    bb_expect_prefix(c, task_cmd("STATUS", ids[0]), "ERR UNKNOWN_TASK");
    const char *st = bb_cmd(c, task_cmd("STATUS", again), reply);
    char want[ID_BUF + 16];
    bb_fmt(want, sizeof want, "OK task=%s ", again);
    assert_true(strncmp(st, want, strlen(want)) == 0);
    bb_close(c);
}

/* ---- waiting ---- */

/* A client leaves while it waits: the task stays queued, is granted, and a later STATUS shows
 * it; another client waiting on the same task is answered. */
static void
test_disconnect_while_waiting(void **state)
{
    struct bb_server *s = bb_server_of(state);
    static char reply[BB_REPLY_MAX];
    static char ids[2][ID_BUF];
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "D-", "MEGADEAL", 2, NULL, 1);
    request_batch(c, "d", 2, ids);
    struct bb_client *gone = bb_connect(s), *stays = bb_connect(s);
    bb_set_timeout(stays, WAIT_IO_MS);
    bb_send_str(gone, task_cmd("WAIT", ids[1]));
    bb_send_str(gone, "\nPING\n");
    bb_send_str(stays, task_cmd("WAIT", ids[1]));
    bb_send_str(stays, "\n");
    assert_true(bb_quiet(gone, HELD_MS)); /* held: the task needs its slot, a second away */
    bb_close(gone);
    assert_granted(bb_get_reply(stays, reply), ids[1], NULL);
    assert_granted(bb_cmd(c, task_cmd("STATUS", ids[1]), reply), ids[1], NULL);
    assert_stat(c, "megadeal.granted", 2);
    bb_close(stays);
    bb_close(c);
}

/* WAIT holds back the replies after it, which then come in order. */
static void
test_wait_pipelined(void **state)
{
    static char reply[BB_REPLY_MAX];
    static char ids[2][ID_BUF];
    char line[ID_BUF * 3 + 64];
    struct bb_client *c = admin_client(state);
    bb_upload_gen(c, "P-", "MEGADEAL", 3, NULL, 1);
    request_batch(c, "p", 2, ids);
    bb_fmt(line, sizeof line, "WAIT %s\nPING\nSTATUS %s\nREQUEST p2 MEGADEAL\nSTATUS nope!\n",
           ids[1], ids[0]);
    int64_t t0 = now_us();
    bb_send_str(c, line);
    assert_true(bb_quiet(c, HELD_MS));
    assert_granted(bb_get_reply(c, reply), ids[1], NULL);
    assert_true(now_us() - t0 >= HELD_MS * 1000);
    bb_expect_reply_prefix(c, "OK PONG");
    assert_granted(bb_get_reply(c, reply), ids[0], NULL);
    char third[ID_BUF];
    unsigned pos;
    read_queued(c, third, &pos);
    assert_int_equal(pos, 1);
    const char *st = bb_get_reply(c, reply);
    assert_string_equal(st, BAD_TASK_LINE);
    bb_close(c);
}

/* ---- flags ---- */

static void
test_flags(void **state)
{
    (void)state;
    static char out[OUT_MAX], err[OUT_MAX];
    const char *help[] = {"--help", NULL};
    assert_int_equal(bb_run(help, out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "--megadeal-rate"));
    assert_non_null(strstr(out, "--megadeal-concurrency"));
    assert_non_null(strstr(out, "--megadeal-wait"));
    static const char *const bad[][3] = {
        {"--megadeal-rate", "0", NULL},         {"--megadeal-rate", "1001", NULL},
        {"--megadeal-rate", "ten", NULL},       {"--megadeal-concurrency", "0", NULL},
        {"--megadeal-concurrency", "-1", NULL}, {"--megadeal-wait", "0", NULL},
        {"--megadeal-wait", "3601", NULL},      {"--megadeal-wait", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *flag[3] = {bad[i][0], bad[i][1], NULL};
        if (bb_run(flag, out, sizeof out, err, sizeof err) != 2)
            fail_msg("%s %s did not exit 2: %s", bad[i][0], bad[i][1] ? bad[i][1] : "", err);
        assert_non_null(strstr(err, "megadeal"));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rate_thirty_waits, bb_setup, bb_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_busy_at_101, bb_setup, bb_teardown,
                                                 (void *)rate_one_queue_100),
        cmocka_unit_test_setup_teardown(test_no_coupons_and_stats, bb_setup, bb_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_same_user_same_task, bb_setup, bb_teardown,
                                                 (void *)rate_one),
        cmocka_unit_test_setup_teardown(test_bad_ids, bb_setup, bb_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_timeout, bb_setup, bb_teardown,
                                                 (void *)rate_one_wait_two),
        cmocka_unit_test_prestate_setup_teardown(test_restart_unknown_task, bb_setup, bb_teardown,
                                                 (void *)rate_one),
        cmocka_unit_test_prestate_setup_teardown(test_disconnect_while_waiting, bb_setup,
                                                 bb_teardown, (void *)rate_one),
        cmocka_unit_test_prestate_setup_teardown(test_wait_pipelined, bb_setup, bb_teardown,
                                                 (void *)rate_one),
        cmocka_unit_test(test_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
