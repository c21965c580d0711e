/* test_frame.c - unit tests of protocol/'s framer (where a request ends), reply writer and STAT
 * table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "reply.h"
#include "stat.h"

#define OUT_CAP 65536

/* ---- the framer ---- */

/* Runs the framer over a whole buffer, as a transport does, collecting frames. */
struct frames {
    struct proto_frame f[64];
    size_t n;
};

static void
frame_all(struct proto_framer *fr, const char *buf, size_t len, struct frames *out)
{
    size_t pos = 0;

    out->n = 0;
    for (;;) {
        struct proto_frame f;
        proto_frame_next(fr, buf + pos, len - pos, &f);
        assert_true(f.used <= len - pos);
        pos += f.used;
        if (f.kind == PROTO_FRAME_NEED_MORE)
            return;
        assert_true(out->n < 64);
        out->f[out->n++] = f;
    }
}

static void
expect_line(const struct proto_frame *f, const char *want)
{
    assert_int_equal(f->kind, PROTO_FRAME_LINE);
    assert_int_equal(f->len, strlen(want));
    assert_memory_equal(f->start, want, f->len);
}

static void
test_frame_lines_and_crlf(void **state)
{
    struct proto_framer fr = {0};
    struct frames fs;
    const char *in = "PING\nHELP\r\n\r\nSTATS\r\r\nPART";
    (void)state;

    frame_all(&fr, in, strlen(in), &fs);
    assert_int_equal(fs.n, 4);
    expect_line(&fs.f[0], "PING");
    expect_line(&fs.f[1], "HELP");
    expect_line(&fs.f[2], "");
    /* Only the one CR right before the LF goes; the other stays for the parser to refuse. */
    expect_line(&fs.f[3], "STATS\r");
}

static void
test_frame_need_more(void **state)
{
    struct proto_framer fr = {0};
    struct proto_frame f;
    (void)state;

    proto_frame_next(&fr, "PIN", 3, &f);
    assert_int_equal(f.kind, PROTO_FRAME_NEED_MORE);
    assert_int_equal(f.used, 0);
    proto_frame_next(&fr, "", 0, &f);
    assert_int_equal(f.kind, PROTO_FRAME_NEED_MORE);
    assert_int_equal(f.used, 0);
}

/* The limit counts every byte before the LF, a CR included. */
static void
test_frame_limit_counts_cr(void **state)
{
    static char buf[PROTO_MAX_LINE + 8];
    struct proto_framer fr = {0};
    struct proto_frame f;
    (void)state;

    memset(buf, ' ', sizeof buf);
    memcpy(buf, "PING", 4);
    /* 4095 bytes, CR, LF: 4096 before the LF, the most there may be. */
    buf[PROTO_MAX_LINE - 1] = '\r';
    buf[PROTO_MAX_LINE] = '\n';
    proto_frame_next(&fr, buf, PROTO_MAX_LINE + 1, &f);
    assert_int_equal(f.kind, PROTO_FRAME_LINE);
    assert_int_equal(f.len, PROTO_MAX_LINE - 1);
    /* 4096 bytes, CR, LF: one too many. */
    buf[PROTO_MAX_LINE - 1] = ' ';
    buf[PROTO_MAX_LINE] = '\r';
    buf[PROTO_MAX_LINE + 1] = '\n';
    proto_frame_next(&fr, buf, PROTO_MAX_LINE + 2, &f);
    assert_int_equal(f.kind, PROTO_FRAME_TOO_LONG);
    assert_ptr_equal(f.start, buf); /* still in the buffer: its start can be judged */
    assert_int_equal(f.used, PROTO_MAX_LINE + 2);
    assert_false(fr.skipping);
}

/* A line that outgrows the buffer: LONG_BEGIN once, the rest dropped as it comes, then one
 * TOO_LONG at its LF, and the next line is framed normally. */
