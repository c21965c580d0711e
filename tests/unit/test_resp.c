/* test_resp.c - unit tests of protocol/'s Redis wire form: the RESP framer (frame.h, resp.h),
 * RESP requests against their line form (proto_parse_args), and the RESP reply form of the
 * reply writer (reply.h), byte for byte in RESP2 and RESP3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "proto.h"
#include "reply.h"
#include "resp.h"

#define DESC_CAP   (1 << 22) /* the description of every frame of one input */
#define SPLIT_RUNS 200       /* random splits tried per input */

/* ---- a transport, simulated: a buffer of a given size, filled in chunks ---- */

/* A growing text that names each frame, so that two ways of feeding one input compare. */
struct desc {
    char *text;
    size_t len;
};

static void
desc_add(struct desc *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(d->text + d->len, DESC_CAP - d->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && d->len + (size_t)n < DESC_CAP);
    d->len += (size_t)n;
}

static void
desc_bytes(struct desc *d, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)p[i];
        if (b >= 0x21 && b < 0x7f && b != '\\')
            desc_add(d, "%c", b);
        else
            desc_add(d, "\\x%02x", b);
    }
}

static void
desc_arg(struct desc *d, const struct proto_arg *a)
{
    switch (a->kind) {
    case PROTO_ARG_STRING:
        desc_add(d, "[");
        desc_bytes(d, a->p, a->len);
        desc_add(d, "]");
        break;
    case PROTO_ARG_NULL:
        assert_null(a->p);
        desc_add(d, "[null]");
        break;
    case PROTO_ARG_TOO_LONG:
        assert_null(a->p);
        assert_true(a->len > PROTO_RESP_BULK_MAX);
        desc_add(d, "[long %zu]", a->len);
        break;
    }
}

/* Appends one frame's description; its pointers must lie in buf[0, len). */
static void
desc_frame(struct desc *d, const struct proto_frame *f, const char *buf, size_t len)
{
    for (size_t i = 0; i < f->nargs; i++)
        if (f->args[i].p != NULL)
            assert_true(f->args[i].p >= buf && f->args[i].p + f->args[i].len <= buf + len);
    switch (f->resp) {
    case PROTO_FRAME_RESP:
        assert_true(f->nargs <= PROTO_RESP_HEAD_ARGS && f->nargs + f->more == f->argc);
        desc_add(d, "RESP %zu/%zu/%zu ", f->argc, f->nargs, f->more);
        for (size_t i = 0; i < f->nargs; i++)
            desc_arg(d, &f->args[i]);
        desc_add(d, "\n");
        return;
    case PROTO_FRAME_RESP_ARG:
        assert_int_equal(f->nargs, 1);
        desc_add(d, "ARG %zu ", f->more);
        desc_arg(d, &f->args[0]);
        desc_add(d, "\n");
        return;
    case PROTO_FRAME_RESP_ERROR:
        desc_add(d, "ERROR %s %s %s\n", proto_err_name(f->err), f->fatal ? "fatal" : "in-step",
                 f->why);
        return;
    case PROTO_FRAME_NOT_RESP:
        break;
    }
    switch (f->kind) {
    case PROTO_FRAME_LINE:
        desc_add(d, "LINE ");
        desc_bytes(d, f->start, f->len);
        desc_add(d, "\n");
        break;
    case PROTO_FRAME_LONG_BEGIN: /* a hint that depends on the buffer's size: not compared */
        break;
    case PROTO_FRAME_TOO_LONG:
        desc_add(d, "TOO_LONG\n");
        break;
    case PROTO_FRAME_NEED_MORE:
        fail_msg("NEED_MORE described");
    }
}

/* Feeds `in` to a fresh framer through a buffer of `cap` bytes, in chunks of the sizes given
 * by `chunk` (cycled; 0 means as much as fits), as a transport does: frame until NEED_MORE,
 * drop what was used, read more. Describes every frame into *d. A buffer that is full while
 * the framer needs more is a failure: PROTO_FRAME_MIN_BUF bytes must always be enough. */
