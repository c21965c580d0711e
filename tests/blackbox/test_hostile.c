/* test_hostile.c - clients that attack or misbehave: 10,000 idle connections, a slowloris, a
 * client that pipelines a million commands and never reads, random binary garbage, an UPLOAD
 * cut off at its start, AUTH brute force, and HTTP requests. Through it all the server must not
 * crash, must keep its memory bounded, and must go on serving normal clients. The server's
 * memory is read from /proc (VmRSS now, VmHWM the peak) and reported with each case. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bb.h"

/* Memory assertions hold for glibc's allocator; ASan's keeps freed memory in quarantine and
 * pads every block, so there they are reported, and only checked loosely. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif
/* ThreadSanitizer makes the server several times slower too: the time bounds below allow it. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif
/* Both sanitizers bring their own allocator (and TSan's shadow memory is counted in VmRSS): the
 * memory bounds below are glibc's, checked loosely under either. */
#define OTHER_ALLOCATOR (UNDER_ASAN || UNDER_TSAN)

#define CODE_BUF 80 /* a coupon code (at most 64 characters) */

/* 10,000 idle connections */
#define IDLE_CONNS       10000
#define IDLE_MAX_CLIENTS "10100"
#define IDLE_NOFILE      (IDLE_CONNS + 512) /* the test's own descriptors, with room to spare */
#define IDLE_ACCEPT_MS   60000              /* the server has accepted them all within this */
#define IDLE_CLOSE_MS    30000              /* ... and has seen them all close within this */
#define IDLE_KB_PER_CONN 4 /* server memory per idle connection, at most (16 sanitized) */
#define IDLE_KB_ASAN     16
#define PROMPT_MS        1000 /* a normal client's command is answered within this meanwhile */

/* slowloris */
#define SLOW_IDLE_TIMEOUT "2"  /* --idle-timeout, seconds: also the bound on finishing a line */
#define SLOW_TICK_MS      300  /* one byte per tick */
#define SLOW_MIN_MS       1500 /* a dribbled line is not cut off sooner ... */
#define SLOW_MAX_MS       8000 /* ... nor later than this */
#define SLOW_LONG_PREFIX  (5 * 1024) /* an over-long line, dribbled on after its first 5 KiB */

/* a million pipelined commands, never read */
#define PIPE_COMMANDS 1000000
#define PIPE_RCVBUF   4096 /* keeps the kernel from buffering the replies for us */
#define PIPE_CHUNK    (64 * 1024)
#define PIPE_SEND_MS  1000  /* one blocked send may take this */
#define PIPE_STALL_MS 10000 /* blocked sends in all before calling it a hang */
/* The server stops reading the flood once its replies back up, and cuts it off when they have
 * made no progress for CONN_OUT_STALL (5 s): within this after the last send. Its send buffer
 * (grown by the kernel up to megabytes) takes replies first, which takes an ASan build longer. */
#define PIPE_SETTLE_MS  (UNDER_ASAN || UNDER_TSAN ? 30000 : 8000)
#define PIPE_HWM_MAX_KB (48 * 1024) /* peak growth: two 16 MiB log queues + the output cap */

/* random garbage */
#define JUNK_CONNS 32
#define JUNK_BUFS  16
#define JUNK_MAX   8192
#define JUNK_SEED  0x9e3779b97f4a7c15ULL /* fixed: a failure can be replayed */

/* an UPLOAD cut off */
#define CUT_COUNT      50000
#define CUT_SENT       (CUT_COUNT - 1) /* records sent before the disconnect */
#define CUT_SETTLE_MS  500             /* no growth of the server's RSS for this long: all read */
#define CUT_WAIT_MS    30000           /* ... which happens within this */
#define CUT_MIN_GROWTH (4 * 1024)      /* kB: the upload really held memory (or the test is moot) */
#define CUT_SLACK_KB   (2 * 1024)      /* after the disconnect, RSS is back within this of before */
#define CUT_RELEASE_MS 5000

/* AUTH brute force */
#define BRUTE_CONNS       100
#define BRUTE_KEYS        3   /* the server closes the connection after the third wrong key */
#define AUTH_DELAY_MIN_MS 900 /* a wrong key is answered >= 1 s after it came; timer slack */
#define BRUTE_WAIT_MS     20000
#define CHURN_MS          1000 /* guessing without waiting for the answers, for this long */
#define CHURN_SETTLE_MS   500  /* the log has shown no new guess for this long: all checked */
/* --max-clients of the brute-force server: low, so that a second of guessing shows the bound
 * it sets with few connections. Each guess leaves a client socket in TIME_WAIT for a minute,
 * and the ephemeral ports are shared with the tests that run alongside. */