static void
test_frame_long_line_skipped(void **state)
{
    static char big[PROTO_MAX_LINE + 100];
    struct proto_framer fr = {0};
    struct proto_frame f;
    (void)state;

    memset(big, 'x', sizeof big);
    proto_frame_next(&fr, big, sizeof big, &f);
    assert_int_equal(f.kind, PROTO_FRAME_LONG_BEGIN);
    assert_ptr_equal(f.start, big);
    assert_int_equal(f.used, sizeof big);
    assert_true(fr.skipping);
    proto_frame_next(&fr, big, 50, &f);
    assert_int_equal(f.kind, PROTO_FRAME_NEED_MORE);
    assert_int_equal(f.used, 50);
    proto_frame_next(&fr, "xx\nPING\n", 8, &f);
    assert_int_equal(f.kind, PROTO_FRAME_TOO_LONG);
    assert_null(f.start);
    assert_int_equal(f.used, 3);
    assert_false(fr.skipping);
    proto_frame_next(&fr, "PING\n", 5, &f);
    expect_line(&f, "PING");
}

/* Exactly the limit with no LF yet is not over it; one more byte is. */
static void
test_frame_unfinished_at_limit(void **state)
{
    static char buf[PROTO_MAX_LINE + 1];
    struct proto_framer fr = {0};
    struct proto_frame f;
    (void)state;

    memset(buf, 'y', sizeof buf);
    proto_frame_next(&fr, buf, PROTO_MAX_LINE, &f);
    assert_int_equal(f.kind, PROTO_FRAME_NEED_MORE);
    proto_frame_next(&fr, buf, PROTO_MAX_LINE + 1, &f);
    assert_int_equal(f.kind, PROTO_FRAME_LONG_BEGIN);
}

/* ---- the reply writer ---- */

struct out_buf {
    char data[OUT_CAP];
    size_t len;
    unsigned lines;
};

static void
collect(void *arg, const char *data, size_t len)
{
    struct out_buf *b = arg;

    assert_true(b->len + len < sizeof b->data);
    assert_true(len > 0 && data[len - 1] == '\n'); /* whole lines only */
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    b->lines++;
}

static void
test_reply_lines(void **state)
{
    struct out_buf b = {.len = 0};
    struct proto_out o;
    struct proto_coupon c = {.code = "SUMMER-1",
                             .type = PROTO_TYPE_STANDARD,
                             .kind = PROTO_KIND_FLAT,
                             .discount = 2000,
                             .expires = 1798761599,
                             .uses = 0,
                             .max_uses = 3};
    (void)state;

    proto_out_init(&o, collect, &b);
    proto_out_begin(&o, "OK");
    proto_out_coupon(&o, &c);
    proto_out_end(&o);
    proto_out_begin(&o, "OK");
    proto_out_field(&o, "task", "AbC");
    proto_out_field(&o, "status", "queued");
    proto_out_field_u64(&o, "position", 18446744073709551615ULL);
    proto_out_end(&o);
    proto_out_begin(&o, "REJECT");
    proto_out_u64(&o, 0);
    proto_out_text(&o, "bad code: empty");
    proto_out_end(&o);
    proto_out_error(&o, PROTO_ERR_NO_COUPONS, "no %s coupon left", "FREE");
    proto_out_ok(&o);
    assert_string_equal(b.data, "OK code=SUMMER-1 type=STANDARD discount=20.00 kind=FLAT "
                                "expires=2026-12-31T23:59:59Z uses=0 max_uses=3\n"
                                "OK task=AbC status=queued position=18446744073709551615\n"
                                "REJECT 0 bad code: empty\n"
                                "ERR NO_COUPONS no FREE coupon left\n"
                                "OK\n");
    assert_int_equal(b.lines, 5);
}