static void
feed(const char *in, size_t n, size_t cap, const size_t *chunk, size_t nchunk, struct desc *d)
{
    struct proto_framer fr = {.resp = true};
    char *buf = malloc(cap);
    size_t have = 0, fed = 0, c = 0;
    bool dead = false;

    assert_non_null(buf);
    d->len = 0;
    d->text[0] = '\0';
    for (;;) {
        size_t pos = 0;
        for (;;) {
            struct proto_frame f;
            proto_frame_next(&fr, buf + pos, have - pos, &f);
            assert_true(f.used <= have - pos);
            if (proto_frame_need_more(&f)) {
                pos += f.used;
                break;
            }
            desc_frame(d, &f, buf + pos, have - pos);
            pos += f.used;
            dead = dead || (f.resp == PROTO_FRAME_RESP_ERROR && f.fatal);
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
        if (fed == n)
            break;
        assert_true(have < cap); /* never stuck with a full buffer */
        size_t want = nchunk > 0 ? chunk[c++ % nchunk] : 0;
        size_t room = cap - have;
        if (want == 0 || want > room)
            want = room;
        if (want > n - fed)
            want = n - fed;
        memcpy(buf + have, in + fed, want);
        have += want;
        fed += want;
    }
    /* After a fatal error nothing is framed; otherwise an input that ends between requests
     * leaves the framer idle. */
    if (dead)
        desc_add(d, "DEAD\n");
    else if (proto_framer_busy(&fr) || have > 0)
        desc_add(d, "PARTIAL %zu\n", have);
    free(buf);
}

static struct desc
desc_new(void)
{
    struct desc d = {malloc(DESC_CAP), 0};
    assert_non_null(d.text);
    d.text[0] = '\0';
    return d;
}

/* Frames `in` whole (through a 16 KiB buffer, like the server's), then one byte at a time,
 * then split in two at every position (for short inputs), then in random splits through the
 * smallest buffer allowed; every way must give the same frames. Returns the description. */
static char *
frames_of(const char *in, size_t n)
{
    static const size_t one = 1;
    struct desc want = desc_new(), got = desc_new();

    feed(in, n, 16 * 1024, NULL, 0, &want);
    feed(in, n, PROTO_FRAME_MIN_BUF, &one, 1, &got);
    assert_string_equal(got.text, want.text);
    for (size_t i = 1; n <= 2048 && i < n; i++) {
        size_t two[2] = {i, n};
        feed(in, n, 16 * 1024, two, 2, &got);
        assert_string_equal(got.text, want.text);
    }
    srand(7);
    for (int run = 0; run < SPLIT_RUNS; run++) {
        size_t sizes[16];
        for (size_t k = 0; k < 16; k++)
            sizes[k] = 1 + (size_t)rand() % (k % 4 == 0 ? 4096 : 17);
        feed(in, n, PROTO_FRAME_MIN_BUF, sizes, 16, &got);
        assert_string_equal(got.text, want.text);
    }
    free(got.text);
    return want.text;
}

static void
expect_frames(const char *in, size_t n, const char *want)
{
    char *got = frames_of(in, n);
    if (strcmp(got, want) != 0)
        fail_msg("frames of the input:\n%s\nwanted:\n%s", got, want);
    free(got);
}

#define EXPECT_FRAMES(lit, want) expect_frames(lit, sizeof lit - 1, want)

/* ---- frames ---- */

static void
test_frame_resp_basic(void **state)
{
    (void)state;
    EXPECT_FRAMES("*1\r\n$4\r\nPING\r\n", "RESP 1/1/0 [PING]\n");
    /* Lines and RESP requests mix freely, and a person's lines are unchanged. */
    EXPECT_FRAMES("PING\r\n*3\r\n$7\r\nREQUEST\r\n$5\r\nalice\r\n$4\r\nFREE\r\nHELP\n  *x\n",
                  "LINE PING\nRESP 3/3/0 [REQUEST][alice][FREE]\nLINE HELP\nLINE \\x20\\x20*x\n");
    /* Arguments may hold any byte, CR LF included: the length says where they end. */
    EXPECT_FRAMES("*2\r\n$4\r\nECHO\r\n$6\r\na b\r\n\x00\r\n",
                  "RESP 2/2/0 [ECHO][a\\x20b\\x0d\\x0a\\x00]\n");
    /* An empty string is an argument. */
    EXPECT_FRAMES("*2\r\n$4\r\nPING\r\n$0\r\n\r\n", "RESP 2/2/0 [PING][]\n");
    /* Without `resp` a `*` line is a line, as in version 1. */
    struct proto_framer lines = {0};
    struct proto_frame f;
    proto_frame_next(&lines, "*1\r\n$4\r\n", 8, &f);
    assert_int_equal(f.kind, PROTO_FRAME_LINE);
    assert_int_equal(f.resp, PROTO_FRAME_NOT_RESP);
    assert_int_equal(f.len, 2);
}

/* `*0` is an empty request, dropped without a frame like Redis does; what follows it is
 * framed in the same call. */
static void
test_frame_resp_empty_array(void **state)
{
    struct proto_framer fr = {.resp = true};
    struct proto_frame f;
    const char in[] = "*0\r\n*0\r\nPING\n";
    (void)state;

    EXPECT_FRAMES("*0\r\n*0\r\n*1\r\n$4\r\nPING\r\n*0\r\nHELP\n", "RESP 1/1/0 [PING]\nLINE HELP\n");
    proto_frame_next(&fr, in, sizeof in - 1, &f);
    assert_int_equal(f.kind, PROTO_FRAME_LINE);
    assert_int_equal(f.used, sizeof in - 1);
    assert_memory_equal(f.start, "PING", 4);
    proto_frame_next(&fr, "*0\r\n", 4, &f);
    assert_true(proto_frame_need_more(&f));
    assert_int_equal(f.used, 4);
}

/* A null string `$-1` is an argument of its own kind; proto_parse_args refuses it. */
static void
test_frame_resp_null(void **state)
{
    (void)state;
    EXPECT_FRAMES("*3\r\n$7\r\nREQUEST\r\n$-1\r\n$4\r\nFREE\r\n",
                  "RESP 3/3/0 [REQUEST][null][FREE]\n");
    /* PROTO_RESP_HEAD_ARGS (10) in the first frame, the 11th as an ARG frame. */
    EXPECT_FRAMES("*11\r\n$6\r\nUPLOAD\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n"
                  "$-1\r\n$-1\r\n",
                  "RESP 11/10/1 [UPLOAD][null][null][null][null][null][null][null][null][null]\n"
                  "ARG 0 [null]\n");
}

/* Every header error: fatal when the request's end cannot be known, in step when it was dropped
 * exactly; after a fatal one nothing is framed. */
static void
test_frame_resp_header_errors(void **state)
{
    (void)state;
    /* The array header. */
    EXPECT_FRAMES("*x\r\nPING\n",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid multibulk length\nDEAD\n");
    EXPECT_FRAMES("*\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid multibulk length\nDEAD\n");
    EXPECT_FRAMES("*1\nPING\n", /* LF without CR */
                  "ERROR BAD_REQUEST fatal Protocol error: invalid multibulk length\nDEAD\n");
    EXPECT_FRAMES("*1\r\r",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid multibulk length\nDEAD\n");
    EXPECT_FRAMES("*01\r\n", /* a leading zero */
                  "ERROR BAD_REQUEST fatal Protocol error: invalid multibulk length\nDEAD\n");
    EXPECT_FRAMES("*-0\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid multibulk length\nDEAD\n");
    EXPECT_FRAMES("*1 \r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid multibulk length\nDEAD\n");
    EXPECT_FRAMES("*536870913\r\n", /* over PROTO_RESP_NUM_MAX */
                  "ERROR BAD_REQUEST fatal Protocol error: invalid multibulk length\nDEAD\n");
    EXPECT_FRAMES("*99999999999999999999999999\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid multibulk length\nDEAD\n");
    /* A negative count: nothing follows it, so only its header is dropped. */
    EXPECT_FRAMES("*-1\r\nPING\n*-7\r\n",
                  "ERROR BAD_REQUEST in-step Protocol error: negative multibulk length\nLINE PING\n"
                  "ERROR BAD_REQUEST in-step Protocol error: negative multibulk length\n");
    /* Elements that are not bulk strings: nested arrays, integers, simple strings. */
    EXPECT_FRAMES("*1\r\n*1\r\n$4\r\nPING\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: expected '$' (a bulk string) in a "
                  "request\nDEAD\n");
    EXPECT_FRAMES("*2\r\n$4\r\nPING\r\n:1\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: expected '$' (a bulk string) in a "
                  "request\nDEAD\n");
    EXPECT_FRAMES("*1\r\n+PING\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: expected '$' (a bulk string) in a "
                  "request\nDEAD\n");
    /* Bulk string headers. */
    EXPECT_FRAMES("*1\r\n$x\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid bulk length\nDEAD\n");
    EXPECT_FRAMES("*1\r\n$-2\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid bulk length\nDEAD\n");
    EXPECT_FRAMES("*1\r\n$04\r\nPING\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid bulk length\nDEAD\n");
    EXPECT_FRAMES("*1\r\n$4\nPING\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid bulk length\nDEAD\n");
    EXPECT_FRAMES("*1\r\n$536870913\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid bulk length\nDEAD\n");
    /* A bulk string not followed by CR LF: too short, too long, LF only. */
    EXPECT_FRAMES(
        "*1\r\n$4\r\nPINGxx",
        "ERROR BAD_REQUEST fatal Protocol error: bulk string not followed by CR LF\nDEAD\n");
    EXPECT_FRAMES(
        "*1\r\n$3\r\nPING\r\n",
        "ERROR BAD_REQUEST fatal Protocol error: bulk string not followed by CR LF\nDEAD\n");
    EXPECT_FRAMES(
        "*1\r\n$4\r\nPING\n\r",
        "ERROR BAD_REQUEST fatal Protocol error: bulk string not followed by CR LF\nDEAD\n");
    /* The same in an argument after the first frame, and in one that is dropped unread. */
    EXPECT_FRAMES(
        "*12\r\n$6\r\nUPLOAD\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n"
        "$1\r\nf\r\n$1\r\ng\r\n$1\r\nh\r\n$1\r\ni\r\n$1\r\njXY",
        "RESP 12/10/2 [UPLOAD][a][b][c][d][e][f][g][h][i]\n"
        "ERROR BAD_REQUEST fatal Protocol error: bulk string not followed by CR LF\nDEAD\n");
    EXPECT_FRAMES("*12\r\n$6\r\nUPLOAD\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n"
                  "$1\r\nf\r\n$1\r\ng\r\n$1\r\nh\r\n$1\r\ni\r\n*1\r\n",
                  "RESP 12/10/2 [UPLOAD][a][b][c][d][e][f][g][h][i]\n"
                  "ERROR BAD_REQUEST fatal Protocol error: expected '$' (a bulk string) in a "
                  "request\nDEAD\n");
}

/* Errors while dropping: in a request with too many arguments, and in an over-long argument. */
static void
test_frame_resp_errors_while_dropping(void **state)
{
    static char in[PROTO_RESP_BULK_MAX + 200];
    (void)state;

    EXPECT_FRAMES(
        "*50003\r\n$1\r\nx\r\n$1\r\nxY",
        "ERROR BAD_REQUEST fatal Protocol error: bulk string not followed by CR LF\nDEAD\n");
    EXPECT_FRAMES("*50003\r\n$-1\r\n:1\r\n", "ERROR BAD_REQUEST fatal Protocol error: expected '$' "
                                             "(a bulk string) in a request\nDEAD\n");
    EXPECT_FRAMES("*50003\r\n$x\r\n",
                  "ERROR BAD_REQUEST fatal Protocol error: invalid bulk length\nDEAD\n");
    int n = snprintf(in, sizeof in, "*2\r\n$6\r\nUPLOAD\r\n$%d\r\n", PROTO_RESP_BULK_MAX + 1);
    memset(in + n, 'r', PROTO_RESP_BULK_MAX + 1);
    n += PROTO_RESP_BULK_MAX + 1;
    n += snprintf(in + n, sizeof in - (size_t)n, "\rX");
    expect_frames(
        in, (size_t)n,
        "RESP 2/1/1 [UPLOAD]\n"
        "ERROR BAD_REQUEST fatal Protocol error: bulk string not followed by CR LF\nDEAD\n");
}

/* A bulk string outside an array is dropped exactly and refused; a line that merely begins
 * with `$` is a line. */
static void
test_frame_resp_stray_bulk(void **state)
{
    (void)state;
    EXPECT_FRAMES("$4\r\nPING\r\nHELP\n",
                  "ERROR BAD_REQUEST in-step Protocol error: bulk string outside an array\n"
                  "LINE HELP\n");
    EXPECT_FRAMES("$-1\r\n$0\r\n\r\n",
                  "ERROR BAD_REQUEST in-step Protocol error: bulk string outside an array\n"
                  "ERROR BAD_REQUEST in-step Protocol error: bulk string outside an array\n");
    EXPECT_FRAMES("$-5\r\nPING\n",
                  "ERROR BAD_REQUEST in-step Protocol error: invalid bulk length\nLINE PING\n");
    EXPECT_FRAMES(
        "$4\r\nPINGxx\r\n",
        "ERROR BAD_REQUEST fatal Protocol error: bulk string not followed by CR LF\nDEAD\n");
    EXPECT_FRAMES("$x\r\n$4\n$ 4\r\n", "LINE $x\nLINE $4\nLINE $\\x204\n");
}

/* Over-long arguments are dropped unread and told of; the first frame ends before one. */
static void
test_frame_resp_long_args(void **state)
{
    static char in[3 * PROTO_RESP_BULK_MAX];
    (void)state;

    /* A record over the limit, after the verb. */
    int n = snprintf(in, sizeof in, "*2\r\n$6\r\nUPLOAD\r\n$%d\r\n", PROTO_RESP_BULK_MAX + 1);
    memset(in + n, 'r', PROTO_RESP_BULK_MAX + 1);
    n += PROTO_RESP_BULK_MAX + 1;
    n += snprintf(in + n, sizeof in - (size_t)n, "\r\nPING\n");
    expect_frames(in, (size_t)n, "RESP 2/1/1 [UPLOAD]\nARG 0 [long 4097]\nLINE PING\n");

    /* An argument of exactly the limit is handed over. */
    n = snprintf(in, sizeof in, "*2\r\n$4\r\nPING\r\n$%d\r\n", PROTO_RESP_BULK_MAX);
    memset(in + n, 'x', PROTO_RESP_BULK_MAX);
    n += PROTO_RESP_BULK_MAX;
    n += snprintf(in + n, sizeof in - (size_t)n, "\r\n");
    char *d = frames_of(in, (size_t)n);
    assert_memory_equal(d, "RESP 2/2/0 [PING][xxx", 21);
    free(d);

    /* The verb itself too long: a first frame with no argument. */
    n = snprintf(in, sizeof in, "*1\r\n$%d\r\n", PROTO_RESP_BULK_MAX + 1);
    memset(in + n, 'V', PROTO_RESP_BULK_MAX + 1);
    n += PROTO_RESP_BULK_MAX + 1;
    n += snprintf(in + n, sizeof in - (size_t)n, "\r\n");
    expect_frames(in, (size_t)n, "RESP 1/0/1 \nARG 0 [long 4097]\n");

    /* Two arguments that are each allowed but together pass PROTO_RESP_HEAD_MAX: the second
     * comes in a frame of its own. */
    n = snprintf(in, sizeof in, "*3\r\n$8\r\nVALIDATE\r\n$%d\r\n", PROTO_RESP_BULK_MAX);
    memset(in + n, 'u', PROTO_RESP_BULK_MAX);
    n += PROTO_RESP_BULK_MAX;
    n += snprintf(in + n, sizeof in - (size_t)n, "\r\n$1000\r\n");
    memset(in + n, 'c', 1000);
    n += 1000;
    n += snprintf(in + n, sizeof in - (size_t)n, "\r\n");
    d = frames_of(in, (size_t)n);
    assert_memory_equal(d, "RESP 3/2/1 [VALIDATE][uuu", 25);
    assert_non_null(strstr(d, "]\nARG 0 [cccc"));
    free(d);
}

/* More arguments than any request has: dropped element by element, then TOO_LARGE, in step.
 * Exactly the most there may be is framed. */
static void
test_frame_resp_huge_counts(void **state)
{
    size_t cap = (size_t)(PROTO_RESP_ARGS_MAX + 1) * 8 + 64;
    char *in = malloc(cap);
    (void)state;

    assert_non_null(in);
    int n = snprintf(in, cap, "*%d\r\n", PROTO_RESP_ARGS_MAX + 1);
    for (int i = 0; i <= PROTO_RESP_ARGS_MAX; i++)
        n += snprintf(in + n, cap - (size_t)n, i % 1000 == 0 ? "$-1\r\n" : "$1\r\nx\r\n");
    n += snprintf(in + n, cap - (size_t)n, "PING\n");
    struct desc d = desc_new();
    static const size_t one = 1, mixed[3] = {1, 100, 5000};
    feed(in, (size_t)n, 16 * 1024, NULL, 0, &d);
    assert_string_equal(d.text, "ERROR TOO_LARGE in-step request of more than 50002 arguments\n"
                                "LINE PING\n");
    feed(in, (size_t)n, PROTO_FRAME_MIN_BUF, &one, 1, &d);
    assert_string_equal(d.text, "ERROR TOO_LARGE in-step request of more than 50002 arguments\n"
                                "LINE PING\n");
    feed(in, (size_t)n, PROTO_FRAME_MIN_BUF, mixed, 3, &d);
    assert_string_equal(d.text, "ERROR TOO_LARGE in-step request of more than 50002 arguments\n"
                                "LINE PING\n");

    /* PROTO_RESP_ARGS_MAX arguments: a first frame, then one frame per argument. */
    n = snprintf(in, cap, "*%d\r\n$6\r\nUPLOAD\r\n", PROTO_RESP_ARGS_MAX);
    for (int i = 1; i < PROTO_RESP_ARGS_MAX; i++)
        n += snprintf(in + n, cap - (size_t)n, "$1\r\nr\r\n");
    feed(in, (size_t)n, PROTO_FRAME_MIN_BUF, mixed, 3, &d);
    const char *first = "RESP 50002/10/49992 [UPLOAD][r][r][r][r][r][r][r][r][r]\nARG 49991 [r]\n";
    assert_memory_equal(d.text, first, strlen(first));
    assert_non_null(strstr(d.text, "ARG 0 [r]\n"));
    assert_null(strstr(d.text, "PARTIAL"));
    free(d.text);
    free(in);
}

/* An input that ends mid-request leaves the framer busy, also when its buffer is empty. */
static void
test_frame_resp_busy(void **state)
{
    struct proto_framer fr = {.resp = true};
    struct proto_frame f;
    /* PROTO_RESP_HEAD_ARGS (10) arguments of 11: a first frame, one argument to come. */
    const char head[] = "*11\r\n$6\r\nUPLOAD\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n"
                        "$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n";
    (void)state;

    assert_false(proto_framer_busy(&fr));
    proto_frame_next(&fr, head, sizeof head - 1, &f);
    assert_int_equal(f.resp, PROTO_FRAME_RESP);
    assert_int_equal(f.kind, PROTO_FRAME_NEED_MORE);
    assert_false(proto_frame_need_more(&f));
    assert_int_equal(f.more, 1);
    assert_true(proto_framer_busy(&fr));
    proto_frame_next(&fr, "", 0, &f);
    assert_true(proto_frame_need_more(&f));
    assert_true(proto_framer_busy(&fr));
    proto_frame_next(&fr, "$1\r\nb\r\n", 7, &f);
    assert_int_equal(f.resp, PROTO_FRAME_RESP_ARG);
    assert_int_equal(f.more, 0);
    assert_false(proto_framer_busy(&fr));
}

/* Every construct in one input, fed every way: the frames do not depend on how bytes arrive. */
static void
test_frame_resp_splits(void **state)
{
    static char in[32 * 1024];
    size_t n = 0;
    (void)state;

    const char *parts[] = {
        "PING\r\n",
        "*2\r\n$4\r\nAUTH\r\n$3\r\nkey\r\n",
        "*0\r\n",
        "\r\n",
        "$3\r\nabc\r\n",
        "*-1\r\n",
        "*4\r\n$6\r\nupload\r\n$44\r\nSUMMER-1,STANDARD,20,FLAT,2026-12-31,3      \r\n$-1\r\n"
        "$0\r\n\r\n",
        "*11\r\n$6\r\nUPLOAD\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n$1\r\n5\r\n$1\r\n6\r\n"
        "$1\r\n7\r\n$1\r\n8\r\n$-1\r\n$1\r\n9\r\n",
        "HELP\n",
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        memcpy(in + n, parts[i], strlen(parts[i]));
        n += strlen(parts[i]);
    }
    /* An over-long line, and an over-long argument, in the middle. */
    memset(in + n, 'L', PROTO_MAX_LINE + 10);
    n += PROTO_MAX_LINE + 10;
    in[n++] = '\n';
    n += (size_t)snprintf(in + n, sizeof in - n, "*3\r\n$6\r\nUPLOAD\r\n$5000\r\n");
    memset(in + n, 'R', 5000);
    n += 5000;
    n += (size_t)snprintf(in + n, sizeof in - n, "\r\n$2\r\nok\r\nSTATS\n*1\r\n$4\r\nQU");
    expect_frames(in, n,
                  "LINE PING\n"
                  "RESP 2/2/0 [AUTH][key]\n"
                  "LINE \n"
                  "ERROR BAD_REQUEST in-step Protocol error: bulk string outside an array\n"
                  "ERROR BAD_REQUEST in-step Protocol error: negative multibulk length\n"
                  "RESP 4/4/0 [upload][SUMMER-1,STANDARD,20,FLAT,2026-12-31,3\\x20\\x20\\x20\\x20"
                  "\\x20\\x20][null][]\n"
                  "RESP 11/10/1 [UPLOAD][1][2][3][4][5][6][7][8][null]\n"
                  "ARG 0 [9]\n"
                  "LINE HELP\n"
                  "TOO_LONG\n"
                  "RESP 3/1/2 [UPLOAD]\nARG 1 [long 5000]\nARG 0 [ok]\n"
                  "LINE STATS\n"
                  "PARTIAL 10\n");
}

/* ---- requests: RESP arguments against the line form ---- */

/* Splits a line on single spaces into RESP arguments (the test lines have no runs of blanks). */
static size_t
args_of(const char *line, struct proto_arg *a, size_t max)
{
    size_t n = 0;
    const char *p = line;

    while (*p != '\0' && n < max) {
        const char *sp = strchr(p, ' ');
        size_t len = sp ? (size_t)(sp - p) : strlen(p);
        a[n++] = (struct proto_arg){p, len, PROTO_ARG_STRING};
        p += len + (sp ? 1 : 0);
    }
    return n;
}

static void
expect_same_request(const char *line)
{
    struct proto_arg a[16];
    struct proto_request lr, rr;
    struct proto_error le, re;

    memset(&lr, 0, sizeof lr);
    memset(&rr, 0, sizeof rr);
    size_t n = args_of(line, a, 16);
    bool lok = proto_parse_request(line, strlen(line), &lr, &le);
    bool rok =
        proto_parse_args(a, n < PROTO_RESP_HEAD_ARGS ? n : PROTO_RESP_HEAD_ARGS, n, &rr, &re);
    if (lok != rok)
        fail_msg("%s: line %s, RESP %s", line, lok ? "ok" : le.msg, rok ? "ok" : re.msg);
    if (!lok) {
        assert_int_equal(le.code, re.code);
        assert_string_equal(le.msg, re.msg);
        return;
    }
    assert_int_equal(lr.cmd, rr.cmd);
    assert_string_equal(lr.user, rr.user);
    assert_string_equal(lr.code, rr.code);
    assert_int_equal(lr.type, rr.type);
    assert_string_equal(lr.task, rr.task);
    assert_int_equal(lr.count, rr.count);
    assert_int_equal(lr.key_len, rr.key_len);
    if (lr.key_len > 0)
        assert_memory_equal(lr.key, rr.key, lr.key_len);
}

/* The commands of Redis clients: the same request from a line and from RESP, and what each
 * keeps; CLIENT's and ECHO's arguments may hold any bytes in RESP. */
static void
test_request_redis_clients(void **state)
{
    static const char *const lines[] = {
        "HELLO",
        "HELLO 3",
        "HELLO 2 AUTH default k1 SETNAME app",
        "HELLO 3 SETNAME app AUTH admin k",
        "HELLO 4",
        "HELLO x",
        "HELLO 3 AUTH default",
        "HELLO 3 SETNAME a SETNAME b",
        "HELLO 3 FOO",
        "INFO",
        "INFO server",
        "INFO a b",
        "CLIENT SETINFO lib-name x",
        "CLIENT",
        "client id",
        "CLIENT SETINFO a b c",
        "COMMAND",
        "COMMAND DOCS",
        "COMMAND INFO request frob",
        "CONFIG GET save",
        "CONFIG GET",
        "CONFIG get a b c d e f",
        "SELECT 0",
        "SELECT",
        "ECHO hi",
        "ECHO",
        "AUTH admin 3f9c",

    };
    struct proto_request r;
    struct proto_error e;
    char canon[PROTO_REQUEST_BUF];
    (void)state;

    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        expect_same_request(lines[i]);

    const char *hello = "HELLO 3 SETNAME app AUTH default k1";
    assert_true(proto_parse_request(hello, strlen(hello), &r, &e));
    assert_int_equal(r.cmd, PROTO_CMD_HELLO);
    assert_int_equal(r.protover, 3);
    assert_string_equal(r.name, "default");
    assert_int_equal(r.key_len, 2);
    assert_true(r.setname);
    assert_int_equal(r.nwords, 1);
    assert_memory_equal(r.words[0].p, "app", 3);
    proto_fmt_request(canon, &r, false);
    assert_string_equal(canon, "HELLO 3 AUTH default k1 SETNAME app");
    assert_false(proto_parse_request("HELLO 4", 7, &r, &e));
    assert_int_equal(e.code, PROTO_ERR_BAD_REQUEST);
    assert_non_null(strstr(e.msg, "NOPROTO"));
    assert_true(proto_parse_request("AUTH admin k2", 13, &r, &e));
    assert_string_equal(r.name, "admin");
    assert_memory_equal(r.key, "k2", 2);
    assert_true(proto_parse_request("client setinfo LIB-VER 7", 24, &r, &e));
    assert_string_equal(r.sub, "SETINFO");
    assert_int_equal(r.nwords, 2);

    /* RESP: CLIENT's words and ECHO's message hold what a line cannot */
    struct proto_arg a[4] = {{"CLIENT", 6, PROTO_ARG_STRING},
                             {"SETINFO", 7, PROTO_ARG_STRING},
                             {"lib-ver", 7, PROTO_ARG_STRING},
                             {"1.0 beta\r\n", 10, PROTO_ARG_STRING}};
    assert_true(proto_parse_args(a, 4, 4, &r, &e));
    assert_int_equal(r.words[1].len, 10);
    a[3] = (struct proto_arg){NULL, 0, PROTO_ARG_NULL};
    assert_true(proto_parse_args(a, 4, 4, &r, &e));
    assert_int_equal(r.words[1].len, 0);
    a[3] = (struct proto_arg){NULL, 5000, PROTO_ARG_TOO_LONG};
    assert_false(proto_parse_args(a, 4, 4, &r, &e));
    assert_int_equal(e.code, PROTO_ERR_TOO_LONG);
    a[1] = (struct proto_arg){"SET INFO", 8, PROTO_ARG_STRING};
    assert_false(proto_parse_args(a, 2, 2, &r, &e));
    assert_string_equal(e.msg, "blank in argument 1");
    struct proto_arg echo[2] = {{"ECHO", 4, PROTO_ARG_STRING}, {"\0 x", 3, PROTO_ARG_STRING}};
    assert_true(proto_parse_args(echo, 2, 2, &r, &e));
    assert_int_equal(r.cmd, PROTO_CMD_ECHO);
    assert_int_equal(r.words[0].len, 3);
    struct proto_arg h[4] = {{"HELLO", 5, PROTO_ARG_STRING},
                             {"3", 1, PROTO_ARG_STRING},
                             {"SETNAME", 7, PROTO_ARG_STRING},
                             {"a b", 3, PROTO_ARG_STRING}};
    assert_false(proto_parse_args(h, 4, 4, &r, &e));
    assert_string_equal(e.msg, "blank in argument 3");
}

static void
test_request_same_as_line(void **state)
{
    static const char *const lines[] = {
        /* every verb, good */
        "PING",
        "ping",
        "HELP",
        "AUTH 3f9ce1",
        "REQUEST alice",
        "REQUEST alice FREE",
        "request bob megadeal",
        "REQUEST carol -",
        "REQUEST dave none",
        "STATUS AQAB-_x4",
        "WAIT AQAB-_x4",
        "VALIDATE alice summer-1",
        "REDEEM bob SUMMER.2",
        "QUIT",
        "PURGE",
        "STATS",
        "REQUEST a!b#c~ STANDARD",
        /* every verb, bad */
        "PING now",
        "HELP me",
        "AUTH",
        "AUTH a b",
        "REQUEST",
        "REQUEST alice CHEAP",
        "REQUEST alice FREE x",
        "STATUS",
        "STATUS bad!id",
        "WAIT a b",
        "WAIT =",
        "VALIDATE alice",
        "VALIDATE alice bad/code",
        "REDEEM alice",
        "QUIT now",
        "PURGE all",
        "STATS x",
        "FROB x",
        "GET /",
        "A B C D E F G H I J K",
        "REQUEST a b c d e f g h i j",
    };
    char buf[512];
    (void)state;

    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        expect_same_request(lines[i]);
    /* The longest allowed values, and one over. */
    memset(buf, 0, sizeof buf);
    snprintf(buf, sizeof buf, "REQUEST %0128d FREE", 0);
    expect_same_request(buf);
    snprintf(buf, sizeof buf, "REQUEST %0129d FREE", 0);
    expect_same_request(buf);
    snprintf(buf, sizeof buf, "AUTH %0128d", 7);
    expect_same_request(buf);
    snprintf(buf, sizeof buf, "AUTH %0129d", 7);
    expect_same_request(buf);
    snprintf(buf, sizeof buf, "VALIDATE u %064d", 1);
    expect_same_request(buf);
    snprintf(buf, sizeof buf, "STATUS %0129d", 1);
    expect_same_request(buf);
}

static struct proto_error
resp_error(const struct proto_arg *a, size_t nargs, size_t argc)
{
    struct proto_request r;
    struct proto_error e;

    assert_false(proto_parse_args(a, nargs, argc, &r, &e));
    return e;
}

/* What RESP can send that a line cannot: blanks, control bytes, empty and null strings. Each is
 * refused, naming the argument. */
static void
test_request_resp_only(void **state)
{
    struct proto_arg a[3] = {{"REQUEST", 7, PROTO_ARG_STRING}, {"al ice", 6, PROTO_ARG_STRING}};
    (void)state;

    struct proto_error e = resp_error(a, 2, 2);
    assert_int_equal(e.code, PROTO_ERR_BAD_REQUEST);
    assert_string_equal(e.msg, "blank in argument 1");
    a[1] = (struct proto_arg){"", 0, PROTO_ARG_STRING};
    assert_string_equal(resp_error(a, 2, 2).msg, "empty string as argument 1");
    a[1] = (struct proto_arg){NULL, 0, PROTO_ARG_NULL};
    assert_string_equal(resp_error(a, 2, 2).msg, "null string as argument 1");
    a[1] = (struct proto_arg){"al\0ce", 5, PROTO_ARG_STRING};
    assert_string_equal(resp_error(a, 2, 2).msg, "NUL byte 0x00 in argument 1");
    a[1] = (struct proto_arg){"alice\r\n", 7, PROTO_ARG_STRING};
    assert_string_equal(resp_error(a, 2, 2).msg, "control byte 0x0D in argument 1");
    a[1] = (struct proto_arg){"al\xc3\xa9", 4, PROTO_ARG_STRING};
    assert_string_equal(resp_error(a, 2, 2).msg, "non-ASCII byte 0xC3 in argument 1");
    a[0] = (struct proto_arg){"PI NG", 5, PROTO_ARG_STRING};
    assert_string_equal(resp_error(a, 1, 1).msg, "blank in the verb");
    a[0] = (struct proto_arg){NULL, 0, PROTO_ARG_NULL};
    assert_string_equal(resp_error(a, 1, 1).msg, "null string as the verb");

    /* An argument not handed over (too long): TOO_LONG; the verb not handed over: the same. */
    a[0] = (struct proto_arg){"VALIDATE", 8, PROTO_ARG_STRING};
    a[1] = (struct proto_arg){"alice", 5, PROTO_ARG_STRING};
    e = resp_error(a, 2, 3);
    assert_int_equal(e.code, PROTO_ERR_TOO_LONG);
    assert_int_equal(resp_error(a, 0, 1).code, PROTO_ERR_TOO_LONG);
    a[1] = (struct proto_arg){NULL, 5000, PROTO_ARG_TOO_LONG};
    assert_int_equal(resp_error(a, 2, 2).code, PROTO_ERR_TOO_LONG);
    /* More arguments than the verb takes, beyond what was handed over: usage. */
    a[1] = (struct proto_arg){"alice", 5, PROTO_ARG_STRING};
    e = resp_error(a, 2, 40);
    assert_int_equal(e.code, PROTO_ERR_BAD_REQUEST);
    assert_string_equal(e.msg, "usage: VALIDATE user code");
    a[0] = (struct proto_arg){"FROB", 4, PROTO_ARG_STRING};
    assert_int_equal(resp_error(a, 2, 40).code, PROTO_ERR_UNKNOWN_COMMAND);
    assert_int_equal(resp_error(a, 2, 0).code, PROTO_ERR_BAD_REQUEST);
}

/* UPLOAD in RESP: its records are the arguments after the verb, not read here. */
static void
test_request_resp_upload(void **state)
{
    struct proto_arg a[3] = {{"Upload", 6, PROTO_ARG_STRING},
                             {"SUMMER-1, ,20,FLAT,2026-12-31,3", 31, PROTO_ARG_STRING},
                             {NULL, 0, PROTO_ARG_NULL}};
    struct proto_request r, l;
    struct proto_error e;
    (void)state;

    assert_true(proto_parse_args(a, 3, 50001, &r, &e));
    assert_int_equal(r.cmd, PROTO_CMD_UPLOAD);
    assert_int_equal(r.count, 50000);
    assert_true(proto_parse_request("UPLOAD 50000", 12, &l, &e));
    assert_int_equal(l.cmd, r.cmd);
    assert_int_equal(l.count, r.count);
    assert_true(proto_parse_args(a, 1, 2, &r, &e));
    assert_int_equal(r.count, 1);
    e = resp_error(a, 1, 1);
    assert_int_equal(e.code, PROTO_ERR_BAD_REQUEST);
    assert_string_equal(e.msg,
                        "usage: UPLOAD [id=RID] record... (in RESP, one argument per record)");
    /* A request id comes right after the verb; the records follow it. */
    const struct proto_arg with_id[2] = {{"UPLOAD", 6, PROTO_ARG_STRING},
                                         {"id=order-7", 10, PROTO_ARG_STRING}};
    assert_true(proto_parse_args(with_id, 2, 5, &r, &e));
    assert_int_equal(r.count, 3);
    assert_string_equal(r.rid, "order-7");
    e = resp_error(with_id, 2, 2); /* an id and no record */
    assert_int_equal(e.code, PROTO_ERR_BAD_REQUEST);
}

/* From bytes to a request: the framer's arguments go straight to the parser, and AUTH's key
 * points into the caller's buffer. */
static void
test_request_from_frame(void **state)
{
    const char in[] = "*3\r\n$8\r\nvalidate\r\n$5\r\nalice\r\n$8\r\nsummer-1\r\n"
                      "*2\r\n$4\r\nAUTH\r\n$6\r\nk3y!\"#\r\n";
    struct proto_framer fr = {.resp = true};
    struct proto_frame f;
    struct proto_request r;
    struct proto_error e;
    (void)state;

    proto_frame_next(&fr, in, sizeof in - 1, &f);
    assert_true(proto_parse_args(f.args, f.nargs, f.argc, &r, &e));
    assert_int_equal(r.cmd, PROTO_CMD_VALIDATE);
    assert_string_equal(r.user, "alice");
    assert_string_equal(r.code, "SUMMER-1");
    size_t used = f.used;
    proto_frame_next(&fr, in + used, sizeof in - 1 - used, &f);
    assert_true(proto_parse_args(f.args, f.nargs, f.argc, &r, &e));
    assert_int_equal(r.cmd, PROTO_CMD_AUTH);
    assert_ptr_equal(r.key, in + used + 18);
    assert_int_equal(r.key_len, 6);
}

/* ---- replies ---- */

struct sunk {
    char data[1 << 16];
    size_t len;
    unsigned calls;
};

static void
sink_all(void *arg, const char *data, size_t len)
{
    struct sunk *b = arg;

    assert_true(len > 0);
    assert_true(b->len + len < sizeof b->data);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    b->calls++;
}

/* Length of the one RESP value at p (as a client reads it), or 0 when it is not one. */
static size_t
resp_value(const char *p, size_t n)
{
    const char *crlf = NULL;
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n') {
            crlf = p + i;
            break;
        }
    if (n == 0 || crlf == NULL)
        return 0;
    size_t head = (size_t)(crlf - p) + 2;
    for (const char *c = p + 1; c < crlf; c++)
        if (*c == '\n' || *c == '\r')
            return 0;
    long long v = strtoll(p + 1, NULL, 10);
    switch (p[0]) {
    case '+':
    case '-':
    case ':':
    case '_':
        return head;
    case '$':
        if (v == -1)
            return head;
        if (v < 0 || head + (size_t)v + 2 > n || memcmp(p + head + v, "\r\n", 2) != 0)
            return 0;
        return head + (size_t)v + 2;
    case '*':
    case '%': {
        size_t pos = head;
        long long count = p[0] == '%' ? 2 * v : v;
        for (long long i = 0; i < count; i++) {
            size_t e = resp_value(p + pos, n - pos);
            if (e == 0)
                return 0;
            pos += e;
        }
        return v < 0 ? head : pos;
    }
    default:
        return 0;
    }
}

static struct proto_out out;
static struct sunk got;
static char scratch[PROTO_OUT_SCRATCH];

static void
start(enum proto_form form)
{
    memset(&got, 0, sizeof got);
    proto_out_init(&out, sink_all, &got);
    proto_out_set_scratch(&out, scratch, sizeof scratch);
    proto_out_set_form(&out, form);
}

/* What was written is `want`, and, in RESP, exactly one value. */
static void
expect_out(const char *want)
{
    assert_string_equal(got.data, want);
    if (proto_out_is_resp(&out))
        assert_int_equal(resp_value(got.data, got.len), got.len);
    got.len = 0;
    got.data[0] = '\0';
    got.calls = 0;
}

static const struct proto_coupon summer = {.code = "SUMMER-1",
                                           .type = PROTO_TYPE_STANDARD,
                                           .kind = PROTO_KIND_FLAT,
                                           .discount = 2000,
                                           .expires = 1798761599,
                                           .uses = 0,
                                           .max_uses = 3};

#define COUPON_FIELDS                                                                              \
    "$4\r\ncode\r\n$8\r\nSUMMER-1\r\n$4\r\ntype\r\n$8\r\nSTANDARD\r\n$8\r\ndiscount\r\n$5\r\n"     \
    "20.00\r\n$4\r\nkind\r\n$4\r\nFLAT\r\n$7\r\nexpires\r\n$20\r\n2026-12-31T23:59:59Z\r\n"        \
    "$4\r\nuses\r\n:0\r\n$8\r\nmax_uses\r\n:3\r\n"

/* Writes the example of each shape; `form` decides the bytes. */
static void
write_ok(void)
{
    proto_out_ok(&out);
}

static void
write_pong(void)
{
    proto_out_begin(&out, "OK");
    proto_out_word(&out, "PONG");
    proto_out_end(&out);
}

static void
write_coupon(void)
{
    proto_out_begin(&out, "OK");
    proto_out_coupon(&out, &summer);
    proto_out_end(&out);
}

static void
write_stats(void)
{
    proto_out_begin(&out, "STAT");
    proto_out_word(&out, "uptime_s");
    proto_out_u64(&out, 12);
    proto_out_end(&out);
    proto_out_begin(&out, "STAT");
    proto_out_word(&out, "assigned.FREE");
    proto_out_u64(&out, 3);
    proto_out_end(&out);
    proto_out_ok(&out);
}

static void
write_rejects(void)
{
    proto_out_begin(&out, "REJECT");
    proto_out_u64(&out, 1);
    proto_out_text(&out, "bad discount: more than 2 decimal places");
    proto_out_end(&out);
    proto_out_begin(&out, "REJECT");
    proto_out_u64(&out, 3);
    proto_out_word(&out, "code");
    proto_out_word(&out, "X");
    proto_out_text(&out, "already exists");
    proto_out_end(&out);
    proto_out_error(&out, PROTO_ERR_BAD_BATCH, "%d of %d records rejected, nothing stored", 2, 3);
}

static void
write_error(void)
{
    proto_out_error(&out, PROTO_ERR_NO_COUPONS, "no %s coupon left", "FREE");
}

static void
write_task(void)
{
    proto_out_begin(&out, "OK");
    proto_out_field(&out, "task", "AbC");
    proto_out_field(&out, "status", "queued");
    proto_out_field_u64(&out, "position", 18446744073709551615ULL);
    proto_out_end(&out);
}

static void
write_help(void)
{
    proto_out_begin(&out, "INFO");
    proto_out_text(&out, "PING - check that the server answers");
    proto_out_end(&out);
    proto_out_ok(&out);
}

/* Each shape in the three forms: the line form is version 1's, byte for byte. */
static void
test_reply_shapes(void **state)
{
    static const struct {
        void (*write)(void);
        const char *line, *resp2, *resp3;
    } shapes[] = {
        {write_ok, "OK\n", "+OK\r\n", "+OK\r\n"},
        {write_pong, "OK PONG\n", "+PONG\r\n", "+PONG\r\n"},
        {write_coupon,
         "OK code=SUMMER-1 type=STANDARD discount=20.00 kind=FLAT expires=2026-12-31T23:59:59Z "
         "uses=0 max_uses=3\n",
         "*14\r\n" COUPON_FIELDS, "%7\r\n" COUPON_FIELDS},
        {write_stats, "STAT uptime_s 12\nSTAT assigned.FREE 3\nOK\n",
         "*3\r\n*2\r\n$8\r\nuptime_s\r\n:12\r\n*2\r\n$13\r\nassigned.FREE\r\n:3\r\n+OK\r\n",
         "*3\r\n*2\r\n$8\r\nuptime_s\r\n:12\r\n*2\r\n$13\r\nassigned.FREE\r\n:3\r\n+OK\r\n"},
        {write_rejects,
         "REJECT 1 bad discount: more than 2 decimal places\nREJECT 3 code X already exists\n"
         "ERR BAD_BATCH 2 of 3 records rejected, nothing stored\n",
         "-BAD_BATCH 2 of 3 records rejected, nothing stored; REJECT 1 bad discount: more than 2 "
         "decimal places; REJECT 3 code X already exists\r\n",
         "-BAD_BATCH 2 of 3 records rejected, nothing stored; REJECT 1 bad discount: more than 2 "
         "decimal places; REJECT 3 code X already exists\r\n"},
        {write_error, "ERR NO_COUPONS no FREE coupon left\n", "-NO_COUPONS no FREE coupon left\r\n",
         "-NO_COUPONS no FREE coupon left\r\n"},
        /* A number past INT64_MAX is a bulk string. */
        {write_task, "OK task=AbC status=queued position=18446744073709551615\n",
         "*6\r\n$4\r\ntask\r\n$3\r\nAbC\r\n$6\r\nstatus\r\n$6\r\nqueued\r\n$8\r\nposition\r\n"
         "$20\r\n18446744073709551615\r\n",
         "%3\r\n$4\r\ntask\r\n$3\r\nAbC\r\n$6\r\nstatus\r\n$6\r\nqueued\r\n$8\r\nposition\r\n"
         "$20\r\n18446744073709551615\r\n"},
        {write_help, "INFO PING - check that the server answers\nOK\n",
         "*2\r\n$36\r\nPING - check that the server answers\r\n+OK\r\n",
         "*2\r\n$36\r\nPING - check that the server answers\r\n+OK\r\n"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        start(PROTO_FORM_LINE);
        shapes[i].write();
        expect_out(shapes[i].line);
        proto_out_set_form(&out, PROTO_FORM_RESP2);
        shapes[i].write();
        expect_out(shapes[i].resp2);
        proto_out_set_form(&out, PROTO_FORM_RESP3);
        shapes[i].write();
        expect_out(shapes[i].resp3);
    }
}

/* Lines that are neither all fields nor one item: flat arrays, a field giving two values. */
static void
test_reply_mixed_lines(void **state)
{
    (void)state;
    start(PROTO_FORM_RESP3);
    proto_out_begin(&out, "OK");
    proto_out_word(&out, "queued");
    proto_out_field_u64(&out, "position", 2);
    proto_out_end(&out);
    expect_out("*3\r\n$6\r\nqueued\r\n$8\r\nposition\r\n:2\r\n");
    /* A data line of one word, one number, none; then a line of its head alone. */
    proto_out_begin(&out, "CODE");
    proto_out_word(&out, "ABCD2345");
    proto_out_end(&out);
    proto_out_begin(&out, "COUNT");
    proto_out_u64(&out, 9223372036854775807ULL);
    proto_out_end(&out);
    proto_out_begin(&out, "MORE");
    proto_out_end(&out);
    proto_out_begin(&out, "OK");
    proto_out_text(&out, "all done");
    proto_out_end(&out);
    expect_out("*4\r\n$8\r\nABCD2345\r\n:9223372036854775807\r\n+MORE\r\n+all done\r\n");
    /* CR and LF cannot be in a simple string or an error: they become spaces. A bulk string
     * keeps them. */
    proto_out_error(&out, PROTO_ERR_INTERNAL, "two\r\nlines");
    expect_out("-INTERNAL two  lines\r\n");
    proto_out_begin(&out, "INFO");
    proto_out_text(&out, "a\r\nb");
    proto_out_end(&out);
    proto_out_begin(&out, "OK");
    proto_out_word(&out, "x\ny");
    proto_out_end(&out);
    expect_out("*2\r\n$4\r\na\r\nb\r\n+x y\r\n");
}

/* A counted list is written as it goes, and is an array even when it is empty. */
static void
test_reply_stream(void **state)
{
    (void)state;
    start(PROTO_FORM_RESP3);
    proto_out_stream(&out, 2);
    for (int i = 0; i < 2; i++) {
        proto_out_begin(&out, "CODE");
        proto_out_word(&out, i == 0 ? "AAA" : "BBB");
        proto_out_end(&out);
        /* written at once, not held */
        assert_int_equal(got.len, i == 0 ? strlen("*3\r\n$3\r\nAAA\r\n") : 22);
    }
    proto_out_begin(&out, "OK");
    proto_out_field_u64(&out, "generated", 2);
    proto_out_end(&out);
    expect_out("*3\r\n$3\r\nAAA\r\n$3\r\nBBB\r\n%1\r\n$9\r\ngenerated\r\n:2\r\n");

    proto_out_stream(&out, 0);
    proto_out_begin(&out, "OK");
    proto_out_field_u64(&out, "count", 0);
    proto_out_end(&out);
    expect_out("*1\r\n%1\r\n$5\r\ncount\r\n:0\r\n");

    /* COUPONS: a coupon's map per line, in RESP2 a flat array. */
    proto_out_set_form(&out, PROTO_FORM_RESP2);
    proto_out_stream(&out, 1);
    proto_out_begin(&out, "COUPON");
    proto_out_coupon(&out, &summer);
    proto_out_field_time(&out, "assigned", 0);
    proto_out_end(&out);
    proto_out_begin(&out, "OK");
    proto_out_field_u64(&out, "count", 1);
    proto_out_end(&out);
    expect_out("*2\r\n*16\r\n" COUPON_FIELDS "$8\r\nassigned\r\n$20\r\n1970-01-01T00:00:00Z\r\n"
               "*2\r\n$5\r\ncount\r\n:1\r\n");

    /* Fewer lines than announced: nulls; more: dropped. */
    proto_out_stream(&out, 3);
    proto_out_begin(&out, "CODE");
    proto_out_word(&out, "AAA");
    proto_out_end(&out);
    proto_out_ok(&out);
    expect_out("*4\r\n$3\r\nAAA\r\n$-1\r\n$-1\r\n+OK\r\n");
    proto_out_stream(&out, 1);
    for (int i = 0; i < 3; i++) {
        proto_out_begin(&out, "CODE");
        proto_out_word(&out, "AAA");
        proto_out_end(&out);
    }
    proto_out_ok(&out);
    expect_out("*2\r\n$3\r\nAAA\r\n+OK\r\n");

    /* An error before the first line is a plain error; after it, the array's last value. */
    proto_out_stream(&out, 5);
    proto_out_error(&out, PROTO_ERR_INTERNAL, "store unreadable");
    expect_out("-INTERNAL store unreadable\r\n");
    proto_out_set_form(&out, PROTO_FORM_RESP3);
    proto_out_stream(&out, 3);
    proto_out_begin(&out, "CODE");
    proto_out_word(&out, "AAA");
    proto_out_end(&out);
    proto_out_error(&out, PROTO_ERR_INTERNAL, "store unreadable");
    expect_out("*4\r\n$3\r\nAAA\r\n_\r\n_\r\n-INTERNAL store unreadable\r\n");

    /* The line form ignores the count. */
    proto_out_set_form(&out, PROTO_FORM_LINE);
    proto_out_stream(&out, 7);
    write_stats();
    expect_out("STAT uptime_s 12\nSTAT assigned.FREE 3\nOK\n");
}

/* A streamed reply written in portions, another reply in between: its state is saved and put
 * back. */
static void
test_reply_stream_portions(void **state)
{
    (void)state;
    start(PROTO_FORM_RESP3);
    proto_out_stream(&out, 2);
    proto_out_begin(&out, "CODE");
    proto_out_word(&out, "AAA");
    proto_out_end(&out);
    struct proto_out_reply saved = out.reply;

    proto_out_set_form(&out, PROTO_FORM_LINE); /* another connection's reply */
    write_pong();
    proto_out_set_form(&out, PROTO_FORM_RESP2);
    write_stats();

    out.reply = saved;
    proto_out_begin(&out, "CODE");
    proto_out_word(&out, "BBB");
    proto_out_end(&out);
    proto_out_ok(&out);
    assert_string_equal(got.data,
                        "*3\r\n$3\r\nAAA\r\n"
                        "OK PONG\n"
                        "*3\r\n*2\r\n$8\r\nuptime_s\r\n:12\r\n*2\r\n$13\r\nassigned.FREE\r\n"
                        ":3\r\n+OK\r\n"
                        "$3\r\nBBB\r\n+OK\r\n");
}

/* Data lines past the scratch: an OK reply becomes an error that quotes its status line; an
 * ERR keeps what fitted and counts the rest. Without scratch, the same. */
static void
test_reply_scratch_full(void **state)
{
    static char small[72];
    (void)state;

    start(PROTO_FORM_RESP3);
    proto_out_set_scratch(&out, small, sizeof small);
    write_stats(); /* the first line fits (35 bytes held), the second does not */
    expect_out("-INTERNAL reply too large for RESP (2 data lines, 72 bytes held at most); its "
               "status: OK\r\n");
    write_rejects();
    expect_out("-BAD_BATCH 2 of 3 records rejected, nothing stored; REJECT 1 bad discount: more "
               "than 2 decimal places; 1 more lines left out\r\n");
    /* The next reply starts clean. */
    write_help();
    expect_out("*2\r\n$36\r\nPING - check that the server answers\r\n+OK\r\n");
    proto_out_set_scratch(&out, NULL, 12345);
    write_help();
    expect_out("-INTERNAL reply too large for RESP (1 data lines, 0 bytes held at most); its "
               "status: OK\r\n");
    write_pong();
    expect_out("+PONG\r\n");
}

/* Starting a reply drops what is left of an unfinished one, so nothing of one connection's
 * reply leaks into the next, which a shared writer serves. */
static void
test_reply_set_form_resets(void **state)
{
    (void)state;
    start(PROTO_FORM_RESP3);
    proto_out_begin(&out, "STAT");
    proto_out_word(&out, "secret");
    proto_out_u64(&out, 1);
    proto_out_end(&out);
    proto_out_set_form(&out, PROTO_FORM_RESP3);
    write_ok();
    expect_out("+OK\r\n");
    proto_out_stream(&out, 4);
    proto_out_set_form(&out, PROTO_FORM_RESP2);
    write_ok();
    expect_out("+OK\r\n");
}

/* HELLO's map, INFO's bulk string and the other raw values; nothing in the line form. */
#define HELLO_BODY                                                                                 \
    "$6\r\nserver\r\n$7\r\ncoupond\r\n$7\r\nversion\r\n$6\r\nmaster\r\n$5\r\nproto\r\n:%d\r\n"     \
    "$2\r\nid\r\n:42\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"         \
    "$7\r\nmodules\r\n*0\r\n"

static void
test_reply_raw_values(void **state)
{
    static const char *const keys[] = {"server", "version", "proto",  "id",
                                       "mode",   "role",    "modules"};
    (void)state;

    for (int form = PROTO_FORM_RESP2; form <= PROTO_FORM_RESP3; form++) {
        start((enum proto_form)form);
        proto_out_resp_map(&out, 7);
        for (int k = 0; k < 7; k++) {
            proto_out_resp_bulk(&out, keys[k], strlen(keys[k]));
            if (k == 2 || k == 3)
                proto_out_resp_int(&out, k == 2 ? form == PROTO_FORM_RESP3 ? 3 : 2 : 42);
            else if (k == 6)
                proto_out_resp_array(&out, 0);
            else
                proto_out_resp_bulk(&out,
                                    k == 0   ? "coupond"
                                    : k == 4 ? "standalone"
                                             : "master",
                                    k == 0   ? 7
                                    : k == 4 ? 10
                                             : 6);
        }
        char want[512];
        snprintf(want, sizeof want, "%s" HELLO_BODY,
                 form == PROTO_FORM_RESP3 ? "%7\r\n" : "*14\r\n", form == PROTO_FORM_RESP3 ? 3 : 2);
        expect_out(want);
        proto_out_resp_bulk(&out, "# Server\r\nversion:0.1.0\r\n", 25);
        expect_out("$25\r\n# Server\r\nversion:0.1.0\r\n\r\n");
        proto_out_resp_null(&out);
        expect_out(form == PROTO_FORM_RESP3 ? "_\r\n" : "$-1\r\n");
        proto_out_resp_int(&out, INT64_MIN);
        expect_out(":-9223372036854775808\r\n");
        proto_out_resp_simple(&out, "OK\r\n");
        expect_out("+OK  \r\n");
    }
    start(PROTO_FORM_LINE);
    proto_out_resp_map(&out, 1);
    proto_out_resp_bulk(&out, "x", 1);
    proto_out_resp_int(&out, 1);
    proto_out_resp_null(&out);
    proto_out_resp_simple(&out, "x");
    proto_out_resp_array(&out, 0);
    assert_int_equal(got.len, 0);
}

/* A line cut at PROTO_REPLY_LINE_MAX or at PROTO_OUT_ITEMS_MAX items is still one RESP value,
 * of what fitted. */
static void
test_reply_cut_lines(void **state)
{
    static char huge[PROTO_REPLY_LINE_MAX + 100];
    (void)state;

    memset(huge, 'h', sizeof huge - 1);
    start(PROTO_FORM_RESP2);
    proto_out_begin(&out, "OK");
    proto_out_field(&out, "key", "v");
    proto_out_field(&out, "big", huge);
    proto_out_field(&out, "lost", "v");
    assert_true(out.cut);
    proto_out_end(&out);
    /* "OK key=v big=" is 13 bytes: the value has the rest of the line; "lost" has no room. */
    const char *head = "*4\r\n$3\r\nkey\r\n$1\r\nv\r\n$3\r\nbig\r\n$4595\r\nhhh";
    assert_memory_equal(got.data, head, strlen(head));
    assert_memory_equal(got.data + got.len - 4, "hh\r\n", 4);
    expect_out(got.data);

    proto_out_begin(&out, "CODE");
    for (int i = 0; i < PROTO_OUT_ITEMS_MAX + 5; i++)
        proto_out_u64(&out, (uint64_t)i);
    assert_true(out.cut);
    proto_out_end(&out);
    proto_out_ok(&out);
    assert_memory_equal(got.data, "*2\r\n*32\r\n:0\r\n:1\r\n", 17);
    expect_out(got.data);
}

/* The line form of a coupon is proto_fmt_coupon's text, byte for byte, also for the longest
 * values and a code without NUL; and a long bulk string goes to the sink whole. */
static void
test_reply_line_form_unchanged(void **state)
{
    struct proto_coupon c = {.type = PROTO_TYPE_MEGADEAL,
                             .kind = PROTO_KIND_PERCENT,
                             .discount = INT64_MIN,
                             .expires = PROTO_TIME_MAX,
                             .uses = UINT32_MAX,
                             .max_uses = UINT32_MAX};
    char text[PROTO_COUPON_BUF], want[PROTO_COUPON_BUF + 8];
    (void)state;

    memset(c.code, 'Z', sizeof c.code); /* no NUL: at most PROTO_CODE_MAX bytes are shown */
    start(PROTO_FORM_LINE);
    proto_out_begin(&out, "OK");
    proto_out_coupon(&out, &c);
    proto_out_end(&out);
    proto_fmt_coupon(text, &c);
    snprintf(want, sizeof want, "OK %s\n", text);
    expect_out(want);

    static char big[3000];
    memset(big, 'b', sizeof big - 1);
    proto_out_set_form(&out, PROTO_FORM_RESP3);
    proto_out_begin(&out, "INFO");
    proto_out_text(&out, big);
    proto_out_end(&out);
    proto_out_ok(&out);
    assert_int_equal(got.len, 4 + 7 + sizeof big - 1 + 2 + 5);
    assert_int_equal(resp_value(got.data, got.len), got.len);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_resp_basic),
        cmocka_unit_test(test_frame_resp_empty_array),
        cmocka_unit_test(test_frame_resp_null),
        cmocka_unit_test(test_frame_resp_header_errors),
        cmocka_unit_test(test_frame_resp_errors_while_dropping),
        cmocka_unit_test(test_frame_resp_stray_bulk),
        cmocka_unit_test(test_frame_resp_long_args),
        cmocka_unit_test(test_frame_resp_huge_counts),
        cmocka_unit_test(test_frame_resp_busy),
        cmocka_unit_test(test_frame_resp_splits),
        cmocka_unit_test(test_request_same_as_line),
        cmocka_unit_test(test_request_redis_clients),
        cmocka_unit_test(test_request_resp_only),
        cmocka_unit_test(test_request_resp_upload),
        cmocka_unit_test(test_request_from_frame),
        cmocka_unit_test(test_reply_shapes),
        cmocka_unit_test(test_reply_mixed_lines),
        cmocka_unit_test(test_reply_stream),
        cmocka_unit_test(test_reply_stream_portions),
        cmocka_unit_test(test_reply_scratch_full),
        cmocka_unit_test(test_reply_set_form_resets),
        cmocka_unit_test(test_reply_raw_values),
        cmocka_unit_test(test_reply_cut_lines),
        cmocka_unit_test(test_reply_line_form_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
