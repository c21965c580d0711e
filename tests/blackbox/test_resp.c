/* test_resp.c - the Redis wire form on the real server (coupond-protocol(7), "The Redis wire
 * form"): RESP requests take the command path of lines and are answered in RESP2, or RESP3 after
 * HELLO 3; lines keep their replies; UPLOAD's records as arguments; long replies say their length
 * first; bad RESP is answered, and closes the connection when its end cannot be known; and the
 * commands Redis clients send when they connect. Raw bytes in, replies read value by value. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bb.h"

#define DESC_MAX      (4 * 1024 * 1024) /* the description of one reply */
#define MANY          2500 /* coupons of the long replies: several parts of the output */
#define FIRST_FRAME   9    /* UPLOAD records that fit its first frame beside the verb */
#define UPLOAD_ARGS   30   /* records of the RESP upload: most come one per frame */
#define QUIET_MS      300  /* no stray reply may arrive within this */
#define CLOSE_WAIT_MS 3000 /* a fatal error closes the connection within this */

/* ---- writing RESP requests ---- */

/* A RESP request of the given arguments (NULL-terminated), sent in one write. */
static void
send_resp(struct bb_client *c, ...)
{
    static char buf[1 << 20];
    const char *args[4096];
    size_t n = 0, len = 0;
    va_list ap;

    va_start(ap, c);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
        args[n++] = a;
    va_end(ap);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "*%zu\r\n", n);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "$%zu\r\n%s\r\n", strlen(args[i]),
                                args[i]);
    assert_true(len < sizeof buf);
    bb_send(c, buf, len);
}

/* ---- reading RESP replies ---- */

struct desc {
    char *p;
    size_t len;
};

static void
add(struct desc *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(d->p + d->len, DESC_MAX - d->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && d->len + (size_t)n < DESC_MAX);
    d->len += (size_t)n;
}

static void
header(struct bb_client *c, char *line, size_t cap)
{
    enum bb_read r = bb_read_line(c, line, cap);
    if (r != BB_READ_LINE)
        fail_msg("no RESP value: the connection gave %d", (int)r);
    size_t n = strlen(line);
    if (n == 0 || line[n - 1] != '\r')
        fail_msg("a RESP header without CR LF: \"%s\"", line);
    line[n - 1] = '\0';
}

/* Reads one RESP value and describes it: +simple, -error, integers as digits, "bulk", nil,
 * [a,b] and {k:v,k:v}. A bulk string's bytes are read as lines, LF put back. */
static void
read_value(struct bb_client *c, struct desc *d)
{
    static char line[BB_LINE_MAX];
    header(c, line, sizeof line);
    long long n = atoll(line + 1);
    switch (line[0]) {
    case '+':
    case '-':
        add(d, "%s", line);
        return;
    case ':':
        add(d, "%s", line + 1);
        return;
    case '_':
        add(d, "nil");
        return;
    case '$': {
        if (n < 0) {
            add(d, "nil");
            return;
        }
        char *bulk = malloc((size_t)n + BB_LINE_MAX);
        size_t got = 0;
        assert_non_null(bulk);
        while (got < (size_t)n + 1) { /* the payload, then the CR before the LF */
            if (bb_read_line(c, bulk + got, (size_t)n + BB_LINE_MAX - got) != BB_READ_LINE)
                fail_msg("a bulk string of %lld bytes ended early", n);
            got += strlen(bulk + got);
            if (got < (size_t)n + 1)
                bulk[got++] = '\n';
        }
        assert_int_equal(got, (size_t)n + 1);
        assert_int_equal(bulk[n], '\r');
        add(d, "\"%.*s\"", (int)n, bulk);
        free(bulk);
        return;
    }
    case '*':
    case '%': {
        bool map = line[0] == '%';
        add(d, map ? "{" : "[");
        for (long long i = 0; i < n; i++) {
            if (i > 0)
                add(d, ",");
            read_value(c, d);
            if (map) {
                add(d, ":");
                read_value(c, d);
            }
        }
        add(d, map ? "}" : "]");
        return;
    }
    default:
        fail_msg("not a RESP value: \"%s\"", line);
    }
}

/* The next reply, described (valid until the next call). */
static const char *
reply(struct bb_client *c)
{
    static struct desc d;

    if (d.p == NULL)
        d.p = malloc(DESC_MAX);
    assert_non_null(d.p);
    d.len = 0;
    d.p[0] = '\0';
    read_value(c, &d);
    return d.p;
}

