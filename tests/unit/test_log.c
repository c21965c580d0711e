/* test_log.c - unit tests of the operation log's line format (server/log.c) on a real file:
 * every value quoted and escaped by one rule, numbers, left-out fields, and lines cut at
 * LOG_LINE_MAX between two characters, never inside an escape, ending in " cut=1". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define NOW       1795487281.25 /* 2026-11-24T02:28:01.250000Z */
#define FILE_MAX  (1 << 20)
#define ERR_MAX   256
#define VALUE_MAX 2048

struct fixture {
    char dir[64];
    char path[96];
    char text[FILE_MAX];
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/coupond-log-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/ops.log", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct log *
open_log(struct fixture *f)
{
    char err[ERR_MAX];
    unlink(f->path);
    struct log *lg = log_open(f->path, err, sizeof err);
    if (!lg)
        fail_msg("log_open: %s", err);
    return lg;
}

/* Closes the log (writing everything out) and reads the file into f->text; returns its length. */
static size_t
close_and_read(struct fixture *f, struct log *lg)
{
    log_close(lg);
    FILE *fp = fopen(f->path, "r");
    assert_non_null(fp);
    size_t n = fread(f->text, 1, sizeof f->text - 1, fp);
    fclose(fp);
    f->text[n] = '\0';
    return n;
}

/* Reads a quoted value after its opening quote into out; returns the end, or NULL if malformed. */
static const char *
unquote(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    for (; *p != '"'; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < ' ' || ch >= 0x7f)
            return NULL;
        if (ch == '\\') {
            p++;
            if (*p == 'x') {
                unsigned v;
                if (sscanf(p + 1, "%2x", &v) != 1 || !strchr("0123456789abcdef", p[1]) ||
                    !strchr("0123456789abcdef", p[2]))
                    return NULL;
                ch = (unsigned char)v;
                p += 2;
            } else if (*p == '"' || *p == '\\') {
                ch = (unsigned char)*p;
            } else {
                return NULL;
            }
        }
        if (n + 1 < cap)
            out[n++] = (char)ch;
    }
    out[n] = '\0';
    return p + 1;
}

static void
test_values_quoted_by_one_rule(void **state)
{
    struct fixture *f = *state;
    struct log *lg = open_log(f);
    const struct log_field fields[] = {
        log_str("plain", "abc-1.2:3"),  log_str("space", "a b"), log_str("eq", "k=v"),
        log_str("quote", "say \"hi\""), log_str("bs", "a\\b"),   log_str("ctl", "a\nb\x01"),
        log_str("high", "\xc3\xa9"),    log_str("empty", ""),    log_str("none", NULL),
        log_uint("u", UINT64_MAX),      log_int("i", INT64_MIN), log_int("zero", 0),
    };
    log_event(lg, NOW, "EVENT", fields, LOG_NFIELDS(fields));
    struct log_op op = {.conn = 7,
                        .peer = "[::1]:5",
                        .op = "REQUEST",
                        .user = "al ice",
                        .code = "",
                        .result = "OK",
                        .us = -1};
    log_op(lg, NOW, &op);
    close_and_read(f, lg);
    assert_string_equal(
        f->text,
        "time=2026-11-24T02:28:01.250000Z op=EVENT plain=abc-1.2:3 space=\"a b\" eq=\"k=v\" "
        "quote=\"say \\\"hi\\\"\" bs=\"a\\\\b\" ctl=\"a\\x0ab\\x01\" high=\"\\xc3\\xa9\" "
        "empty=\"\" u=18446744073709551615 i=-9223372036854775808 zero=0\n"
        "time=2026-11-24T02:28:01.250000Z conn=7 peer=[::1]:5 op=REQUEST user=\"al ice\" "
        "result=OK\n");
}

/* Checks one cut line: at most LOG_LINE_MAX bytes with its newline, " cut=1" at its end, and
 * its field v a well-quoted prefix of `value`. */
static void
check_cut_line(const char *line, size_t len, const char *value)
{
    static const char tail[] = " cut=1\n";
    if (len > LOG_LINE_MAX || len < sizeof tail || memcmp(line + len - 7, tail, 7) != 0)
        fail_msg("line of %zu bytes does not end in \" cut=1\": %.*s", len, (int)len, line);
    const char *v = strstr(line, " v=");
    if (!v)
        return; /* the value did not fit at all: left out whole */
    static char got[VALUE_MAX];
    const char *end = v[3] == '"' ? unquote(v + 4, got, sizeof got) : NULL;
    if (!end || strncmp(end, tail, 7) != 0)
        fail_msg("cut value is not well quoted: %.*s", (int)len, line);
    if (strncmp(value, got, strlen(got)) != 0 || strlen(got) >= strlen(value))
        fail_msg("cut value is not a shorter prefix of the value");
}

static void
test_long_lines_cut_cleanly(void **state)
{
    struct fixture *f = *state;
    static const char unit[] = "a\"\\\x01 ";
    static char value[VALUE_MAX];
    for (size_t i = 0; i + 1 < sizeof value; i++)
        value[i] = unit[i % (sizeof unit - 1)];
    /* Every offset of the escapes against the line's end, and lengths around the limit. */
    for (size_t shift = 0; shift < 8; shift++) {
        char key[16];
        memset(key, 'k', shift + 1);
        key[shift + 1] = '\0';
        struct log *lg = open_log(f);
        const struct log_field fields[] = {log_str(key, "x"), log_str("v", value),
                                           log_uint("after", 1)};
        log_event(lg, NOW, "E", fields, LOG_NFIELDS(fields));
        size_t n = close_and_read(f, lg);
        assert_null(memchr(f->text, '\0', n));
        check_cut_line(f->text, n, value);
        assert_null(strstr(f->text, "after="));
    }
    /* A value that fits exactly is not cut, and a number that does not fit is left out. */
    struct log *lg = open_log(f);
    const struct log_field fit[] = {log_str("v", "y")};
    log_event(lg, NOW, "E", fit, 1);
    memset(value, 'z', 990);
    value[990] = '\0';
    const struct log_field num[] = {log_str("v", value), log_uint("n", UINT64_MAX)};
    log_event(lg, NOW, "E", num, 2);
    size_t n = close_and_read(f, lg);
    char *second = strchr(f->text, '\n') + 1;
    assert_null(strstr(f->text, "y cut=1"));
    check_cut_line(second, n - (size_t)(second - f->text), value);
    assert_non_null(strstr(second, "zzz\" cut=1\n"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_values_quoted_by_one_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_lines_cut_cleanly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
