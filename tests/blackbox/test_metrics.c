/* test_metrics.c - --metrics-listen from outside (coupond(8)): GET /metrics answers Prometheus's
 * text format, which `promtool check metrics` accepts (tools/deps.sh installs it; without it
 * that check is skipped, saying so), with a series for every STATS name and the same values,
 * the commit latency histogram and the build info; only GET /metrics is served (404, 405, 400,
 * 431); a request split across packets is read whole; connections beyond the cap get 503 and
 * the cap frees up as they close; the main port keeps refusing HTTP; bad flag values exit 2 and
 * a port in use exits 1. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bb.h"

#define RESP_MAX   (128 * 1024) /* a whole HTTP reply */
#define NAME_MAX_  128
#define CONN_CAP   16   /* coupond(8): scrapes served at once */
#define LOG_WAIT   5000 /* ms for the METRICS_LISTEN line */
#define REQ_LONG   5000 /* bytes of headers: over the 4096 a request may have */
#define PACKET_GAP 50   /* ms between the pieces of a split request */
#define OUT_MAX    BB_RUN_OUT_MAX

static const char *const metrics_args[] = {"--metrics-listen", "127.0.0.1:0", NULL};

/* The port the METRICS_LISTEN line of the server's log names. */
static unsigned
metrics_port(const struct bb_server *s)
{
    char log[BB_PATH_MAX + 16], line[512], val[16];
    bb_fmt(log, sizeof log, "%s/ops.log", s->dir);
    if (!bb_file_wait_line(log, "op=METRICS_LISTEN ", LOG_WAIT, line, sizeof line))
        fail_msg("no METRICS_LISTEN line in %s", log);
    assert_int_equal(bb_logfmt_field(line, "port", val, sizeof val), 1);
    return (unsigned)strtoul(val, NULL, 10);
}

static int
tcp_connect(unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = BB_IO_TIMEOUT_MS / 1000};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fail_msg("connect to port %u: %s", port, strerror(errno));
    return fd;
}

static void
send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            fail_msg("send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Reads until the server closes; the reply, NUL-terminated, in resp[RESP_MAX]. */
static size_t
read_all(int fd, char *resp)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, resp + len, RESP_MAX - 1 - len, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            break;
        if (n < 0)
            fail_msg("recv: %s (after %zu bytes)", strerror(errno), len);
        len += (size_t)n;
        if (len == RESP_MAX - 1)
            fail_msg("reply longer than %d bytes", RESP_MAX);
    }
    resp[len] = '\0';
    return len;
}

/* Sends a raw request and returns the reply's status code; the reply is in resp. */
static int
http(unsigned port, const char *req, char *resp)
{
    int fd = tcp_connect(port), status = 0;
    send_all(fd, req, strlen(req));
    read_all(fd, resp);
    close(fd);
    if (sscanf(resp, "HTTP/1.1 %d ", &status) != 1)
        fail_msg("not an HTTP reply: %.200s", resp);
    return status;
}

/* The body of an HTTP reply, after checking Content-Length against it. */
static const char *
body_of(const char *resp)
{
    const char *end = strstr(resp, "\r\n\r\n"), *cl = strstr(resp, "Content-Length: ");
    assert_non_null(end);
    assert_true(cl != NULL && cl < end);
    assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(end + 4));
    assert_non_null(strstr(resp, "Connection: close\r\n"));
    return end + 4;
}