#define expect_reply(c, want) expect_reply_at(__FILE__, __LINE__, (c), (want))
static void
expect_reply_at(const char *file, int line, struct bb_client *c, const char *want)
{
    const char *got = reply(c);
    if (strcmp(got, want) != 0)
        fail_msg("%s:%d: expected %s, got %.2000s", file, line, want, got);
}

#define expect_reply_prefix(c, want) expect_prefix_at(__FILE__, __LINE__, (c), (want))
static const char *
expect_prefix_at(const char *file, int line, struct bb_client *c, const char *want)
{
    const char *got = reply(c);
    if (strncmp(got, want, strlen(want)) != 0)
        fail_msg("%s:%d: expected %s..., got %.2000s", file, line, want, got);
    return got;
}

/* Elements of the array described by `d` (its top level). */
static size_t
top_elements(const char *d)
{
    size_t n = 0, depth = 0;
    bool in_bulk = false;

    for (const char *p = d; *p != '\0'; p++) {
        if (*p == '"')
            in_bulk = !in_bulk;
        if (in_bulk)
            continue;
        if (*p == '[' || *p == '{')
            depth++;
        else if (*p == ']' || *p == '}')
            depth--;
        else if (*p == ',' && depth == 1)
            n++;
    }
    return d[0] == '[' && d[1] != ']' ? n + 1 : 0;
}

static void
resp_auth(struct bb_client *c, const struct bb_server *s)
{
    send_resp(c, "AUTH", s->key, NULL);
    expect_reply(c, "+OK");
}

/* ---- tests ---- */

/* The replies of PROTOCOL.md's shapes in RESP2: +OK, +word, a flat array of fields, an error. */
static void
test_resp2_shapes(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect(s);

    send_resp(c, "PING", NULL);
    expect_reply(c, "+PONG");
    send_resp(c, "request", "alice", "FREE", NULL);
    expect_reply_prefix(c, "-NO_COUPONS ");
    send_resp(c, "STATS", NULL);
    expect_reply_prefix(c, "-DENIED ");
    resp_auth(c, s);
    send_resp(c, "UPLOAD", "F-1,FREE,10,FLAT,2099-12-31,3", "F-2,FREE,12.5,PERCENT,2099-12-31,1",
              NULL);
    expect_reply(c, "[\"uploaded\",2]");
    send_resp(c, "REQUEST", "alice", "FREE", NULL);
    expect_reply(c, "[\"code\",\"F-1\",\"type\",\"FREE\",\"discount\",\"10.00\",\"kind\",\"FLAT\","
                    "\"expires\",\"2099-12-31T23:59:59Z\",\"uses\",0,\"max_uses\",3]");
    send_resp(c, "REDEEM", "alice", "f-1", NULL);
    expect_reply_prefix(c, "[\"code\",\"F-1\",");
    send_resp(c, "REDEEM", "bob", "F-1", NULL);
    expect_reply_prefix(c, "-INVALID ");
    send_resp(c, "STATS", NULL);
    const char *st = reply(c);
    assert_non_null(strstr(st, "[\"assigned.FREE\",1]"));
    assert_non_null(strstr(st, ",+OK]"));
    bb_close(c);
}

/* HELLO 3 switches the connection's RESP requests to RESP3; a line keeps its line reply. */
static void
test_hello3_and_lines(void **state)
{
    static char line_reply[BB_REPLY_MAX];
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect_admin(s);

    bb_upload_gen(c, "H-", "STANDARD", 3, NULL, 2);
    send_resp(c, "HELLO", NULL);
    expect_reply_prefix(c, "[\"server\",\"coupond\",\"version\",");
    send_resp(c, "HELLO", "3", NULL);
    const char *h = reply(c);
    assert_non_null(strstr(h, "{\"server\":\"coupond\","));
    assert_non_null(strstr(h, "\"proto\":3,"));
    assert_non_null(strstr(h, "\"modules\":[]}"));
    send_resp(c, "REQUEST", "ann", "STANDARD", NULL);
    expect_reply_prefix(c, "{\"code\":\"H-000000\",\"type\":\"STANDARD\",");
    assert_string_equal(bb_cmd(c, "PING", line_reply), "OK PONG");
    /* a line and RESP in one packet: each answered in its own form, in order */
    bb_send_str(c, "REQUEST bob STANDARD\n*1\r\n$4\r\nPING\r\nPING\n");
    assert_true(bb_has_prefix(bb_get_reply(c, line_reply), "OK code=H-000001"));
    expect_reply(c, "+PONG");
    assert_string_equal(bb_get_reply(c, line_reply), "OK PONG");
    send_resp(c, "HELLO", "2", NULL);
    expect_reply_prefix(c, "[\"server\",");
    send_resp(c, "HELLO", "4", NULL);
    expect_reply_prefix(c, "-BAD_REQUEST NOPROTO");
    bb_close(c);
}