/* A line past PROTO_REPLY_LINE_MAX is cut there, never written past the buffer. */
static void
test_reply_line_cut(void **state)
{
    static char huge[PROTO_REPLY_LINE_MAX * 2];
    static struct out_buf b;
    struct proto_out o;
    (void)state;

    memset(huge, 'z', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    proto_out_init(&o, collect, &b);
    proto_out_begin(&o, "INFO");
    proto_out_text(&o, huge);
    assert_true(o.cut);
    proto_out_end(&o);
    assert_int_equal(b.len, PROTO_REPLY_LINE_MAX + 1);
}

/* ---- the STAT table ---- */

static void
test_stat_names(void **state)
{
    enum proto_stat st;
    enum proto_type t;
    struct proto_stats v;
    (void)state;

    memset(&v, 0, sizeof v);
    assert_true(proto_stat_lookup("assigned.FREE", 13, &st, &t));
    assert_int_equal(st, PROTO_STAT_ASSIGNED);
    assert_int_equal(t, PROTO_TYPE_FREE);
    assert_true(proto_stat_lookup("commands", 8, &st, &t));
    assert_int_equal(st, PROTO_STAT_COMMANDS);
    assert_true(proto_stat_lookup("megadeal.in_flight", 18, &st, &t));
    assert_int_equal(st, PROTO_STAT_MEGA_IN_FLIGHT);
    assert_false(proto_stat_lookup("assigned", 8, &st, &t));       /* per type: needs .T */
    assert_false(proto_stat_lookup("commands.FREE", 13, &st, &t)); /* not per type */
    assert_false(proto_stat_lookup("assigned.CHEAP", 14, &st, &t));
    assert_false(proto_stat_lookup("future_stat", 11, &st, &t));
    assert_true(proto_stat_parse_line("STAT available.MEGADEAL 42", 26, &v));
    assert_int_equal(v.v[PROTO_STAT_AVAILABLE][PROTO_TYPE_MEGADEAL], 42);
    assert_false(proto_stat_parse_line("STAT whatever 1", 15, &v));
    /* Text stats: a word, kept; a number where a word belongs is a word too; no room lost. */
    assert_true(proto_stat_parse_line("STAT node db-1.example", 22, &v));
    assert_string_equal(proto_stats_text(&v, PROTO_STAT_NODE), "db-1.example");
    assert_true(proto_stat_parse_line("STAT store postgresql\r", 22, &v));
    assert_string_equal(proto_stats_text(&v, PROTO_STAT_STORE), "postgresql");
    assert_false(proto_stat_parse_line("STAT store two words", 20, &v));
    assert_false(proto_stat_parse_line("STAT commands lmdb", 18, &v)); /* a number's */
    assert_null(proto_stats_text(&v, PROTO_STAT_COMMANDS));
    assert_false(proto_stats_set_text(&v, PROTO_STAT_COMMANDS, "x"));
    assert_true(proto_stats_set_text(&v, PROTO_STAT_NODE, "has space"));
    assert_string_equal(proto_stats_text(&v, PROTO_STAT_NODE), "-");
    /* The text stats are the table's last, as struct proto_stats keeps them. */
    for (int i = 0; i < PROTO_NSTATS; i++)
        assert_int_equal(proto_stat_defs[i].kind == PROTO_STAT_TEXT, i >= PROTO_STAT_FIRST_TEXT);
    /* Every name is unique and documented. */
    for (int i = 0; i < PROTO_NSTATS; i++) {
        assert_non_null(proto_stat_defs[i].name);
        assert_true(strlen(proto_stat_defs[i].doc) > 5);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(proto_stat_defs[i].name, proto_stat_defs[j].name);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_lines_and_crlf),
        cmocka_unit_test(test_frame_need_more),
        cmocka_unit_test(test_frame_limit_counts_cr),
        cmocka_unit_test(test_frame_long_line_skipped),
        cmocka_unit_test(test_frame_unfinished_at_limit),
        cmocka_unit_test(test_reply_lines),
        cmocka_unit_test(test_reply_line_cut),
        cmocka_unit_test(test_stat_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