#define CHURN_MAX_CLIENTS     1000
#define CHURN_MAX_CLIENTS_ARG "1000"
#define CHURN_MAX_GUESSES     (4 * CHURN_MAX_CLIENTS) /* enough to hit the bound */
#define LOG_WAIT_MS           10000

/* HTTP */
#define HTTP_LONG_URL 5000 /* a request line longer than the protocol's 4096 bytes */

/* A bare connected socket, without the harness's client (10,000 of those would be heavy). */
static int
raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* True when the peer has closed or reset the connection; reads nothing. */
static bool
peer_gone(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return false;
    return ti.tcpi_state == TCP_CLOSE || ti.tcpi_state == TCP_CLOSE_WAIT;
}

/* True when the server closed `c`, looking without waiting; fails on unexpected data. */
static bool
closed_now(struct bb_client *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, 0) != 1)
        return false;
    char buf[256];
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0)
        fail_msg("unexpected reply \"%.*s\"", (int)n, buf);
    return n == 0 || errno == ECONNRESET;
}

/* Raises RLIMIT_NOFILE, the hard limit too when it is lower (root may). */
static void
raise_nofile(rlim_t n)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= n)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n)
        rl.rlim_max = n;
    rl.rlim_cur = n;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        fail_msg("cannot raise RLIMIT_NOFILE to %llu (%s): raise the hard limit (ulimit -Hn) or "
                 "run as root",
                 (unsigned long long)n, strerror(errno));
}

static long
kb_of(const struct bb_server *s, const char *field)
{
    long kb = bb_proc_kb(s, field);
    if (kb < 0)
        fail_msg("cannot read %s of coupond from /proc", field);
    return kb;
}

/* Polls STATS until `connections` satisfies the comparison; returns the last value. */
static uint64_t
wait_connections(struct bb_client *admin, uint64_t want, bool at_least, int ms)
{
    int64_t deadline = bb_now_ms() + ms;
    uint64_t n;
    while (n = bb_stat(admin, "connections"), (at_least ? n < want : n > want)) {
        if (bb_now_ms() >= deadline)
            break;
        bb_sleep_ms(BB_POLL_MS * 5);
    }
    return n;
}

/* A normal client: connects, is answered promptly, and gets a coupon. */
static void
normal_client_served(struct bb_server *s, const char *user)
{
    int64_t t0 = bb_now_ms();
    struct bb_client *c = bb_connect(s);
    bb_expect(c, "PING", "OK PONG");
    int64_t ms = bb_now_ms() - t0;
    if (ms > PROMPT_MS)
        fail_msg("a normal client's connect and PING took %lld ms", (long long)ms);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "REQUEST %s", user);
    bb_expect_prefix(c, cmd, "OK code=");
    bb_close(c);
}

/* ---- 10,000 idle connections ---- */

static void
test_ten_thousand_idle(void **state)
{
    struct bb_server *s = bb_server_of(state);
    raise_nofile(IDLE_NOFILE);
    struct bb_client *admin = bb_connect_admin(s);
    bb_upload_gen(admin, "IDLE-", "", 10, NULL, 1);
    long rss0 = kb_of(s, "VmRSS");

    int *fds = malloc(IDLE_CONNS * sizeof *fds);
    assert_non_null(fds);
    int64_t t0 = bb_now_ms();
    for (int i = 0; i < IDLE_CONNS; i++) {
        fds[i] = raw_connect(s->port);
        if (fds[i] < 0)
            fail_msg("idle connection %d: connect: %s", i, strerror(errno));
    }
    uint64_t n = wait_connections(admin, IDLE_CONNS + 1, true, IDLE_ACCEPT_MS);
    if (n < IDLE_CONNS + 1)
        fail_msg("the server holds %llu connections, expected %d", (unsigned long long)n,
                 IDLE_CONNS + 1);
    long rss1 = kb_of(s, "VmRSS");
    long per_conn_b = (rss1 - rss0) * 1024 / IDLE_CONNS;
    print_message("10,000 idle: connected and accepted in %lld ms; coupond VmRSS %ld kB idle, "
                  "%ld kB with 10,000 idle connections (%ld bytes each), VmHWM %ld kB\n",
                  (long long)(bb_now_ms() - t0), rss0, rss1, per_conn_b, kb_of(s, "VmHWM"));

    normal_client_served(s, "while-10000-idle");
    bb_expect(admin, "PING", "OK PONG");
    if (per_conn_b > (OTHER_ALLOCATOR ? IDLE_KB_ASAN : IDLE_KB_PER_CONN) * 1024)
        fail_msg("%ld bytes of server memory per idle connection", per_conn_b);

    /* Closed with a reset: a normal close would leave 10,000 client sockets in TIME_WAIT for a
     * minute, holding ephemeral ports the tests running alongside need. */
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    for (int i = 0; i < IDLE_CONNS; i++) {
        setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        close(fds[i]);
    }
    free(fds);
    n = wait_connections(admin, 1, false, IDLE_CLOSE_MS);
    assert_int_equal(n, 1);
    normal_client_served(s, "after-10000-idle");
    bb_close(admin);
}