/* UPLOAD in RESP: records as arguments, most of them past the first frame; id= first; a refused
 * upload reads all its records and the connection stays in step. */
static void
test_upload_as_arguments(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect(s);
    static char buf[64 * 1024];
    size_t len = 0;

    send_resp(c, "UPLOAD", "A-1,FREE,1,FLAT,2099-12-31,1", NULL);
    expect_reply_prefix(c, "-DENIED ");
    resp_auth(c, s);
    len += (size_t)snprintf(buf, sizeof buf, "*%d\r\n$6\r\nUPLOAD\r\n$8\r\nid=up-01\r\n",
                            UPLOAD_ARGS + 2);
    for (int i = 0; i < UPLOAD_ARGS; i++) {
        char rec[64];
        int n = snprintf(rec, sizeof rec, "U-%03d,STANDARD,5,FLAT,2099-12-31,1", i);
        len += (size_t)snprintf(buf + len, sizeof buf - len, "$%d\r\n%s\r\n", n, rec);
    }
    /* split in two writes, in the middle of an argument */
    bb_send(c, buf, len / 2);
    bb_sleep_ms(50);
    bb_send(c, buf + len / 2, len - len / 2);
    expect_reply(c, "[\"uploaded\",30]");
    bb_send(c, buf, len); /* the same request id: replayed */
    expect_reply(c, "[\"uploaded\",30,\"replayed\",\"1\"]");
    /* null, empty and bad records are rejected, with their REJECT lines in the error */
    bb_send_str(c, "*4\r\n$6\r\nUPLOAD\r\n$-1\r\n$0\r\n\r\n$3\r\nbad\r\n");
    const char *e = expect_reply_prefix(c, "-BAD_BATCH 3 of 3 records rejected");
    assert_non_null(strstr(e, "; REJECT 1 "));
    assert_non_null(strstr(e, "; REJECT 3 "));
    send_resp(c, "PING", NULL);
    expect_reply(c, "+PONG");
    /* a line UPLOAD's records are lines, even one that starts like RESP */
    bb_send_str(c, "UPLOAD 2\n*1\r\nL-1,FREE,1,FLAT,2099-12-31,1\n");
    static char line_reply[BB_REPLY_MAX];
    assert_true(bb_has_prefix(bb_get_reply(c, line_reply), "ERR BAD_BATCH 1 of 2"));
    send_resp(c, "PING", NULL);
    expect_reply(c, "+PONG");
    bb_close(c);
}