static bool
has_line(const char *body, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = body; (p = strstr(p, line)) != NULL; p++)
        if ((p == body || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static void
expect_line(const char *body, const char *line)
{
    if (!has_line(body, line))
        fail_msg("no line \"%s\" in the metrics:\n%s", line, body);
}

/* `promtool check metrics` on the body, when promtool is there. */
static void
promtool_check(const struct bb_server *s, const char *body)
{
    const char *tool = getenv("PROMTOOL");
    char file[BB_PATH_MAX + 32], out[BB_PATH_MAX + 32], cmd[3 * BB_PATH_MAX + 128], text[4096];
    if (tool == NULL || *tool == '\0') {
        print_message("NOTE: promtool not found (tools/deps.sh installs the prometheus package): "
                      "the exposition is not checked by Prometheus's own parser\n");
        return;
    }
    bb_fmt(file, sizeof file, "%s/metrics.txt", s->dir);
    bb_fmt(out, sizeof out, "%s/promtool.out", s->dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    bb_fmt(cmd, sizeof cmd, "'%s' check metrics < '%s' > '%s' 2>&1", tool, file, out);
    int rc = system(cmd);
    if (rc != 0) {
        f = fopen(out, "r");
        size_t n = f != NULL ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        text[n] = '\0';
        fail_msg("promtool check metrics failed (%d):\n%s", rc, text);
    }
}

/* The metric of a STAT line's name: '.' as '_', a trailing _s as _seconds, _total for a
 * counter (which the body's TYPE line tells), and a type label for a per-type name. */
static void
series_of(const char *body, const char *stat, char *series, size_t cap)
{
    static const char *const types[] = {".NONE", ".FREE", ".STANDARD", ".MEGADEAL"};
    char base[NAME_MAX_], type_line[NAME_MAX_ + 32], label[32] = "";
    size_t n = strlen(stat);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t t = strlen(types[i]);
        if (n > t && strcmp(stat + n - t, types[i]) == 0) {
            bb_fmt(label, sizeof label, "{type=\"%s\"}", types[i] + 1);
            n -= t;
        }
    }
    bb_fmt(base, sizeof base, "coupond_%.*s", (int)n, stat);
    for (char *p = base; *p != '\0'; p++)
        if (*p == '.')
            *p = '_';
    size_t b = strlen(base);
    if (b > 2 && strcmp(base + b - 2, "_s") == 0)
        bb_fmt(base + b - 2, sizeof base - (b - 2), "_seconds");
    bb_fmt(type_line, sizeof type_line, "# TYPE %s_total counter", base);
    if (has_line(body, type_line))
        bb_fmt(series, cap, "%s_total%s", base, label);
    else
        bb_fmt(series, cap, "%s%s", base, label);
}

/* ---- the scrape ---- */

static void
test_scrape(void **state)
{
    struct bb_server *s = *state;
    static char resp[RESP_MAX], stats[BB_REPLY_MAX];
    char line[256], series[NAME_MAX_ + 32];
    unsigned port = metrics_port(s);

    struct bb_client *c = bb_connect_admin(s);
    bb_upload_gen(c, "M-", "FREE", 5, NULL, 1);
    for (int i = 0; i < 3; i++)
        bb_expect_prefix(c, "REQUEST alice FREE", "OK code=");
    bb_expect_prefix(c, "REDEEM alice M-000000", "OK code=M-000000");
    const char *st = bb_cmd(c, "STATS", stats);
    assert_true(bb_has_prefix(st, "OK"));

    assert_int_equal(http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", resp), 200);
    assert_non_null(strstr(resp, "Content-Type: text/plain; version=0.0.4"));
    const char *body = body_of(resp);
    expect_line(body, "coupond_assigned_total{type=\"FREE\"} 3");
    expect_line(body, "coupond_available{type=\"FREE\"} 2");
    expect_line(body, "coupond_redeemed_total{type=\"FREE\"} 1");
    expect_line(body, "# TYPE coupond_commit_seconds histogram");
    expect_line(body, "# TYPE coupond_uptime_seconds gauge");
    assert_non_null(strstr(body, "\ncoupond_build_info{version=\""));
    assert_non_null(
        strstr(body, bb_on_pg() ? "\",store=\"postgresql\"} 1\n" : "\",store=\"lmdb\"} 1\n"));

    /* Every STATS name has its series, with the same value where nothing moves it. */
    for (char *l = strtok(stats, "\n"); l != NULL; l = strtok(NULL, "\n")) {
        char name[NAME_MAX_];
        unsigned long long v;
        if (sscanf(l, "STAT %127s %llu", name, &v) != 2)
            continue;
        series_of(body, name, series, sizeof series);
        bool moving = strncmp(name, "uptime", 6) == 0 || strncmp(name, "command", 7) == 0 ||
                      strncmp(name, "connections", 11) == 0 || strncmp(name, "commit", 6) == 0;
        bb_fmt(line, sizeof line, "%s %llu", series, v);
        if (!moving)
            expect_line(body, line);
        else if (strstr(body, series) == NULL)
            fail_msg("no series %s for STAT %s", series, name);
    }
    /* The histogram's buckets end with all the commits. */
    unsigned long long inf = 0, count = 0;
    const char *p = strstr(body, "coupond_commit_seconds_bucket{le=\"+Inf\"} ");
    assert_non_null(p);
    inf = strtoull(p + strlen("coupond_commit_seconds_bucket{le=\"+Inf\"} "), NULL, 10);
    p = strstr(body, "\ncoupond_commit_seconds_count ");
    assert_non_null(p);
    count = strtoull(p + strlen("\ncoupond_commit_seconds_count "), NULL, 10);
    assert_int_equal(inf, count);
    assert_true(count >= 3);
    promtool_check(s, body);

    /* A query string changes nothing; HTTP/1.0 is served too. */
    assert_int_equal(http(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n", resp), 200);
    bb_close(c);
}

/* ---- HTTP's edges ---- */

static void
test_http_edges(void **state)
{
    struct bb_server *s = *state;
    static char resp[RESP_MAX];
    static char long_req[REQ_LONG + 64];
    unsigned port = metrics_port(s);

    assert_int_equal(http(port, "GET / HTTP/1.1\r\n\r\n", resp), 404);
    assert_int_equal(http(port, "GET /metrics/ HTTP/1.1\r\n\r\n", resp), 404);
    assert_int_equal(http(port, "GET /METRICS HTTP/1.1\r\n\r\n", resp), 404);
    assert_int_equal(http(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", resp), 405);
    assert_non_null(strstr(resp, "Allow: GET\r\n"));
    assert_int_equal(http(port, "HEAD /metrics HTTP/1.1\r\n\r\n", resp), 405);
    assert_int_equal(http(port, "PING\r\n\r\n", resp), 400);
    assert_int_equal(http(port, "GET /metrics SMTP/1.0\n\n", resp), 400);
    memcpy(long_req, "GET /metrics HTTP/1.1\r\nX: ", 26);
    memset(long_req + 26, 'x', REQ_LONG);
    long_req[26 + REQ_LONG] = '\0';
    assert_int_equal(http(port, long_req, resp), 431);

    /* A request in pieces, bare LFs included, is read whole. */
    static const char *const pieces[] = {"GE", "T /metr", "ics HTTP/1.1\n", "Host: x\n", "\n"};
    int fd = tcp_connect(port);
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        send_all(fd, pieces[i], strlen(pieces[i]));
        bb_sleep_ms(PACKET_GAP);
    }
    read_all(fd, resp);
    close(fd);
    assert_true(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
    body_of(resp);

    /* The main port keeps refusing HTTP. */
    struct bb_client *c = bb_connect(s);
    bb_send_str(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    char reply[BB_REPLY_MAX];
    const char *st = bb_get_reply(c, reply);
    assert_true(bb_has_prefix(st, "ERR BAD_REQUEST"));
    assert_true(bb_wait_closed(c, BB_IO_TIMEOUT_MS));
    bb_close(c);
}

/* CONN_CAP connections that send nothing hold every place: the next gets 503 at once. Closing
 * one frees its place. */
static void
test_connection_cap(void **state)
{
    struct bb_server *s = *state;
    static char resp[RESP_MAX];
    unsigned port = metrics_port(s);
    int idle[CONN_CAP];

    for (int i = 0; i < CONN_CAP; i++)
        idle[i] = tcp_connect(port);
    bb_sleep_ms(PACKET_GAP); /* the server accepts them all */
    assert_int_equal(http(port, "GET /metrics HTTP/1.1\r\n\r\n", resp), 503);
    close(idle[0]);
    int status = 0;
    for (int tries = 0; tries < 100 && status != 200; tries++) {
        bb_sleep_ms(BB_POLL_MS);
        status = http(port, "GET /metrics HTTP/1.1\r\n\r\n", resp);
    }
    assert_int_equal(status, 200);
    for (int i = 1; i < CONN_CAP; i++)
        close(idle[i]);
    /* The line protocol is not held up meanwhile. */
    struct bb_client *c = bb_connect(s);
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

/* ---- the flag ---- */

static void
test_flag_values(void **state)
{
    (void)state;
    static char out[OUT_MAX], err[OUT_MAX];
    char dir[BB_PATH_MAX], arg[64];
    static const char *const bad[] = {"127.0.0.1", "127.0.0.1:",     "127.0.0.1:65536", ":9100",
                                      "[::1]9100", "localhost:x",    "999.1.1.1:9100",  "[::1:9100",
                                      "::1:9100",  "-bad-name-:9100"};
    assert_true(bb_tmpdir_make(dir));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *const args[] = {"-d", dir, "-p", "0", "--metrics-listen", bad[i], NULL};
        int st = bb_run(args, out, sizeof out, err, sizeof err);
        if (st != 2 || strstr(err, "--metrics-listen") == NULL)
            fail_msg("--metrics-listen %s: status %d, %s", bad[i], st, err);
    }
    /* A port in use: exit 1, naming the flag; nothing is left running. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    bb_fmt(arg, sizeof arg, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    const char *const args[] = {"-d", dir, "-p", "0", "--metrics-listen", arg, NULL};
    int st = bb_run(args, out, sizeof out, err, sizeof err);
    if (st != 1 || strstr(err, "--metrics-listen") == NULL || strstr(err, "in use") == NULL)
        fail_msg("--metrics-listen on a port in use: status %d, %s", st, err);
    close(fd);
    bb_tmpdir_remove(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_scrape, bb_setup, bb_teardown,
                                                 (void *)metrics_args),
        cmocka_unit_test_prestate_setup_teardown(test_http_edges, bb_setup, bb_teardown,
                                                 (void *)metrics_args),
        cmocka_unit_test_prestate_setup_teardown(test_connection_cap, bb_setup, bb_teardown,
                                                 (void *)metrics_args),
        cmocka_unit_test(test_flag_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