/* ---- slowloris ---- */

static void
test_slowloris_dropped(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *plain = bb_connect(s);   /* dribbles a short line that never ends */
    struct bb_client *longer = bb_connect(s);  /* dribbles on after 5 KiB of one line */
    struct bb_client *slow_ok = bb_connect(s); /* sends PING slowly, but within the bound */
    struct bb_client *active = bb_connect(s);  /* PINGs on every tick */
    static char prefix[SLOW_LONG_PREFIX];
    memset(prefix, 'A', sizeof prefix);

    int64_t t0 = bb_now_ms();
    bb_send(longer, prefix, sizeof prefix);
    bb_send_str(plain, "P");
    bb_send_str(slow_ok, "P");
    int64_t plain_ms = -1, longer_ms = -1;
    static const char *const slow_parts[] = {"I", "N", "G\n"};
    for (int tick = 0; (plain_ms < 0 || longer_ms < 0) && bb_now_ms() - t0 < SLOW_MAX_MS; tick++) {
        bb_sleep_ms(SLOW_TICK_MS);
        int64_t now = bb_now_ms() - t0;
        if (plain_ms < 0 && (closed_now(plain) || bb_try_send(plain, "I", 1) != 0))
            plain_ms = now;
        if (longer_ms < 0 && (closed_now(longer) || bb_try_send(longer, "A", 1) != 0))
            longer_ms = now;
        if (tick < 3)
            bb_send_str(slow_ok, slow_parts[tick]);
        bb_expect(active, "PING", "OK PONG");
    }
    print_message("slowloris: dribbling clients dropped after %lld ms (short line) and %lld ms "
                  "(over-long line); VmHWM %ld kB\n",
                  (long long)plain_ms, (long long)longer_ms, kb_of(s, "VmHWM"));
    if (plain_ms < 0 || longer_ms < 0)
        fail_msg("a client dribbling one byte every %d ms was still served after %d ms",
                 SLOW_TICK_MS, SLOW_MAX_MS);
    assert_true(plain_ms >= SLOW_MIN_MS && longer_ms >= SLOW_MIN_MS);

    /* The slow but complete line was answered, and the connections that were not slow live. */
    bb_expect_reply_prefix(slow_ok, "OK PONG");
    bb_expect(slow_ok, "PING", "OK PONG");
    bb_expect(active, "PING", "OK PONG");
    char log[BB_PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/ops.log", s->dir);
    assert_int_equal(bb_file_wait_count(log, "reason=line_timeout", 2, LOG_WAIT_MS), 2);
    bb_close(plain);
    bb_close(longer);
    bb_close(slow_ok);
    bb_close(active);
}

/* ---- A million pipelined commands, never read ---- */

static void
test_million_pipelined_never_read(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *other = bb_connect(s);
    bb_expect(other, "PING", "OK PONG");
    long hwm0 = kb_of(s, "VmHWM");
    struct bb_client *flood = bb_connect_opt(s, PIPE_RCVBUF);
    assert_non_null(flood);
    bb_set_timeout(flood, PIPE_SEND_MS);
    size_t total = (size_t)PIPE_COMMANDS * 5;
    char *buf = malloc(total);
    assert_non_null(buf);
    for (size_t i = 0; i < PIPE_COMMANDS; i++)
        memcpy(buf + i * 5, "PING\n", 5);

    size_t sent = 0;
    int stalled_ms = 0, err = 0;
    while (sent < total) {
        size_t len = total - sent < PIPE_CHUNK ? total - sent : PIPE_CHUNK;
        err = bb_try_send(flood, buf + sent, len);
        if (err == EAGAIN) {
            stalled_ms += PIPE_SEND_MS;
            if (stalled_ms >= PIPE_STALL_MS)
                break;
            bb_expect(other, "PING", "OK PONG");
            continue;
        }
        if (err != 0)
            break;
        sent += len;
    }
    free(buf);
    bool dropped = err == EPIPE || err == ECONNRESET;
    int64_t deadline = bb_now_ms() + PIPE_SETTLE_MS;
    while (!dropped && bb_now_ms() < deadline) {
        dropped = peer_gone(flood->fd);
        bb_sleep_ms(BB_POLL_MS);
    }
    long hwm1 = kb_of(s, "VmHWM");
    print_message("1,000,000 pipelined PINGs: %zu of %zu bytes sent, then %s; coupond VmHWM %ld kB "
                  "before, %ld kB after (+%ld kB)\n",
                  sent, total, dropped ? "cut off" : "still connected", hwm0, hwm1, hwm1 - hwm0);
    if (!dropped)
        fail_msg("a client that never reads was not cut off when its output stalled");
    if (!OTHER_ALLOCATOR && hwm1 - hwm0 > PIPE_HWM_MAX_KB)
        fail_msg("coupond's peak memory grew by %ld kB", hwm1 - hwm0);
    bb_expect(other, "PING", "OK PONG");
    bb_close(flood);
    bb_close(other);
}

/* ---- Random binary garbage ---- */

static uint64_t
xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Reads one garbage connection's replies up to the OK PONG of its final PING: every other line
 * is an error (ERR, or RESP's -). Returns the number of errors; -1 when the server closed the
 * connection. */
static int
drain_garbage(struct bb_client *c, int idx)
{
    char line[BB_LINE_MAX];
    int errors = 0;
    for (;;) {
        enum bb_read r = bb_read_line(c, line, sizeof line);
        if (r == BB_READ_CLOSED)
            return -1;
        if (r != BB_READ_LINE)
            fail_msg("garbage connection %d: no reply (%d) after %d errors", idx, (int)r, errors);
        if (strcmp(line, "OK PONG") == 0)
            return errors;
        /* A RESP error (-CODE ...) for garbage that starts like the Redis wire form. */
        if (!bb_has_prefix(line, "ERR") && line[0] != '-')
            fail_msg("garbage connection %d: a reply that is not an error: \"%s\"", idx, line);
        errors++;
    }
}

static void
test_random_garbage(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *admin = bb_connect_admin(s);
    bb_upload_gen(admin, "JUNK-", "", 10, NULL, 1);
    bb_close(admin);
    struct bb_client *c[JUNK_CONNS];
    for (int j = 0; j < JUNK_CONNS; j++)
        c[j] = bb_connect(s);
    uint64_t x = JUNK_SEED;
    static unsigned char junk[JUNK_MAX];
    size_t bytes = 0;
    for (int b = 0; b < JUNK_BUFS; b++) {
        for (int j = 0; j < JUNK_CONNS; j++) {
            size_t len = 1 + (size_t)(xorshift(&x) % JUNK_MAX);
            for (size_t i = 0; i < len; i++)
                junk[i] = (unsigned char)xorshift(&x);
            if (bb_try_send(c[j], junk, len) == 0) /* it may have been closed */
                bytes += len;
        }
    }
    int errors = 0, closed = 0;
    for (int j = 0; j < JUNK_CONNS; j++) {
        int e = bb_try_send(c[j], "\nPING\n", 6) == 0 ? drain_garbage(c[j], j) : -1;
        if (e == 0)
            fail_msg("garbage connection %d got no error at all", j);
        if (e < 0)
            closed++;
        else
            errors += e;
        bb_close(c[j]);
    }
    print_message("garbage: %zu random bytes on %d connections: %d errors, %d closed; "
                  "VmHWM %ld kB\n",
                  bytes, JUNK_CONNS, errors, closed, kb_of(s, "VmHWM"));
    normal_client_served(s, "after-garbage");
}

/* ---- UPLOAD 50000, then a disconnect ---- */

/* Polls the server's VmRSS until it has not grown for CUT_SETTLE_MS; returns the peak. */
static long
rss_plateau(const struct bb_server *s)
{
    long peak = kb_of(s, "VmRSS");
    int64_t grew = bb_now_ms(), deadline = grew + CUT_WAIT_MS;
    while (bb_now_ms() - grew < CUT_SETTLE_MS && bb_now_ms() < deadline) {
        bb_sleep_ms(BB_POLL_MS);
        long rss = kb_of(s, "VmRSS");
        if (rss > peak) {
            peak = rss;
            grew = bb_now_ms();
        }
    }
    return peak;
}

static void
test_upload_cut_off_releases_memory(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *admin = bb_connect_admin(s);
    assert_int_equal(bb_stat(admin, "created.NONE"), 0);
    long rss0 = kb_of(s, "VmRSS");
    struct bb_client *c = bb_connect_admin(s);
    size_t cap = 32 + (size_t)CUT_SENT * 64;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t len = (size_t)snprintf(buf, cap, "UPLOAD %d\n", CUT_COUNT);
    for (int i = 0; i < CUT_SENT; i++)
        len += (size_t)snprintf(buf + len, cap - len, "CUT-%06d,,10,FLAT,%s,1\n", i, BB_FAR_EXPIRY);
    bb_send(c, buf, len);
    free(buf);
    int unsent = 1;
    int64_t deadline = bb_now_ms() + CUT_WAIT_MS;
    while (ioctl(c->fd, SIOCOUTQ, &unsent) == 0 && unsent > 0 && bb_now_ms() < deadline)
        bb_sleep_ms(BB_POLL_MS);
    long peak = rss_plateau(s);
    bb_close(c);

    long rss1 = kb_of(s, "VmRSS");
    deadline = bb_now_ms() + CUT_RELEASE_MS;
    while ((rss1 = kb_of(s, "VmRSS")) > rss0 + CUT_SLACK_KB && bb_now_ms() < deadline)
        bb_sleep_ms(BB_POLL_MS);
    print_message("UPLOAD %d cut off after %d records: coupond VmRSS %ld kB before, %ld kB "
                  "holding them, %ld kB after the disconnect; VmHWM %ld kB\n",
                  CUT_COUNT, CUT_SENT, rss0, peak, rss1, kb_of(s, "VmHWM"));
    if (peak - rss0 < CUT_MIN_GROWTH)
        fail_msg("the upload never held memory (+%ld kB): did the server read it?", peak - rss0);
    if (!OTHER_ALLOCATOR && rss1 > rss0 + CUT_SLACK_KB)
        fail_msg("memory not released after the disconnect: %ld kB, was %ld kB", rss1, rss0);

    assert_int_equal(bb_stat(admin, "created.NONE"), 0);
    bb_expect_prefix(admin, "REQUEST nobody", "ERR NO_COUPONS");
    bb_upload_gen(admin, "CUT-", "", 10, NULL, 1); /* the codes were never taken */
    bb_close(admin);
    normal_client_served(s, "after-cut-upload");
}

/* ---- AUTH brute force ---- */

/* A wrong key of 64 hex digits, different for each (connection, attempt). */
static void
wrong_key(char *buf, size_t size, int conn, int attempt)
{
    snprintf(buf, size, "AUTH %056d%08d", conn, attempt);
}

static void
test_auth_brute_force(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c[BRUTE_CONNS];
    int64_t at[BRUTE_CONNS][BRUTE_KEYS];
    int got[BRUTE_CONNS] = {0};
    bool closed[BRUTE_CONNS] = {false};
    for (int i = 0; i < BRUTE_CONNS; i++)
        c[i] = bb_connect(s);
    struct bb_client *bystander = bb_connect(s);

    int64_t t0 = bb_now_ms();
    for (int i = 0; i < BRUTE_CONNS; i++) {
        char keys[BRUTE_KEYS * 80];
        size_t len = 0;
        for (int k = 0; k < BRUTE_KEYS; k++) {
            wrong_key(keys + len, sizeof keys - len, i, k);
            len += strlen(keys + len);
            keys[len++] = '\n';
        }
        bb_send(c[i], keys, len);
    }
    int done = 0;
    int64_t deadline = t0 + BRUTE_WAIT_MS, last = t0;
    while (done < BRUTE_CONNS && bb_now_ms() < deadline) {
        struct pollfd p[BRUTE_CONNS];
        for (int i = 0; i < BRUTE_CONNS; i++)
            p[i] = (struct pollfd){.fd = closed[i] ? -1 : c[i]->fd, .events = POLLIN};
        if (poll(p, BRUTE_CONNS, BB_POLL_MS * 5) <= 0) {
            int64_t t = bb_now_ms();
            bb_expect(bystander, "PING", "OK PONG"); /* others are served meanwhile */
            if (bb_now_ms() - t > PROMPT_MS)
                fail_msg("a PING took %lld ms during the attack", (long long)(bb_now_ms() - t));
            continue;
        }
        for (int i = 0; i < BRUTE_CONNS; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            char line[BB_LINE_MAX];
            enum bb_read r = bb_read_line(c[i], line, sizeof line);
            if (r == BB_READ_CLOSED && got[i] == BRUTE_KEYS) {
                closed[i] = true;
                done++;
                continue;
            }
            if (r != BB_READ_LINE || got[i] == BRUTE_KEYS || !bb_has_prefix(line, "ERR DENIED"))
                fail_msg("connection %d, answer %d: expected ERR DENIED (then a close), got %s", i,
                         got[i] + 1, r == BB_READ_LINE ? line : "no line");
            at[i][got[i]++] = last = bb_now_ms();
        }
    }
    if (done < BRUTE_CONNS)
        fail_msg("%d of %d connections were not closed after %d wrong keys", BRUTE_CONNS - done,
                 BRUTE_CONNS, BRUTE_KEYS);
    for (int i = 0; i < BRUTE_CONNS; i++)
        for (int k = 0; k < BRUTE_KEYS; k++)
            if (at[i][k] - (k ? at[i][k - 1] : t0) < AUTH_DELAY_MIN_MS)
                fail_msg("connection %d: wrong key %d answered %lld ms after the one before", i,
                         k + 1, (long long)(at[i][k] - (k ? at[i][k - 1] : t0)));
    double secs = (double)(last - t0) / 1000;
    print_message("AUTH brute force: %d connections x %d wrong keys answered in %.2f s = %.0f "
                  "attempts/s; every connection closed after its 3rd; VmHWM %ld kB\n",
                  BRUTE_CONNS, BRUTE_KEYS, secs, BRUTE_CONNS * BRUTE_KEYS / secs,
                  kb_of(s, "VmHWM"));
    for (int i = 0; i < BRUTE_CONNS; i++)
        bb_close(c[i]);

    /* Guessing without waiting for the answer: a right key would be answered at once, so a
     * guesser may take silence for "wrong" and hang up. Each guess still holds its connection
     * for the delay, so the keys checked per second stay below --max-clients (see SECURITY.md).
     * The server must stay up and serve the connections it has. */
    char log[BB_PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/ops.log", s->dir);
    int before = bb_file_count(log, "op=AUTH result=DENIED");
    int guesses = 0;
    int64_t t1 = bb_now_ms();
    while (bb_now_ms() - t1 < CHURN_MS && guesses < CHURN_MAX_GUESSES) {
        int fd = raw_connect(s->port);
        if (fd < 0)
            fail_msg("guess %d: connect: %s", guesses, strerror(errno));
        char key[80];
        wrong_key(key, sizeof key - 1, BRUTE_CONNS + guesses, 0);
        strcat(key, "\n");
        if (send(fd, key, strlen(key), MSG_NOSIGNAL) == (ssize_t)strlen(key))
            guesses++;
        close(fd);
    }
    int64_t churn_ms = bb_now_ms() - t1;
    int checked = bb_file_count(log, "op=AUTH result=DENIED"), last_count = -1;
    int64_t changed = bb_now_ms();
    deadline = changed + LOG_WAIT_MS;
    while (bb_now_ms() - changed < CHURN_SETTLE_MS && bb_now_ms() < deadline) {
        bb_sleep_ms(BB_POLL_MS);
        checked = bb_file_count(log, "op=AUTH result=DENIED");
        if (checked != last_count) {
            last_count = checked;
            changed = bb_now_ms();
        }
    }
    checked -= before;
    print_message("AUTH guessing without waiting for answers: %d guesses sent in %lld ms, %d "
                  "checked, the rest turned away: at most --max-clients (%d) keys per second\n",
                  guesses, (long long)churn_ms, checked, CHURN_MAX_CLIENTS);
    if (checked <= 0 || checked > guesses)
        fail_msg("%d guesses sent, %d checked", guesses, checked);
    if (checked > CHURN_MAX_CLIENTS * (churn_ms / 1000 + 1))
        fail_msg("%d keys checked in %lld ms: more than --max-clients per AUTH delay", checked,
                 (long long)churn_ms);
    assert_int_equal(bb_file_count(log, "op=AUTH result=OK"), 0);
    bb_expect(bystander, "PING", "OK PONG");
    bb_close(bystander);
}

/* ---- HTTP ---- */

/* Sends `request` as a connection's first bytes: one ERR BAD_REQUEST, then the close. */
static void
http_refused(struct bb_server *s, const char *request)
{
    struct bb_client *c = bb_connect(s);
    bb_send_str(c, request);
    char line[BB_LINE_MAX];
    enum bb_read r = bb_read_line(c, line, sizeof line);
    if (r != BB_READ_LINE || !bb_has_prefix(line, "ERR BAD_REQUEST"))
        fail_msg("\"%.40s...\": expected ERR BAD_REQUEST, got %s", request,
                 r == BB_READ_LINE ? line : "no line");
    r = bb_read_line(c, line, sizeof line);
    if (r != BB_READ_CLOSED)
        fail_msg("\"%.40s...\": expected the close after ERR BAD_REQUEST, got %s", request,
                 r == BB_READ_LINE ? line : "no close");
    bb_close(c);
}

static void
test_http_refused(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *admin = bb_connect_admin(s);
    bb_upload_gen(admin, "HTTP-", "", 1, NULL, 1);

    http_refused(s, "GET / HTTP/1.1\r\nHost: 127.0.0.1:7070\r\nAccept: */*\r\n\r\n");
    http_refused(s, "HEAD / HTTP/1.0\r\n\r\n");
    /* What a web page can make a browser send without a CORS preflight: a POST whose text/plain
     * body holds protocol lines. They must never run. */
    http_refused(s, "POST /coupons HTTP/1.1\r\nHost: 127.0.0.1:7070\r\nContent-Type: "
                    "text/plain\r\nContent-Length: 30\r\n\r\nREQUEST victim\nREQUEST victim2\n");
    /* The same, with a URL longer than a request line may be. */
    size_t cap = HTTP_LONG_URL + 256;
    char *req = malloc(cap);
    assert_non_null(req);
    size_t len = (size_t)snprintf(req, cap, "POST /");
    memset(req + len, 'a', HTTP_LONG_URL);
    len += HTTP_LONG_URL;
    snprintf(req + len, cap - len,
             " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
             "Content-Length: 15\r\n\r\nREQUEST victim\n");
    http_refused(s, req);
    free(req);

    assert_int_equal(bb_stat(admin, "assigned.NONE"), 0);
    bb_expect_prefix(admin, "VALIDATE victim HTTP-000000", "ERR INVALID");
    bb_expect_prefix(admin, "REQUEST rightful-user", "OK code=HTTP-000000");

    /* Only the first line is judged: later on, GET is just an unknown command. */
    struct bb_client *c = bb_connect(s);
    bb_expect(c, "PING", "OK PONG");
    bb_expect_prefix(c, "GET / HTTP/1.1", "ERR");
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
    bb_close(admin);
}

int
main(void)
{
    static const char *const idle[] = {"--max-clients", IDLE_MAX_CLIENTS, NULL};
    static const char *const slow[] = {"--idle-timeout", SLOW_IDLE_TIMEOUT, NULL};
    static const char *const brute[] = {"--max-clients", CHURN_MAX_CLIENTS_ARG, NULL};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_ten_thousand_idle, bb_setup, bb_teardown,
                                                 (void *)idle),
        cmocka_unit_test_prestate_setup_teardown(test_slowloris_dropped, bb_setup, bb_teardown,
                                                 (void *)slow),
        cmocka_unit_test_setup_teardown(test_million_pipelined_never_read, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_random_garbage, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_cut_off_releases_memory, bb_setup, bb_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_auth_brute_force, bb_setup, bb_teardown,
                                                 (void *)brute),
        cmocka_unit_test_setup_teardown(test_http_refused, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