/* The long replies in RESP: an array of their data lines, counted first, then the status. */
static void
test_long_replies_counted(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect_admin(s);
    char cmd[128];

    bb_upload_gen(c, "E-", "FREE", MANY, NULL, 5);
    bb_upload_gen(c, "S-", "STANDARD", 10, NULL, 5);
    for (int i = 0; i < 3; i++) {
        static char r[BB_REPLY_MAX];
        snprintf(cmd, sizeof cmd, "REQUEST carol FREE");
        bb_cmd(c, cmd, r);
    }
    bb_expect_prefix(c, "REDEEM carol E-000000", "OK code=E-000000");
    bb_expect_prefix(c, "REDEEM carol E-000000", "OK code=E-000000");
    bb_expect_prefix(c, "UNREDEEM carol 1", "OK code=E-000000");

    send_resp(c, "EXPORT", "COUPONS", NULL);
    const char *d = reply(c);
    assert_int_equal(top_elements(d), MANY + 10 + 1);
    assert_non_null(strstr(d, "[\"count\",2510]]"));
    send_resp(c, "EXPORT", "COUPONS", "standard", NULL);
    d = reply(c);
    assert_int_equal(top_elements(d), 10 + 1);
    send_resp(c, "EXPORT", "COUPONS", "MEGADEAL", NULL);
    expect_reply(c, "[[\"count\",0]]");
    send_resp(c, "EXPORT", "HISTORY", NULL);
    d = reply(c);
    assert_int_equal(top_elements(d), 2 + 1);
    assert_non_null(strstr(d, "\"undone\""));
    send_resp(c, "EXPORT", "HISTORY", "after=1", NULL);
    expect_reply_prefix(c, "[[\"seq\",2,");
    send_resp(c, "COUPON", "E-000000", NULL);
    d = reply(c);
    assert_int_equal(top_elements(d), 1 + 2 + 1);
    assert_non_null(strstr(d, "\"user\",\"carol\""));
    send_resp(c, "COUPONS", "carol", NULL);
    d = reply(c);
    assert_int_equal(top_elements(d), 3 + 1);
    assert_non_null(strstr(d, "[\"count\",3]]"));
    send_resp(c, "COUPONS", "nobody", NULL);
    expect_reply(c, "[[\"count\",0]]");
    send_resp(c, "GENERATE", "40", "FREE", "1", "FLAT", "2099-12-31", "1", NULL);
    d = reply(c);
    assert_int_equal(top_elements(d), 40 + 1);
    assert_non_null(strstr(d, "[\"generated\",40]]"));
    /* in RESP3 too, and a line after it is still a line */
    send_resp(c, "HELLO", "3", NULL);
    reply(c);
    send_resp(c, "EXPORT", "COUPONS", NULL);
    d = reply(c);
    assert_int_equal(top_elements(d), MANY + 10 + 40 + 1);
    assert_non_null(strstr(d, "{\"count\":2550}]"));
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

/* Two connections' long replies at once, each in its own form: the writer keeps each apart. */
static void
test_long_replies_interleaved(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *a = bb_connect_admin(s);
    struct bb_client *b = bb_connect_admin(s);
    static char line[BB_LINE_MAX];

    bb_upload_gen(a, "I-", "FREE", MANY, NULL, 1);
    send_resp(a, "HELLO", "3", NULL);
    reply(a);
    send_resp(a, "EXPORT", "COUPONS", NULL);
    send_resp(b, "EXPORT", "COUPONS", NULL);
    bb_send_str(b, "EXPORT COUPONS\n");
    const char *d = reply(a);
    assert_int_equal(top_elements(d), MANY + 1);
    d = reply(b);
    assert_int_equal(top_elements(d), MANY + 1);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(bb_read_line(b, line, sizeof line), BB_READ_LINE);
        assert_int_equal(strncmp(line, "COUPON code=I-", 14), 0);
    }
    assert_int_equal(bb_read_line(b, line, sizeof line), BB_READ_LINE);
    assert_string_equal(line, "OK count=2500");
    bb_close(a);
    bb_close(b);
}

/* Bad RESP: answered; in step, the connection lives; out of step, it closes after the answer. */
static void
test_resp_errors(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect(s);

    bb_send_str(c, "*-2\r\n");
    expect_reply_prefix(c, "-BAD_REQUEST Protocol error: negative multibulk length");
    bb_send_str(c, "$5\r\nhello\r\n");
    expect_reply_prefix(c, "-BAD_REQUEST Protocol error: bulk string outside an array");
    bb_send_str(c, "*2\r\n$4\r\nPING\r\n$-1\r\n");
    expect_reply(c, "-BAD_REQUEST null string as argument 1");
    bb_send_str(c, "*2\r\n$7\r\nREQUEST\r\n$6\r\nal ice\r\n");
    expect_reply(c, "-BAD_REQUEST blank in argument 1");
    /* a request too long to keep: its arguments are dropped, the next request is answered */
    bb_send_str(c, "*12\r\n$7\r\nREQUEST\r\n");
    for (int i = 0; i < 11; i++)
        bb_send_str(c, "$1\r\nx\r\n");
    expect_reply_prefix(c, "-BAD_REQUEST usage: REQUEST");
    bb_send_str(c, "*0\r\n*1\r\n$4\r\nPING\r\n");
    expect_reply(c, "+PONG");
    bb_send_str(c, "*1\r\n$3\r\nFOO\r\n");
    expect_reply(c, "-UNKNOWN_COMMAND unknown command FOO");
    /* a nested array: the stream's end cannot be known any more */
    bb_send_str(c, "*1\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n");
    expect_reply_prefix(c, "-BAD_REQUEST Protocol error: expected '$'");
    assert_true(bb_wait_closed(c, CLOSE_WAIT_MS));
    bb_close(c);
    /* a client that hangs up in the middle of a RESP upload: nothing stored */
    c = bb_connect_admin(s);
    bb_send_str(c, "*3\r\n$6\r\nUPLOAD\r\n$28\r\nZ-1,FREE,1,FLAT,2099-12-31,1\r\n$28\r\nZ-2,FR");
    bb_close(c);
    c = bb_connect_admin(s);
    assert_int_equal(bb_stat(c, "created.FREE"), 0);
    bb_close(c);
}

/* What Redis clients send when they connect, and the answers they parse. */
static void
test_client_commands(void **state)
{
    struct bb_server *s = bb_server_of(state);
    struct bb_client *c = bb_connect(s);

    send_resp(c, "CLIENT", "SETINFO", "lib-name", "my lib (v1)", NULL);
    expect_reply(c, "+OK");
    send_resp(c, "CLIENT", "SETINFO", "LIB-VER", "1.2.3", NULL);
    expect_reply(c, "+OK");
    send_resp(c, "CLIENT", "SETNAME", "shop-7", NULL);
    expect_reply(c, "+OK");
    send_resp(c, "CLIENT", "GETNAME", NULL);
    expect_reply(c, "\"shop-7\"");
    send_resp(c, "client", "info", NULL);
    const char *ci = expect_reply_prefix(c, "\"id=");
    assert_non_null(strstr(ci, " name=shop-7 "));
    assert_non_null(strstr(ci, " lib-name=my?lib?(v1) lib-ver=1.2.3\n\""));
    send_resp(c, "CLIENT", "ID", NULL);
    const char *id = reply(c);
    assert_true(id[0] >= '1' && id[0] <= '9');
    send_resp(c, "CLIENT", "KILL", "x", NULL);
    expect_reply_prefix(c, "-UNKNOWN_COMMAND ");
    send_resp(c, "SELECT", "0", NULL);
    expect_reply(c, "+OK");
    send_resp(c, "SELECT", "1", NULL);
    expect_reply_prefix(c, "-BAD_REQUEST DB index is out of range");
    send_resp(c, "ECHO", "hello world", NULL);
    expect_reply(c, "\"hello world\"");
    send_resp(c, "CONFIG", "GET", "save", NULL);
    expect_reply(c, "[\"save\",\"\"]");
    send_resp(c, "CONFIG", "GET", "appendonly", NULL);
    expect_reply(c, "[\"appendonly\",\"yes\"]");
    send_resp(c, "CONFIG", "GET", "nothing*", NULL);
    expect_reply(c, "[]");
    send_resp(c, "CONFIG", "SET", "save", "900", NULL);
    expect_reply_prefix(c, "-UNKNOWN_COMMAND CONFIG SET is not supported");
    send_resp(c, "COMMAND", "DOCS", NULL);
    expect_reply(c, "[]");
    send_resp(c, "COMMAND", "COUNT", NULL);
    const char *n = reply(c);
    assert_true(atoi(n) > 20);
    send_resp(c, "COMMAND", "INFO", "request", "frob", NULL);
    expect_reply(c, "[[\"request\",-2,[],0,0,0],nil]");
    send_resp(c, "INFO", NULL);
    const char *info = expect_reply_prefix(c, "\"# Server\r\nredis_version:");
    assert_non_null(strstr(info, "\r\ncoupond_version:"));
    assert_non_null(strstr(info, "\r\nloading:0\r\n"));
    assert_non_null(strstr(info, "\r\ncreated.FREE:0\r\n"));
    send_resp(c, "INFO", "replication", NULL);
    expect_reply(c, "\"# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\"");
    send_resp(c, "INFO", "nosuchsection", NULL);
    expect_reply(c, "\"\"");
    /* the same commands typed as lines */
    bb_expect(c, "CLIENT GETNAME", "OK name=shop-7");
    bb_expect(c, "CONFIG GET appendfsync", "OK appendfsync=always");
    bb_expect(c, "ECHO hi", "OK echo=hi");
    bb_expect_prefix(c, "INFO server", "OK");
    bb_expect_prefix(c, "HELLO 3", "OK server=coupond version=");
    /* HELLO with AUTH: the key opens the admin commands; a wrong one is DENIED, nothing set */
    send_resp(c, "HELLO", "2", "AUTH", "default", "0000", NULL);
    expect_reply_prefix(c, "-DENIED ");
    send_resp(c, "STATS", NULL);
    expect_reply_prefix(c, "-DENIED ");
    send_resp(c, "HELLO", "3", "AUTH", "default", s->key, "SETNAME", "n2", NULL);
    expect_reply_prefix(c, "{\"server\":\"coupond\",");
    send_resp(c, "STATS", NULL);
    expect_reply_prefix(c, "[[\"uptime_s\",");
    bb_close(c);
    /* AUTH name key: admin and default are the admin key's names */
    c = bb_connect(s);
    send_resp(c, "AUTH", "admin", s->key, NULL);
    expect_reply(c, "+OK");
    send_resp(c, "AUTH", "bob", s->key, NULL);
    expect_reply_prefix(c, "-DENIED ");
    bb_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resp2_shapes, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_hello3_and_lines, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_as_arguments, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_long_replies_counted, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_long_replies_interleaved, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_resp_errors, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_client_commands, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
